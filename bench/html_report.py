"""``reports/index.html``: the whole report as one self-contained page.

Built only from the files of a report folder (what ``augbench report`` and
``augbench evaluate`` write there) plus ``bench/paper_values.yaml``, so any
report folder can be rendered again without re-running anything:

    python -m bench.html_report build reports                 # -> reports/index.html
    python -m bench.html_report check reports/index.html      # headless Chromium: loads, no errors
    python -m bench.html_report screenshot reports/index.html docs/report-screenshot.png

The page embeds every image as a ``data:`` URI and carries its CSS and a small
script (click a column header to sort a table) inline; its Content Security
Policy forbids loading anything else, so it can be mailed as one file and
opened offline. The page opens with the verdict (``verdict.csv``/``.json`` and
``figures/verdict.png``), rendered from ``bench.report_model`` through the same
templates as results.md's, autoescaped. Sections whose inputs are absent are left out (no empty
headings). Optional sections appear when their files do: ``lrp/*.png`` +
``lrp.csv``, ``figures/gan_*.png``, ``pseudolabel.csv``, ``quality.csv``, ``speedup.csv`` +
``speedup.png`` (see ``EXTRAS``);
any other PNG in the folder's top level or ``figures/`` lands in "More figures".
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import math
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd
import yaml

from bench import report_model
from bench.errors import DataError
from bench.io import read_json, write_text

PAPER_VALUES = Path(__file__).with_name("paper_values.yaml")
MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
        ".svg": "image/svg+xml", ".webp": "image/webp"}
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"
NUMBER = re.compile(r"\s*([+\-−]?(?:\d[\d,]*)?\.?\d+(?:[eE][+\-]?\d+)?)")
ALPHA = 0.05
LONG = 60  # characters: a cell this long wraps
INTERVAL = re.compile(r"(\S+) (\[[^\]]+\])$")


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def inline(text: str) -> str:
    """Escaped text with the Markdown the report uses inline: `code` and **bold**."""
    out = esc(text)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


def sort_key(text: str) -> float | None:
    """The number a cell starts with ('0.910 ± 0.074' -> 0.91, '23,542,786' -> 23542786)."""
    match = NUMBER.match(text)
    rest = "" if not match else text[match.end():]
    if not match or re.search(r"[^\W\d_]", rest) or re.match(r"\.\d", rest):  # not prose, not a version
        return None
    try:
        value = float(match.group(1).replace(",", "").replace("−", "-"))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


class Raw(str):
    """Cell content that is already HTML (built from escaped parts)."""

    sort: float | None = None


def raw(markup: str, sort: float | None = None) -> Raw:
    out = Raw(markup)
    out.sort = sort
    return out


def cell(value: Any) -> str:
    if isinstance(value, Raw):
        key, body = value.sort, str(value)
    else:
        text = "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
        key, body = sort_key(text), esc(text)
        interval = INTERVAL.match(text)
        if key is not None and interval:  # '87.5 [75.0, 100.0]': the interval on its own line
            body = f'{esc(interval.group(1))}<span class="ci">{esc(interval.group(2))}</span>'
    if key is not None:
        return f'<td data-sort="{key!r}">{body}</td>'
    return f'<td class="long">{body}</td>' if len(body) > LONG else f"<td>{body}</td>"


def table(frame: pd.DataFrame, caption: str = "") -> str:
    """A sortable table: click a header to sort by that column (numbers by value)."""
    head = "".join(f'<th scope="col"><button type="button">{esc(c)}</button></th>' for c in frame.columns)
    rows = "\n".join("<tr>" + "".join(cell(v) for v in row) + "</tr>"
                     for row in frame.itertuples(index=False, name=None))
    cap = f"<caption>{inline(caption)}</caption>" if caption else ""
    return (f'<div class="scroll"><table class="sortable">{cap}<thead><tr>{head}</tr></thead>'
            f"<tbody>\n{rows}\n</tbody></table></div>")


def paragraphs(text: str) -> str:
    return "".join(f"<p>{inline(p)}</p>" for p in text.split("\n\n") if p.strip())


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
    """A report folder and the images already placed on the page."""

    root: Path
    used: set[Path] = field(default_factory=set)

    def csv(self, name: str) -> pd.DataFrame | None:
        return read_csv(self.root / name)

    def images(self, pattern: str) -> list[Path]:
        return sorted(p for p in self.root.glob(pattern) if p.suffix.lower() in MIME and p.is_file())

    def figure(self, path: Path, caption: str = "") -> str:
        """An embedded image (a data: URI); ``caption`` also becomes its alt text (else the file name)."""
        self.used.add(path.resolve())
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        under = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
        return (f'<figure><img src="data:{MIME[path.suffix.lower()]};base64,{data}" '
                f'alt="{esc(caption or path.stem)}">{under}</figure>')

    def gallery(self, paths: Iterable[Path], caption=lambda p: p.stem.replace("__", " / ")) -> str:
        figures = [self.figure(p, caption(p)) for p in paths]
        return f'<div class="gallery">{"".join(figures)}</div>' if figures else ""

    def figures(self, *names: str) -> str:
        return "".join(self.figure(self.root / n, "") for n in names if (self.root / n).is_file())


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    body: str


def markdown_parts(text: str) -> tuple[str, list[tuple[str, str]], dict[str, str]]:
    """results.md -> (title, header bullets as (key, value), {section heading: its prose})."""
    title, bullets, sections, heading = "", [], {}, None
    for block in text.split("\n\n"):
        block = block.strip()
        if block.startswith("# "):
            title = block[2:].strip()
        elif block.startswith("## "):
            heading, _, rest = block[3:].partition("\n")
            sections[heading.strip()] = rest.strip()
        elif block.startswith("- **") and (heading is None or heading == report_model.VERDICT_TITLE):
            # the header bullets: before any section, or right after the verdict (built from its own files)
            for line in block.splitlines():
                match = re.match(r"- \*\*([^*]+)\*\*([^:]*): (.*)", line)
                if match:
                    bullets.append((match.group(1) + match.group(2), match.group(3)))
        elif heading and not block.startswith(("|", "![")):
            sections[heading] = (sections[heading] + "\n\n" + block).strip()
    return title, bullets, sections


def prose(sections: dict[str, str], prefix: str, default: str) -> tuple[str, str]:
    """(heading, intro) of the results.md section whose heading starts with ``prefix``."""
    for heading, text in sections.items():
        if heading.startswith(prefix):
            return heading, text
    return default, ""


# --- sections --------------------------------------------------------------------------------------

def verdict_section(folder: Folder) -> Section:
    """The verdict (bench.report_model) with its forest plot; empty without verdict.csv."""
    verdict = report_model.load_verdict(folder.root)
    if verdict is None:
        return Section("verdict", report_model.VERDICT_TITLE, "")
    figure = folder.figure(folder.root / verdict.figure, "forest plot: ΔAUC per arm with its interval") \
        if verdict.figure else ""
    return Section("verdict", verdict.title, report_model.verdict_html(verdict, figure))


def provenance_section(folder: Folder, bullets: list[tuple[str, str]], prov: dict) -> Section:
    items = []
    for key, value in bullets:
        parts = value.split("; ")
        body = ("<ul>" + "".join(f"<li>{inline(p)}</li>" for p in parts) + "</ul>") if len(parts) > 2 \
            else inline(value)
        items.append(f"<dt>{inline(key)}</dt><dd>{body}</dd>")
    versions = prov.get("versions", {})
    machine = prov.get("machine", {})
    extra = {"python": machine.get("python"), **versions} if versions else {}
    body = f'<dl class="prov">{"".join(items)}</dl>' if items else ""
    if extra:
        body += table(pd.DataFrame({"Package": list(extra), "Version": list(extra.values())}),
                      "Package versions (provenance.json)")
    if prov.get("time_utc"):
        body += f'<p class="muted">Report written {esc(prov["time_utc"])}.</p>'
    return Section("provenance", "Provenance", body)


def significance_lookup(comparisons: pd.DataFrame | None) -> dict[tuple[str, str], pd.Series]:
    """(method, classifier) -> its comparison with ``none`` (family 'augmentation')."""
    if comparisons is None or not {"family", "method", "classifier", "baseline_method"} <= set(comparisons):
        return {}
    rows = comparisons[(comparisons["family"] == "augmentation") & (comparisons["baseline_method"] == "none")]
    return {(r["method"], r["classifier"]): r for _, r in rows.iterrows()}


def fmt_p(text: str) -> str:
    value = number(text)
    return f"{value:.3g}" if value is not None else ""


def metrics_section(folder: Folder, sections: dict[str, str]) -> Section:
    frame = folder.csv("table.csv")
    title, intro = prose(sections, "Test-set metrics", "Test-set metrics")
    if frame is None:
        return Section("metrics", title, "")
    lookup = significance_lookup(folder.csv("comparisons.csv"))
    if lookup:
        keys = list(zip(frame["Method"], frame["Classifier"], strict=True))
        frame = frame.assign(**{
            "Δ AUC vs none": [f"{number(lookup[k]['auc_diff']):+.3f}" if k in lookup else "—" for k in keys],
            "p vs none (Holm)": [fmt_p(lookup[k]["delong_p_holm"]) if k in lookup else "—" for k in keys]})
        intro += ("\n\nThe last two columns: AUC difference to the un-augmented baseline `none` with the same "
                  "classifier and DeLong's p-value, Holm-adjusted over all augmentation methods (see Significance).")
    return Section("metrics", title, paragraphs(intro) + table(frame) + folder.figures("roc.png", "history.png"))


def significance_section(folder: Folder, sections: dict[str, str]) -> Section:
    frame = folder.csv("comparisons.csv")
    _, intro = prose(sections, "Paired comparisons", "")
    if frame is None or not len(frame):
        return Section("significance", "Significance", "")
    parts = [paragraphs(intro)]
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
        parts.append(table(rows, f"Holm family: {family}"))
    return Section("significance", "Significance (paired comparisons on the test split)", "".join(parts))


def csv_section(folder: Folder, sections: dict[str, str], name: str, id_: str, prefix: str,
                figures: tuple[str, ...] = ()) -> Section:
    frame = folder.csv(name)
    title, intro = prose(sections, prefix, prefix)
    if frame is None:
        return Section(id_, title, "")
    return Section(id_, title, paragraphs(intro) + table(frame) + folder.figures(*figures))


def activation_section(folder: Folder, sections: dict[str, str]) -> Section:
    title, intro = prose(sections, "Activation rates", "Activation rates of the DRS models")
    if not (folder.root / "figures" / "activation.png").is_file():
        return Section("drs", title, "")
    return Section("drs", title, paragraphs(intro) + folder.figures("figures/activation.png"))


def in_order(paths: list[Path], names: Iterable[str]) -> list[Path]:
    """``paths`` in the order their stems appear in ``names`` (the tables' order), the rest after."""
    rank = {name: i for i, name in enumerate(dict.fromkeys(names))}
    return sorted(paths, key=lambda p: (rank.get(p.stem, len(rank)), p.stem))


def grids_section(folder: Folder) -> Section:
    table_ = folder.csv("table.csv")
    methods = list(table_["Method"]) if table_ is not None and "Method" in table_ else []
    body = folder.gallery(in_order(folder.images("grids/*.png"), methods))
    return Section("samples", "Augmentation samples", body and (
        "<p>A sample grid per augmentation method (training-split sources and what the method made of "
        "them).</p>" + body))


def confusion_section(folder: Folder, sections: dict[str, str]) -> Section:
    title, _ = prose(sections, "Confusion matrices", "Confusion matrices")
    runs = folder.csv("runs.csv")
    parts = []
    if runs is not None and "confusion" in runs:
        cms = [json.loads(c) if c else [[None] * 2] * 2 for c in runs["confusion"]]
        metrics = [c for c in ("accuracy", "recall", "specificity", "precision", "f1", "auc") if c in runs]
        frame = pd.DataFrame({"Method": runs["method"], "Classifier": runs["classifier"], "Seed": runs["seed"],
                              **{m: [f"{number(v):.3f}" if number(v) is not None else "n/a" for v in runs[m]]
                                 for m in metrics},
                              "TN": [c[0][0] for c in cms], "FP": [c[0][1] for c in cms],
                              "FN": [c[1][0] for c in cms], "TP": [c[1][1] for c in cms]})
        parts.append(table(frame, "Every run (seed) on the test split; metrics as fractions"))
    names = [] if runs is None else [f"{m}__{c}__seed{s}" for m, c, s in
                                     zip(runs["method"], runs["classifier"], runs["seed"], strict=True)]
    parts.append(folder.gallery(in_order(folder.images("confusion/*.png"), names)))
    return Section("confusion", title, "".join(p for p in parts if p))


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
    Extra("quality", "Image quality of the synthetic images", "Similarity of each method's synthetic images "
          "to their sources (RMSE, PSNR, SSIM, SRE, SAM) and to the real training images (FID, KID); the first "
          "row, real training vs real validation images, is the floor. The feature_network column names the "
          "network of FID/KID: FID with the domain encoder is not comparable to the InceptionV3 FID of papers.",
          "quality.csv"),
    Extra("speedup", "Speed-up under Horovod", "Wall time and speed-up of the same work with np processes.",
          "speedup.csv", "speedup.png"),
)


