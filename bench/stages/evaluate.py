"""evaluate: test-set metrics with bootstrap confidence intervals and paired tests.

For each method × classifier (and each zoo classifier on ``none``), the six
metrics (accuracy, recall, specificity, precision, F1, AUC) are the mean over
training seeds; the 95% interval is a percentile bootstrap over test cases of
that seed mean (bench.metrics); the seed-to-seed standard deviation and the
bootstrap standard deviation (Byra 2021, Table 2 reports ± std) are reported
beside it. Accuracy, sensitivity and specificity are also given at the ROC point
closest to (0, 1) — a threshold chosen on each run's VALIDATION scores and then
applied to its test scores (Byra 2021 does not say where the threshold was
chosen; choosing it on test would be optimistic). Nothing is tuned on test.

Comparisons (``comparisons.csv``): every method against ``none`` with the same
classifier, and every zoo classifier against the first classifier of the matrix
on ``none``, on the same test cases with seed-mean scores: DeLong's paired AUC
test (Holm-adjusted within each family: augmentation comparisons, classifier
comparisons) and, for comparison with Byra 2021,
the Wilcoxon rank-sum test on bootstrapped AUCs (bench.stats explains why the
latter is not a valid test).

Verdicts (``verdict.csv``, ``verdict.json``; docs/statistics.md, "The verdict table"): per
classifier of ``matrix.classifiers``, every other arm against ``none`` over the paired
training seeds (seed index i of an arm with seed index i of ``none``), from
``bench.stats.verdict_rows``: ΔAUC with its two-level bootstrap interval (seeds × test cases),
the paired t over seeds, Holm-adjusted within the methods and within the controls, the minimum detectable
ΔAUC, DeLong per seed as a secondary figure, and "helps" / "hurts" / "no evidence". The arms
are the methods of the matrix, among them the controls (an augmenter plugin's class attribute
``control``: "positive" should help, "negative" should hurt), and an A/A control: ``none``
trained again on other seeds (``runs/none-aa/<classifier>/seed<s + controls.aa_seed_offset>``),
which should give "no evidence"; without those runs the A/A row is left out with a warning.
``verdict.json`` states the level, the interval, the test, the seeds, the training budget and
the weights the rows rest on.

Repeated stratified group k-fold (``split.mode: repeated-kfold``; docs/statistics.md, "Repeated
stratified group k-fold"): run ``i`` (seed ``matrix.seeds[i]``) is replicate ``i``, scored on its
own test fold. ``runs.csv`` has one row per replicate (with its repeat, fold and n_test);
``results.csv`` and ``comparisons.csv`` use each repeat's pooled out-of-fold predictions (every image
once per repeat) in place of the seeds; the verdicts use the per-replicate AUC differences, with a
bootstrap over replicates and their test cases and Nadeau & Bengio's corrected resampled t
(``bench.stats.fold_verdict_rows``; for 5 × 2 folds also Alpaydin's F-test, ``p_5x2cv_f``).

Writes ``metrics.json`` (DVC metrics), ``results.csv`` (one row per method ×
classifier), ``runs.csv`` (one row per seed), ``comparisons.csv``, ``verdict.csv``,
``verdict.json``, and per-run
ROC points for ``dvc plots`` under ``plots/roc/``, and every run's per-epoch curves
(the numbers its dvclive log holds) under ``plots/training/``, one CSV per run, so that
``dvc plots show`` finds them without the matrix paths.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from bench import metrics, registry, stats
from bench.config import Params
from bench.errors import AugbenchError
from bench.io import read_json, write_json, write_text
from bench.stages.common import add_params_args, log, params_from_args, writing


def run_dir(runs: Path, method: str, classifier: str, seed: int) -> Path:
    return runs / method / classifier / f"seed{seed}"


VAL_THRESHOLD_METRICS = ("accuracy", "recall", "specificity")


def load_run(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(test predictions, validation predictions, meta) of one training run."""
    pred, meta = folder / "predictions.csv", folder / "meta.json"
    if not (pred.is_file() and meta.is_file()):
        raise AugbenchError(f"{folder}: run is missing or incomplete (no predictions.csv/meta.json); "
                            "run the train stage for it (dvc repro)")
    frame = pd.read_csv(pred)
    split = lambda name: frame[frame["split"] == name].reset_index(drop=True)  # noqa: E731
    return split("test"), split("val"), read_json(meta)


