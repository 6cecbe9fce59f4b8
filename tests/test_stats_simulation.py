"""Simulation check of the repeated-seed statistics (bench.stats.verdict_rows and its parts):
with no true difference the paired t over seeds, and the whole verdict rule, reject in at most
7% of simulated experiments; with a true difference the paired t rejects as often as
``paired_t_power`` says.

The simulated experiments look like ours (the quick profile: 150 + 150 test cases, 5 seeds,
the baseline's AUC about 0.75). A binormal model per (arm, seed, test case):

    score = mu[arm, seed] * y + sqrt(CASE_SHARE) * z[case] + sqrt(1 - CASE_SHARE) * eps,
    mu[arm, seed] = MU_BASE + shift[arm] + u[seed] + e[arm, seed],

with ``z``, ``eps`` ~ N(0, 1): ``z`` is the test case's own difficulty, shared by every model
of the experiment (both arms score the same test images), ``eps`` the model's own noise on
that case. ``u[seed]`` ~ N(0, SEED_SD) is the seed's random effect, shared by the two arms
(seed r of the method is paired with seed r of the baseline); ``e[arm, seed]`` ~ N(0,
ARM_SEED_SD) is what the seed does to one arm only. The noise has variance 1, so the
population AUC of a model is Phi(mu / sqrt(2)): MU_BASE = 0.954 gives 0.75. Every experiment
draws a fresh test set and fresh seeds.

The truth, for the power check. ΔAUC is not linear in the shift of ``mu`` and the per-seed
AUC differences also carry the finite test set's noise, so the true mean ``delta`` and the
true sd of the per-seed differences (the within-experiment sd, the one the paired t estimates)
are taken from a large reference simulation of the same design with another numpy seed:
REFERENCE_EXPERIMENTS experiments of 5 seeds, delta the grand mean of the per-seed
differences, sd the square root of the pooled within-experiment variance (Monte Carlo
standard errors about 0.0004 and 0.6% respectively). ``paired_t_power(delta, sd, 5)`` is then
the power the code reports, and the empirical rejection rate over N_EXPERIMENTS fresh
experiments must be within 0.1 of it. The numbers of the last run are in
docs/statistics.md ("The simulation check").
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from bench import stats

pytestmark = pytest.mark.slow  # ~30-60 s: 1500 experiments through verdict_rows' bootstrap

N_PER_CLASS = 150
N_SEEDS = 5
MU_BASE = 0.954  # Phi(0.954 / sqrt(2)) = 0.750
SEED_SD = 0.21  # the seed's shared effect on mu
ARM_SEED_SD = 0.13  # the seed's effect on one arm only: per-seed differences' sd ~0.05
CASE_SHARE = 0.5  # share of the case noise that belongs to the test image (shared by all models)
SHIFT = 0.35  # the method's shift of mu under the alternative: ΔAUC ~0.07, power ~0.7
ALPHA = 0.05
N_EXPERIMENTS = 1000
REFERENCE_EXPERIMENTS = 4000
VERDICT_RESAMPLES = 200  # the bootstrap of the verdict rule, kept small for time
Y = np.r_[np.ones(N_PER_CLASS, dtype=np.int64), np.zeros(N_PER_CLASS, dtype=np.int64)]


def simulate(rng: np.random.Generator, n_exp: int, shift: float) -> np.ndarray:
    """Scores of shape ``(n_exp, 2, N_SEEDS, n_test)``: arm 0 the baseline, arm 1 the method."""
    n = Y.size
    z = rng.normal(size=(n_exp, 1, 1, n))
    u = rng.normal(0.0, SEED_SD, size=(n_exp, 1, N_SEEDS, 1))
    e = rng.normal(0.0, ARM_SEED_SD, size=(n_exp, 2, N_SEEDS, 1))
    eps = rng.normal(size=(n_exp, 2, N_SEEDS, n))
    mu = MU_BASE + np.array([0.0, shift])[None, :, None, None] + u + e
    return mu * Y + math.sqrt(CASE_SHARE) * z + math.sqrt(1.0 - CASE_SHARE) * eps


def aucs(scores: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUC along the last axis (the positives are the first N_PER_CLASS cases)."""
    ranks = sps.rankdata(scores, axis=-1)
    m = N_PER_CLASS
    return (ranks[..., :m].sum(axis=-1) - m * (m + 1) / 2.0) / (m * (Y.size - m))


def per_seed_aucs(seed: int, n_exp: int, shift: float, chunk: int = 500) -> np.ndarray:
    """AUCs of shape ``(n_exp, 2, N_SEEDS)`` of ``n_exp`` experiments from numpy seed ``seed``."""
    rng = np.random.default_rng(seed)
    return np.concatenate([aucs(simulate(rng, min(chunk, n_exp - k), shift))
                           for k in range(0, n_exp, chunk)])


