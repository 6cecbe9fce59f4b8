"""Ratio checks for CI timing: compare speed ratios measured in one run with a committed baseline.

Absolute times mean nothing across machines and are noisy on one, so every benchmark in
``tests/benchmarks`` records *ratios* of two timings taken in the same run (the hot path
against its own reference: the naive loop, a fixed matrix product, the model step).
Higher is always better. A ratio fails when it falls below

    max(floor, baseline × (1 − tolerance))

where ``floor`` is a requirement stated by an issue or one the measurements support (e.g.
"batched NST ≥ 1.4× the same engine one image at a time") and ``tolerance`` is stated once,
at the top of the baseline file (a ratio's own ``tolerance`` entry overrides it for that ratio:
a ratio stable enough to catch a 2× slowdown needs one below 0.5).

Every ratio also records its workload (``what``: sizes, counts, the reference). A ratio whose
recorded workload differs from the baseline's fails as ``WORKLOAD CHANGED``: its value is no
longer comparable with the baseline's, whichever way it moved. A deliberate change of the
workload is accepted by re-baselining (``--update-baseline``), which stores the new text.

``augbench bench-check RUN.json`` checks a pytest-benchmark JSON file (``--benchmark-json``)
and prints the table; ``--update-baseline`` rewrites the measured ratios and absolute times
(kept for reference, never asserted) while keeping floors, tolerance and descriptions.
``augbench bench-history`` plots the ratios of the runs saved under ``.benchmarks/``
(``--benchmark-autosave``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench.errors import AugbenchError

DEFAULT_BASELINE = Path("tests/benchmarks/baseline.json")
DEFAULT_HISTORY = Path(".benchmarks")


class BenchCheckError(AugbenchError):
    """A baseline or benchmark file that cannot be used."""


@dataclass(frozen=True)
class Measured:
    name: str
    value: float
    what: str = ""
    source: str = ""


@dataclass(frozen=True)
class Expected:
    baseline: float | None
    floor: float | None = None
    what: str = ""
    tolerance: float | None = None  # this ratio's own; None: the file's


@dataclass(frozen=True)
class Baseline:
    tolerance: float
    ratios: dict[str, Expected]
    recorded: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Row:
    name: str
    current: float | None
    baseline: float | None
    threshold: float | None
    status: str  # ok | REGRESSED | BELOW FLOOR | WORKLOAD CHANGED | new | not run
    what: str = ""
    current_what: str | None = None  # the run's workload, when it recorded one
    tolerance: float | None = None  # the tolerance the threshold was computed with


@dataclass(frozen=True)
class CheckResult:
    rows: list[Row]
    tolerance: float

    @property
    def failures(self) -> list[str]:
        out = []
        for r in self.rows:
            if r.status == "WORKLOAD CHANGED":
                out.append(f"benchmark ratio {r.name} = {r.current:.3g} measured a different workload than its "
                           f"baseline: baseline {r.what!r}, this run {r.current_what!r}; the ratios are not "
                           "comparable. If the change is deliberate, re-baseline with "
                           "`augbench bench-check RUN.json --update-baseline`")
            elif r.status in ("REGRESSED", "BELOW FLOOR"):
                why = (f"below its floor {r.threshold:.3g}" if r.status == "BELOW FLOOR" else
                       f"below {r.threshold:.3g} = baseline {r.baseline:.3g} × "
                       f"(1 − {self.tolerance if r.tolerance is None else r.tolerance:g})")
                out.append(f"benchmark ratio {r.name} = {r.current:.3g}, {why}"
                           + (f" ({r.what})" if r.what else ""))
        return out

    @property
    def ok(self) -> bool:
        return not self.failures


def _number(value, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BenchCheckError(f"{where}: expected a finite number, found {value!r}")
    return float(value)


def _read_json(path: Path, missing: str, damaged: str):
    """The parsed file; a missing or damaged one is a BenchCheckError naming it and what to do."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise BenchCheckError(f"{path}: {missing}") from None
    except json.JSONDecodeError as e:
        raise BenchCheckError(f"{path}: not valid JSON ({e}); {damaged}") from None


