"""report: the tables, plots and provenance header people read (``reports/``).

Writes ``results.md`` (opening with the verdict: ΔAUC of every method and control against
``none`` from the evaluate stage's ``verdict.csv``/``.json``, with ``figures/verdict.png``, its
forest plot; through ``bench.report_model``'s templates, as ``index.html`` does; then the
provenance header, the Table-4-style metrics table of
Panigrahi et al. 2024 with 95% CIs, the classifier table in the layout of Byra
2021 Table 2, the trainable-parameter table in the layout of Byra Table 1,
paired comparisons, activation rates of the DRS models, per-run confusion
matrices), ``table.csv``, ``classifiers.csv``, ``parameters.csv``, ``roc.png``,
``history.png``, ``figures/`` (ROC of every classifier, activation rates),
``confusion/*.png``, ``grids/*.png`` (a
sample grid per augmentation method), ``lrp.csv`` and ``lrp/*.png`` (LRP relevance
inside the lesion and heatmaps of every run, from bench.xai.runs), ``provenance.json`` and, from all of these,
``index.html`` (one self-contained page: ``bench.html_report``).

When they exist it also reads the pseudolabel stage's ``pseudolabel.csv``/``.json`` (its k-fold
mean becomes a row of the Table-4 table, marked as such; the per-fold table gets its own
section; ``--pseudolabel DIR``: fold 0's sample grid, when present), the quality stage's ``quality.csv`` /
``quality.md``, the scaling stage's ``speedup.*``, and a GAN's ``train_log.csv`` in its augment folder
(``figures/gan_<method>.png``: losses, ADA p and r_t). These tables are read from ``--out``; with
``--extras DIR ...`` (dvc.yaml: the optional stages' own folders) they are first copied there from those
folders, and the files of a stage that none of them holds (switched off) are removed from ``--out``.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

from bench import html_report, plots, provenance, report_model
from bench.config import Params, PhantomParams
from bench.data.cards import card_line
from bench.errors import AugbenchError
from bench.io import atomic_path, load_npz, read_json, write_json, write_text
from bench.report_model import Header, HeaderItem
from bench.stages.common import (
    OPTIONAL_REPORTS,
    add_params_args,
    log,
    params_from_args,
    switched_off_stage,
    writing,
)
from bench.stages.evaluate import load_run, run_dir

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


def fold_mean_row(out: Path) -> dict | None:
    """The pseudolabel stage's k-fold mean ± sd as a row of the Table-4 table (None without its files)."""
    if not (out / "pseudolabel.csv").is_file() or not (out / "pseudolabel.json").is_file():
        return None
    table = pd.read_csv(out / "pseudolabel.csv", dtype={"fold": str}).set_index("fold")
    info = read_json(out / "pseudolabel.json")
    folds = table.drop(index=["mean", "sd"])
    spread = pd.Series({**table.loc["mean"].to_dict(), **{f"{k}_sd": v for k, v in table.loc["sd"].items()}})
    n_train = sorted({int(n) for n in folds["n_synthetic"]})
    return {"Method": f"{info['method']} ({len(folds)}-fold mean ± sd)", "Classifier": info["classifier"],
            **{label: pm(spread, name, sd="sd") for name, label in COLUMNS.items()},
            "Seeds": 1, "n train": str(n_train[0]) if len(n_train) == 1 else f"{n_train[0]}–{n_train[-1]}",
            "Epochs": int(folds["epochs_run"].max())}


def pm(row: pd.Series, name: str, sd: str = "bootstrap_sd", percent: bool = True) -> str:
    """'83.1 ± 4.2' (percent) or '0.912 ± 0.031' (AUC)."""
    value, spread = row[name], row.get(f"{name}_{sd}", np.nan)
    if not np.isfinite(value):
        return "n/a"
    if name == "auc" or not percent:
        return f"{value:.3f} ± {spread:.3f}" if np.isfinite(spread) else f"{value:.3f}"
    return f"{100 * value:.1f} ± {100 * spread:.1f}" if np.isfinite(spread) else f"{100 * value:.1f}"


FROZEN_MODES = ("feature-extraction", "drs")  # the backbone's convolutions do not train


