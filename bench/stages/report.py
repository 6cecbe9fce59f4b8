"""report: the tables, plots and provenance header people read (``reports/``).

Writes ``results.md`` (provenance header, the Table-4-style metrics table of
Panigrahi et al. 2024 with 95% CIs, per-run confusion matrices), ``table.csv``,
``roc.png``, ``history.png``, ``confusion/*.png``, ``grids/*.png`` (a sample
grid per augmentation method) and ``provenance.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

from bench import plots, provenance
from bench.config import Params
from bench.io import atomic_path, read_json, write_json, write_text
from bench.stages.common import add_params_args, log, params_from_args
from bench.stages.evaluate import run_dir

COLUMNS = {"accuracy": "Acc", "recall": "Recall", "specificity": "Specificity",
           "precision": "Precision", "f1": "F1", "auc": "AUC"}


def cell(row: pd.Series, name: str) -> str:
    """'83.1 [75.0, 90.2]' in percent (AUC as a fraction)."""
    scale, fmt = (1, "{:.3f}") if name == "auc" else (100, "{:.1f}")
    value, low, high = (row[name] * scale, row[f"{name}_low"] * scale, row[f"{name}_high"] * scale)
    if not np.isfinite(value):
        return "n/a"
    return f"{fmt.format(value)} [{fmt.format(low)}, {fmt.format(high)}]"


def metrics_table(results: pd.DataFrame) -> pd.DataFrame:
    rows = [{"Method": r["method"], "Classifier": r["classifier"],
             **{label: cell(r, name) for name, label in COLUMNS.items()},
             "Seeds": r["n_seeds"], "n train": r["n_train"], "Epochs": r["epochs_run"]}
            for _, r in results.iterrows()]
    return pd.DataFrame(rows)


def header(params: Params, prepared_meta: dict, run_metas: list[dict], prov: dict) -> str:
    split = prepared_meta["split_counts"]
    val = prepared_meta["validation"]
    weights = sorted({f"{m['classifier']}: {m['weights']}" for m in run_metas})
    epochs = sorted({f"{m['classifier']}: ≤{m['params'].get('epochs')} epochs, batch {m['params'].get('batch_size')}, "
                     f"lr {m['params'].get('learning_rate')}" for m in run_metas})
    inputs = prepared_meta.get("inputs", {})
    ph = inputs.get("phantom", {})
    source = (f"generated: {ph.get('n_per_class')} per class at {ph.get('size')} px, difficulty "
              f"{ph.get('difficulty')}, seed {ph.get('seed')}" if prepared_meta["source"] == "phantom"
              else prepared_meta["root"])
    mach, git = prov["machine"], prov["git"]
    lines = [
        f"- **Dataset**: {prepared_meta['dataset']} ({source}), classes "
        f"{prepared_meta['classes']} (positive: {prepared_meta['positive']}), {prepared_meta['n_images']} images "
        f"after validation ({val['dropped']} dropped for label conflicts, {val['unreadable']} unreadable, "
        f"{val['exact_duplicate_groups']} exact and {val['near_duplicate_groups']} near-duplicate groups kept "
        "within one split)",
        "- **Splits**: " + "; ".join(f"{s}: {', '.join(f'{c} {n}' for c, n in d.items())}" for s, d in split.items()),
        f"- **Image size**: {prepared_meta['image_size']} px; SRAD: {'on' if prepared_meta['srad'] else 'off'}",
        f"- **Profile**: `{params.profile}`; seeds {params.matrix.seeds}; split seed {params.split.seed}, "
        f"augmentation seed {params.augment.seed}",
        f"- **Training**: {'; '.join(epochs)} (early stopping on validation loss)",
        f"- **Weights**: {'; '.join(weights)}",
        f"- **Intervals**: {params.evaluate.confidence:.0%} percentile bootstrap over test cases, "
        f"{params.evaluate.bootstrap_resamples} resamples (mean over seeds; threshold {params.evaluate.threshold})",
        f"- **Machine**: {mach['cpu']} × {mach['cpu_count']} cores, {mach['memory_gib']} GiB, "
        f"GPUs: {', '.join(mach['gpus']) or 'none'}; {mach['platform']}",
        f"- **Commit**: {git['commit'][:12]}{' (uncommitted changes)' if git['dirty'] else ''}; "
        + ", ".join(f"{k} {v}" for k, v in prov["versions"].items() if v != "not installed"),
    ]
    return "\n".join(lines)


def negative_positive(prepared_meta: dict) -> list[str]:
    """Class names in confusion-matrix order: rows/columns are [negative, positive]."""
    positive = prepared_meta["positive"]
    return [next(c for c in prepared_meta["classes"] if c != positive), positive]


def confusion_section(runs_frame: pd.DataFrame, classes: list[str], out: Path) -> str:
    parts = ["| Run | TN | FP | FN | TP |", "|---|---|---|---|---|"]
    for _, r in runs_frame.iterrows():
        cm = np.array(json.loads(r["confusion"]) if isinstance(r["confusion"], str) else r["confusion"])
        name = f"{r['method']}__{r['classifier']}__seed{r['seed']}"
        plots.confusion_plot(out / "confusion" / f"{name}.png", cm, classes, name)
        parts.append(f"| {r['method']} / {r['classifier']} / seed {r['seed']} | "
                     f"{cm[0, 0]} | {cm[0, 1]} | {cm[1, 0]} | {cm[1, 1]} |")
    return "\n".join(parts)


def curves(params: Params, results: pd.DataFrame, runs: Path, out: Path) -> tuple[dict, dict]:
    """ROC points written by evaluate (seed-mean scores) and first-seed loss histories."""
    roc, hist = {}, {}
    for method, clf in zip(results["method"], results["classifier"], strict=True):
        points = pd.read_csv(out / "plots" / "roc" / f"{method}__{clf}.csv")
        fpr, tpr = points["fpr"].to_numpy(), points["tpr"].to_numpy()
        # area under the plotted curve (seed-mean scores), so legend and line agree
        roc[f"{method} / {clf}"] = (fpr, tpr, float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)))
        h = pd.read_csv(run_dir(runs, method, clf, params.matrix.seeds[0]) / "history.csv")
        hist[f"{method} / {clf}"] = {k: h[k].tolist() for k in ("loss", "val_loss") if k in h}
    return roc, hist


def copy_grids(params: Params, augmented: Path, out: Path) -> list[str]:
    names = []
    for method in params.matrix.methods:
        src = augmented / method / "grid.png"
        if src.is_file():
            with atomic_path(out / "grids" / f"{method}.png") as tmp:
                shutil.copyfile(src, tmp)
            names.append(method)
    return names


def report(params: Params, prepared: Path, augmented: Path, runs: Path, out: Path) -> str:
    results = pd.read_csv(out / "results.csv")
    runs_frame = pd.read_csv(out / "runs.csv")
    prepared_meta = read_json(prepared / "meta.json")
    run_metas = [read_json(run_dir(runs, m, c, s) / "meta.json") for m in params.matrix.methods
                 for c in params.matrix.classifiers for s in params.matrix.seeds]
    prov = provenance.record()
    table = metrics_table(results)
    roc, hist = curves(params, results, runs, out)
    plots.roc_plot(out / "roc.png", roc, f"ROC on the test split ({prepared_meta['dataset']})")
    plots.history_plot(out / "history.png", hist, f"training curves (seed {params.matrix.seeds[0]})")
    grids = copy_grids(params, augmented, out)
    text = "\n\n".join([
        f"# augbench results: {prepared_meta['dataset']}, profile `{params.profile}`", header(params, prepared_meta, run_metas, prov),
        "## Test-set metrics (layout of Panigrahi et al. 2024, Table 4)\n\nPercent, with "
        f"{params.evaluate.confidence:.0%} bootstrap intervals; AUC as a fraction. "
        "Recall = sensitivity (positive class: malignant).",
        tabulate(table, headers="keys", tablefmt="github", showindex=False),
        "![ROC curves](roc.png)\n\n![training curves](history.png)",
        "## Confusion matrices (test split, threshold "
        f"{params.evaluate.threshold})\n\n" + confusion_section(runs_frame, negative_positive(prepared_meta), out),
        "## Augmentation samples\n\n" + "\n".join(f"![{g}](grids/{g}.png)" for g in grids),
    ]) + "\n"
    write_text(out / "results.md", text)
    write_text(out / "table.csv", table.to_csv(index=False))
    write_json(out / "provenance.json", {**prov, "profile": params.profile, "dataset": prepared_meta})
    log.info("report written to %s", out / "results.md")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="augbench report", description=__doc__.splitlines()[0])
    add_params_args(parser)
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--augmented", default="data/augmented")
    parser.add_argument("--runs", default="runs")
    parser.add_argument("--out", default="reports")
    args = parser.parse_args(argv)
    report(params_from_args(args), Path(args.prepared), Path(args.augmented), Path(args.runs), Path(args.out))
    return 0
