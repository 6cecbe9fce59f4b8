"""The benchmark ratio checker (bench/benchcheck.py) and its pytest hook (tests/benchmarks/conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import benchcheck
from bench.benchcheck import Baseline, BenchCheckError, Expected

ROOT = Path(__file__).resolve().parents[1]


def _baseline(tmp_path: Path, ratios: dict, tolerance: float = 0.4) -> Path:
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps({"tolerance": tolerance, "ratios": ratios}))
    return path


def _run_file(tmp_path: Path, ratios_by_bench: dict[str, dict[str, float]], name: str = "run.json",
              when: str = "2026-11-22T01:00:00+00:00", commit: str = "abc1234def",
              whats: dict[str, str] | None = None) -> Path:
    """A pytest-benchmark JSON file; ``whats``: the workload texts record_ratio stores."""
    run = {"machine_info": {"node": "test", "cpu": {"count": 2}}, "commit_info": {"id": commit, "dirty": False},
           "datetime": when, "benchmarks": [
               {"fullname": f"tests/benchmarks/x.py::{b}", "stats": {"min": 0.1, "median": 0.2, "mean": 0.25},
                "extra_info": {"ratios": r, **({"ratio_what": {k: whats[k] for k in r if k in whats}} if whats else {})}}
               for b, r in ratios_by_bench.items()]}
    path = tmp_path / name
    path.write_text(json.dumps(run))
    return path


def test_statuses_and_thresholds():
    base = Baseline(0.4, {"a.ok": Expected(10.0), "b.slow": Expected(10.0), "c.floor": Expected(3.0, floor=2.5),
                          "d.missing": Expected(1.0)})
    result = benchcheck.check({"a.ok": 6.5, "b.slow": 5.9, "c.floor": 2.4, "e.new": 1.0}, base)
    status = {r.name: (r.status, r.threshold) for r in result.rows}
    assert status["a.ok"] == ("ok", pytest.approx(6.0))
    assert status["b.slow"] == ("REGRESSED", pytest.approx(6.0))
    assert status["c.floor"] == ("BELOW FLOOR", pytest.approx(2.5))  # floor 2.5 > 3.0 × 0.6
    assert status["d.missing"][0] == "not run"
    assert status["e.new"][0] == "new"
    assert not result.ok
    assert len(result.failures) == 2
    slow = next(m for m in result.failures if "b.slow" in m)
    assert "5.9" in slow and "baseline 10" in slow  # names the benchmark, the ratio and the limit


def test_tolerance_override_and_floor_only():
    base = Baseline(0.4, {"x": Expected(None, floor=2.0)})
    assert benchcheck.check({"x": 2.1}, base).ok
    assert not benchcheck.check({"x": 1.9}, base).ok
    strict = Baseline(0.4, {"y": Expected(10.0)})
    assert benchcheck.check({"y": 9.0}, strict).ok
    assert not benchcheck.check({"y": 9.0}, strict, tolerance=0.05).ok


def test_table_lists_every_ratio():
    base = Baseline(0.4, {"a": Expected(2.0)})
    result = benchcheck.check({"a": 3.0, "b": 1.0}, base)
    text = benchcheck.format_table(result)
    assert "a" in text and "+50%" in text and "new" in text
    md = benchcheck.format_table(result, markdown=True)
    assert md.splitlines()[0].startswith("| ratio |") and "`a`" in md


@pytest.mark.parametrize("content, message", [
    (None, "no baseline file"),
    ("{not json", "not valid JSON"),
    (json.dumps({"ratios": {}}), "tolerance must be"),
    (json.dumps({"tolerance": 1.5, "ratios": {}}), "tolerance must be"),
    (json.dumps({"tolerance": 0.4}), "'ratios' object"),
    (json.dumps({"tolerance": 0.4, "ratios": {"a": {"baseline": "fast"}}}), "a.baseline"),
    (json.dumps({"tolerance": 0.4, "ratios": {"a": {"baseline": 1.0, "tolerance": 1.2}}}), "a.tolerance must be"),
])
def test_bad_baseline_is_named(tmp_path, content, message):
    path = tmp_path / "baseline.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(BenchCheckError, match=message) as err:
        benchcheck.load_baseline(path)
    assert str(path) in str(err.value)


def test_bad_run_file_is_named(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"something": 1}))
    with pytest.raises(BenchCheckError, match="not a pytest-benchmark JSON"):
        benchcheck.ratios_from_run(path)
    with pytest.raises(BenchCheckError, match="no such benchmark file"):
        benchcheck.ratios_from_run(tmp_path / "absent.json")


def test_update_keeps_floors_and_tolerance(tmp_path):
    base = _baseline(tmp_path, {"a": {"baseline": None, "floor": 2.5, "what": "old workload", "tolerance": 0.2},
                                "c": {"baseline": 1.0, "what": "kept: the run records none"}}, tolerance=0.3)
    run = _run_file(tmp_path, {"t1": {"a": 3.14159, "b": 7.0}, "t2": {"c": 1.5}},
                    whats={"a": "new workload", "b": "from the run"})
    benchcheck.update_baseline(run, base)
    new = json.loads(base.read_text())
    assert new["tolerance"] == 0.3
    # re-baselining is how a deliberate workload change is accepted: the run's text replaces the old one
    assert new["ratios"]["a"] == {"baseline": 3.1416, "floor": 2.5, "what": "new workload", "tolerance": 0.2}
    assert new["ratios"]["b"] == {"baseline": 7.0, "floor": None, "what": "from the run"}
    assert new["ratios"]["c"]["what"] == "kept: the run records none"
    assert new["recorded"]["machine"]["node"] == "test"
    assert "tests/benchmarks/x.py::t1" in new["recorded"]["absolute_seconds_not_asserted"]
    assert benchcheck.load_baseline(base).ratios["a"].floor == 2.5


def test_cli_exit_codes(tmp_path, capsys):
    base = _baseline(tmp_path, {"a": {"baseline": 10.0}, "b": {"baseline": 1.0}})
    good = _run_file(tmp_path, {"t": {"a": 9.0}}, "good.json")
    bad = _run_file(tmp_path, {"t": {"a": 2.0}}, "bad.json")
    assert benchcheck.main_check([str(good), "--baseline", str(base)]) == 0
    assert benchcheck.main_check([str(good), "--baseline", str(base), "--require-all"]) == 1
    assert "b was not measured" in capsys.readouterr().err
    assert benchcheck.main_check([str(bad), "--baseline", str(base)]) == 1
    assert "benchmark ratio a = 2" in capsys.readouterr().err


def test_changed_workload_fails():
    base = Baseline(0.4, {"a": Expected(2.0, what="8 images at 32 px"), "b": Expected(2.0, what="w"),
                          "c": Expected(2.0)})
    result = benchcheck.check({"a": 9.0, "b": 2.0, "c": 2.0}, base,
                              whats={"a": "8 images at 64 px", "b": "w", "c": "anything"})
    status = {r.name: r.status for r in result.rows}
    # a faster ratio of another workload fails too: it is no longer comparable with its baseline
    assert status == {"a": "WORKLOAD CHANGED", "b": "ok", "c": "ok"}  # c: the baseline has no text to compare
    (message,) = result.failures
    assert "'8 images at 32 px'" in message and "'8 images at 64 px'" in message and "--update-baseline" in message
    assert benchcheck.check({"a": 9.0}, base).ok  # a run that recorded no workload is not judged on it


def test_own_tolerance():
    base = Baseline(0.5, {"tight": Expected(10.0, tolerance=0.25), "loose": Expected(10.0)})
    rows = {r.name: r for r in benchcheck.check({"tight": 6.0, "loose": 6.0}, base).rows}
    assert (rows["tight"].status, rows["tight"].threshold) == ("REGRESSED", pytest.approx(7.5))
    assert (rows["loose"].status, rows["loose"].threshold) == ("ok", pytest.approx(5.0))
    failure = benchcheck.check({"tight": 6.0}, base).failures[0]
    assert "(1 − 0.25)" in failure
    assert benchcheck.check({"tight": 6.0}, base, tolerance=0.5).ok  # --tolerance overrides every ratio's


def test_cli_fails_on_changed_workload(tmp_path, capsys):
    """``augbench bench-check RUN.json`` fails when a ratio's recorded workload differs from the
    baseline's, names both, and passes again once the change is re-baselined."""
    base = _baseline(tmp_path, {"nst.x": {"baseline": 2.0, "floor": 1.4, "what": "batch 8 vs 1, 32 px"}})
    same = _run_file(tmp_path, {"t": {"nst.x": 2.1}}, "same.json", whats={"nst.x": "batch 8 vs 1, 32 px"})
    changed = _run_file(tmp_path, {"t": {"nst.x": 2.1}}, "changed.json", whats={"nst.x": "batch 8 vs 1, 16 px"})
    assert benchcheck.main_check([str(same), "--baseline", str(base)]) == 0
    capsys.readouterr()
    assert benchcheck.main_check([str(changed), "--baseline", str(base)]) == 1
    out = capsys.readouterr()
    assert "WORKLOAD CHANGED" in out.out
    assert "'batch 8 vs 1, 32 px'" in out.err and "'batch 8 vs 1, 16 px'" in out.err
    assert "--update-baseline" in out.err
    assert benchcheck.main_check([str(changed), "--baseline", str(base), "--update-baseline"]) == 0
    assert json.loads(base.read_text())["ratios"]["nst.x"]["what"] == "batch 8 vs 1, 16 px"
    # the installed command, as CI runs it
    proc = subprocess.run([sys.executable, "-m", "bench.cli", "bench-check", str(same), "--baseline", str(base)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "WORKLOAD CHANGED" in proc.stdout, proc.stdout + proc.stderr


def test_history_plot(tmp_path):
    store = tmp_path / ".benchmarks" / "Linux-CPython-3.11-64bit"
    store.mkdir(parents=True)
    _run_file(store, {"t": {"a": 3.0, "b": 1.0}}, "0001_run.json", "2026-11-22T01:00:00+00:00", "1111111")
    _run_file(store, {"t": {"a": 2.0, "b": 1.1}}, "0002_run.json", "2026-11-22T02:00:00+00:00", "2222222")
    (store / "0003_broken.json").write_text("{")  # an interrupted save is skipped, never fatal
    frame = benchcheck.history(tmp_path / ".benchmarks")
    assert list(frame[frame["ratio"] == "a"]["value"]) == [3.0, 2.0]
    base = benchcheck.load_baseline(_baseline(tmp_path, {"a": {"baseline": 3.0}}))
    out = benchcheck.plot_history(frame, base, tmp_path / "history.png")
    assert out.stat().st_size > 1000
    with pytest.raises(BenchCheckError, match="no saved benchmark runs"):
        benchcheck.plot_history(benchcheck.history(tmp_path / "empty"), base, tmp_path / "x.png")


SLOW_PLUGIN = '''
import time
import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Monkeypatch a slow SRAD into the benchmark module: the hot path sleeps before working."""
    fast = item.module.srad

    def slow_srad(image, n_iter):
        time.sleep(0.25)
        return fast(image, n_iter=n_iter)

    item.module.srad = slow_srad
'''


@pytest.mark.slow
def test_slowed_hot_path_fails_the_check(tmp_path):
    """A deliberately slowed SRAD makes the session fail, naming the benchmark and its ratio,
    and ``augbench bench-check`` on the saved JSON fails the same way."""
    (tmp_path / "slow_srad_plugin.py").write_text(SLOW_PLUGIN)
    out = tmp_path / "run.json"
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}:{ROOT}"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "slow_srad_plugin",
         "tests/benchmarks/test_srad_benchmark.py", f"--benchmark-json={out}", "--benchmark-max-time=0.5"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 1, text
    assert "1 passed" in text  # the test itself passes: the ratio check fails the session
    assert "FAILED ratio check: benchmark ratio srad.vectorised_vs_loop = " in text
    ratio = benchcheck.ratios_from_run(out)["srad.vectorised_vs_loop"]
    assert ratio < 50
    check = subprocess.run([sys.executable, "-m", "bench.cli", "bench-check", str(out)], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 1
    assert f"benchmark ratio srad.vectorised_vs_loop = {ratio:.3g}" in check.stderr


NO_BATCHING_PLUGIN = '''
import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Disable batching in the NST benchmark: its hot path's engine is built with batch size 1,
    whatever it asks for (the workload it records is unchanged), and two rounds keep it short."""
    build = item.module._engine
    item.module._engine = lambda batch_size: build(1)
    item.module.ROUNDS = 2
'''


@pytest.mark.slow
def test_nst_ratio_fails_with_batching_disabled(tmp_path):
    """With the batched engine forced to batch size 1 the NST ratio falls to ~1 and the session
    fails on its floor; ``augbench bench-check`` on the saved JSON fails the same way."""
    (tmp_path / "no_batching_plugin.py").write_text(NO_BATCHING_PLUGIN)
    out = tmp_path / "run.json"
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}:{ROOT}"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
         "-p", "no_batching_plugin", "tests/benchmarks/test_nst_benchmark.py", f"--benchmark-json={out}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 1, text
    assert "1 passed" in text  # the test itself passes: the ratio check fails the session
    name = "nst.batched_vs_one_at_a_time_32px"
    assert f"FAILED ratio check: benchmark ratio {name} = " in text and "below its floor" in text, text
    floor = benchcheck.load_baseline(ROOT / "tests" / "benchmarks" / "baseline.json").ratios[name].floor
    ratio = benchcheck.ratios_from_run(out)[name]
    assert floor is not None and ratio < floor
    check = subprocess.run([sys.executable, "-m", "bench.cli", "bench-check", str(out)], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 1
    assert f"benchmark ratio {name} = {ratio:.3g}, below its floor" in check.stderr


NO_HOROVOD_PLUGIN = '''
import bench.distributed

bench.distributed.have_horovod = lambda: (False, "planted: horovod cannot be imported")
'''


@pytest.mark.parametrize("required, outcome", [("1", "1 failed"), ("", "1 skipped")])
def test_horovod_benchmark_honours_require_horovod(tmp_path, required, outcome):
    """Without Horovod the allreduce benchmark skips, unless AUGBENCH_REQUIRE_HOROVOD=1 (CI):
    then it fails, naming why."""
    (tmp_path / "no_horovod_plugin.py").write_text(NO_HOROVOD_PLUGIN)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}:{ROOT}", "AUGBENCH_REQUIRE_HOROVOD": required}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-p", "no:randomly",
         "-p", "no_horovod_plugin", "tests/benchmarks/test_horovod_benchmark.py", "--benchmark-disable"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    text = proc.stdout + proc.stderr
    assert outcome in text, text
    assert "planted: horovod cannot be imported" in text
    assert proc.returncode == (1 if required else 0), text