def classifier_table(results: pd.DataFrame) -> pd.DataFrame:
    """Byra 2021 Table 2 layout for every classifier trained on the baseline ``none``: AUC,
    accuracy, sensitivity, specificity ± bootstrap std at threshold 0.5, and the same three at
    the validation-chosen closest-to-(0, 1) threshold; seed std when there are several seeds."""
    rows = []
    for _, r in results[results["method"] == "none"].iterrows():
        frozen_random = str(r["weights"]).startswith("none") and str(r.get("mode")) in FROZEN_MODES
        row = {"Classifier": r["classifier"] + (" †" if frozen_random else ""),
               "Family": r.get("plugin", r["classifier"]),
               "Mode": r.get("mode", ""), "Weights": str(r["weights"]).split(" (")[0],
               "AUC": pm(r, "auc"), "Acc": pm(r, "accuracy"), "Sens": pm(r, "recall"),
               "Spec": pm(r, "specificity")}
        if "accuracy_at_val" in r:
            row.update({"Acc @val-thr": f"{100 * r['accuracy_at_val']:.1f}",
                        "Sens @val-thr": f"{100 * r['recall_at_val']:.1f}",
                        "Spec @val-thr": f"{100 * r['specificity_at_val']:.1f}",
                        "thr (val)": f"{r['threshold_val']:.3f}"})
        if r["n_seeds"] > 1:
            row["AUC seeds (mean ± sd)"] = pm(r, "auc", sd="sd")
        row.update({"Trainable": f"{int(r['trainable_params']):,}", "Epochs": r["epochs_run"]})
        rows.append(row)
    return pd.DataFrame(rows)


def parameter_table(params: Params, results: pd.DataFrame) -> pd.DataFrame:
    """Byra 2021 Table 1 layout: trainable parameters of every classifier variant and mode, at the
    input size of this run (from the run) and at 224 × 224 (built here with random weights)."""
    from bench.counts import parameter_counts

    rows = []
    seen = set()
    for _, r in results.iterrows():
        if r["classifier"] in seen:
            continue
        seen.add(r["classifier"])
        mode = r.get("mode") if isinstance(r.get("mode"), str) and r.get("mode") else None
        counts = parameter_counts(params.classifier_plugin(r["classifier"]), mode, 224)
        rows.append({"Classifier": r["classifier"], "Family": r.get("plugin", r["classifier"]),
                     "Mode": r.get("mode", ""), "Trainable (this run)": f"{int(r['trainable_params']):,}",
                     "Trainable (224 px)": f"{counts['trainable']:,}",
                     "Non-trainable (224 px)": f"{counts['non_trainable']:,}"})
    return pd.DataFrame(rows)


def comparison_table(comparisons: pd.DataFrame) -> pd.DataFrame:
    rows = [{"Run": f"{c['method']} / {c['classifier']}",
             "vs": f"{c['baseline_method']} / {c['baseline_classifier']}",
             "AUC": f"{c['auc']:.3f}", "AUC baseline": f"{c['auc_baseline']:.3f}", "Δ AUC": f"{c['auc_diff']:+.3f}",
             "DeLong p": f"{c['delong_p']:.3g}", "DeLong p (Holm)": f"{c['delong_p_holm']:.3g}",
             "rank-sum on bootstrap AUCs p (Byra; not valid)": f"{c['ranksum_bootstrap_p']:.3g}",
             "Holm family": c["family"]}
            for _, c in comparisons.iterrows()]
    return pd.DataFrame(rows)


def activation_rates(params: Params, results: pd.DataFrame, runs: Path, out: Path) -> list[str]:
    """Plot activation.csv of every run that wrote one (DRS models), first seed."""
    found = {}
    for method, clf in zip(results["method"], results["classifier"], strict=True):
        path = run_dir(runs, method, clf, params.matrix.seeds[0]) / "activation.csv"
        if path.is_file():
            found[f"{method} / {clf}"] = pd.read_csv(path)
    if found:
        plots.activation_plot(out / "figures" / "activation.png", found,
                              f"activation rates on the test split (seed {params.matrix.seeds[0]})")
    return sorted(found)