def extra_section(folder: Folder, extra: Extra) -> Section:
    frame = folder.csv(extra.csv) if extra.csv else None
    images = folder.images(extra.images) if extra.images else []
    if frame is None and not images:
        return Section(extra.id, extra.title, "")
    body = (table(frame) if frame is not None else "") + (
        folder.gallery(images) if len(images) > 1 else folder.figures(*[str(p.relative_to(folder.root))
                                                                         for p in images]))
    return Section(extra.id, extra.title, f"<p>{esc(extra.intro)}</p>{body}")


def more_figures_section(folder: Folder) -> Section:
    rest = [p for p in folder.images("*.png") + folder.images("figures/*.png") if p.resolve() not in folder.used]
    return Section("figures", "More figures", folder.gallery(rest))


def files_section(folder: Folder) -> Section:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.root.iterdir()
                   if not p.name.startswith(".") and p.name != "index.html")
    items = "".join(f'<li><a href="./{esc(quote(n))}">{esc(n)}</a></li>' for n in names)  # always relative
    return Section("files", "Files of this report", items and (
        "<p>Beside this page in the report folder (the links work where the folder is; the page itself "
        f"needs none of them).</p><ul class=\"files\">{items}</ul>"))


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


def paper_group_table(entries: list[PaperRow], folder: Folder, prov: dict) -> str:
    """The rows of one paper's table, with its notes numbered below it."""
    metrics = list(dict.fromkeys(m for e in entries for m in e.values))
    rows, notes = [], {}
    for entry in entries:
        record = paper_record(entry, metrics, folder, prov)
        if entry.note:
            record["Note"] = f"[{notes.setdefault(entry.note, len(notes) + 1)}]"
        rows.append(record)
    listed = "".join(f"<li>{esc(n)}</li>" for n in notes)
    return table(pd.DataFrame(rows).fillna("")) + (f'<ol class="notes">{listed}</ol>' if notes else "")