def val_threshold_metrics(test: pd.DataFrame, val: pd.DataFrame) -> dict[str, float]:
    """Accuracy/sensitivity/specificity on test at the closest-to-(0, 1) threshold of val."""
    if val.empty or val["label"].nunique() < 2:
        return {"threshold_val": float("nan"), **{f"{m}_at_val": float("nan") for m in VAL_THRESHOLD_METRICS}}
    t = stats.closest_to_corner_threshold(val["label"].to_numpy(), val["score"].to_numpy())
    found = metrics.binary_metrics(test["label"].to_numpy(), test["score"].to_numpy(), threshold=t)
    return {"threshold_val": t, **{f"{m}_at_val": found[m] for m in VAL_THRESHOLD_METRICS}}


def pooled_out_of_fold(tests: tuple[pd.DataFrame, ...], folds: int, what: str) -> list[pd.DataFrame]:
    """Repeated k-fold: per repeat, its folds' test predictions together (each image once, sorted by
    id), so that every repeat scores the same cases, as the seeds of a fixed split do."""
    pooled = []
    for start in range(0, len(tests), folds):
        frame = pd.concat(tests[start:start + folds]).sort_values("id", kind="stable").reset_index(drop=True)
        twice = frame["id"][frame["id"].duplicated()]
        if len(twice):
            raise AugbenchError(f"{what}: image {twice.iloc[0]!r} is in two test folds of repeat {start // folds}; "
                                "the runs were not trained on one prepared k-fold split: re-run them (dvc repro)")
        if pooled and not np.array_equal(frame["id"], pooled[0]["id"]):
            raise AugbenchError(f"{what}: the test folds of repeat {start // folds} cover other images than those "
                                "of repeat 0; re-run the runs on one prepared k-fold split (dvc repro)")
        pooled.append(frame)
    return pooled


def evaluate_pair(params: Params, runs: Path, method: str, classifier: str) -> tuple[dict, list[dict], dict]:
    """One results.csv row, its runs.csv rows (one per seed, or per replicate under repeated k-fold),
    and the arrays the comparisons and verdicts need. Repeated k-fold: the row's metrics and interval
    are those of the pooled out-of-fold predictions of each repeat (:func:`pooled_out_of_fold`, the
    repeats taking the place of seeds); ``_sd`` and runs.csv are per replicate, on its own test fold."""
    ev = params.evaluate
    tests, vals, metas = zip(*(load_run(run_dir(runs, method, classifier, s)) for s in params.matrix.seeds),
                             strict=True)
    replicates = tests  # what each run was scored on
    if params.split.n_replicates:
        tests = pooled_out_of_fold(tests, params.split.folds, f"{method}/{classifier}")
    y = tests[0]["label"].to_numpy()
    for t in tests[1:]:
        if not np.array_equal(t["id"], tests[0]["id"]):
            raise AugbenchError(f"{method}/{classifier}: seeds were scored on different test sets")
    scores = [t["score"].to_numpy() for t in tests]
    ci = metrics.bootstrap_ci_seeds(y, scores, ev.bootstrap_resamples, ev.confidence, ev.seed, ev.threshold)
    per_seed = [metrics.binary_metrics(t["label"].to_numpy(), t["score"].to_numpy(), ev.threshold) for t in replicates]
    at_val = [val_threshold_metrics(t, v) for t, v in zip(replicates, vals, strict=True)]
    spread = metrics.summarize_runs(per_seed)
    # sd of the same statistic the row reports (the seed mean), over the same resamples as its CI
    boot_sd = stats.bootstrap_sd_seeds(y, scores, ev.bootstrap_resamples, ev.seed, ev.threshold)
    row = {"method": method, "classifier": classifier, "plugin": params.classifier_plugin(classifier),
           "mode": metas[0].get("mode") or metas[0].get("params", {}).get("transfer", ""),
           "augmentation_mode": augmentation_mode(metas[0]),
           "n_seeds": len(replicates), "n_test": len(y),
           "weights": metas[0]["weights"], "epochs_run": "/".join(str(m["epochs_run"]) for m in metas),
           "n_train": metas[0]["training_set"]["n_total"], "trainable_params": metas[0]["trainable_params"]}
    for name in metrics.METRIC_NAMES:
        row.update({name: ci[name].value, f"{name}_low": ci[name].low, f"{name}_high": ci[name].high,
                    f"{name}_sd": spread[name][1], f"{name}_bootstrap_sd": boot_sd[name]})
    for key in at_val[0]:
        row[key] = float(np.mean([a[key] for a in at_val]))
    seed_rows = [{"method": method, "classifier": classifier, "seed": m["seed"],
                  **replicate_columns(m, len(t)), "augmentation_mode": augmentation_mode(m), **r, **a,
                  "confusion": metrics.confusion(t["label"].to_numpy(), t["score"].to_numpy() >= ev.threshold).tolist()}
                 for m, r, a, t in zip(metas, per_seed, at_val, replicates, strict=True)]
    per_run = [(t["id"].to_numpy(), t["label"].to_numpy(), t["score"].to_numpy()) for t in replicates]
    return row, seed_rows, {"y": y, "ids": tests[0]["id"].to_numpy(), "scores": scores, "metas": list(metas),
                            "runs": per_run}