def nst_lines(augment_metas: dict[str, dict]) -> list[HeaderItem]:
    """Which encoder and weights every NST method used, and its optimisation settings."""
    by_weights: dict[str, list[str]] = {}
    for method, meta in augment_metas.items():
        if meta.get("encoder_weights"):
            by_weights.setdefault(f"{meta.get('encoder')}, {meta['encoder_weights']}", []).append(method)
    lines = [HeaderItem("NST encoder", weights, ", ".join(methods)) for weights, methods in by_weights.items()]
    settings = [f"{m}: iterations {a['params'].get('iterations')} at scales {a['params'].get('scales')}, "
                f"{a['params'].get('optimizer')} lr {a['params'].get('learning_rate')}"
                for m, a in augment_metas.items() if a.get("encoder_weights")]
    return lines + ([HeaderItem("NST optimisation", "; ".join(settings))] if settings else []) + nst_loss_lines(
        augment_metas)


def nst_loss_lines(augment_metas: dict[str, dict]) -> list[HeaderItem]:
    """Each NST method's loss formula (meta.json ``loss``, written by the augment stage) and one line
    naming the methods whose losses bench.nst.identity relates (identical, proportional, same style term)."""
    from bench.nst.identity import equal_losses

    named = {m: meta["loss"] for m, meta in augment_metas.items() if isinstance(meta.get("loss"), dict)}
    lines = [HeaderItem("NST loss", loss["formula"], m) for m, loss in named.items() if loss.get("formula")]
    pairs = equal_losses({m: loss["config"] for m, loss in named.items() if loss.get("config")})
    if pairs:
        lines.append(HeaderItem("NST equal losses", "; ".join(f"{p['a']} and {p['b']}: {p['relation']}"
                                                              for p in pairs)))
    return lines


def gan_lines(augment_metas: dict[str, dict]) -> list[HeaderItem]:
    """The settings every GAN method trained with, as run (its meta's params and run_info)."""
    lines = []
    for method, meta in augment_metas.items():
        run, p = meta.get("run_info") or {}, meta.get("params") or {}
        if "kimg" not in run:
            continue
        lines.append(HeaderItem("GAN", qualifier=method, text=(
            f"{p.get('resolution')} px, z/w {p.get('z_dim')}/{p.get('w_dim')}, "
            f"≤ {p.get('channel_max')} channels, batch {p.get('batch_size')}, {run.get('steps')} steps "
            f"({run['kimg']} kimg, {run.get('train_seconds')} s), ADA target {p.get('ada_target')}, "
            f"ada_kimg {p.get('ada_kimg')}, final p {run.get('ada_p')}, R1 γ {run.get('r1_gamma')}, "
            f"EMA {run.get('ema_kimg')} kimg; {meta.get('n_synthetic')} images "
            f"({p.get('classes')} class, {p.get('n_per_class')} per class)")))
    return lines


def pseudolabel_line(params: Params) -> HeaderItem:
    """The pseudo-label stage's protocol and its method's settings (from params, as the stage ran)."""
    pl = params.pseudolabel
    mp = params.method_params(pl.method)
    method = ", ".join(f"{label} {getattr(mp, key)}" for key, label in
                       (("factor", "factor"), ("iterations", "iterations"), ("optimizer", "optimizer"),
                        ("learning_rate", "lr"), ("teacher_epochs", "teacher epochs")) if hasattr(mp, key))
    subsample = "" if pl.max_per_class is None else f" over ≤ {pl.max_per_class} images per class"
    return HeaderItem("Pseudo-label", qualifier=pl.method, text=(
        f"{pl.folds} folds{subsample} (seed {pl.seed}), classifier {pl.classifier}; per fold a domain encoder "
        f"({pl.encoder_epochs or params.encoder.epochs} epochs); {method}"))


def training_line(meta: dict) -> str:
    """One classifier's recipe as run: for a grid, the candidate chosen on validation."""
    p, chosen = meta["params"], meta.get("selection") or {}
    lr = chosen.get("learning_rate", p.get("learning_rate"))
    beta = f", β1 {chosen.get('beta_1', p.get('beta_1'))}" if p.get("optimizer") == "adam" else ""
    grid = (f" (chosen on validation from {chosen['n_candidates']} candidates)"
            if chosen.get("n_candidates", 1) > 1 else "")
    options = "".join(text for on, text in ((p.get("jit_compile"), ", XLA-compiled steps"),
                                             (p.get("precision", "float32") != "float32", f", {p.get('precision')}"))
                      if on)
    return (f"{meta['classifier']}: ≤{p.get('epochs')} epochs, batch {p.get('batch_size')}, "
            f"{p.get('optimizer', 'sgd')} lr {lr}{beta}{grid}, best epoch by {p.get('monitor', 'val_loss')}{options}")