def papers_section(folder: Folder, prov: dict, rows: list[PaperRow]) -> Section:
    if not rows:
        return Section("papers", "Papers vs this run", "")
    groups: dict[tuple[str, str], list[PaperRow]] = {}
    for entry in rows:
        groups.setdefault((entry.paper, entry.table), []).append(entry)
    parts = ["<p>Values reported by the papers (transcribed in <code>bench/paper_values.yaml</code>) next to "
             "this run's value of the same metric for the matching row, when this run has it. "
             "<strong>Settings</strong> names what differs between the paper's set-up and this run "
             "(paper vs ours), and what the paper does not state. These numbers are not comparable as "
             "they stand: they are set side by side to show how far apart the set-ups are.</p>"]
    for (_, name), entries in groups.items():
        first = entries[0]
        theirs = "; ".join(f"{SETTING_LABELS.get(k, k)}: {show(v) if v is not None else 'not stated'}"
                           for k, v in first.settings.items())
        unit = f" Unit: {first.unit}." if first.unit else ""
        parts.append(f"<h3>{esc(first.cite.split('. ')[0])}: {esc(name)}</h3>"
                     f'<p class="muted">{esc(first.cite)}.{esc(unit)} Their set-up: {esc(theirs)}.</p>'
                     + paper_group_table(entries, folder, prov))
    return Section("papers", "Papers vs this run", "".join(parts))


