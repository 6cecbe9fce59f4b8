"""The report model: what the report says, built from the files of a report folder, and
rendered to Markdown (``results.md``) and HTML (``index.html``) by the jinja2 templates of
``bench/templates/report/``.

Its first section is the verdict: per method, ΔAUC against the un-augmented
baseline with its interval, the Holm-adjusted p-value and "helps" / "hurts" / "no evidence"
(``bench.stats.verdict``), beside the controls (positive, negative, A/A) and whether each came
out as expected. Its inputs are the evaluate stage's

* ``verdict.csv``: one row per arm (``VERDICT_COLUMNS``);
* ``verdict.json``: the settings every row shares (``VERDICT_KEYS`` required, ``OPTIONAL_KEYS``
  not).

Without ``verdict.csv`` there is no verdict (``load_verdict`` returns None) and both formats
leave the section out. A file that is there but malformed raises ``DataError`` naming the file
and the field.

The rest of the report is modelled as data too (``Report``: ``Section``s of ``Paragraph``,
``Table``, ``Figure``, ``Gallery``, … blocks; ``bench.html_report.build`` fills it from a report
folder) and rendered by ``page.html.j2``. What the report stage knew when it ran and no other file
of the folder holds (the title, the header bullets, the settings the sections' prose states) is
``Header``, kept in ``provenance.json`` under ``"report"``; results.md renders the same header
through ``header.md.j2`` and takes the sections' titles and prose from the functions below.

Prose in the model may carry two inline marks, `code` and **bold**: Markdown prints them as they
are; HTML escapes the text first, then turns them into ``<code>``/``<strong>`` (the ``inline``
filter), so a user's name can never become markup.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from bench.errors import DataError
from bench.io import read_json
from bench.stats import VERDICTS
from bench.typed import suggest

TEMPLATES = Path(__file__).with_name("templates") / "report"
VERDICT_CSV, VERDICT_JSON = "verdict.csv", "verdict.json"
FOREST_PLOT = "figures/verdict.png"  # relative to the report folder: results.md links it, the page embeds it
VERDICT_TITLE = "Verdict: does each augmentation help?"
VERDICT_COLUMNS = ("classifier", "method", "role", "expected", "n_seeds", "auc_base", "auc_method", "delta",
                   "low", "high", "p", "p_holm", "sd_diff", "mde", "power_at_mde", "delong_significant",
                   "verdict", "as_expected")
VERDICT_KEYS = ("alpha", "confidence", "seeds", "baseline", "budget", "weights")
OPTIONAL_KEYS = ("n_resamples", "aa_seeds", "n_test", "test", "interval", "classifiers")
ROLES = ("method", "positive control", "negative control", "A/A")  # table and plot order
BUDGETS = {
    "steps": "every arm trained for the same number of optimiser steps, so an arm with more images "
             "gets no extra training",
    "epochs": "every arm trained for the same number of epochs, so an arm with more images also gets "
              "more optimiser steps: part of its ΔAUC may be that extra training",
    "unknown": "not recorded: an arm with more images may also have had more optimiser steps",
}


# --- numbers as the report prints them -------------------------------------------------------------

def signed(value: float) -> str:
    """'+0.012' (3 decimals, always signed); 'n/a' when not finite."""
    return f"{value:+.3f}" if math.isfinite(value) else "n/a"


def interval(low: float, high: float) -> str:
    return f"[{signed(low)}, {signed(high)}]"


def p_value(value: float) -> str:
    """'< 0.001', '0.012', '1.000'; 'n/a' when not finite."""
    if not math.isfinite(value):
        return "n/a"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def plain(value: float) -> str:
    """'0.021'; '∞' where nothing is detectable (one seed); 'n/a' for NaN."""
    if math.isinf(value):
        return "∞"
    return f"{value:.3f}" if math.isfinite(value) else "n/a"


# --- the model -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Arm:
    """One row of verdict.csv: a method or a control against the baseline, with one classifier."""

    classifier: str
    method: str
    role: str
    expected: str
    n_seeds: int
    delta: float
    low: float
    high: float
    p_holm: float
    mde: float
    power_at_mde: float
    delong_significant: int
    verdict: str
    as_expected: bool | None

    @property
    def is_control(self) -> bool:
        return self.role != "method"

    @property
    def delta_text(self) -> str:
        return signed(self.delta)

    @property
    def interval_text(self) -> str:
        return interval(self.low, self.high)

    @property
    def p_text(self) -> str:
        return p_value(self.p_holm)

    @property
    def mde_text(self) -> str:
        return plain(self.mde)

    @property
    def check_text(self) -> str:
        """The control column: '' for a method, else whether the control came out as expected."""
        if not self.is_control:
            return ""
        if self.as_expected is None:
            return f"expected {self.expected}; not checked"
        return f"as expected ({self.expected})" if self.as_expected else f"NOT as expected (expected {self.expected})"

    @property
    def failure(self) -> str:
        """Why a failed control matters (the warning's reason for this arm)."""
        got = f"{self.method} ({self.role}, {self.classifier}) came out {self.verdict!r}, expected {self.expected!r}"
        if self.expected == "no evidence":
            return (f"{got}: the test called a difference where there is none, so a method's 'helps' or "
                    "'hurts' may be a false alarm")
        return (f"{got}: the run missed an effect that is there, so a method's 'no evidence' cannot be "
                "read as 'no effect'")


@dataclass(frozen=True)
class Verdict:
    """The verdict section: the shared settings (verdict.json) and the arms (verdict.csv), in order."""

    n_seeds: int
    seeds: list
    aa_seeds: list
    budget: str
    budget_meaning: str
    weights: str
    baseline: str
    alpha: float
    confidence: float
    power: str  # the power of the mde column, e.g. '80%'
    n_resamples: int | None
    n_test: int | None
    test: str
    interval: str
    classifiers: list[str]
    arms: list[Arm]
    figure: str | None = None  # the forest plot, relative to the report folder, once drawn
    title: str = VERDICT_TITLE
    unit: str = "seed"  # what R counts: training seeds, or (repeated k-fold) replicates

    @property
    def confidence_text(self) -> str:
        return f"{self.confidence:.0%}"

    @property
    def methods(self) -> list[Arm]:
        return [a for a in self.arms if not a.is_control]

    @property
    def controls(self) -> list[Arm]:
        return [a for a in self.arms if a.is_control]

    @property
    def failed_controls(self) -> list[Arm]:
        return [a for a in self.controls if a.as_expected is False]

    @property
    def unchecked_controls(self) -> list[Arm]:
        return [a for a in self.controls if a.as_expected is None]

    @property
    def reading(self) -> str:
        """How to read the table (one paragraph, plain text: both formats print it as it is)."""
        return (f"How to read it: each row is one arm against the baseline '{self.baseline}' with the same "
                f"classifier; ΔAUC is the mean over {self.unit}s of the per-{self.unit} AUC difference (arm − baseline), "
                f"with its {self.confidence_text} interval. An arm helps or hurts only when the interval "
                f"excludes 0 AND the paired t-test over {self.unit}s, Holm-adjusted within its family (the methods; the "
                f"controls), is below α = {self.alpha:g}; never "
                f"from one {self.unit}. mde is the smallest ΔAUC these {self.unit}s detect with {self.power} power: 'no "
                "evidence' for an arm whose ΔAUC is below it means the run was too small to tell, not that "
                "the method does nothing. Controls are arms whose answer is known in advance; the last "
                "column says whether they got it.")

    @property
    def controls_headline(self) -> str:
        """One sentence on the controls (the warning's headline when one failed)."""
        failed, total = len(self.failed_controls), len(self.controls)
        if not total:
            return ("No controls were run: nothing in this report shows that the run can tell a real "
                    "effect from none.")
        if failed:
            return (f"WARNING: {failed} of {total} controls did NOT come out as expected: this run cannot "
                    "tell effects apart.")
        if self.unchecked_controls:
            return (f"{len(self.unchecked_controls)} of {total} controls could not be checked; the others came "
                    "out as expected.")
        return (f"All {total} controls came out as expected: at R = {self.n_seeds} the run told a known effect "
                "from none, so its verdicts can be read.")

    @property
    def controls_consequence(self) -> str:
        """Why a failed control matters ('' when none failed)."""
        if not self.failed_controls:
            return ""
        return ("Each control is an arm whose answer is known; a run that gets a known answer wrong can get "
                "a method's wrong the same way, so read none of the method verdicts as a finding until the "
                "controls pass (more seeds, a larger test set or a longer budget).")

    @property
    def counts(self) -> dict[str, int]:
        """How many methods got each verdict (all three keys, in ``VERDICTS`` order)."""
        return {v: sum(a.verdict == v for a in self.methods) for v in VERDICTS}


# --- reading the files -----------------------------------------------------------------------------

def load_verdict(folder: Path) -> Verdict | None:
    """The verdict of report folder ``folder`` (None without ``verdict.csv``)."""
    folder = Path(folder)
    csv_path, json_path = folder / VERDICT_CSV, folder / VERDICT_JSON
    if not csv_path.is_file():
        return None
    if not json_path.is_file():
        raise DataError(json_path, f"missing beside {VERDICT_CSV}", "re-run the evaluate stage")
    info = read_json(json_path)
    if not isinstance(info, dict):
        raise DataError(json_path, "must hold a JSON object")
    missing = [k for k in VERDICT_KEYS if k not in info]
    if missing:
        raise DataError(json_path, f"missing {', '.join(missing)}", f"needs {', '.join(VERDICT_KEYS)}")
    arms = read_arms(csv_path, info.get("classifiers") or [])
    return verdict_from(info, arms, json_path, folder)


def verdict_from(info: dict, arms: list[Arm], json_path: Path, folder: Path) -> Verdict:
    budget = str(info["budget"])
    if budget not in BUDGETS:
        raise DataError(json_path, f"budget {budget!r} is not one of {', '.join(BUDGETS)}", suggest(budget, BUDGETS))
    powers = sorted({a.power_at_mde for a in arms if math.isfinite(a.power_at_mde)})
    return Verdict(
        n_seeds=len(info["seeds"]), seeds=list(info["seeds"]), aa_seeds=list(info.get("aa_seeds") or []),
        budget=budget, budget_meaning=BUDGETS[budget], weights=weights_text(info["weights"]),
        baseline=str(info["baseline"]), alpha=float(info["alpha"]), confidence=float(info["confidence"]),
        power=", ".join(f"{p:.0%}" for p in powers) or "80%",
        n_resamples=info.get("n_resamples"), n_test=info.get("n_test"),
        test=str(info.get("test") or ""), interval=str(info.get("interval") or ""),
        classifiers=list(info.get("classifiers") or dict.fromkeys(a.classifier for a in arms)), arms=arms,
        figure=FOREST_PLOT if (folder / FOREST_PLOT).is_file() else None,
        unit="replicate" if (info.get("split") or {}).get("mode") == "repeated-kfold" else "seed")


def weights_text(weights: Any) -> str:
    """verdict.json's weights (a mapping classifier -> source, or one string) as one line."""
    if isinstance(weights, dict):
        return "; ".join(f"{k}: {v if isinstance(v, str) else json.dumps(v)}" for k, v in weights.items())
    return str(weights)


def read_arms(path: Path, classifiers: list[str]) -> list[Arm]:
    """verdict.csv's rows, methods first (in file order), then the controls by ``ROLES``."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in VERDICT_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(path, f"missing column(s) {', '.join(missing)}", "re-run the evaluate stage")
    arms = [arm(path, i, row) for i, row in enumerate(frame.to_dict("records"), start=2)]
    rank = {c: i for i, c in enumerate(classifiers)}
    order = sorted(range(len(arms)), key=lambda i: (ROLES.index(arms[i].role),
                                                    rank.get(arms[i].classifier, len(rank)), i))
    return [arms[i] for i in order]


def arm(path: Path, line: int, row: dict[str, str]) -> Arm:
    where = f"line {line} ({row['method']} / {row['classifier']})"
    for key, allowed in (("role", ROLES), ("verdict", VERDICTS)):
        if row[key] not in allowed:
            raise DataError(path, f"{where}: {key} {row[key]!r} is not one of {', '.join(allowed)}",
                            suggest(row[key], allowed))
    if row["role"] != "method" and row["expected"] not in VERDICTS:
        raise DataError(path, f"{where}: a control needs expected in {', '.join(VERDICTS)}, got {row['expected']!r}")
    return Arm(classifier=row["classifier"], method=row["method"], role=row["role"], expected=row["expected"],
               n_seeds=_int(path, where, row, "n_seeds"), delta=_float(path, where, row, "delta"),
               low=_float(path, where, row, "low"), high=_float(path, where, row, "high"),
               p_holm=_float(path, where, row, "p_holm"), mde=_float(path, where, row, "mde"),
               power_at_mde=_float(path, where, row, "power_at_mde"),
               delong_significant=_int(path, where, row, "delong_significant"), verdict=row["verdict"],
               as_expected=_as_expected(row))


def _float(path: Path, where: str, row: dict[str, str], key: str) -> float:
    text = row[key].strip()
    try:
        return float(text) if text else math.nan
    except ValueError:
        raise DataError(path, f"{where}: {key} {text!r} is not a number") from None


def _int(path: Path, where: str, row: dict[str, str], key: str) -> int:
    value = _float(path, where, row, key)
    if not math.isfinite(value) or value != int(value):
        raise DataError(path, f"{where}: {key} {row[key]!r} is not a whole number")
    return int(value)


def _as_expected(row: dict[str, str]) -> bool | None:
    """verdict.csv's as_expected; for a control that left it empty, verdict == expected."""
    text = row["as_expected"].strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    if row["role"] == "method" or not row["expected"]:
        return None
    return row["verdict"] == row["expected"]


# --- the page model: every other section as data ---------------------------------------------------

NUMBER = re.compile(r"\s*([+\-−]?(?:\d[\d,]*)?\.?\d+(?:[eE][+\-]?\d+)?)")
INTERVAL = re.compile(r"(\S+) (\[[^\]]+\])$")
LONG = 60  # characters (as HTML): a cell this long wraps


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


@dataclass(frozen=True)
class Cell:
    """One table cell: its text, the number it sorts by (None: sorted as text) and, for
    '87.5 [75.0, 100.0]', the interval shown on its own line."""

    text: str
    sort: float | None = None
    ci: str = ""

    @classmethod
    def of(cls, value: Any) -> Cell:
        text = "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
        key = sort_key(text)
        interval_ = INTERVAL.match(text) if key is not None else None
        if interval_:
            return cls(interval_.group(1), key, interval_.group(2))
        return cls(text, key)

    @property
    def sort_attr(self) -> str:
        return repr(self.sort)

    @property
    def long(self) -> bool:
        return self.sort is None and len(escape(self.text)) > LONG


@dataclass(frozen=True)
class Table:
    """A sortable table (click a header to sort by that column); ``notes`` are numbered under it."""

    kind: ClassVar[str] = "table"
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    caption: str = ""
    notes: tuple[str, ...] = ()

    @classmethod
    def of(cls, frame: pd.DataFrame, caption: str = "", notes: tuple[str, ...] = ()) -> Table:
        rows = tuple(tuple(Cell.of(v) for v in row) for row in frame.itertuples(index=False, name=None))
        return cls(tuple(str(c) for c in frame.columns), rows, caption, tuple(notes))


@dataclass(frozen=True)
class Paragraph:
    kind: ClassVar[str] = "paragraph"
    text: str
    muted: bool = False


@dataclass(frozen=True)
class Heading:
    """A heading inside a section (one level under the section's)."""

    kind: ClassVar[str] = "heading"
    text: str


@dataclass(frozen=True)
class Figure:
    """An image of the report folder (``path`` relative to it); ``caption`` is also its alt text
    (without one: the file's stem as alt text, no caption)."""

    kind: ClassVar[str] = "figure"
    path: str
    caption: str = ""

    @property
    def alt(self) -> str:
        return self.caption or Path(self.path).stem


@dataclass(frozen=True)
class Gallery:
    kind: ClassVar[str] = "gallery"
    figures: tuple[Figure, ...]


@dataclass(frozen=True)
class HeaderItem:
    """One header bullet: '**Label** (qualifier): text'."""

    label: str
    text: str
    qualifier: str = ""

    @property
    def term(self) -> str:
        return self.label + (f" ({self.qualifier})" if self.qualifier else "")

    @property
    def markdown(self) -> str:
        """The bullet as results.md has it."""
        return f"- **{self.label}**" + (f" ({self.qualifier})" if self.qualifier else "") + f": {self.text}"

    @property
    def parts(self) -> list[str]:
        """The text split at '; ' (the page lists them when there are more than two)."""
        return self.text.split("; ")


@dataclass(frozen=True)
class Definitions:
    kind: ClassVar[str] = "definitions"
    items: tuple[HeaderItem, ...]


@dataclass(frozen=True)
class Files:
    """Links to files beside the page (always relative)."""

    kind: ClassVar[str] = "files"
    names: tuple[str, ...]


@dataclass(frozen=True)
class VerdictBlock:
    kind: ClassVar[str] = "verdict"
    verdict: Verdict
    figure: Figure | None = None


@dataclass(frozen=True)
class Section:
    """A section of the page: left out when it has no blocks."""

    id: str
    title: str
    blocks: tuple = ()

    @property
    def nav_title(self) -> str:
        return self.title.split(" (")[0]


@dataclass(frozen=True)
class Report:
    """The page: its title, its sections (only those with content, in order), the commit."""

    title: str
    sections: tuple[Section, ...]
    commit: str = "unknown"


# --- the header: what the report stage knew (provenance.json's "report") ---------------------------

REPORT_KEY = "report"  # provenance.json's key for the Header


@dataclass(frozen=True)
class Header:
    """The title, the header bullets and the settings the sections' prose states, as the report
    stage wrote them (empty for a report folder from before it did)."""

    title: str = ""
    items: tuple[HeaderItem, ...] = ()
    confidence: float | None = None
    threshold: float | None = None
    drs_runs: tuple[str, ...] = ()
    pseudolabel_row: bool = False

    def to_json(self) -> dict:
        return asdict(self)


def load_header(prov: dict, path: Path | str = "provenance.json") -> Header:
    """``prov[REPORT_KEY]`` as a Header (an empty one when absent); malformed: DataError."""
    info = prov.get(REPORT_KEY)
    if info is None:
        return Header()
    try:
        items = tuple(HeaderItem(**item) for item in info.get("items", []))
        return Header(title=str(info.get("title", "")), items=items, confidence=info.get("confidence"),
                      threshold=info.get("threshold"), drs_runs=tuple(info.get("drs_runs") or ()),
                      pseudolabel_row=bool(info.get("pseudolabel_row")))
    except (TypeError, AttributeError) as err:
        raise DataError(Path(path), f"{REPORT_KEY!r}: {err}", "re-run the report stage") from None


def header_markdown(header: Header) -> str:
    """results.md's header bullets (the title is its first line, the verdict between them)."""
    return render("header.md.j2", h=header)


# --- the sections' titles and prose, shared by results.md and index.html ---------------------------

METRICS_TITLE = "Test-set metrics (layout of Panigrahi et al. 2024, Table 4)"
CLASSIFIERS_TITLE = "Classifiers on the un-augmented baseline (layout of Byra 2021, Table 2)"
PARAMETERS_TITLE = "Trainable parameters (layout of Byra 2021, Table 1)"
COMPARISONS_TITLE = "Paired comparisons on the test split"
DRS_TITLE = "Activation rates of the DRS models (Byra 2021, Eq. 5–7)"
CLASSIFIERS_INTRO = (
    "Test split; percent ± bootstrap standard deviation over test cases (AUC as a fraction). "
    "The '@val-thr' columns use the threshold at the ROC point closest to (0, 1) **chosen on the "
    "validation split** and applied to test (Byra does not say where his threshold was chosen). "
    "† a frozen backbone with random weights (no pretrained weights here): only the head (and the DRS "
    "layers) learn, on random features — these rows measure that, not transfer learning.")
PARAMETERS_INTRO = (
    "At this run's input size (from the trained models) and at 224 × 224 (Byra's input size; models "
    "built with random weights — counts do not depend on weights). `augbench params-count NAME "
    "--mode MODE --input-size S` prints one.")
COMPARISONS_INTRO = (
    "AUCs of the seed-mean scores on the same test cases (with one seed: the table's AUC). DeLong's test "
    "for two correlated AUCs, Holm-adjusted within each family (augmentation vs `none`; classifier vs "
    "the reference classifier); beside it the Wilcoxon rank-sum test on bootstrapped AUCs that "
    "Byra 2021 used, for comparison only: its p-value shrinks as the number of bootstrap resamples "
    "grows, so it is not a valid test (README, 'Statistics').")


def metrics_intro(confidence: float | None, pseudolabel_row: bool) -> str:
    level = f"{confidence:.0%} " if confidence is not None else ""
    return (f"Percent, with {level}bootstrap intervals; AUC as a fraction. Recall = sensitivity (positive "
            "class: malignant)."
            + (" The pseudo-label row is the mean ± sd over its folds' test halves (section 'Pseudo-labelled NST "
               "per fold'), not a bootstrap interval on this test split." if pseudolabel_row else ""))


def drs_intro(runs: Iterable[str]) -> str:
    runs = list(runs)
    return ((f"Runs: {', '.join(runs)}. " if runs else "")
            + "The reference is the same backbone with its initial weights and no DRS.")


def confusion_title(threshold: float | None) -> str:
    return "Confusion matrices (test split" + (f", threshold {threshold})" if threshold is not None else ")")


# --- rendering -------------------------------------------------------------------------------------

def md_cell(value: Any) -> str:
    """Text safe inside a Markdown table cell: no raw HTML, no cell breaks, no stray emphasis."""
    text = str(value)
    for char, escaped in (("\\", "\\\\"), ("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("|", "\\|"),
                          ("*", "\\*"), ("_", "\\_"), ("`", "\\`"), ("\n", " ")):
        text = text.replace(char, escaped)
    return text


def code(value: Any) -> str:
    """A Markdown code span (backticks inside become quotes)."""
    return "`" + str(value).replace("`", "'").replace("\n", " ") + "`"


def inline(text: Any) -> Markup:
    """Prose as HTML: escaped first, then the two inline marks, `code` and **bold**."""
    out = str(escape("" if text is None else str(text)))  # as autoescaping does
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return Markup(re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out))


def data_sort(value: float) -> str:
    """`` data-sort="…"`` for a sortable HTML cell ('' when not finite: sorted as text)."""
    return Markup(f' data-sort="{value!r}"') if math.isfinite(value) else ""


def environment() -> Environment:
    """The templates' environment: HTML autoescaped, Markdown not; a missing field raises."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined,
                      autoescape=select_autoescape(enabled_extensions=("html", "html.j2"),
                                                   disabled_extensions=("md.j2",), default=True),
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False)
    env.filters.update(md=md_cell, code=code, data_sort=data_sort, inline=inline, quote=quote)
    return env


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context).strip()


def verdict_markdown(verdict: Verdict) -> str:
    """The verdict section of results.md ('## ' heading included)."""
    return render("verdict.md.j2", v=verdict)


# --- the forest plot -------------------------------------------------------------------------------

def forest_panels(verdict: Verdict) -> dict[str, list[dict]]:
    """The plot's rows per classifier, in the table's order (methods, then the controls)."""
    panels: dict[str, list[dict]] = {}
    for a in verdict.arms:
        label = a.method if not a.is_control else f"{a.method} ({a.role}{'; FAILED' if a.as_expected is False else ''})"
        panels.setdefault(f"classifier: {a.classifier}", []).append(
            {"label": label, "delta": a.delta, "low": a.low, "high": a.high, "verdict": a.verdict,
             "control": a.is_control})
    return panels


def draw_forest(verdict: Verdict, folder: Path) -> Verdict:
    """Draw ``folder/figures/verdict.png``; the verdict with ``figure`` pointing at it."""
    from bench import plots

    plots.forest_plot(Path(folder) / FOREST_PLOT, forest_panels(verdict),
                      f"ΔAUC against {verdict.baseline}: R = {verdict.n_seeds} {verdict.unit}s, budget: {verdict.budget}",
                      f"ΔAUC (arm − {verdict.baseline}), mean over {verdict.unit}s, {verdict.confidence_text} interval")
    return replace(verdict, figure=FOREST_PLOT)