def replicate_columns(meta: dict, n_test: int) -> dict:
    """runs.csv's replicate, repeat, fold and n_test of a repeated k-fold run (nothing for a fixed split)."""
    found = meta.get("replicate")
    if not found:
        return {}
    return {"replicate": found["index"], "repeat": found["repeat"], "fold": found["fold"], "n_test": n_test}


def augmentation_mode(meta: dict) -> str:
    """append | replace | online (bench.online) of a run's training set; runs written before the
    ``augmentation_mode`` key name it in their training-set composition."""
    return meta.get("augmentation_mode") or meta.get("training_set", {}).get("mode", "")


def write_roc_points(out: Path, method: str, classifier: str, y: np.ndarray, scores: list) -> None:
    fpr, tpr, _ = metrics.roc_curve_points(y, np.mean(scores, axis=0))
    write_text(out / "plots" / "roc" / f"{method}__{classifier}.csv",
               pd.DataFrame({"fpr": fpr, "tpr": tpr}).to_csv(index=False))


CURVE_COLUMNS = ("loss", "val_loss", "accuracy", "val_accuracy")


def write_training_curves(out: Path, runs: Path, method: str, classifier: str, seeds: list[int]) -> None:
    """``plots/training/<method>__<classifier>__seed<k>.csv``: epoch, loss, val_loss (and accuracy
    where the run logged it) from the run's ``history.csv``."""
    for seed in seeds:
        path = run_dir(runs, method, classifier, seed) / "history.csv"
        if not path.is_file():  # a run folder written by hand or by an older train stage
            log.warning("%s: no history.csv, no training curve for this run", path.parent)
            continue
        history = pd.read_csv(path)
        keep = ["epoch", *[c for c in CURVE_COLUMNS if c in history]]
        write_text(out / "plots" / "training" / f"{method}__{classifier}__seed{seed}.csv",
                   history[keep].to_csv(index=False))