# --- the page -------------------------------------------------------------------------------------

STYLE = """
:root { --fg: #1b1f24; --muted: #5b6470; --line: #d5dae0; --head: #f2f4f7; --accent: #0b5cad; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
       sans-serif; color: var(--fg); background: #fff; }
header, main, footer { max-width: 1400px; margin: 0 auto; padding: 0 20px; }
header { padding-top: 18px; border-bottom: 1px solid var(--line); }
h1 { font-size: 1.6em; margin: 0.2em 0 0.4em; }
h2 { font-size: 1.3em; margin: 1.6em 0 0.5em; padding-top: 0.4em; border-top: 1px solid var(--line); }
h3 { font-size: 1.05em; margin: 1.4em 0 0.3em; }
nav ol { display: flex; flex-wrap: wrap; gap: 4px 16px; list-style: none; padding: 0; margin: 0.4em 0 1em; }
nav a, a { color: var(--accent); }
code { font: 0.92em ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: var(--head);
       padding: 0 3px; border-radius: 3px; }
.muted, caption, figcaption { color: var(--muted); font-size: 0.9em; }
dl.prov { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; }
dl.prov dt { font-weight: 600; } dl.prov dd { margin: 0; } dl.prov ul { margin: 0; padding-left: 1.2em; }
.scroll { overflow-x: auto; margin: 0.6em 0 1em; }
table { border-collapse: collapse; font-size: 0.86em; font-variant-numeric: tabular-nums; }
caption { text-align: left; padding: 4px 0; caption-side: top; }
th, td { border: 1px solid var(--line); padding: 3px 8px; text-align: left; vertical-align: top;
         white-space: nowrap; }
td[data-sort] { text-align: right; }
td .ci { display: block; font-size: 0.82em; color: var(--muted); }
td.long { white-space: normal; min-width: 22em; max-width: 40em; }
thead th { background: var(--head); vertical-align: bottom; white-space: normal; }
th button { all: unset; cursor: pointer; font-weight: 600; }
th button::after { content: "\\00a0\\2195"; color: var(--muted); font-weight: 400; }
th[aria-sort="ascending"] button::after { content: "\\00a0\\25B2"; color: var(--fg); }
th[aria-sort="descending"] button::after { content: "\\00a0\\25BC"; color: var(--fg); }
tbody tr:nth-child(even) { background: #fafbfc; }
figure { margin: 0.8em 0; display: inline-block; vertical-align: top; max-width: 100%; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(270px, 1fr)); gap: 12px; }
.gallery figure { margin: 0; }
ul.files { columns: 3; }
ol.notes { font-size: 0.88em; color: var(--muted); margin-top: -0.4em; }
.warning { border: 2px solid #b3261e; background: #fdecea; padding: 0.2em 1em; margin: 0.8em 0; }
.warning strong { color: #b3261e; }
table.verdict tr.control td:first-child { box-shadow: inset 3px 0 0 var(--muted); }
table.verdict td.failed { color: #b3261e; font-weight: 600; }
.verdict-helps { color: #1a7f37; font-weight: 600; } .verdict-hurts { color: #b3261e; font-weight: 600; }
footer { margin-top: 2em; padding: 1em 20px 2em; border-top: 1px solid var(--line); color: var(--muted); }
@media print { th button::after { content: ""; } .scroll { overflow: visible; } }
"""

