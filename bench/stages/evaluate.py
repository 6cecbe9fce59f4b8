"""evaluate: test-set metrics with bootstrap confidence intervals for every run.

For each method × classifier, the six metrics (accuracy, recall, specificity,
precision, F1, AUC) are the mean over training seeds; the 95% interval is a
percentile bootstrap over test cases of that seed mean (bench.metrics); the
seed-to-seed standard deviation is reported beside it. Only the test split is
scored here; nothing is tuned on it.

Writes ``metrics.json`` (DVC metrics), ``results.csv`` (one row per method ×
classifier), ``runs.csv`` (one row per seed), and per-run ROC points for
``dvc plots`` under ``plots/roc/``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from bench import metrics
from bench.config import Params
from bench.errors import AugbenchError
from bench.io import read_json, write_json, write_text
from bench.stages.common import add_params_args, log, params_from_args


def run_dir(runs: Path, method: str, classifier: str, seed: int) -> Path:
    return runs / method / classifier / f"seed{seed}"


def load_run(folder: Path) -> tuple[pd.DataFrame, dict]:
    pred, meta = folder / "predictions.csv", folder / "meta.json"
    if not (pred.is_file() and meta.is_file()):
        raise AugbenchError(f"{folder}: run is missing or incomplete (no predictions.csv/meta.json); "
                            "run the train stage for it (dvc repro)")
    frame = pd.read_csv(pred)
    return frame[frame["split"] == "test"].reset_index(drop=True), read_json(meta)


def evaluate_pair(params: Params, runs: Path, method: str, classifier: str) -> tuple[dict, list[dict], dict]:
    ev = params.evaluate
    tests, metas = zip(*(load_run(run_dir(runs, method, classifier, s)) for s in params.matrix.seeds), strict=True)
    y = tests[0]["label"].to_numpy()
    for t in tests[1:]:
        if not np.array_equal(t["id"], tests[0]["id"]):
            raise AugbenchError(f"{method}/{classifier}: seeds were scored on different test sets")
    scores = [t["score"].to_numpy() for t in tests]
    ci = metrics.bootstrap_ci_seeds(y, scores, ev.bootstrap_resamples, ev.confidence, ev.seed, ev.threshold)
    per_seed = [metrics.binary_metrics(y, s, ev.threshold) for s in scores]
    spread = metrics.summarize_runs(per_seed)
    row = {"method": method, "classifier": classifier, "n_seeds": len(scores), "n_test": len(y),
           "weights": metas[0]["weights"], "epochs_run": "/".join(str(m["epochs_run"]) for m in metas),
           "n_train": metas[0]["training_set"]["n_total"], "trainable_params": metas[0]["trainable_params"]}
    for name in metrics.METRIC_NAMES:
        row.update({name: ci[name].value, f"{name}_low": ci[name].low, f"{name}_high": ci[name].high,
                    f"{name}_sd": spread[name][1]})
    seed_rows = [{"method": method, "classifier": classifier, "seed": m["seed"], **r,
                  "confusion": metrics.confusion(y, s >= ev.threshold).tolist()}
                 for m, r, s in zip(metas, per_seed, scores, strict=True)]
    return row, seed_rows, {"y": y, "scores": scores}


def write_roc_points(out: Path, method: str, classifier: str, y: np.ndarray, scores: list) -> None:
    fpr, tpr, _ = metrics.roc_curve_points(y, np.mean(scores, axis=0))
    write_text(out / "plots" / "roc" / f"{method}__{classifier}.csv",
               pd.DataFrame({"fpr": fpr, "tpr": tpr}).to_csv(index=False))


def evaluate(params: Params, runs: Path, out: Path) -> pd.DataFrame:
    rows, seed_rows, dvc_metrics = [], [], {}
    for method in params.matrix.methods:
        for classifier in params.matrix.classifiers:
            row, per_seed, raw = evaluate_pair(params, runs, method, classifier)
            rows.append(row)
            seed_rows.extend(per_seed)
            write_roc_points(out, method, classifier, raw["y"], raw["scores"])
            dvc_metrics.setdefault(method, {})[classifier] = {
                m: round(row[m], 4) for m in metrics.METRIC_NAMES if np.isfinite(row[m])}
    table = pd.DataFrame(rows)
    write_text(out / "results.csv", table.to_csv(index=False))
    write_text(out / "runs.csv", pd.DataFrame(seed_rows).to_csv(index=False))
    write_json(out / "metrics.json", dvc_metrics)
    log.info("evaluated %d method × classifier pairs over %d seeds", len(rows), len(params.matrix.seeds))
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="augbench evaluate", description=__doc__.splitlines()[0])
    add_params_args(parser)
    parser.add_argument("--runs", default="runs")
    parser.add_argument("--out", default="reports")
    args = parser.parse_args(argv)
    evaluate(params_from_args(args), Path(args.runs), Path(args.out))
    return 0