def comparisons(params: Params, raw: dict[tuple[str, str], dict]) -> pd.DataFrame:
    """Paired tests on the same test cases: each method vs ``none`` (same classifier), and each
    zoo classifier vs the first matrix classifier on ``none``. DeLong p-values are Holm-adjusted within
    each of the two families."""
    ev, m = params.evaluate, params.matrix
    pairs = []
    if "none" in m.methods:
        pairs += [((method, c), ("none", c)) for c in m.classifiers for method in m.methods if method != "none"]
        pairs += [(("none", c), ("none", m.classifiers[0])) for c in m.zoo]
    rows = []
    for (a, b) in pairs:
        ya, yb = raw[a]["y"], raw[b]["y"]
        if not np.array_equal(raw[a]["ids"], raw[b]["ids"]):
            raise AugbenchError(f"{a} and {b} were scored on different test sets; re-run them (dvc repro)")
        sa, sb = np.mean(raw[a]["scores"], axis=0), np.mean(raw[b]["scores"], axis=0)
        d = stats.delong_test(ya, sa, sb)
        _, p_rank = stats.bootstrap_auc_ranksum(yb, sa, sb, ev.bootstrap_resamples, ev.seed)
        rows.append({"family": "augmentation" if a[0] != b[0] else "classifier",
                     "method": a[0], "classifier": a[1], "baseline_method": b[0], "baseline_classifier": b[1],
                     "auc": d.auc_a, "auc_baseline": d.auc_b, "auc_diff": d.diff, "delong_z": d.z,
                     "delong_p": d.p_value, "ranksum_bootstrap_p": p_rank})
    table = pd.DataFrame(rows, columns=["family", "method", "classifier", "baseline_method", "baseline_classifier", "auc",
                                        "auc_baseline", "auc_diff", "delong_z", "delong_p",
                                        "ranksum_bootstrap_p"])
    # Two families of questions, each Holm-adjusted on its own: augmentation vs none, and
    # classifier vs the reference classifier.
    table["delong_p_holm"] = np.nan
    for _, rows_of in table.groupby("family"):
        table.loc[rows_of.index, "delong_p_holm"] = stats.holm_adjust(rows_of["delong_p"].to_numpy())
    return table


# ---------------------------------------------------------------------------
# Verdicts: every arm against `none` over paired training seeds
# ---------------------------------------------------------------------------

BASELINE = "none"
AA_METHOD = "none-aa"  # the A/A control: `none` trained again on other seeds
ALPHA = 0.05  # the verdict's level (docs/statistics.md); fixed, not a parameter
VERDICT_POWER = 0.8  # the power at which `mde` is stated
ROLES = {"": "method", "positive": "positive control", "negative": "negative control"}
EXPECTED = {"method": "", "positive control": "helps", "negative control": "hurts", "A/A": "no evidence"}
VERDICT_CSV_COLUMNS = ("classifier", "method", "role", "expected", *stats.VERDICT_ROW_KEYS[1:], "as_expected")


def method_role(method: str, plugin: str | None = None) -> str:
    """"method", "positive control" or "negative control", from the plugin's ``control`` attribute.
    ``plugin``: the plugin behind ``method`` when it is an ``augment.methods`` variant (Params.method_plugin)."""
    control = registry.control_of(plugin or method)
    if control not in ROLES:
        raise AugbenchError(f"augmenter {method!r} declares control = {control!r}; expected 'positive' "
                            "(it should help), 'negative' (it should hurt) or '' (an ordinary method)")
    return ROLES[control]


def _same_test_set(ids: np.ndarray, base_ids: np.ndarray, what: str) -> None:
    if not np.array_equal(ids, base_ids):
        raise AugbenchError(f"{what} was scored on a different test set from {BASELINE}; re-run it (dvc repro)")


def _same_runs(arm_runs: list, base_runs: list, what: str) -> None:
    """Run i of an arm scored the test cases of the baseline's run i (the same split, or replicate)."""
    for i, (arm, base) in enumerate(zip(arm_runs, base_runs, strict=True)):
        _same_test_set(arm[0], base[0], f"{what} (run {i})")