def load_baseline(path: str | Path) -> Baseline:
    path = Path(path)
    raw = _read_json(path, "no baseline file; create one with `augbench bench-check RUN.json --update-baseline`",
                     "restore it from git")
    if not isinstance(raw, dict) or not isinstance(raw.get("ratios"), dict):
        raise BenchCheckError(f"{path}: expected an object with a 'ratios' object")
    tolerance = _number(raw.get("tolerance"), f"{path}: tolerance")
    if tolerance is None or not 0 <= tolerance < 1:
        raise BenchCheckError(f"{path}: tolerance must be a number in [0, 1), found {raw.get('tolerance')!r}")
    ratios = {}
    for name, entry in raw["ratios"].items():
        if not isinstance(entry, dict):
            raise BenchCheckError(f"{path}: ratio {name!r} must be an object with 'baseline' (and 'floor')")
        own = _number(entry.get("tolerance"), f"{path}: {name}.tolerance")
        if own is not None and not 0 <= own < 1:
            raise BenchCheckError(f"{path}: {name}.tolerance must be a number in [0, 1), found {own!r}")
        ratios[name] = Expected(_number(entry.get("baseline"), f"{path}: {name}.baseline"),
                                _number(entry.get("floor"), f"{path}: {name}.floor"), str(entry.get("what", "")),
                                own)
    return Baseline(tolerance, ratios, raw.get("recorded", {}))


def tolerance_of(expected: Expected, default: float, override: float | None = None) -> float:
    """The tolerance a ratio is judged with: ``override`` (``--tolerance``), else its own, else ``default``."""
    if override is not None:
        return override
    return default if expected.tolerance is None else expected.tolerance


def threshold(expected: Expected, tolerance: float) -> float | None:
    """max(floor, baseline × (1 − tolerance)); ``tolerance`` is the one to use for this ratio."""
    parts = [v for v in (expected.floor,
                         None if expected.baseline is None else expected.baseline * (1 - tolerance)) if v is not None]
    return max(parts) if parts else None


def check(current: dict[str, float], baseline: Baseline, tolerance: float | None = None,
          whats: dict[str, str] | None = None) -> CheckResult:
    """One row per ratio of ``current`` or the baseline. ``whats``: the workload each current
    ratio recorded; one that is non-empty and differs from the baseline's non-empty ``what``
    is ``WORKLOAD CHANGED`` (a failure)."""
    tol = baseline.tolerance if tolerance is None else tolerance
    whats = whats or {}
    rows = []
    for name in sorted(set(current) | set(baseline.ratios)):
        exp = baseline.ratios.get(name)
        value = current.get(name)
        if exp is None:
            rows.append(Row(name, value, None, None, "new"))
            continue
        own = tolerance_of(exp, baseline.tolerance, tolerance)
        limit = threshold(exp, own)
        now = whats.get(name) or None
        if value is None:
            status = "not run"
        elif now is not None and exp.what and now != exp.what:
            status = "WORKLOAD CHANGED"
        elif exp.floor is not None and value < exp.floor:
            status = "BELOW FLOOR"
        elif limit is not None and value < limit:
            status = "REGRESSED"
        else:
            status = "ok"
        rows.append(Row(name, value, exp.baseline, limit, status, exp.what, now, own))
    return CheckResult(rows, tol)


def _fmt(v: float | None) -> str:
    return "—" if v is None else f"{v:.3g}"


def format_table(result: CheckResult, markdown: bool = False) -> str:
    head = ["ratio", "current", "baseline", "fails below", "change", "status"]
    lines = []
    for r in result.rows:
        change = ("—" if r.current is None or not r.baseline else f"{100 * (r.current / r.baseline - 1):+.0f}%")
        lines.append([r.name, _fmt(r.current), _fmt(r.baseline), _fmt(r.threshold), change, r.status])
    if markdown:
        out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        out += ["| " + " | ".join(f"`{c}`" if i == 0 else c for i, c in enumerate(line)) + " |" for line in lines]
        return "\n".join(out)
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join([fmt.format(*head)] + [fmt.format(*line) for line in lines])