def truth(shift: float) -> dict[str, float]:
    """The design's true values from the reference simulation (numpy seed 1)."""
    a = per_seed_aucs(1, REFERENCE_EXPERIMENTS, shift)
    d = a[:, 1] - a[:, 0]
    return {"delta": float(d.mean()), "sd_diff": float(np.sqrt(d.var(axis=1, ddof=1).mean())),
            "auc_base": float(a[:, 0].mean()),
            "seed_sd": float(np.sqrt(a[:, 0].var(axis=1, ddof=1).mean()))}


@pytest.fixture(scope="module")
def null_truth() -> dict[str, float]:
    return truth(0.0)


@pytest.fixture(scope="module")
def effect_truth() -> dict[str, float]:
    return truth(SHIFT)


def verdict_experiments(seed: int, shift: float, n_exp: int) -> tuple[np.ndarray, list[str]]:
    """``(p, verdicts)`` of verdict_rows (one arm) over ``n_exp`` experiments (a multiple of 250)."""
    rng = np.random.default_rng(seed)
    p, verdicts = [], []
    for _ in range(0, n_exp, 250):
        for scores in simulate(rng, 250, shift):
            (row,) = stats.verdict_rows(Y, scores[0], {"method": scores[1]},
                                        n_resamples=VERDICT_RESAMPLES, seed=0, alpha=ALPHA)
            p.append(row["p"])
            verdicts.append(row["verdict"])
    return np.asarray(p), verdicts


def test_the_design_looks_like_our_experiments(null_truth, effect_truth):
    found = f"null: {null_truth}; effect: {effect_truth}"
    assert 0.73 <= null_truth["auc_base"] <= 0.77, found
    assert 0.05 <= null_truth["seed_sd"] <= 0.07, found
    assert 0.04 <= null_truth["sd_diff"] <= 0.06, found
    assert 0.04 <= effect_truth["sd_diff"] <= 0.06, found
    assert abs(null_truth["delta"]) < 0.002, found  # the arms are exchangeable under the null


def test_no_true_difference_is_rejected_in_at_most_7_percent(null_truth):
    """The paired t (unadjusted, alpha 0.05) and the full verdict rule of verdict_rows with
    a single arm (Holm over one arm is the identity), on the same 1000 null experiments."""
    p, verdicts = verdict_experiments(seed=2, shift=0.0, n_exp=N_EXPERIMENTS)
    t_rate = float(np.mean(p < ALPHA))
    verdict_rate = float(np.mean([v != "no evidence" for v in verdicts]))
    message = (f"over {N_EXPERIMENTS} experiments with true ΔAUC 0 (sd of the per-seed "
               f"differences {null_truth['sd_diff']:.4f}): paired t rejects {t_rate:.3f}, "
               f"the verdict rule {verdict_rate:.3f} (helps {verdicts.count('helps')}, "
               f"hurts {verdicts.count('hurts')})")
    print(message)
    assert np.isfinite(p).all(), message
    assert t_rate <= 0.07, message
    assert verdict_rate <= 0.07, message
    assert verdict_rate <= t_rate, message  # the rule needs p < alpha and more


def test_paired_t_rejects_as_often_as_the_reported_power(effect_truth):
    delta, sd = effect_truth["delta"], effect_truth["sd_diff"]
    power = stats.paired_t_power(delta, sd, N_SEEDS, ALPHA)
    assert 0.5 <= power <= 0.8, f"the design's power {power:.3f} (delta {delta:.4f}, sd {sd:.4f})"
    a = per_seed_aucs(3, N_EXPERIMENTS, SHIFT)
    d = a[:, 1] - a[:, 0]
    p = np.array([stats.paired_t_over_seeds(row).p_value for row in d])
    rate = float(np.mean(p < ALPHA))
    message = (f"true ΔAUC {delta:.4f}, true sd of the per-seed differences {sd:.4f}, "
               f"{N_SEEDS} seeds: paired_t_power reports {power:.3f}, the paired t rejected in "
               f"{rate:.3f} of {N_EXPERIMENTS} experiments (mean observed Δ {d.mean():.4f})")
    print(message)
    assert abs(rate - power) <= 0.1, message


def test_the_verdict_rule_under_an_effect_finds_help_only(effect_truth):
    """The verdict rule under the same effect: never "hurts", and "helps" at most as often as
    the paired t rejects (it needs the bootstrap interval above 0 too)."""
    p, verdicts = verdict_experiments(seed=4, shift=SHIFT, n_exp=500)
    t_rate = float(np.mean(p < ALPHA))
    helps = verdicts.count("helps") / len(verdicts)
    power = stats.paired_t_power(effect_truth["delta"], effect_truth["sd_diff"], N_SEEDS, ALPHA)
    message = (f"true ΔAUC {effect_truth['delta']:.4f}: paired t rejects {t_rate:.3f} "
               f"(reported power {power:.3f}), verdict 'helps' {helps:.3f}, "
               f"'hurts' {verdicts.count('hurts')} times in {len(verdicts)} experiments")
    print(message)
    assert verdicts.count("hurts") == 0, message
    assert 0.0 < helps <= t_rate, message
    assert abs(t_rate - power) <= 0.1, message