def load_aa(params: Params, runs: Path, classifier: str, base: dict) -> dict | None:
    """The A/A arm's test scores and metas (its seed index i paired with none's seed index i), or
    None, with a warning, when any of its runs is absent."""
    folders = [run_dir(runs, AA_METHOD, classifier, s) for s in params.controls.aa_seeds(params.matrix.seeds)]
    absent = [f for f in folders if not ((f / "predictions.csv").is_file() and (f / "meta.json").is_file())]
    if absent:
        log.warning("%s: %d of %d A/A runs absent (e.g. %s): no A/A row for %s", AA_METHOD, len(absent),
                    len(folders), absent[0], classifier)
        return None
    tests, _, metas = zip(*(load_run(f) for f in folders), strict=True)
    runs_of = [(t["id"].to_numpy(), t["label"].to_numpy(), t["score"].to_numpy()) for t in tests]
    _same_runs(runs_of, base["runs"], str(folders[0].parent))
    return {"runs": runs_of, "metas": list(metas)}


def _arms(params: Params, runs: Path, raw: dict, classifier: str) -> tuple[dict, dict, list]:
    """``(scores by arm, role by arm, metas of every run read)`` of one classifier."""
    base = raw[(BASELINE, classifier)]
    scores, roles, metas = {}, {}, list(base["metas"])
    for method in params.matrix.methods:
        if method != BASELINE:
            _same_test_set(raw[(method, classifier)]["ids"], base["ids"], f"{method}/{classifier}")
            _same_runs(raw[(method, classifier)]["runs"], base["runs"], f"{method}/{classifier}")
            scores[method], roles[method] = raw[(method, classifier)]["runs"], method_role(method, params.method_plugin(method))
            metas += raw[(method, classifier)]["metas"]
    aa = load_aa(params, runs, classifier, base)
    if aa is not None:
        scores[AA_METHOD], roles[AA_METHOD] = aa["runs"], "A/A"
        metas += aa["metas"]
    return scores, roles, metas


def _verdict_rows(params: Params, raw: dict, classifier: str, scores: dict, roles: dict) -> list[dict]:
    ev, base = params.evaluate, raw[(BASELINE, classifier)]
    # Two Holm families: the methods under study, and the controls (positive, negative, A/A), which
    # check that this run can see an effect and are no hypotheses of the study (docs/statistics.md)
    families = {name: "method" if role == "method" else "control" for name, role in roles.items()}
    if params.split.n_replicates:  # repeated k-fold: each replicate scored its own test fold
        n_train, n_test = replicate_sizes(base)
        rows = stats.fold_verdict_rows([y for _, y, _ in base["runs"]], [s for *_, s in base["runs"]],
                                       {k: [s for *_, s in v] for k, v in scores.items()}, n_train, n_test,
                                       ev.bootstrap_resamples, ev.seed, ev.confidence, ALPHA, VERDICT_POWER,
                                       families, params.split.folds)
    else:
        rows = stats.verdict_rows(base["y"], np.stack(base["scores"]),
                                  {k: np.stack([s for *_, s in v]) for k, v in scores.items()},
                                  ev.bootstrap_resamples, ev.seed, ev.confidence, ALPHA, VERDICT_POWER, families)
    out = []
    for row in rows:
        role = roles[row["method"]]
        expected = EXPECTED[role]
        out.append({"classifier": classifier, "method": row["method"], "role": role, "expected": expected,
                    **{k: v for k, v in row.items() if k != "method"},
                    "as_expected": (row["verdict"] == expected) if expected else ""})
        log.info("verdict %s/%s (%s): %s, ΔAUC %+.4f [%+.4f, %+.4f], p_holm %.3g", row["method"], classifier,
                 role, row["verdict"], row["delta"], row["low"], row["high"], row["p_holm"])
        if expected and row["verdict"] != expected:
            log.warning("%s/%s: the %s gave %r, expected %r", row["method"], classifier, role, row["verdict"], expected)
    return out