def tolerance_text(result: CheckResult) -> str:
    own = sorted({f"{r.name} {r.tolerance:g}" for r in result.rows
                  if r.tolerance is not None and r.tolerance != result.tolerance})
    return (f"a ratio fails below max(floor, baseline × (1 − {result.tolerance:g}))"
            + (f" (own tolerance: {', '.join(own)})" if own else "")
            + f"; a changed workload fails too; {len(result.failures)} failing")


def ratios_from_run(path: str | Path) -> dict[str, float]:
    """The ratios recorded by ``record_ratio`` in a pytest-benchmark JSON file."""
    return _ratios(_read_run(path), path)


def _whats(run: dict) -> dict[str, str]:
    """The workload text each ratio recorded (``record_ratio(..., what=...)``) in a
    pytest-benchmark run; ratios recorded without one are absent."""
    return {name: str(what) for b in run.get("benchmarks", [])
            for name, what in ((b.get("extra_info") or {}).get("ratio_what") or {}).items() if what}


def _ratios(run: dict, path: str | Path) -> dict[str, float]:
    found: dict[str, float] = {}
    for bench in run.get("benchmarks", []):
        for name, value in (bench.get("extra_info") or {}).get("ratios", {}).items():
            found[name] = _number(value, f"{path}: {bench.get('fullname', '?')} ratio {name}")
    return found


def _read_run(path: str | Path) -> dict:
    path = Path(path)
    run = _read_json(path, "no such benchmark file; make one with `pytest tests/benchmarks --benchmark-json=PATH`",
                     "was the benchmark run interrupted?")
    if not isinstance(run, dict) or "benchmarks" not in run:
        raise BenchCheckError(f"{path}: not a pytest-benchmark JSON file (no 'benchmarks' list)")
    return run


def update_baseline(run_path: str | Path, baseline_path: str | Path) -> dict:
    """Write the run's ratios and workloads (``what``; and, for reference, its absolute times
    and machine) into the baseline, keeping the tolerance and floors already there. A ratio
    the run recorded no workload for keeps the baseline's description."""
    from bench.io import write_json

    baseline_path = Path(baseline_path)
    old = (_read_json(baseline_path, "", "restore it from git") if baseline_path.is_file()
           else {"tolerance": 0.4, "ratios": {}})
    run = _read_run(run_path)
    ratios = _ratios(run, run_path)
    described = _whats(run)
    entries = dict(old.get("ratios", {}))
    for name, value in ratios.items():
        entry = {"floor": None, "what": "", **entries.get(name, {}), "baseline": round(value, 4)}
        entry["what"] = described.get(name) or entry["what"]
        entries[name] = entry
    info = run.get("commit_info", {})
    new = {**old, "ratios": dict(sorted(entries.items())),
           "recorded": {"date": run.get("datetime"), "commit": info.get("id"), "dirty": info.get("dirty"),
                        "machine": run.get("machine_info", {}),
                        "absolute_seconds_not_asserted": {
                            b["fullname"]: {k: round(b["stats"][k], 6) for k in ("min", "median", "mean")}
                            for b in run.get("benchmarks", []) if b.get("stats")}}}
    write_json(baseline_path, new)
    return new


