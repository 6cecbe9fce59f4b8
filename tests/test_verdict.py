"""The verdict table: bench.stats.verdict_rows and paired_t_power, and the evaluate stage's
verdict.csv / verdict.json on fabricated run folders (predictions.csv + meta.json)."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import special

from bench import registry, stats
from bench.config import load_params
from bench.errors import AugbenchError
from bench.io import write_json
from bench.plugins import Augmenter, Generated
from bench.stages import evaluate

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"
GAINS = np.array([0.1, 0.3, 0.05, 0.4, 0.15])[:, None]  # alone: p = 0.039, interval above 0


@pytest.fixture
def arms(rng):
    """y (100 + 100 cases) and a baseline of 5 seeds, seeds differing in their noise."""
    y = np.r_[np.ones(100, dtype=np.int64), np.zeros(100, dtype=np.int64)]
    return y, 0.8 * y + rng.normal(size=(5, y.size))


# ---------------------------------------------------------------------------
# verdict_rows
# ---------------------------------------------------------------------------


def test_one_row_per_arm_with_every_figure_from_its_own_function(arms, rng):
    y, base = arms
    better = base + 0.3 * y + rng.normal(0.0, 0.3, base.shape)
    rows = stats.verdict_rows(y, base, {"b": better, "same": base.copy()}, n_resamples=300, seed=4)
    assert [r["method"] for r in rows] == ["b", "same"]
    assert all(tuple(r) == stats.VERDICT_ROW_KEYS for r in rows)
    row = rows[0]
    found = stats.paired_seed_delta(y, better, base, n_resamples=300, seed=4)
    assert (row["delta"], row["low"], row["high"]) == (found.delta, found.low, found.high)
    assert row["auc_method"] == pytest.approx(found.auc_method.mean())
    assert row["auc_base"] == pytest.approx(found.auc_base.mean())
    assert row["p"] == stats.paired_t_over_seeds(found.per_seed).p_value
    assert row["sd_diff"] == pytest.approx(np.std(found.per_seed, ddof=1))
    assert row["mde"] == stats.minimum_detectable_delta(row["sd_diff"], 5, 0.05, 0.8)
    assert row["power_at_mde"] == 0.8 and row["n_seeds"] == 5
    by_hand = sum(stats.delong_test(y, m, b).p_value < 0.05 for m, b in zip(better, base, strict=True))
    assert row["delong_significant"] == by_hand and 0 <= by_hand <= 5
    same = rows[1]  # identical arms: nothing differs anywhere
    assert (same["delta"], same["low"], same["high"], same["p"], same["sd_diff"]) == (0, 0, 0, 1, 0)
    assert same["delong_significant"] == 0 and same["verdict"] == "no evidence"


def test_holm_is_applied_over_all_the_arms(arms):
    y, base = arms
    alone = stats.verdict_rows(y, base, {"gain": base + GAINS * y}, n_resamples=500)[0]
    assert 0.025 < alone["p"] < 0.05 and alone["low"] > 0
    assert alone["p_holm"] == alone["p"] and alone["verdict"] == "helps"
    rows = stats.verdict_rows(y, base, {"null": base.copy(), "gain": base + GAINS * y}, n_resamples=500)
    p = [r["p"] for r in rows]
    assert [r["p_holm"] for r in rows] == pytest.approx(stats.holm_adjust(p).tolist())
    gain = rows[1]
    assert gain["p"] == alone["p"] and gain["p_holm"] == pytest.approx(2 * alone["p"])
    assert gain["verdict"] == "no evidence"  # two arms: the same figures no longer suffice


def test_holm_is_applied_within_each_family(arms):
    y, base = arms
    gain = base + GAINS * y
    rows = stats.verdict_rows(y, base, {"null": base.copy(), "gain": gain, "control": gain.copy()},
                              n_resamples=500, families={"null": "method", "gain": "method", "control": "control"})
    by = {r["method"]: r for r in rows}
    pair = stats.holm_adjust([by["null"]["p"], by["gain"]["p"]])
    assert [by["null"]["p_holm"], by["gain"]["p_holm"]] == pytest.approx(pair.tolist())
    assert by["control"]["p_holm"] == by["control"]["p"]  # a family of one: not adjusted for the methods
    assert by["control"]["verdict"] == "helps" and by["gain"]["verdict"] == "no evidence"


def test_one_seed_never_gives_a_verdict(arms):
    y, base = arms
    (row,) = stats.verdict_rows(y, base[:1], {"big": base[:1] + 3.0 * y}, n_resamples=200)
    assert row["delta"] > 0.2 and row["low"] > 0
    assert math.isnan(row["p"]) and math.isnan(row["p_holm"]) and math.isnan(row["sd_diff"])
    assert row["mde"] == math.inf and row["n_seeds"] == 1
    assert row["delong_significant"] == 1  # DeLong sees it, but one seed says nothing about seeds
    assert row["verdict"] == "no evidence"


def test_a_clear_effect_helps_and_a_clear_harm_hurts(arms, rng):
    y, base = arms
    better = base + 0.8 * y + rng.normal(0.0, 0.2, base.shape)
    worse = base - 0.8 * y + rng.normal(0.0, 0.2, base.shape)
    rows = stats.verdict_rows(y, base, {"better": better, "worse": worse}, n_resamples=500)
    assert [r["verdict"] for r in rows] == ["helps", "hurts"]
    assert rows[0]["low"] > 0 and rows[1]["high"] < 0
    assert all(r["p_holm"] < 0.05 and r["delong_significant"] == 5 for r in rows)


@pytest.mark.parametrize(
    ("baseline", "arms", "kwargs", "match"),
    [
        (np.zeros((2, 4)), {"a": np.zeros((3, 4))}, {}, r"arms\['a'\] has 3 seeds.*baseline_scores has 2"),
        (np.zeros((2, 4)), {"a": np.zeros((2, 5))}, {}, r"y has 4 cases but arms\['a'\] has 5 columns"),
        (np.zeros((2, 4)), {"a": np.zeros(4)}, {}, r"arms\['a'\] must be two-dimensional"),
        (np.zeros(4), {"a": np.zeros((1, 4))}, {}, "baseline_scores must be two-dimensional"),
        (np.zeros((2, 4)), {}, {}, "non-empty mapping"),
        (np.zeros((2, 4)), {"a": np.zeros((2, 4))}, {"power": 0.04}, "power must exceed alpha"),
        (np.zeros((2, 4)), {"a": np.zeros((2, 4))}, {"alpha": 1.5}, "alpha must be strictly between"),
        (np.zeros((2, 4)), {"a": np.zeros((2, 4))}, {"n_resamples": 1}, "n_resamples must be >= 2"),
    ],
)
def test_verdict_rows_names_what_is_wrong(baseline, arms, kwargs, match):
    with pytest.raises(AugbenchError, match=match):
        stats.verdict_rows([0, 0, 1, 1], baseline, arms, **kwargs)


def test_verdict_rows_needs_two_cases_of_each_class():
    with pytest.raises(AugbenchError, match="at least 2 malignant"):
        stats.verdict_rows([0, 0, 1], np.zeros((2, 3)), {"a": np.zeros((2, 3))})


# ---------------------------------------------------------------------------
# paired_t_power
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "alpha", "power"), [(2, 0.05, 0.8), (5, 0.05, 0.8), (10, 0.01, 0.9)])
def test_paired_t_power_inverts_the_minimum_detectable_delta(n, alpha, power):
    delta = stats.minimum_detectable_delta(0.05, n, alpha, power)
    assert stats.paired_t_power(delta, 0.05, n, alpha) == pytest.approx(power, abs=1e-9)
    assert stats.paired_t_power(-delta, 0.05, n, alpha) == pytest.approx(power, abs=1e-9)
    assert stats.paired_t_power(0.0, 0.05, n, alpha) == pytest.approx(alpha, abs=1e-12)


def test_paired_t_power_limits_and_errors():
    assert math.isnan(stats.paired_t_power(0.1, 0.05, 1))
    assert math.isnan(stats.paired_t_power(0.1, math.nan, 5))
    assert math.isnan(stats.paired_t_power(math.inf, 0.05, 5))
    assert stats.paired_t_power(0.1, 0.0, 5) == 1.0
    assert stats.paired_t_power(0.0, 0.0, 5, alpha=0.01) == 0.01
    for args, match in [((0.1, -0.1, 5), "sd must be >= 0"), ((0.1, 0.05, 2.5), "n_seeds"),
                        (("x", 0.05, 5), "delta must be a number"), ((0.1, 0.05, 5, 0.0), "alpha")]:
        with pytest.raises(AugbenchError, match=match):
            stats.paired_t_power(*args)


# ---------------------------------------------------------------------------
# The evaluate stage: verdict.csv and verdict.json
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _NoParams:
    pass


class _Positive(Augmenter):
    Params = _NoParams
    summary = "test positive control"
    control = "positive"

    def generate(self, train, n, rng) -> Generated:
        return Generated(np.zeros((0, 1, 1), np.float32), np.zeros(0, np.int64), [])


class _Negative(_Positive):
    summary = "test negative control"
    control = "negative"


class _Confused(_Positive):
    summary = "test control with a bad role"
    control = "maybe"


CONTROLS = {"verdict-test-positive": _Positive, "verdict-test-negative": _Negative,
            "verdict-test-confused": _Confused}


@pytest.fixture
def controls():
    for name, cls in CONTROLS.items():
        registry.register("augmenter", name, cls)
    yield list(CONTROLS)
    for name in CONTROLS:
        registry.unregister("augmenter", name)


def _params(methods: list[str], seeds: list[int]):
    sets = {"matrix.methods": methods, "matrix.seeds": seeds, "matrix.classifiers": ["resnet50"],
            "matrix.zoo": [], "evaluate.bootstrap_resamples": 300}
    return load_params(PARAMS, "smoke", [f"{k}={json.dumps(v)}" for k, v in sets.items()])


N_PER_CLASS = 60
Y = np.r_[np.ones(N_PER_CLASS, dtype=np.int64), np.zeros(N_PER_CLASS, dtype=np.int64)]


def _fake_run(folder: Path, score: np.ndarray, seed: int, **meta) -> None:
    folder.mkdir(parents=True)
    pd.DataFrame({"split": "test", "id": [f"i{k}" for k in range(Y.size)], "label": Y, "score": score}
                 ).to_csv(folder / "predictions.csv", index=False)
    write_json(folder / "meta.json", {"seed": seed, "weights": "none (random init)", "epochs_run": 3,
                                      "training_set": {"n_total": 10}, "trainable_params": 5, **meta})


# The arms' separation of the classes on top of the baseline's 0.8 (per seed, in logits).
SEPARATION = {"none": 0.0, "classical": 0.0, "verdict-test-positive": 1.2, "verdict-test-negative": -0.7,
              evaluate.AA_METHOD: 0.0}


def _fabricate(runs: Path, params, methods: list[str], aa: bool = True, **meta) -> dict[str, np.ndarray]:
    """Runs of every method (and the A/A control): scores expit(separation * y + noise), the noise
    shared by the arms' seed r (a seed effect) plus each run's own."""
    rng = np.random.default_rng(11)
    seeds = params.matrix.seeds
    shared = rng.normal(size=(len(seeds), Y.size))
    scores = {}
    for method in [*methods, *([evaluate.AA_METHOD] if aa else [])]:
        own = rng.normal(size=(len(seeds), Y.size))
        scores[method] = special.expit((0.8 + SEPARATION[method]) * Y + 0.7 * shared + 0.7 * own)
        run_seeds = params.controls.aa_seeds(params.matrix.seeds) if method == evaluate.AA_METHOD else seeds
        for r, seed in enumerate(run_seeds):
            _fake_run(evaluate.run_dir(runs, method, "resnet50", seed), scores[method][r], seed, **meta)
    return scores


METHODS = ["none", "classical", "verdict-test-positive", "verdict-test-negative"]


def test_evaluate_writes_the_verdict_of_every_arm_and_the_controls(tmp_path, controls):
    params = _params(METHODS, [0, 1, 2, 3, 4])
    scores = _fabricate(tmp_path / "runs", params, METHODS, budget="steps")
    evaluate.evaluate(params, tmp_path / "runs", tmp_path / "reports")
    table = pd.read_csv(tmp_path / "reports" / "verdict.csv", dtype=str, keep_default_na=False)
    assert tuple(table.columns) == evaluate.VERDICT_CSV_COLUMNS
    assert table["method"].tolist() == ["classical", "verdict-test-positive", "verdict-test-negative",
                                        "none-aa"]
    assert table["role"].tolist() == ["method", "positive control", "negative control", "A/A"]
    assert table["expected"].tolist() == ["", "helps", "hurts", "no evidence"]
    assert table["verdict"].tolist()[1:] == ["helps", "hurts", "no evidence"]
    assert table["as_expected"].tolist() == ["", "True", "True", "True"]
    assert (table["classifier"] == "resnet50").all() and (table["n_seeds"] == "5").all()
    p = table["p"].astype(float).to_numpy()
    # two Holm families: the method alone (not adjusted), and the three controls
    assert table["p_holm"].astype(float).tolist() == pytest.approx([p[0], *stats.holm_adjust(p[1:]).tolist()])
    # the rows are verdict_rows of the same runs, with the A/A seed i paired with none's seed i
    arms = [*METHODS[1:], "none-aa"]
    expected = stats.verdict_rows(Y, scores["none"], {m: scores[m] for m in arms},
                                  300, params.evaluate.seed, params.evaluate.confidence,
                                  families={m: "method" if m == "classical" else "control" for m in arms})
    for column in ("delta", "low", "high", "p", "p_holm", "sd_diff", "mde", "delong_significant"):
        assert table[column].astype(float).tolist() == pytest.approx([r[column] for r in expected], rel=1e-9)
    about = json.loads((tmp_path / "reports" / "verdict.json").read_text())
    assert about["alpha"] == 0.05 and about["confidence"] == params.evaluate.confidence
    assert about["n_resamples"] == 300 and about["n_test"] == Y.size and about["baseline"] == "none"
    assert about["seeds"] == [0, 1, 2, 3, 4] and about["aa_seeds"] == params.controls.aa_seeds(params.matrix.seeds)
    assert about["budget"] == "steps" and about["weights"] == {"resnet50": "none (random init)"}
    assert about["classifiers"] == ["resnet50"] and about["aa_classifiers"] == ["resnet50"]
    assert "paired t-test" in about["test"] and "bootstrap" in about["interval"]
    for kept in ("results.csv", "runs.csv", "comparisons.csv", "metrics.json"):
        assert (tmp_path / "reports" / kept).is_file()


def test_without_aa_runs_the_row_is_left_out_with_a_warning(tmp_path, controls, caplog):
    methods = ["none", "verdict-test-positive"]
    params = _params(methods, [0, 1, 2])
    _fabricate(tmp_path / "runs", params, methods, aa=False)
    with caplog.at_level(logging.WARNING):
        evaluate.evaluate(params, tmp_path / "runs", tmp_path / "reports")
    assert "no A/A row for resnet50" in caplog.text
    table = pd.read_csv(tmp_path / "reports" / "verdict.csv", dtype=str, keep_default_na=False)
    assert table["method"].tolist() == ["verdict-test-positive"] and table.loc[0, "n_seeds"] == "3"
    about = json.loads((tmp_path / "reports" / "verdict.json").read_text())
    assert about["aa_classifiers"] == [] and about["budget"] == "unknown"  # no run recorded one


def test_one_seed_gives_no_evidence(tmp_path, controls):
    params = _params(["none", "verdict-test-positive"], [0])
    _fabricate(tmp_path / "runs", params, ["none", "verdict-test-positive"])
    evaluate.evaluate(params, tmp_path / "runs", tmp_path / "reports")
    table = pd.read_csv(tmp_path / "reports" / "verdict.csv", dtype=str, keep_default_na=False)
    assert table["verdict"].tolist() == ["no evidence", "no evidence"]
    assert table["as_expected"].tolist() == ["False", "True"]  # the positive control was missed
    assert table["p"].tolist() == ["", ""] and table["mde"].tolist() == ["inf", "inf"]


def test_none_alone_is_compared_with_its_aa_and_without_none_there_is_no_verdict(tmp_path, controls, caplog):
    params = _params(["none"], [0, 1])
    _fabricate(tmp_path / "runs", params, ["none"])
    evaluate.evaluate(params, tmp_path / "runs", tmp_path / "reports")
    assert pd.read_csv(tmp_path / "reports" / "verdict.csv")["method"].tolist() == ["none-aa"]
    params = _params(["classical"], [0, 1])
    _fabricate(tmp_path / "other", params, ["classical"], aa=False)
    with caplog.at_level(logging.WARNING):
        evaluate.evaluate(params, tmp_path / "other", tmp_path / "no-baseline")
    assert "no 'none' in matrix.methods: no verdicts" in caplog.text
    table = pd.read_csv(tmp_path / "no-baseline" / "verdict.csv")
    assert table.empty and tuple(table.columns) == evaluate.VERDICT_CSV_COLUMNS
    assert json.loads((tmp_path / "no-baseline" / "verdict.json").read_text())["classifiers"] == []


def test_runs_trained_under_different_budgets_are_refused(tmp_path, controls):
    methods = ["none", "verdict-test-positive"]
    params = _params(methods, [0, 1])
    _fabricate(tmp_path / "runs", params, methods, budget="steps")
    meta_path = evaluate.run_dir(tmp_path / "runs", "verdict-test-positive", "resnet50", 1) / "meta.json"
    meta = json.loads(meta_path.read_text())
    write_json(meta_path, {**meta, "budget": "epochs"})
    with pytest.raises(AugbenchError, match=r"different budget \(epochs, steps\)"):
        evaluate.evaluate(params, tmp_path / "runs", tmp_path / "reports")


def test_aa_runs_on_another_test_set_are_refused(tmp_path, controls):
    params = _params(["none"], [0, 1])
    _fabricate(tmp_path / "runs", params, ["none"])
    pred = evaluate.run_dir(tmp_path / "runs", evaluate.AA_METHOD, "resnet50", params.controls.aa_seeds(params.matrix.seeds)[1])
    frame = pd.read_csv(pred / "predictions.csv")
    frame["id"] = [f"other{k}" for k in range(len(frame))]
    frame.to_csv(pred / "predictions.csv", index=False)
    with pytest.raises(AugbenchError, match="different test set from none"):
        evaluate.evaluate(params, tmp_path / "runs", tmp_path / "reports")


def test_a_control_attribute_other_than_positive_or_negative_is_refused(controls):
    assert evaluate.method_role("verdict-test-positive") == "positive control"
    assert evaluate.method_role("none") == "method"
    with pytest.raises(AugbenchError, match="declares control = 'maybe'; expected 'positive'"):
        evaluate.method_role("verdict-test-confused")