def replicate_sizes(base: dict) -> tuple[float, float]:
    """``(n_train, n_test)`` of one replicate, for the corrected resampled t (means over the
    baseline's replicates: folds differ by a case or so): real training images, test-fold cases.
    Nadeau & Bengio 2003 (the corrected resampled t) take n₁ = the training set size; the validation
    part is left out of it (it picks the checkpoint, it fits no weight), which makes n_test/n_train
    larger and the test more conservative (docs/statistics.md)."""
    missing = [m.get("seed") for m in base["metas"] if "n_split" not in m.get("training_set", {})]
    if missing:
        raise AugbenchError(f"{BASELINE}: the runs of seeds {missing} record no training_set.n_split (the real "
                            "training images the corrected resampled t needs); re-run them (dvc repro)")
    return (float(np.mean([m["training_set"]["n_split"] for m in base["metas"]])),
            float(np.mean([len(ids) for ids, *_ in base["runs"]])))


def _recorded(metas: list[dict], key: str, what: str, conflict: str) -> str:
    """The one value of ``key`` in the runs' meta.json, or "unknown" (with a warning) when some run
    lacks it. Runs that record different values: an AugbenchError when ``conflict == "error"``,
    else a warning and "mixed: a, b"."""
    values = sorted({str(m[key]) for m in metas if m.get(key) is not None})
    if len(values) > 1:
        text = f"{what}: the runs compared were trained with different {key} ({', '.join(values)})"
        if conflict == "error":
            raise AugbenchError(f"{text}; their verdicts would compare unlike runs: re-run them (dvc repro)")
        log.warning("%s; their verdicts compare unlike runs", text)
        return "mixed: " + ", ".join(values)
    lacking = sum(m.get(key) is None for m in metas)
    if lacking:
        log.warning("%s: %d of %d runs' meta.json record no %s: stated as 'unknown'", what, lacking, len(metas), key)
        return "unknown"
    return values[0] if values else "unknown"


def verdict_table(params: Params, runs: Path, raw: dict) -> tuple[pd.DataFrame, dict]:
    """``(verdict.csv's rows, verdict.json)``: one row per (classifier, arm) of ``matrix.classifiers``,
    Holm-adjusted over all the arms of one classifier."""
    classifiers = list(params.matrix.classifiers)
    if BASELINE not in params.matrix.methods:
        log.warning("no %r in matrix.methods: no verdicts (every arm is compared with %r)", BASELINE, BASELINE)
        classifiers = []
    rows, metas, weights, n_test, with_aa, sizes = [], [], {}, set(), [], {}
    for classifier in classifiers:
        scores, roles, found = _arms(params, runs, raw, classifier)
        rows += _verdict_rows(params, raw, classifier, scores, roles) if scores else []
        metas += found
        weights[classifier] = _recorded(found, "weights", classifier, "warn")
        n_test.add(len(raw[(BASELINE, classifier)]["y"]))
        with_aa += [classifier] if AA_METHOD in scores else []
        if params.split.n_replicates:
            sizes[classifier] = dict(zip(("n_train", "n_test"), replicate_sizes(raw[(BASELINE, classifier)]), strict=True))
    about = {**verdict_method(params), "classifiers": classifiers, "aa_classifiers": with_aa,
             "n_test": n_test.pop() if len(n_test) == 1 else sorted(n_test),
             "budget": _recorded(metas, "budget", "verdict", "error"), "weights": weights}
    if params.split.n_replicates:
        about["split"]["replicate_sizes"] = sizes
    columns = list(VERDICT_CSV_COLUMNS) + (["p_5x2cv_f"] if params.split.n_replicates else [])
    return pd.DataFrame(rows, columns=columns), about


def verdict_method(params: Params) -> dict:
    """verdict.json's account of how the rows were made: level, interval, test, seeds."""
    ev = params.evaluate
    return {
        "alpha": ALPHA, "confidence": ev.confidence, "n_resamples": ev.bootstrap_resamples, "bootstrap_seed": ev.seed,
        "power_at_mde": VERDICT_POWER, "seeds": list(params.matrix.seeds), "aa_seeds": params.controls.aa_seeds(params.matrix.seeds),
        "baseline": BASELINE,
        "interval": (f"{ev.confidence:.0%} percentile interval of the mean per-seed AUC difference (arm minus "
                     f"{BASELINE}) from a two-level bootstrap with {ev.bootstrap_resamples} replicates: each "
                     "replicate resamples the test cases (not stratified by class) and the paired seeds."),
        "test": (f"Student's paired t-test over the training seeds on the per-seed AUC differences (two-sided, "
                 "df = n_seeds - 1), Holm-adjusted within two families of the classifier's arms: the methods, "
                 f"and the controls (positive, negative, A/A); 'helps' or 'hurts' needs p_holm < {ALPHA}, the "
                 "interval clear of 0 on "
                 "the same side, and at least two seeds."),
    } | (kfold_method(params) if params.split.n_replicates else {"split": {"mode": params.split.mode}})