def history(folder: str | Path = DEFAULT_HISTORY):
    """One row per saved run and ratio: (run file, datetime, commit, ratio, value)."""
    import pandas as pd

    rows = []
    for path in sorted(Path(folder).glob("**/*.json")):
        try:
            run = _read_run(path)
            ratios = _ratios(run, path)
        except BenchCheckError:
            continue  # not a pytest-benchmark file, or a damaged one: skipped, never fatal
        for name, value in ratios.items():
            rows.append({"run": path.name, "datetime": run.get("datetime"),
                         "commit": (run.get("commit_info") or {}).get("id", "")[:7], "ratio": name, "value": value})
    frame = pd.DataFrame(rows, columns=["run", "datetime", "commit", "ratio", "value"])
    if not frame.empty:
        frame["datetime"] = pd.to_datetime(frame["datetime"], utc=True, format="ISO8601")
        frame = frame.sort_values(["datetime", "ratio"]).reset_index(drop=True)
    return frame


def plot_history(frame, baseline: Baseline | None, out: str | Path) -> Path:
    """Each ratio over the saved runs, divided by its baseline (1 = baseline; the dashed line
    is where the check fails), one panel per ratio."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bench.io import atomic_path

    names = sorted(frame["ratio"].unique())
    if not names:
        raise BenchCheckError("no saved benchmark runs with ratios; run `make bench-check` first")
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.8 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        part = frame[frame["ratio"] == name]
        exp = baseline.ratios.get(name) if baseline else None
        ax.plot(range(len(part)), part["value"], marker="o")
        if exp and exp.baseline:
            ax.axhline(exp.baseline, color="grey", lw=1, label="baseline")
        limit = threshold(exp, tolerance_of(exp, baseline.tolerance)) if exp else None
        if limit is not None:
            ax.axhline(limit, color="red", ls="--", lw=1, label="fails below")
        ax.set_title(name, fontsize=9)
        ax.set_xticks(range(len(part)), part["commit"].fillna(""), rotation=45, fontsize=7)
        ax.set_ylabel("ratio (higher is better)", fontsize=8)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    if axes.flat[0].get_legend_handles_labels()[0]:
        axes.flat[0].legend(fontsize=7)
    fig.suptitle("Benchmark ratios over saved runs (.benchmarks/)", fontsize=10)
    fig.tight_layout()
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return out


def main_check(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="augbench bench-check",
                                     description="check benchmark ratios against the committed baseline")
    parser.add_argument("run", help="pytest-benchmark JSON file (pytest tests/benchmarks --benchmark-json=PATH)")
    parser.add_argument("--baseline", default=str(DEFAULT_BASELINE))
    parser.add_argument("--tolerance", type=float, help="override the baseline file's tolerance")
    parser.add_argument("--require-all", action="store_true", help="fail when a baseline ratio was not measured")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--update-baseline", action="store_true",
                        help="write this run's ratios into the baseline (keeps floors and tolerance)")
    args = parser.parse_args(argv)
    if args.update_baseline:
        update_baseline(args.run, args.baseline)
        print(f"baseline updated: {args.baseline}")
    run = _read_run(args.run)  # read once: its ratios and their workloads
    result = check(_ratios(run, args.run), load_baseline(args.baseline), args.tolerance, _whats(run))
    print(format_table(result, markdown=args.markdown))
    print(tolerance_text(result))
    failures = list(result.failures)
    if args.require_all:
        failures += [f"benchmark ratio {r.name} was not measured in {args.run}" for r in result.rows
                     if r.status == "not run"]
    for message in failures:
        print(f"FAILED ratio check: {message}", file=sys.stderr)
    return 1 if failures else 0


def main_history(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="augbench bench-history",
                                     description="plot benchmark ratios over the runs saved in .benchmarks/")
    parser.add_argument("--dir", default=str(DEFAULT_HISTORY), help="pytest-benchmark storage folder")
    parser.add_argument("--baseline", default=str(DEFAULT_BASELINE))
    parser.add_argument("--out", default="reports/bench-history.png")
    args = parser.parse_args(argv)
    frame = history(args.dir)
    baseline = load_baseline(args.baseline) if Path(args.baseline).is_file() else None
    out = plot_history(frame, baseline, args.out)
    print(f"{frame['run'].nunique()} saved runs, {frame['ratio'].nunique()} ratios → {out}")
    return 0