SCRIPT = """
(function () {
  function key(row, col) {
    var c = row.cells[col];
    return c ? [c.getAttribute("data-sort"), c.textContent] : [null, ""];
  }
  function compare(a, b) {
    if (a[0] !== null && b[0] !== null) return parseFloat(a[0]) - parseFloat(b[0]);
    if (a[0] !== null) return -1;
    if (b[0] !== null) return 1;
    return a[1].localeCompare(b[1]);
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, col) {
      th.querySelector("button").addEventListener("click", function () {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.map.call(body.rows, function (row, i) { return [row, key(row, col), i]; });
        rows.sort(function (a, b) { return (ascending ? 1 : -1) * compare(a[1], b[1]) || a[2] - b[2]; });
        rows.forEach(function (r) { body.appendChild(r[0]); });
      });
    });
  });
})();
"""


def page_sections(folder: Folder, prov: dict, paper_rows: list[PaperRow]) -> tuple[str, list[Section]]:
    md = folder.root / "results.md"
    title, bullets, parts = markdown_parts(md.read_text(encoding="utf-8")) if md.is_file() else ("", [], {})
    found = [
        verdict_section(folder),
        provenance_section(folder, bullets, prov),
        metrics_section(folder, parts),
        significance_section(folder, parts),
        csv_section(folder, parts, "classifiers.csv", "classifiers", "Classifiers on",
                    ("figures/roc_classifiers.png",)),
        csv_section(folder, parts, "parameters.csv", "parameters", "Trainable parameters"),
        activation_section(folder, parts),
        grids_section(folder),
        confusion_section(folder, parts),
        *(extra_section(folder, extra) for extra in EXTRAS),
    ]
    found.append(more_figures_section(folder))  # after every other figure has been placed
    found += [papers_section(folder, prov, paper_rows), files_section(folder)]
    return title or f"augbench report: {folder.root.name}", [s for s in found if s.body]


def render(reports: Path, papers: Path | None = PAPER_VALUES) -> str:
    """The page for report folder ``reports`` (papers=None: without the papers section)."""
    folder = Folder(Path(reports))
    prov_path = folder.root / "provenance.json"
    prov = read_json(prov_path) if prov_path.is_file() else {}
    title, found = page_sections(folder, prov, load_paper_values(papers) if papers else [])
    nav = "".join(f'<li><a href="#{s.id}">{esc(s.title.split(" (")[0])}</a></li>' for s in found)
    body = "\n".join(f'<section id="{s.id}"><h2>{inline(s.title)}</h2>\n{s.body}\n</section>' for s in found)
    git = prov.get("git", {})
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="augbench (bench/html_report.py)">
<title>{esc(title.replace("`", ""))}</title>
<style>{STYLE}</style>
</head>
<body>
<header><h1>{inline(title)}</h1><nav aria-label="Sections"><ol>{nav}</ol></nav></header>
<main>
{body}
</main>
<footer>Written by augbench from the files of this report folder; commit {esc(str(git.get("commit", "unknown"))[:12])}.
Every image is embedded; the page loads nothing else.</footer>
<script>{SCRIPT}</script>
</body>
</html>
"""


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