def dataset_source(prepared_meta: dict) -> str:
    """Where the images came from: the phantom's settings (per split when it has its own val/test
    sets), or the folder read."""
    if prepared_meta["source"] != "phantom":
        return prepared_meta["root"]
    ph = prepared_meta.get("inputs", {}).get("phantom", {})
    return (f"generated: {PhantomParams(**ph).describe()} at {ph.get('size')} px, difficulty "
            f"{ph.get('difficulty')}, seed {ph.get('seed')}")


def header(params: Params, prepared_meta: dict, run_metas: list[dict], prov: dict,
           augment_metas: dict[str, dict] | None = None, pseudolabel: bool = False) -> list[HeaderItem]:
    """The header bullets: what was run, on what, where (results.md's list, index.html's Provenance)."""
    split = prepared_meta["split_counts"]
    val = prepared_meta["validation"]
    weights = sorted({f"{m['classifier']}: {m['weights']}" for m in run_metas})
    epochs = sorted({training_line(m) for m in run_metas})
    source = dataset_source(prepared_meta)
    mach = prov["machine"]
    return [
        HeaderItem("Dataset", f"{prepared_meta['dataset']} ({source}), classes "
                   f"{prepared_meta['classes']} (positive: {prepared_meta['positive']}), {prepared_meta['n_images']} "
                   f"images after validation ({val['dropped']} dropped for label conflicts, {val['unreadable']} "
                   f"unreadable, {val['exact_duplicate_groups']} exact and {val['near_duplicate_groups']} "
                   "near-duplicate groups kept within one split)"),
        *([HeaderItem("Dataset card", card_line(prepared_meta["card"]))] if prepared_meta.get("card") else []),
        HeaderItem("Splits", "; ".join(f"{s}: {', '.join(f'{c} {n}' for c, n in d.items())}" for s, d in split.items())),
        HeaderItem("Image size", f"{prepared_meta['image_size']} px; SRAD: {'on' if prepared_meta['srad'] else 'off'}"),
        HeaderItem("Profile", f"`{params.profile}`; seeds {params.matrix.seeds}; split seed {params.split.seed}, "
                   f"augmentation seed {params.augment.seed}"),
        *([HeaderItem("Replicates", f"repeated stratified group k-fold, {params.split.repeats} × {params.split.folds} "
                      "folds: seed r trains and is tested on replicate r (a held-out fold; the Splits line above "
                      "is replicate 0's)")] if params.split.n_replicates else []),
        HeaderItem("Training", f"{'; '.join(epochs)} (validation split only)"),
        HeaderItem("Weights", "; ".join(weights)),
        *nst_lines(augment_metas or {}),
        *gan_lines(augment_metas or {}),
        *([pseudolabel_line(params)] if pseudolabel else []),
        HeaderItem("Intervals", f"{params.evaluate.confidence:.0%} percentile bootstrap over test cases, "
                   f"{params.evaluate.bootstrap_resamples} resamples (mean over {'replicates' if params.split.n_replicates else 'seeds'}; threshold "
                   f"{params.evaluate.threshold})"),
        HeaderItem("Machine", f"{mach['cpu']} × {mach['cpu_count']} cores, {mach['memory_gib']} GiB, "
                   f"GPUs: {', '.join(mach['gpus']) or 'none'}; {mach['platform']}"),
        HeaderItem("Code", code_line(prov)),
    ]


def code_line(prov: dict) -> str:
    """augbench's version, source digest and git commit (when it ran from a checkout), then the
    versions of the packages results depend on."""
    git, code = prov["git"], prov.get("code") or {}
    parts = [f"augbench {code['augbench']}, source sha256 {code['sha256'][:12]}"] if code else []
    if git["commit"] != "unknown":
        parts.append(f"commit {git['commit'][:12]}{' (uncommitted changes)' if git['dirty'] else ''}")
    else:
        parts.append("not run from a git checkout")
    return "; ".join(parts) + "; " + ", ".join(f"{k} {v}" for k, v in prov["versions"].items()
                                               if v != "not installed")


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


