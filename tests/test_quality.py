"""bench.quality: full-reference metrics against hand values, FID's behaviour, KID's unbiasedness."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench import quality

RNG_SEED = 2024  # the seed of the rng fixture (tests/conftest.py) for this module


def test_full_reference_metrics_match_hand_values():
    x = np.full((16, 16), 0.5)
    y = x + 0.1
    assert quality.rmse(x, y) == pytest.approx(0.1)
    assert quality.psnr(x, y) == pytest.approx(20.0)  # 10·log10(1 / 0.01)
    assert quality.sre(x, y) == pytest.approx(10 * np.log10(0.25 / 0.01))
    assert quality.psnr(x, x) == pytest.approx(100.0)  # MSE floored at 1e-10
    assert quality.sam(x, 2 * x) == pytest.approx(0.0, abs=1e-6)  # same direction
    left, right = np.zeros((4, 4)), np.zeros((4, 4))
    left[:, :2], right[:, 2:] = 1.0, 1.0
    assert quality.sam(left, right) == pytest.approx(90.0)  # orthogonal images
    assert quality.sam(left * 0, right * 0) == 0.0 and quality.sam(left, right * 0) == 90.0


def test_ssim_is_one_for_identical_images_and_lower_for_noise(rng):
    x = rng.uniform(size=(32, 32))
    assert quality.ssim(x, x) == pytest.approx(1.0)
    assert quality.ssim(x, np.clip(x + rng.normal(0, 0.2, x.shape), 0, 1)) < 0.9
    assert quality.ssim(x[:7, :7], x[:7, :7]) == pytest.approx(1.0)  # windows shrink on tiny images


def test_full_reference_summary(rng):
    src = rng.uniform(size=(5, 8, 8))
    out = quality.full_reference(src, src)
    assert out["rmse"]["mean"] == 0.0 and out["ssim"]["mean"] == pytest.approx(1.0)
    assert set(out) == set(quality.FULL_REFERENCE)
    with pytest.raises(ValueError, match="sources"):
        quality.full_reference(src, src[:2])


def test_fid_of_a_set_with_itself_is_zero_and_grows_with_a_shift(rng):
    a = rng.normal(size=(400, 16))
    assert quality.fid(a, a) == pytest.approx(0.0, abs=1e-6)
    shifts = [0.1, 0.5, 1.0, 2.0]
    values = [quality.fid(a, a + s) for s in shifts]
    assert np.all(np.diff(values) > 0)
    np.testing.assert_allclose(values, [16 * s**2 for s in shifts], rtol=1e-6)  # same Σ: only ‖Δμ‖² is left


def test_frechet_distance_of_gaussians_in_closed_form():
    """Diagonal covariances commute: FID = ‖μ1 − μ2‖² + Σ_k (σ1k − σ2k)²."""
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    s1, s2 = np.array([1.0, 4.0, 0.25]), np.array([4.0, 1.0, 0.25])
    expected = 1 + 4 + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    assert quality.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected)


def test_fid_stays_finite_with_singular_covariances(rng):
    a, b = rng.normal(size=(5, 32)), rng.normal(size=(6, 32))  # N < d: rank-deficient Σ
    value = quality.fid(a, b)
    assert np.isfinite(value) and value > 0


@pytest.mark.parametrize("n_a, n_b, d", [(40, 30, 12), (5, 7, 30)])  # full-rank and singular covariances
def test_trace_of_the_square_root_from_singular_values_matches_sqrtm(rng, n_a, n_b, d):
    from scipy import linalg

    a = rng.normal(size=(n_a, d)) @ rng.normal(size=(d, d))
    b = 2.0 * rng.normal(size=(n_b, d)) + 1.0
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = np.trace(linalg.sqrtm(s_a @ s_b)).real
    assert quality.trace_sqrt_product(a, b) == pytest.approx(expected, rel=1e-6)
    # fid() takes that route when N < d; it must agree with the covariance form
    assert quality.fid(a, b) == pytest.approx(quality.frechet_distance(a.mean(0), s_a, b.mean(0), s_b), rel=1e-6)


def test_kid_is_unbiased_on_small_samples(rng):
    """Draw m = 6 points with replacement from two finite populations, many times: the mean of the
    unbiased estimates matches the exact MMD² of the populations (every pair of independent draws,
    coincident ones included); the biased V-statistic would not."""
    pop_a = rng.normal(size=(25, 4))
    pop_b = rng.normal(0.4, 1.2, size=(30, 4))
    k = quality.polynomial_kernel
    exact = k(pop_a, pop_a).mean() + k(pop_b, pop_b).mean() - 2 * k(pop_a, pop_b).mean()
    m, reps = 6, 6000
    estimates, biased = np.empty(reps), np.empty(reps)
    for r in range(reps):
        x, y = pop_a[rng.integers(0, 25, m)], pop_b[rng.integers(0, 30, m)]
        estimates[r] = quality.mmd2_unbiased(x, y)
        biased[r] = k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()
    stderr = estimates.std(ddof=1) / np.sqrt(reps)
    assert abs(estimates.mean() - exact) < 4 * stderr
    assert abs(biased.mean() - exact) > 10 * stderr  # the check above has power


def test_kid_of_one_distribution_is_centred_on_zero(rng):
    a, b = rng.normal(size=(300, 8)), rng.normal(size=(300, 8))
    mean, sd = quality.kid(a, b, n_subsets=50, subset_size=20, seed=1)
    assert abs(mean) < 3 * sd / np.sqrt(50) + 1e-3
    shifted, _ = quality.kid(a, b + 1.0, n_subsets=50, subset_size=20, seed=1)
    assert shifted > mean + 5 * sd / np.sqrt(50)


def test_distribution_metrics_name_their_network(rng):
    net = quality.FeatureNetwork("identity (test)", lambda im: im.reshape(len(im), -1))
    real = rng.uniform(size=(40, 4, 4))
    out = quality.distribution_metrics(real, real, net, kid_subsets=5, kid_subset_size=10)
    assert out["feature_network"] == "identity (test)" and out["fid"] == pytest.approx(0.0, abs=1e-6)


def test_quality_stage_writes_a_row_per_method_and_the_floor(tmp_path, rng):
    from bench.io import save_npz
    from bench.stages.common import Prepared
    from bench.stages.quality import quality_table, write_outputs

    images = rng.uniform(size=(12, 8, 8)).astype(np.float32)
    prepared = Prepared(images, np.arange(12) % 2, [f"i{k}" for k in range(12)],
                        np.array(["train"] * 8 + ["val"] * 4), None, {})
    folder = tmp_path / "copy"
    save_npz(folder / "synthetic.npz", images=images[:8][::-1].copy(), labels=np.arange(8) % 2)
    (folder / "provenance.jsonl").write_text("".join(f'{{"source_id": "i{k}"}}\n' for k in range(8)[::-1]))
    net = quality.FeatureNetwork("identity (test)", lambda im: im.reshape(len(im), -1)[:, :6])
    rows = quality_table(prepared, {"copy": folder}, net, kid_subsets=3, kid_subset_size=4)
    assert [r["method"] for r in rows] == ["real train vs real val (floor)", "copy"]
    copy = rows[1]
    assert copy["rmse"] == 0.0 and copy["ssim"] == pytest.approx(1.0) and copy["fid"] == pytest.approx(0.0, abs=1e-6)
    write_outputs(tmp_path / "out", rows)
    text = (tmp_path / "out" / "quality.md").read_text()
    assert "identity (test)" in text and "copy" in text


def test_feature_network_needs_inception_weights_or_an_encoder(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # an empty Keras cache: no InceptionV3 file
    with pytest.raises(ValueError, match="no InceptionV3 ImageNet weights"):
        quality.feature_network(None)


def test_kid_of_two_whole_sets_is_one_value_without_a_spread():
    r = np.random.default_rng(3)
    a, b = r.normal(size=(15, 6)), r.normal(size=(15, 6))
    mean, sd = quality.kid(a, b, n_subsets=50, subset_size=1000)
    assert mean == pytest.approx(quality.mmd2_unbiased(a, b)) and np.isnan(sd)
    _, sd_smaller = quality.kid(a, b[:10], n_subsets=50, subset_size=1000)  # a's subsets of 10 vary
    assert sd_smaller > 0


def _copy_method(tmp_path, rng):
    """Prepared data (8 train, 4 val) and one method folder whose images copy their sources."""
    from bench.io import save_npz
    from bench.stages.common import Prepared

    images = rng.uniform(size=(12, 8, 8)).astype(np.float32)
    prepared = Prepared(images, np.arange(12) % 2, [f"i{k}" for k in range(12)],
                        np.array(["train"] * 8 + ["val"] * 4), None, {})
    folder = tmp_path / "augmented" / "copy"
    save_npz(folder / "synthetic.npz", images=images[:8].copy(), labels=np.arange(8) % 2)
    (folder / "provenance.jsonl").write_text("".join(f'{{"source_id": "i{k}"}}\n' for k in range(8)))
    return prepared


def test_quality_stage_without_the_pseudolabel_stage(tmp_path, rng, monkeypatch, caplog):
    """pseudolabel switched off (its folder holds only switched_off.json, as under DVC): no fold-0 row and a
    log line saying why; a folder that is neither a pseudolabel output nor switched off is refused."""
    from bench.config import load_params
    from bench.errors import AugbenchError
    from bench.stages import quality as stage
    from bench.stages.common import switched_off

    prepared = _copy_method(tmp_path, rng)
    monkeypatch.setattr(quality, "feature_network", lambda *a, **k: quality.FeatureNetwork(
        "identity (test)", lambda im: im.reshape(len(im), -1)[:, :6]))
    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml", "smoke",
                         ["pseudolabel.enabled=false", "quality.kid_subsets=3", "quality.kid_subset_size=4"])
    folds = tmp_path / "pseudolabel"
    switched_off("pseudolabel", folds, [])
    with caplog.at_level("INFO", logger="augbench"):
        rows = stage.measure(params, prepared, tmp_path / "augmented", tmp_path / "out", None, folds, ["copy"])
    assert [r["method"] for r in rows] == ["real train vs real val (floor)", "copy"]
    assert "no pseudo-label fold-0 row" in caplog.text and "switched off" in caplog.text
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["quality.csv", "quality.json", "quality.md"]
    (folds / "switched_off.json").unlink()
    with pytest.raises(AugbenchError, match="folds.json: not found"):
        stage.measure(params, prepared, tmp_path / "augmented", tmp_path / "out2", None, folds, ["copy"])