def kfold_method(params: Params) -> dict:
    """verdict.json's interval, test and split under repeated k-fold (docs/statistics.md)."""
    ev, sp = params.evaluate, params.split
    five_by_two = " Alpaydin's (1999) combined 5x2cv F-test is given beside it (p_5x2cv_f; not Holm-adjusted)." \
        if (sp.folds, sp.repeats) == (2, 5) else ""
    return {
        "split": {"mode": sp.mode, "folds": sp.folds, "repeats": sp.repeats, "replicates": sp.n_replicates,
                  "seed": sp.seed, "pairing": "replicate r = (repeat r // folds, fold r % folds) trains with "
                                             "matrix.seeds[r] (A/A: aa_seeds[r])"},
        "interval": (f"{ev.confidence:.0%} percentile interval of the mean per-replicate AUC difference (arm minus "
                     f"{BASELINE}, each on its replicate's test fold) from a two-level bootstrap with "
                     f"{ev.bootstrap_resamples} replicates: each resamples every fold's test cases (not stratified "
                     "by class) and the paired replicates."),
        "test": (f"Nadeau & Bengio's (2003) corrected resampled t-test over the {sp.n_replicates} replicates of "
                 f"{sp.repeats} x {sp.folds}-fold cross-validation (variance x (1/J + n_test/n_train), df = J - 1; "
                 "two-sided), Holm-adjusted within two families of the classifier's arms: the methods, and the "
                 f"controls; 'helps' or 'hurts' needs p_holm < {ALPHA} and the interval clear of 0 on the same "
                 f"side.{five_by_two}"),
    }

def evaluate(params: Params, runs: Path, out: Path) -> pd.DataFrame:
    rows, seed_rows, dvc_metrics, raw = [], [], {}, {}
    shutil.rmtree(out / "plots" / "training", ignore_errors=True)  # only this matrix's runs
    for method, classifier in params.matrix.pairs():
        row, per_seed, found = evaluate_pair(params, runs, method, classifier)
        rows.append(row)
        seed_rows.extend(per_seed)
        raw[(method, classifier)] = found
        write_roc_points(out, method, classifier, found["y"], found["scores"])
        write_training_curves(out, runs, method, classifier, params.matrix.seeds)
        dvc_metrics.setdefault(method, {})[classifier] = {
            m: round(row[m], 4) for m in metrics.METRIC_NAMES if np.isfinite(row[m])}
    table = pd.DataFrame(rows)
    write_text(out / "results.csv", table.to_csv(index=False))
    write_text(out / "runs.csv", pd.DataFrame(seed_rows).to_csv(index=False))
    write_text(out / "comparisons.csv", comparisons(params, raw).to_csv(index=False))
    verdicts, about = verdict_table(params, runs, raw)
    write_text(out / "verdict.csv", verdicts.to_csv(index=False))
    write_json(out / "verdict.json", about)
    write_json(out / "metrics.json", dvc_metrics)
    log.info("evaluated %d method × classifier pairs over %d seeds", len(rows), len(params.matrix.seeds))
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="augbench evaluate", description=__doc__.splitlines()[0])
    add_params_args(parser)
    parser.add_argument("--runs", default="runs")
    parser.add_argument("--out", default="reports")
    args = parser.parse_args(argv)
    with writing(args.out):
        evaluate(params_from_args(args), Path(args.runs), Path(args.out))
    return 0