def curves(params: Params, results: pd.DataFrame, out: Path) -> tuple[dict, dict]:
    """ROC points and first-seed loss curves, both as the evaluate stage wrote them for ``dvc plots``
    (a run without a training curve is left out of the history plot)."""
    roc, hist = {}, {}
    for method, clf in zip(results["method"], results["classifier"], strict=True):
        points = pd.read_csv(out / "plots" / "roc" / f"{method}__{clf}.csv")
        fpr, tpr = points["fpr"].to_numpy(), points["tpr"].to_numpy()
        # area under the plotted curve (seed-mean scores), so legend and line agree
        roc[f"{method} / {clf}"] = (fpr, tpr, float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)))
        path = out / "plots" / "training" / f"{method}__{clf}__seed{params.matrix.seeds[0]}.csv"
        if path.is_file():
            h = pd.read_csv(path)
            hist[f"{method} / {clf}"] = {k: h[k].tolist() for k in ("loss", "val_loss") if k in h}
    return roc, hist


HEATMAP_IMAGES = 4  # test images per heatmap figure (the same ones for every run)


def heatmap_ids(relevance_ids: list[str], labels: dict[str, int], k: int = HEATMAP_IMAGES) -> list[str]:
    """The first k/2 positive and k/2 negative test images in id order (the same for every run)."""
    ordered = sorted(relevance_ids)
    pos = [i for i in ordered if labels.get(i) == 1][:k // 2]
    neg = [i for i in ordered if labels.get(i) == 0][:k - len(pos)]
    return pos + neg


def explanation_section(params: Params, results: pd.DataFrame, runs: Path, out: Path, run_metas: list[dict]) -> tuple[pd.DataFrame, list[str]]:
    """``lrp.csv`` (relevance inside the lesion, per run) and ``lrp/<method>__<classifier>.png``
    (heatmaps of the same test images for every run), first seed; from bench.xai.runs' output."""
    seed = params.matrix.seeds[0]
    metas = {(m["method"], m["classifier"], m["seed"]): m for m in run_metas}
    rows, figures = [], []
    for method, clf in zip(results["method"], results["classifier"], strict=True):
        folder = run_dir(runs, method, clf, seed)
        meta = metas.get((method, clf, seed)) or read_json(folder / "meta.json")
        if "explain_rule" not in meta:
            continue  # a run from before explanations existed
        row = {"Method": method, "Classifier": clf, "Rule": meta["explain_rule"],
               "Target": meta.get("explain_target", ""), "Images": meta.get("explain_images")}
        if meta.get("explain_error"):
            row["Note"] = "not explained: " + meta["explain_error"].splitlines()[0][:160]
            rows.append(row)
            continue
        if meta.get("lrp_share_inside") is not None:
            row.update({"LRP share in lesion": _share(meta, "lrp_share_inside"),
                        "Gradient × input share in lesion": _share(meta, "gxi_share_inside"),
                        "Lesion area fraction": f"{meta['lesion_area_fraction']:.3f}",
                        "LRP share > area (images)": f"{meta['lrp_beats_area']} / {meta['explain_images']}"})
        rows.append(row)
        z = load_npz(folder / "relevance.npz")
        ids = [str(i) for i in z["ids"]]
        picked = [ids.index(i) for i in heatmap_ids(ids, _test_labels(folder))]
        masks = z["masks"][picked] if "masks" in z else None
        name = f"{method}__{clf}"
        plots.relevance_plot(out / "lrp" / f"{name}.png", z["inputs"][picked].astype(np.float32),
                             {"LRP α2β1": z["lrp"][picked].astype(np.float32),
                              "gradient × input": z["gradient_x_input"][picked].astype(np.float32)},
                             masks, [ids[k] for k in picked], f"{method} / {clf}: relevance of the predicted class")
        figures.append(name)
    return pd.DataFrame(rows), figures


def _share(meta: dict, key: str) -> str:
    sd = meta.get(f"{key}_sd")
    return f"{meta[key]:.3f}" + (f" ± {sd:.3f}" if sd is not None else "")


def _test_labels(folder: Path) -> dict[str, int]:
    test, _, _ = load_run(folder)
    return {str(i): int(v) for i, v in zip(test["id"], test["label"], strict=True)}


def copy_grids(params: Params, augmented: Path, out: Path, pseudolabel: Path | None = None) -> list[str]:
    """Every matrix method's grid and, with ``pseudolabel``, the pseudo-label method's fold-0 grid when
    that folder holds one (none when the stage was switched off: an earlier run's copy is removed)."""
    names = []
    sources = {method: augmented / method / "grid.png" for method in params.matrix.methods}
    if pseudolabel is not None:
        grid = pseudolabel / "fold0" / "augmented" / "grid.png"
        if grid.is_file():
            sources[params.pseudolabel.method] = grid
        elif params.pseudolabel.method not in sources:
            (out / "grids" / f"{params.pseudolabel.method}.png").unlink(missing_ok=True)
    for method, src in sources.items():
        if src.is_file():
            with atomic_path(out / "grids" / f"{method}.png") as tmp:
                shutil.copyfile(src, tmp)
            names.append(method)
    return names


def copy_extras(extras: list[Path], out: Path) -> dict[str, Path | None]:
    """Bring the optional stages' tables into ``out`` before the report reads them there: for each stage
    of OPTIONAL_REPORTS, the folder of ``extras`` holding its marker file (the last name it writes) gives
    its files, each copied atomically (a name it lacks is removed from ``out``); a stage no folder holds
    (switched off, or not run) leaves none of its files in ``out``, so an earlier run's tables never
    reappear. Returns each stage's source folder (None: absent)."""
    found: dict[str, Path | None] = {}
    for stage, names in OPTIONAL_REPORTS.items():
        holders = [folder for folder in extras if (folder / names[-1]).is_file()]
        if len(holders) > 1:
            raise AugbenchError(f"--extras: {' and '.join(map(str, holders))} both hold {names[-1]} (stage {stage}); "
                                "name one folder per stage")
        source = holders[0] if holders else None
        copied, removed = [], []
        for name in names:
            if source is not None and (source / name).is_file():
                with atomic_path(out / name) as tmp:
                    shutil.copyfile(source / name, tmp)
                copied.append(name)
            elif (out / name).is_file():
                (out / name).unlink()
                removed.append(name)
        gone = f"; removed an earlier run's {', '.join(removed)} from {out}" if removed else ""
        if source is not None:
            log.info("report: stage %s's %s from %s%s", stage, ", ".join(copied), source, gone)
        else:
            off = any(switched_off_stage(folder) == stage for folder in extras)
            log.info("report: stage %s %s: no %s section%s", stage,
                     "was switched off" if off else "has no tables in --extras", stage, gone)
        found[stage] = source
    return found


def scaling_section(out: Path) -> str:
    """The scaling stage's tables (speedup.md, speedup_train.md) and plot, when it has run."""
    tables = [(out / name).read_text(encoding="utf-8").strip() for name in ("speedup.md", "speedup_train.md")
              if (out / name).is_file()]
    if not tables:
        return ""
    return ("## Speed-up under Horovod (layout of Panigrahi et al. 2024, Table 3)\n\n"
            "The same work with np processes (stage `scaling`, README 'Horovod'); speedup = T_1/T_p, "
            "efficiency = speedup/np; T_p includes process start-up. Oversubscribed rows (more processes "
            "than cores) measure contention, not scaling.\n\n"
            + "\n\n".join(tables).replace("### ", "#### ")
            + ("\n\n![speed-up](speedup.png)" if (out / "speedup.png").is_file() else ""))


def gan_figures(params: Params, augmented: Path, out: Path) -> list[str]:
    """``figures/gan_<method>.png`` from the training log of every matrix method that wrote one."""
    from bench.gan.training import TRAIN_LOG

    names = []
    for method in params.matrix.methods:
        path = augmented / method / TRAIN_LOG
        if not path.is_file():
            continue
        log_ = pd.read_csv(path)
        if not len(log_):
            continue
        settings = params.method_params(method)
        target = None if getattr(settings, "ada_fixed", False) else getattr(settings, "ada_target", None)
        plots.gan_training_plot(out / "figures" / f"gan_{method}.png", log_, target,
                                f"{method}: {int(log_['step'].iloc[-1])} steps, {log_['kimg'].iloc[-1]:.3g} kimg")
        names.append(method)
    return names


def optional_sections(out: Path, gans: list[str]) -> list[str]:
    """results.md sections of the GAN curves, the pseudo-label folds and the quality table (when present)."""
    parts = []
    if gans:
        parts.append("## GAN training\n\nPer minibatch: discriminator and generator losses (non-saturating; "
                     "thick: running mean), ADA's augmentation probability p and the overfitting heuristic r_t = "
                     "E[sign D(real)] that steers it towards its target (Karras et al. 2020b §3).\n\n"
                     + "\n".join(f"![{m}](figures/gan_{m}.png)" for m in gans))
    if (out / "pseudolabel.md").is_file():
        parts.append("## Pseudo-labelled NST per fold (layout of Mikołajczyk & Grochowski 2018, Table I)\n\n"
                     "Every real image is held out once; each fold's classifier is trained on synthetic images "
                     "made from the other folds only (encoder, NST and teacher included) and tested on half of "
                     "its held-out fold. The Table-4 row above is the mean ± sd of these folds, on different "
                     "test images than the other rows.\n\n" + (out / "pseudolabel.md").read_text().strip())
    if (out / "quality.md").is_file():
        parts.append("## Image quality of the synthetic images\n\nKID (primary) and FID against real images no "
                     "generator used (the validation split; pseudo-label: its fold's held-out images), beside the "
                     "floor row of real training vs those images; memorisation (nearest training image, in "
                     "pixels); distance from each image's source (source_*: NST its content image, GAN the "
                     "nearest training image of its class). FID with a domain encoder or Keras InceptionV3 is not "
                     "comparable to the FID of papers (docs/image-quality.md).\n\n"
                     + (out / "quality.md").read_text().strip())
    return parts


def verdict_section(out: Path) -> str:
    """The verdict section of results.md from the evaluate stage's ``verdict.csv``/``.json``, with its
    forest plot (``figures/verdict.png``); '' without ``verdict.csv`` (and no stale plot is left)."""
    verdict = report_model.load_verdict(out)
    if verdict is None:
        (out / report_model.FOREST_PLOT).unlink(missing_ok=True)
        return ""
    return report_model.verdict_markdown(report_model.draw_forest(verdict, out))


def report(params: Params, prepared: Path, augmented: Path, runs: Path, out: Path,
           pseudolabel: Path | None = None) -> str:
    results = pd.read_csv(out / "results.csv")
    runs_frame = pd.read_csv(out / "runs.csv")
    prepared_meta = read_json(prepared / "meta.json")
    run_metas = [read_json(run_dir(runs, m, c, s) / "meta.json") for m, c in params.matrix.pairs()
                 for s in params.matrix.seeds]
    compared = pd.read_csv(out / "comparisons.csv")
    prov = provenance.record()
    main_rows = results[results["method"].isin(params.matrix.methods)
                        & results["classifier"].isin(params.matrix.classifiers)]  # zoo: own table
    table = metrics_table(main_rows)
    folds_row = fold_mean_row(out)
    if folds_row is not None:
        table = pd.concat([table, pd.DataFrame([folds_row])], ignore_index=True)
    roc, hist = curves(params, results, out)
    main = {f"{m} / {c}" for m in params.matrix.methods for c in params.matrix.classifiers}
    plots.roc_plot(out / "roc.png", {k: v for k, v in roc.items() if k in main},
                   f"ROC on the test split ({prepared_meta['dataset']})")
    plots.history_plot(out / "history.png", {k: v for k, v in hist.items() if k in main},
                       f"training curves (seed {params.matrix.seeds[0]})")
    baseline = {k: v for k, v in roc.items() if k.startswith("none / ")} or roc
    plots.roc_plot(out / "figures" / "roc_classifiers.png", baseline,
                   f"ROC of every classifier on the un-augmented baseline ({prepared_meta['dataset']})")
    grids = copy_grids(params, augmented, out, pseudolabel)
    gans = gan_figures(params, augmented, out)
    zoo, counts = classifier_table(results), parameter_table(params, results)
    drs = activation_rates(params, results, runs, out)
    shutil.rmtree(out / "lrp", ignore_errors=True)  # only this run's heatmaps
    explained, heatmaps = explanation_section(params, results, runs, out, run_metas)
    head = Header(  # results.md's title and header; provenance.json keeps it for index.html
        title=f"augbench results: {prepared_meta['dataset']}, profile `{params.profile}`",
        items=tuple(header(params, prepared_meta, run_metas, prov,
                           {m: read_json(augmented / m / "meta.json") for m in params.matrix.methods},
                           pseudolabel=folds_row is not None)),
        confidence=params.evaluate.confidence, threshold=params.evaluate.threshold, drs_runs=tuple(drs),
        pseudolabel_row=folds_row is not None)
    text = "\n\n".join(part for part in [
        f"# {head.title}",
        verdict_section(out),
        report_model.header_markdown(head),
        f"## {report_model.METRICS_TITLE}\n\n{report_model.metrics_intro(head.confidence, head.pseudolabel_row)}",
        tabulate(table, headers="keys", tablefmt="github", showindex=False),
        "![ROC curves](roc.png)\n\n![training curves](history.png)",
        f"## {report_model.CLASSIFIERS_TITLE}\n\n{report_model.CLASSIFIERS_INTRO}",
        tabulate(zoo, headers="keys", tablefmt="github", showindex=False) if len(zoo) else "(no runs on `none`)",
        "![ROC of every classifier](figures/roc_classifiers.png)",
        f"## {report_model.PARAMETERS_TITLE}\n\n{report_model.PARAMETERS_INTRO}",
        tabulate(counts, headers="keys", tablefmt="github", showindex=False),
        f"## {report_model.COMPARISONS_TITLE}\n\n{report_model.COMPARISONS_INTRO}",
        tabulate(comparison_table(compared), headers="keys", tablefmt="github", showindex=False)
        if len(compared) else "(nothing to compare: the matrix has no `none` baseline)",
        (f"## {report_model.DRS_TITLE}\n\n{report_model.drs_intro(drs)}\n\n"
         "![activation rates](figures/activation.png)") if drs else "",
        f"## {report_model.confusion_title(head.threshold)}\n\n"
        + confusion_section(runs_frame, negative_positive(prepared_meta), out),
        "## Augmentation samples\n\n" + "\n".join(f"![{g}](grids/{g}.png)" for g in grids),
        ("## Explanations: LRP relevance on the test images\n\n"
         "Layer-wise relevance propagation (αβ-rule, α = 2, β = 1; Panigrahi et al. 2024 Eq. 16) of each "
         "classifier's predicted class, and gradient × input (not LRP) for comparison, first seed. Where the "
         "dataset has lesion masks: the share of positive pixel relevance inside the lesion (mean ± sd over "
         "test images) next to the lesion's area fraction, which is what a relevance spread evenly over the "
         "image would get. Heatmaps: red = for the predicted class, blue = against; lesion outline green.\n\n"
         + tabulate(explained, headers="keys", tablefmt="github", showindex=False) + "\n\n"
         + "\n".join(f"![{h}](lrp/{h}.png)" for h in heatmaps)) if len(explained) else "",
        *optional_sections(out, gans),
        scaling_section(out),
    ] if part) + "\n"
    write_text(out / "results.md", text)
    write_text(out / "table.csv", table.to_csv(index=False))
    write_text(out / "classifiers.csv", zoo.to_csv(index=False))
    write_text(out / "parameters.csv", counts.to_csv(index=False))
    if len(explained):
        write_text(out / "lrp.csv", explained.to_csv(index=False))
    else:
        (out / "lrp.csv").unlink(missing_ok=True)
    write_json(out / "provenance.json", {**prov, "profile": params.profile, "dataset": prepared_meta,
                                         report_model.REPORT_KEY: head.to_json()})
    html_report.write_html(out)  # from the files just written: one self-contained page
    log.info("report written to %s and %s", out / "results.md", out / "index.html")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="augbench report", description=__doc__.splitlines()[0])
    add_params_args(parser)
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--augmented", default="data/augmented")
    parser.add_argument("--runs", default="runs")
    parser.add_argument("--pseudolabel", default=None, metavar="DIR",
                        help="pseudolabel stage output (for its sample grid)")
    parser.add_argument("--extras", nargs="+", default=None, metavar="DIR",
                        help="the optional stages' report folders (dvc.yaml: data/pseudolabel/report data/quality "
                             "data/scaling/report): their tables are copied into --out first, and a stage none of "
                             "them holds (switched off) leaves none of its files there; without --extras, the "
                             "tables already in --out are used as they are")
    parser.add_argument("--out", default="reports")
    args = parser.parse_args(argv)
    params = params_from_args(args)
    with writing(args.out):
        if args.extras is not None:
            copy_extras([Path(d) for d in args.extras], Path(args.out))
        report(params, Path(args.prepared), Path(args.augmented), Path(args.runs),
               Path(args.out), Path(args.pseudolabel) if args.pseudolabel else None)
    return 0
