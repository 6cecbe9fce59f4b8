"""``reports/index.html``: the whole report as one self-contained page.

Built only from the files of a report folder (what ``augbench report`` and
``augbench evaluate`` write there) plus ``bench/paper_values.yaml``, so any
report folder can be rendered again without re-running anything:

    python -m bench.html_report build reports                 # -> reports/index.html
    python -m bench.html_report check reports/index.html      # headless Chromium: loads, no errors
    python -m bench.html_report screenshot reports/index.html docs/report-screenshot.png

``build`` reads the folder once into the report model (``bench.report_model.Report``: sections
of paragraphs, tables, figures, …, from the CSVs, ``verdict.json``, ``provenance.json`` and the
images; results.md is not read) and ``render`` turns the model into the page through the jinja2
templates of ``bench/templates/report/`` (``page.html.j2``, autoescaped: file, class and plugin
names come from users). The page embeds every image as a ``data:`` URI and carries its CSS and a
small script (click a column header to sort a table) inline; its Content Security Policy forbids
loading anything else, so it can be mailed as one file and opened offline. The page opens with the
verdict (``verdict.csv``/``.json`` and ``figures/verdict.png``), rendered from the same model as
results.md's; the detailed tables follow. Sections whose inputs are absent are left out (no empty
headings). Optional sections appear when their files do: ``lrp/*.png`` + ``lrp.csv``,
``figures/gan_*.png``, ``pseudolabel.csv``, ``quality.csv``, ``speedup.csv`` + ``speedup.png``
(see ``EXTRAS``); any other PNG in the folder's top level or ``figures/`` lands in "More figures".
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from markupsafe import Markup

from bench import report_model
from bench.errors import DataError
from bench.io import read_json, write_text
from bench.report_model import Figure, Gallery, Heading, Paragraph, Report, Section, Table, sort_key

PAPER_VALUES = Path(__file__).with_name("paper_values.yaml")
MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
        ".svg": "image/svg+xml", ".webp": "image/webp"}
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"
ALPHA = 0.05


def read_csv(path: Path) -> pd.DataFrame | None:
    """A CSV as strings ('' for empty cells), or None when the file is absent or empty."""
    if not path.is_file() or path.stat().st_size == 0:
        return None
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        return None
    return frame if len(frame.columns) else None


def number(text: Any) -> float | None:
    return sort_key(str(text)) if text is not None else None


# --- the report folder ---------------------------------------------------------------------------

@dataclass
class Folder:
    """A report folder, what it says about itself, and the images already placed on the page."""

    root: Path
    prov: dict = field(default_factory=dict)
    header: report_model.Header = field(default_factory=report_model.Header)
    used: set[Path] = field(default_factory=set)

    @classmethod
    def read(cls, root: Path) -> Folder:
        path = Path(root) / "provenance.json"
        prov = read_json(path) if path.is_file() else {}
        return cls(Path(root), prov, report_model.load_header(prov, path))

    def csv(self, name: str) -> pd.DataFrame | None:
        return read_csv(self.root / name)

    def images(self, pattern: str) -> list[Path]:
        return sorted(p for p in self.root.glob(pattern) if p.suffix.lower() in MIME and p.is_file())

    def figure(self, path: Path, caption: str = "") -> Figure:
        """An image of the folder, placed on the page (it stays out of "More figures")."""
        self.used.add(path.resolve())
        return Figure(path.relative_to(self.root).as_posix(), caption)

    def gallery(self, paths: Iterable[Path],
                caption: Callable[[Path], str] = lambda p: p.stem.replace("__", " / ")) -> list[Gallery]:
        figures = tuple(self.figure(p, caption(p)) for p in paths)
        return [Gallery(figures)] if figures else []

    def figures(self, *names: str) -> list[Figure]:
        return [self.figure(self.root / n) for n in names if (self.root / n).is_file()]


def embedder(root: Path) -> Callable[[str], str]:
    """``embed(path)`` for the templates: an image of the folder as a ``data:`` URI."""
    def embed(path: str) -> str:
        file = root / path
        return f"data:{MIME[file.suffix.lower()]};base64,{base64.b64encode(file.read_bytes()).decode('ascii')}"
    return embed


# --- sections --------------------------------------------------------------------------------------

def verdict_section(folder: Folder) -> Section:
    """The verdict (bench.report_model) with its forest plot; empty without verdict.csv."""
    verdict = report_model.load_verdict(folder.root)
    if verdict is None:
        return Section("verdict", report_model.VERDICT_TITLE)
    figure = folder.figure(folder.root / verdict.figure, "forest plot: ΔAUC per arm with its interval") \
        if verdict.figure else None
    return Section("verdict", verdict.title, (report_model.VerdictBlock(verdict, figure),))


def provenance_section(folder: Folder) -> Section:
    prov, blocks = folder.prov, []
    if folder.header.items:
        blocks.append(report_model.Definitions(folder.header.items))
    versions = prov.get("versions", {})
    extra = {"python": prov.get("machine", {}).get("python"), **versions} if versions else {}
    if extra:
        blocks.append(Table.of(pd.DataFrame({"Package": list(extra), "Version": list(extra.values())}),
                               "Package versions (provenance.json)"))
    if prov.get("time_utc"):
        blocks.append(Paragraph(f"Report written {prov['time_utc']}.", muted=True))
    return Section("provenance", "Provenance", tuple(blocks))


def significance_lookup(comparisons: pd.DataFrame | None) -> dict[tuple[str, str], pd.Series]:
    """(method, classifier) -> its comparison with ``none`` (family 'augmentation')."""
    if comparisons is None or not {"family", "method", "classifier", "baseline_method"} <= set(comparisons):
        return {}
    rows = comparisons[(comparisons["family"] == "augmentation") & (comparisons["baseline_method"] == "none")]
    return {(r["method"], r["classifier"]): r for _, r in rows.iterrows()}


def fmt_p(text: str) -> str:
    value = number(text)
    return f"{value:.3g}" if value is not None else ""


def metrics_section(folder: Folder) -> Section:
    frame = folder.csv("table.csv")
    if frame is None:
        return Section("metrics", report_model.METRICS_TITLE)
    intro = [report_model.metrics_intro(folder.header.confidence, folder.header.pseudolabel_row)]
    lookup = significance_lookup(folder.csv("comparisons.csv"))
    if lookup:
        keys = list(zip(frame["Method"], frame["Classifier"], strict=True))
        frame = frame.assign(**{
            "Δ AUC vs none": [f"{number(lookup[k]['auc_diff']):+.3f}" if k in lookup else "—" for k in keys],
            "p vs none (Holm)": [fmt_p(lookup[k]["delong_p_holm"]) if k in lookup else "—" for k in keys]})
        intro.append("The last two columns: AUC difference to the un-augmented baseline `none` with the same "
                     "classifier and DeLong's p-value, Holm-adjusted over all augmentation methods (see "
                     "Significance).")
    return Section("metrics", report_model.METRICS_TITLE, (
        *(Paragraph(p) for p in intro), Table.of(frame), *folder.figures("roc.png", "history.png")))


def significance_section(folder: Folder) -> Section:
    frame = folder.csv("comparisons.csv")
    title = "Significance (paired comparisons on the test split)"
    if frame is None or not len(frame):
        return Section("significance", title)
    blocks: list = [Paragraph(report_model.COMPARISONS_INTRO)]
    for family, group in frame.groupby("family", sort=False):
        rows = pd.DataFrame({
            "Run": group["method"] + " / " + group["classifier"],
            "vs": group["baseline_method"] + " / " + group["baseline_classifier"],
            "AUC": [f"{number(v):.3f}" for v in group["auc"]],
            "AUC baseline": [f"{number(v):.3f}" for v in group["auc_baseline"]],
            "Δ AUC": [f"{number(v):+.3f}" for v in group["auc_diff"]],
            "DeLong p": [fmt_p(v) for v in group["delong_p"]],
            "DeLong p (Holm)": [fmt_p(v) for v in group["delong_p_holm"]],
            f"Holm p < {ALPHA}": ["yes" if (number(v) or 1) < ALPHA else "no" for v in group["delong_p_holm"]],
            "rank-sum p (Byra; not valid)": [fmt_p(v) for v in group.get("ranksum_bootstrap_p", [""] * len(group))],
        })
        blocks.append(Table.of(rows, f"Holm family: {family}"))
    return Section("significance", title, tuple(blocks))


def csv_section(folder: Folder, name: str, id_: str, title: str, intro: str,
                figures: tuple[str, ...] = ()) -> Section:
    frame = folder.csv(name)
    if frame is None:
        return Section(id_, title)
    return Section(id_, title, (Paragraph(intro), Table.of(frame), *folder.figures(*figures)))


def activation_section(folder: Folder) -> Section:
    figures = folder.figures("figures/activation.png")
    return Section("drs", report_model.DRS_TITLE,
                   (Paragraph(report_model.drs_intro(folder.header.drs_runs)), *figures) if figures else ())


def in_order(paths: list[Path], names: Iterable[str]) -> list[Path]:
    """``paths`` in the order their stems appear in ``names`` (the tables' order), the rest after."""
    rank = {name: i for i, name in enumerate(dict.fromkeys(names))}
    return sorted(paths, key=lambda p: (rank.get(p.stem, len(rank)), p.stem))


def grids_section(folder: Folder) -> Section:
    table_ = folder.csv("table.csv")
    methods = list(table_["Method"]) if table_ is not None and "Method" in table_ else []
    gallery = folder.gallery(in_order(folder.images("grids/*.png"), methods))
    return Section("samples", "Augmentation samples", (
        Paragraph("A sample grid per augmentation method (training-split sources and what the method made "
                  "of them)."), *gallery) if gallery else ())


def confusion_section(folder: Folder) -> Section:
    runs = folder.csv("runs.csv")
    blocks: list = []
    if runs is not None and "confusion" in runs:
        cms = [json.loads(c) if c else [[None] * 2] * 2 for c in runs["confusion"]]
        metrics = [c for c in ("accuracy", "recall", "specificity", "precision", "f1", "auc") if c in runs]
        frame = pd.DataFrame({"Method": runs["method"], "Classifier": runs["classifier"], "Seed": runs["seed"],
                              **{m: [f"{number(v):.3f}" if number(v) is not None else "n/a" for v in runs[m]]
                                 for m in metrics},
                              "TN": [c[0][0] for c in cms], "FP": [c[0][1] for c in cms],
                              "FN": [c[1][0] for c in cms], "TP": [c[1][1] for c in cms]})
        blocks.append(Table.of(frame, "Every run (seed) on the test split; metrics as fractions"))
    names = [] if runs is None else [f"{m}__{c}__seed{s}" for m, c, s in
                                     zip(runs["method"], runs["classifier"], runs["seed"], strict=True)]
    blocks += folder.gallery(in_order(folder.images("confusion/*.png"), names))
    return Section("confusion", report_model.confusion_title(folder.header.threshold), tuple(blocks))


@dataclass(frozen=True)
class Extra:
    """An optional section: present when its CSV or images exist."""

    id: str
    title: str
    intro: str
    csv: str | None = None
    images: str | None = None


EXTRAS = (
    Extra("lrp", "LRP relevance heatmaps", "Layer-wise relevance propagation: which pixels the classifier's "
          "decision rests on.", "lrp.csv", "lrp/*.png"),
    Extra("gan", "GAN training", "Per minibatch: discriminator and generator losses, ADA's augmentation "
          "probability p and the overfitting heuristic r_t that steers it towards its target (Karras et al. "
          "2020b §3).", None, "figures/gan_*.png"),
    Extra("pseudolabel", "Pseudo-labelled NST per fold (Mikołajczyk & Grochowski 2018, Table I layout)",
          "Test metrics (fractions) of each fold's held-out half, their mean and sd: every fold's encoder, NST, "
          "teacher and classifier saw only the other folds' images; the classifier trained on synthetic images "
          "only. The metrics table's pseudo-label row is this mean ± sd.", "pseudolabel.csv"),
    Extra("quality", "Image quality of the synthetic images", "KID (primary, mean ± kid_sd) and FID of each "
          "method's synthetic images against real images no generator used (the validation split), in whitened "
          "principal components of the feature_network's features; the floor row, real training vs validation "
          "images, is what new real images reach. memorised / copying: the share of synthetic images closer to a "
          "training image (in pixels) than the 5th percentile (quality.nn_percentile) of the validation images' "
          "such distances. source_*: distance from each image's own source (RMSE, PSNR, SSIM, SRE, SAM), not "
          "quality. Neither the domain encoder nor Keras InceptionV3 gives the FID of papers (TF-slim network).",
          "quality.csv"),
    Extra("speedup", "Speed-up under Horovod", "Wall time and speed-up of the same work with np processes.",
          "speedup.csv", "speedup.png"),
)


def extra_section(folder: Folder, extra: Extra) -> Section:
    frame = folder.csv(extra.csv) if extra.csv else None
    images = folder.images(extra.images) if extra.images else []
    if frame is None and not images:
        return Section(extra.id, extra.title)
    figures = folder.gallery(images) if len(images) > 1 else [folder.figure(p) for p in images]
    return Section(extra.id, extra.title, (
        Paragraph(extra.intro), *([Table.of(frame)] if frame is not None else []), *figures))


def more_figures_section(folder: Folder) -> Section:
    rest = [p for p in folder.images("*.png") + folder.images("figures/*.png") if p.resolve() not in folder.used]
    return Section("figures", "More figures", tuple(folder.gallery(rest)))


def files_section(folder: Folder) -> Section:
    names = tuple(sorted(p.name + ("/" if p.is_dir() else "") for p in folder.root.iterdir()
                         if not p.name.startswith(".") and p.name != "index.html"))
    return Section("files", "Files of this report", (
        Paragraph("Beside this page in the report folder (the links work where the folder is; the page itself "
                  "needs none of them)."), report_model.Files(names)) if names else ())


# --- papers vs this run ----------------------------------------------------------------------------

SETTING_LABELS = {"dataset": "dataset", "images": "images", "image_size": "image size", "split": "split",
                  "test_images": "test images", "weights": "weights", "epochs": "epochs",
                  "runs": "runs averaged", "augmentation_factor": "augmentation ×", "gpus": "GPUs",
                  "srad": "SRAD"}
NOT_COMPARED = {"data"}  # described on the page, not compared
METRIC_LABELS = {"accuracy": "Acc", "recall": "Recall", "specificity": "Spec", "precision": "Prec",
                 "f1": "F1", "auc": "AUC", "accuracy_gain": "Δ Acc vs none", "trainable": "Trainable",
                 "seconds": "Time (s)", "speedup": "Speed-up"}
UNIT_DECIMALS = {"percent": 2, "fraction": 3, "seconds": 2}
OUR_DECIMALS = {"percent": 1, "percentage": 1, "fraction": 3, "count": 0}


@dataclass(frozen=True)
class PaperRow:
    """One row of a paper's table (bench/paper_values.yaml)."""

    paper: str
    cite: str
    table: str
    row: str
    unit: str
    scale: float
    values: dict[str, float]
    spread: dict[str, float]
    folds: list[float]
    settings: dict[str, Any]
    own_settings: dict[str, Any]
    ours: dict | None
    note: str


def load_paper_values(path: Path = PAPER_VALUES) -> list[PaperRow]:
    """Read and check the papers' values; a malformed entry raises DataError naming it."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    papers = data.get("papers")
    if not isinstance(papers, dict) or not isinstance(data.get("entries"), list):
        raise DataError(path, "needs a 'papers' mapping and an 'entries' list")
    return [_paper_row(path, i, e, papers) for i, e in enumerate(data["entries"])]


def _paper_row(path: Path, i: int, entry: dict, papers: dict) -> PaperRow:
    where = f"entries[{i}] ({entry.get('row', '?') if isinstance(entry, dict) else entry!r})"
    if not isinstance(entry, dict):
        raise DataError(path, f"{where}: not a mapping")
    missing = [k for k in ("paper", "table", "row", "values") if k not in entry]
    if missing:
        raise DataError(path, f"{where}: missing {', '.join(missing)}")
    if entry["paper"] not in papers:
        raise DataError(path, f"{where}: unknown paper {entry['paper']!r}", f"one of {sorted(papers)}")
    values = entry["values"]
    if not isinstance(values, dict) or not values or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in values.values()):
        raise DataError(path, f"{where}: 'values' must map metric names to numbers")
    ours = entry.get("ours")
    if ours is not None and not (isinstance(ours, dict) and isinstance(ours.get("where"), dict)):
        raise DataError(path, f"{where}: 'ours' must be null or have a 'where' mapping")
    paper = papers[entry["paper"]]
    own = entry.get("settings") or {}
    return PaperRow(paper=entry["paper"], cite=paper.get("cite", entry["paper"]), table=str(entry["table"]),
                    row=str(entry["row"]), unit=str(entry.get("unit", "")), scale=float(entry.get("scale", 1)),
                    values=values, spread=entry.get("spread") or {}, folds=entry.get("folds") or [],
                    settings={**(paper.get("settings") or {}), **own}, own_settings=own,
                    ours=ours, note=str(entry.get("note") or "").strip())


def find_row(frame: pd.DataFrame | None, where: dict) -> pd.Series | None:
    if frame is None or any(k not in frame for k in where):
        return None
    mask = pd.Series(True, index=frame.index)
    for key, value in where.items():
        mask &= frame[key].astype(str) == str(value)
    hits = frame[mask]
    return hits.iloc[0] if len(hits) else None


def our_settings(prov: dict, results: pd.DataFrame | None, row: pd.Series | None) -> dict[str, Any]:
    """This run's values of the setting keys of paper_values.yaml (row-level ones need a results row)."""
    data = prov.get("dataset", {})
    gpus = prov.get("machine", {}).get("gpus")
    out = {"dataset": data.get("dataset"), "images": data.get("n_images"), "image_size": data.get("image_size"),
           "split": data.get("inputs", {}).get("split", {}).get("ratios"), "srad": data.get("srad"),
           "gpus": (", ".join(gpus) or "none") if gpus is not None else None}
    if row is not None and "n_train" in row:
        epochs = [number(e) for e in str(row.get("epochs_run", "")).split("/") if number(e) is not None]
        base = find_row(results, {"method": "none", "classifier": row["classifier"]})
        out.update({"test_images": number(row.get("n_test")), "weights": str(row.get("weights", "")).split(" (")[0],
                    "epochs": max(epochs) if epochs else None, "runs": number(row.get("n_seeds")),
                    "augmentation_factor": (number(row["n_train"]) / number(base["n_train"]))
                    if base is not None and number(base["n_train"]) else None})
    return out


def same(theirs: Any, ours: Any) -> bool:
    if isinstance(theirs, bool) or isinstance(ours, bool):
        return bool(theirs) == bool(ours)
    if isinstance(theirs, int | float) and isinstance(ours, int | float):
        return math.isclose(theirs, ours, rel_tol=0.01)
    if isinstance(theirs, list) and isinstance(ours, list):
        return len(theirs) == len(ours) and all(abs(a - b) <= 0.01 for a, b in zip(theirs, ours, strict=True))
    return str(theirs).strip().lower() == str(ours).strip().lower()


def show(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return "/".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def differs(theirs: dict, ours: dict) -> tuple[list[str], list[str]]:
    """(settings that differ, as 'label (paper vs ours)'; settings the paper does not state)."""
    diff, unstated = [], []
    for key, value in theirs.items():
        if key in NOT_COMPARED:
            continue
        label = SETTING_LABELS.get(key, key.replace("_", " "))
        if value is None:
            unstated.append(label)
        elif ours.get(key) is not None and not same(value, ours[key]):
            diff.append(f"{label} ({show(value)} vs {show(ours[key])})")
    return diff, unstated


def paper_number(value: float, unit: str) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    decimals = max(len(repr(float(value)).split(".")[1].rstrip("0")) if "." in repr(float(value)) else 0,
                   UNIT_DECIMALS.get(unit.split(" ")[0], 0))
    return f"{value:,.{decimals}f}"


def our_value(entry: PaperRow, metric: str, frame: pd.DataFrame | None, row: pd.Series | None
              ) -> tuple[float | None, str]:
    """(value in the paper's unit, display text) of ``metric`` in our matched row."""
    spec = (entry.ours or {}).get("compare", {}).get(metric, metric)
    column, minus = (spec, None) if isinstance(spec, str) else (spec.get("column", metric), spec.get("minus"))
    if row is None or column not in row or number(row[column]) is None:
        return None, "—"
    value = number(row[column])
    if minus:
        base = find_row(frame, {**entry.ours["where"], **minus})
        if base is None or number(base.get(column)) is None:
            return None, "—"
        value -= number(base[column])
    value *= entry.scale
    decimals = OUR_DECIMALS.get(entry.unit.split(" ")[0], 2)
    text = f"{value:+,.{decimals}f}" if minus else f"{value:,.{decimals}f}"
    low, high = number(row.get(f"{column}_low")), number(row.get(f"{column}_high"))
    if not minus and low is not None and high is not None:
        text += f" [{low * entry.scale:.{decimals}f}, {high * entry.scale:.{decimals}f}]"
    return value, text


def match_label(entry: PaperRow, frame: pd.DataFrame | None, row: pd.Series | None) -> str:
    if entry.ours is None:
        return "no counterpart in augbench"
    file = entry.ours.get("file", "results.csv")
    if frame is None:
        return f"not in this run ({file} absent)"
    where = entry.ours["where"]
    label = " / ".join(str(v) for v in where.values())
    if row is None:
        return f"{label}: not in this run"
    if "method" in row and "classifier" in row:
        return f"{row['method']} / {row['classifier']}"
    return label


def settings_text(entry: PaperRow, prov: dict, results: pd.DataFrame | None, row: pd.Series | None) -> str:
    """'differs: …; not stated in the paper: …' for one paper row against this run."""
    on_results = (entry.ours or {}).get("file", "results.csv") == "results.csv"
    ours = our_settings(prov, results if on_results else None, row if on_results else None)
    diff, unstated = differs(entry.settings if on_results else entry.own_settings, ours)
    parts = (["differs: " + "; ".join(diff)] if diff else []) + (
        ["not stated in the paper: " + ", ".join(unstated)] if unstated else [])
    return "; ".join(parts) or "—"


def paper_values_text(entry: PaperRow, metric: str) -> str:
    if metric not in entry.values:
        return ""
    text = paper_number(entry.values[metric], entry.unit)
    spread = entry.spread.get(metric)
    return text + (f" ± {paper_number(spread, entry.unit)}" if spread is not None else "")


def paper_record(entry: PaperRow, metrics: list[str], folder: Folder, prov: dict) -> dict[str, Any]:
    """One row of a papers table: the paper's values, ours beside each, what differs."""
    frame = folder.csv(entry.ours.get("file", "results.csv")) if entry.ours else None
    row = find_row(frame, entry.ours["where"]) if entry.ours else None
    record: dict[str, Any] = {"Paper row": entry.row, "This run's row": match_label(entry, frame, row)}
    for metric in metrics:
        label = METRIC_LABELS.get(metric, metric)
        record[f"{label} (paper)"] = paper_values_text(entry, metric)
        record[f"{label} (this run)"] = our_value(entry, metric, frame, row)[1] if metric in entry.values else ""
    if entry.folds:
        record["Per fold (paper)"] = ", ".join(paper_number(f, entry.unit) for f in entry.folds)
    record["Settings"] = settings_text(entry, prov, folder.csv("results.csv"), row)
    return record


def paper_group_table(entries: list[PaperRow], folder: Folder, prov: dict) -> Table:
    """The rows of one paper's table, with its notes numbered below it."""
    metrics = list(dict.fromkeys(m for e in entries for m in e.values))
    rows, notes = [], {}
    for entry in entries:
        record = paper_record(entry, metrics, folder, prov)
        if entry.note:
            record["Note"] = f"[{notes.setdefault(entry.note, len(notes) + 1)}]"
        rows.append(record)
    return Table.of(pd.DataFrame(rows).fillna(""), notes=tuple(notes))


def papers_section(folder: Folder, rows: list[PaperRow]) -> Section:
    if not rows:
        return Section("papers", "Papers vs this run")
    groups: dict[tuple[str, str], list[PaperRow]] = {}
    for entry in rows:
        groups.setdefault((entry.paper, entry.table), []).append(entry)
    blocks: list = [Paragraph(
        "Values reported by the papers (transcribed in `bench/paper_values.yaml`) next to "
        "this run's value of the same metric for the matching row, when this run has it. "
        "**Settings** names what differs between the paper's set-up and this run "
        "(paper vs ours), and what the paper does not state. These numbers are not comparable as "
        "they stand: they are set side by side to show how far apart the set-ups are.")]
    for (_, name), entries in groups.items():
        first = entries[0]
        theirs = "; ".join(f"{SETTING_LABELS.get(k, k)}: {show(v) if v is not None else 'not stated'}"
                           for k, v in first.settings.items())
        unit = f" Unit: {first.unit}." if first.unit else ""
        blocks += [Heading(f"{first.cite.split('. ')[0]}: {name}"),
                   Paragraph(f"{first.cite}.{unit} Their set-up: {theirs}.", muted=True),
                   paper_group_table(entries, folder, folder.prov)]
    return Section("papers", "Papers vs this run", tuple(blocks))


# --- the page -------------------------------------------------------------------------------------

def build(reports: Path, papers: Path | None = PAPER_VALUES) -> Report:
    """The report model of folder ``reports``: its sections in page order, those without content
    left out (papers=None: without the papers section)."""
    folder = Folder.read(Path(reports))
    found = [
        verdict_section(folder),
        provenance_section(folder),
        metrics_section(folder),
        significance_section(folder),
        csv_section(folder, "classifiers.csv", "classifiers", report_model.CLASSIFIERS_TITLE,
                    report_model.CLASSIFIERS_INTRO, ("figures/roc_classifiers.png",)),
        csv_section(folder, "parameters.csv", "parameters", report_model.PARAMETERS_TITLE,
                    report_model.PARAMETERS_INTRO),
        activation_section(folder),
        grids_section(folder),
        confusion_section(folder),
        *(extra_section(folder, extra) for extra in EXTRAS),
    ]
    found.append(more_figures_section(folder))  # after every other figure has been placed
    found += [papers_section(folder, load_paper_values(papers) if papers else []), files_section(folder)]
    return Report(title=folder.header.title or f"augbench report: {folder.root.name}",
                  sections=tuple(s for s in found if s.blocks),
                  commit=str(folder.prov.get("git", {}).get("commit", "unknown")))


def render(reports: Path, papers: Path | None = PAPER_VALUES) -> str:
    """The page for report folder ``reports``: its model (``build``) through ``page.html.j2``."""
    return report_model.render("page.html.j2", report=build(reports, papers), csp=Markup(CSP),
                               embed=embedder(Path(reports))) + "\n"


def write_html(reports: Path, papers: Path | None = PAPER_VALUES, out: Path | None = None) -> Path:
    """Write ``reports/index.html`` (or ``out``) atomically; returns its path."""
    path = Path(out) if out else Path(reports) / "index.html"
    write_text(path, render(reports, papers))
    return path


# --- browser checks --------------------------------------------------------------------------------

PROBE = """(async () => {
  await Promise.all([...document.images].map(i => i.decode().catch(() => null)));
  // the first column of a table that is numeric in every row (of at least two) is clicked twice
  const numeric = (t, i) => t.tBodies[0].rows.length > 1 && [...t.tBodies[0].rows].every(r => r.cells[i] && r.cells[i].dataset.sort);
  const sortable = [...document.querySelectorAll("table.sortable")].find(t => [...t.tHead.rows[0].cells].some((h, i) => numeric(t, i)));
  let sorted = null;
  if (sortable) {
    const heads = [...sortable.tHead.rows[0].cells];
    const col = heads.findIndex((h, i) => numeric(sortable, i));
    {
      const values = () => [...sortable.tBodies[0].rows].map(r => parseFloat(r.cells[col].dataset.sort));
      heads[col].querySelector("button").click();
      const up = values();
      heads[col].querySelector("button").click();
      const down = values();
      sorted = up.every((v, i) => i === 0 || up[i - 1] <= v) && down.every((v, i) => i === 0 || down[i - 1] >= v);
    }
  }
  return {
    title: document.title,
    sections: [...document.querySelectorAll("main > section")].map(s => s.id),
    images: [...document.images].map(i => ({alt: i.alt, width: i.naturalWidth, data: i.src.startsWith("data:")})),
    tables: [...document.querySelectorAll("table")].map(t => ({
      section: t.closest("section") ? t.closest("section").id : "",
      caption: t.caption ? t.caption.textContent : "",
      rows: t.tBodies.length ? t.tBodies[0].rows.length : 0})),
    sorted: sorted,
    height: document.documentElement.scrollHeight,
  };
})()"""


def check(page: Path, screenshot: Path | None = None, width: int = 1280, height: int = 4000) -> dict:
    """Load ``page`` in headless Chromium: what PROBE saw, console errors, outside requests."""
    from bench.browser import Chromium

    with Chromium() as browser:
        seen = browser.check(Path(page), PROBE, width=width,
                             screenshot_height=height if screenshot else None)
    if screenshot:
        from bench.io import atomic_path

        with atomic_path(screenshot) as tmp:
            tmp.write_bytes(seen.screenshot)
    outside = [u for u in seen.requests if not u.startswith(("data:", "file:"))]
    return {**seen.probe, "errors": seen.errors, "outside_requests": outside}


def problems(result: dict) -> list[str]:
    """What is wrong with a rendered page, from ``check``'s result (empty: nothing)."""
    out = [f"image {i['alt']!r} did not load" for i in result["images"] if not i["width"]]
    out += [f"image {i['alt']!r} is not embedded" for i in result["images"] if not i["data"]]
    out += [f"table {t['caption'] or t['section']!r} has no rows" for t in result["tables"] if not t["rows"]]
    out += [f"browser error: {e}" for e in result["errors"]]
    out += [f"request outside the page: {u}" for u in result["outside_requests"]]
    return out + (["clicking a header did not sort its table"] if result.get("sorted") is False else [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.html_report", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="write REPORTS/index.html from the files of a report folder")
    build.add_argument("reports", type=Path)
    build.add_argument("--out", type=Path, default=None)
    build.add_argument("--papers", type=Path, default=PAPER_VALUES)
    for name, text in (("check", "load a page in headless Chromium and report problems"),
                       ("screenshot", "PNG of a page's top (headless Chromium)")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("page", type=Path)
        if name == "screenshot":
            cmd.add_argument("out", type=Path)
        cmd.add_argument("--width", type=int, default=1280)
        cmd.add_argument("--height", type=int, default=4000, help="pixels from the top (0: whole page)")
    args = parser.parse_args(argv)
    if args.command == "build":
        print(write_html(args.reports, args.papers, args.out))
        return 0
    result = check(args.page, getattr(args, "out", None), args.width, args.height)
    found = problems(result)
    print("\n".join(found) or f"ok: {len(result['images'])} images, {len(result['tables'])} tables, "
                               f"{len(result['sections'])} sections, no errors")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
