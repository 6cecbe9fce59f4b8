"""Ratio checks for the benchmarks: every benchmark records ratios of two timings taken in
the same run (``record_ratio``); at the end of the session they are compared with the
committed baseline (``tests/benchmarks/baseline.json``) by ``bench.benchcheck``, the table
is printed, and a regression beyond the tolerance fails the session, as does a ratio whose
recorded workload (``what``) differs from the baseline's.

Absolute times go into pytest-benchmark's own records (``--benchmark-json``,
``--benchmark-autosave``) with the machine info; they are never asserted.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bench import benchcheck

BASELINE = Path(__file__).with_name("baseline.json")
_KEY = pytest.StashKey[dict]()  # ratio name -> Measured, filled by record_ratio
_RESULT = pytest.StashKey[tuple]()  # (CheckResult, baseline path), set at session finish


def paired_seconds(benchmark, hot: Callable[[], object], reference: Callable[[], object], rounds: int = 3,
                   warmup: bool = True) -> tuple[float, float]:
    """(fastest ``hot``, fastest ``reference``), timed interleaved: each timed round of ``hot``
    (through pytest-benchmark, so its absolute time is recorded) is preceded by one timed call
    of ``reference`` (in the round's untimed set-up). A burst of load from another process then
    hits both sides of the ratio alike instead of one of them."""
    ref_times: list[float] = []

    def time_reference() -> None:
        start = time.perf_counter()
        reference()
        ref_times.append(time.perf_counter() - start)

    if warmup:
        hot()
        reference()
    if getattr(benchmark, "disabled", False):
        hot_times = []
        for _ in range(rounds):
            time_reference()
            start = time.perf_counter()
            hot()
            hot_times.append(time.perf_counter() - start)
        return min(hot_times), min(ref_times)
    benchmark.pedantic(hot, setup=time_reference, rounds=rounds, iterations=1)
    return float(benchmark.stats.stats.min), min(ref_times)


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_KEY] = {}


@pytest.fixture
def record_ratio(request: pytest.FixtureRequest, benchmark):
    """``record_ratio(name, value, what=...)``: one ratio (higher is better) for the checker.

    ``name`` is the key in baseline.json (``group.what_vs_what``); it is stored in the
    benchmark's ``extra_info["ratios"]`` too, so saved runs carry it for the history plot.
    """
    found = request.config.stash[_KEY]

    def record(name: str, value: float, what: str = "") -> float:
        value = float(value)
        found[name] = benchcheck.Measured(name, value, what, request.node.nodeid)
        benchmark.extra_info.setdefault("ratios", {})[name] = value
        benchmark.extra_info.setdefault("ratio_what", {})[name] = what
        return value

    return record


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    found = session.config.stash.get(_KEY, {})
    if not found:
        return
    baseline_path = Path(os.environ.get("AUGBENCH_BENCH_BASELINE", BASELINE))
    baseline = benchcheck.load_baseline(baseline_path)
    result = benchcheck.check({k: m.value for k, m in found.items()}, baseline,
                              whats={k: m.what for k, m in found.items()})
    session.config.stash[_RESULT] = (result, baseline_path)
    if not result.ok and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if _RESULT not in config.stash:
        return
    result, baseline_path = config.stash[_RESULT]
    terminalreporter.section("benchmark ratios (current vs baseline)")
    terminalreporter.write_line(benchcheck.format_table(result))
    terminalreporter.write_line(f"baseline: {baseline_path}; {benchcheck.tolerance_text(result)}")
    for message in result.failures:
        terminalreporter.write_line(f"FAILED ratio check: {message}", red=True)
