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


# --------------------------------------------------------------------------- a good generator vs a copier


def blobs(rng, n: int, size: int = 16) -> np.ndarray:
    """Images of one distribution: three Gaussian blobs at random places, widths and heights, a little noise."""
    yy, xx = np.mgrid[0:size, 0:size]
    out = np.zeros((n, size, size))
    for k in range(n):
        for _ in range(3):
            cy, cx = rng.uniform(2, size - 2, 2)
            width = rng.uniform(1.5, 4.0)
            out[k] += rng.uniform(0.2, 0.6) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * width**2))
    return np.clip(out + rng.normal(0, 0.02, out.shape), 0, 1).astype(np.float32)


# A small stand-in for the feature network: fixed random ReLU features of the pixels, 512-d and of large
# magnitude (like a domain encoder's pool features, unlike InceptionV3's).
_WEIGHTS = np.random.default_rng(99).normal(size=(256, 512))
RELU_NET = quality.FeatureNetwork("random ReLU features (test)",
                                  lambda im: 40.0 * np.maximum(im.reshape(len(im), -1) @ _WEIGHTS, 0.0))


def _method(root: Path, name: str, images: np.ndarray, source_ids: list[str]) -> Path:
    from bench.io import save_npz

    folder = root / name
    save_npz(folder / "synthetic.npz", images=np.asarray(images, np.float32), labels=np.zeros(len(images), int))
    (folder / "provenance.jsonl").write_text("".join(f'{{"source_id": "{i}"}}\n' for i in source_ids))
    return folder


@pytest.fixture
def table(tmp_path, rng):
    """The stage's table for 90 training and 60 validation images of one distribution and three
    "augmenters" of 90 images each: identity (the training images, shuffled), a good generator (new
    images of the same distribution, never seen), noise (uniform pixels)."""
    from bench.stages.common import Prepared
    from bench.stages.quality import quality_table

    train, val = blobs(rng, 90), blobs(rng, 60)
    ids = [f"t{k}" for k in range(90)] + [f"v{k}" for k in range(60)]
    prepared = Prepared(np.concatenate([train, val]), np.zeros(150, int), ids,
                        np.array(["train"] * 90 + ["val"] * 60), None, {})
    order = rng.permutation(90)
    methods = {"identity": _method(tmp_path, "identity", train[order], [ids[k] for k in order]),
               "good": _method(tmp_path, "good", blobs(rng, 90), ids[:90]),
               "noise": _method(tmp_path, "noise", rng.uniform(size=(90, 16, 16)), ids[:90])}
    rows, references = quality_table(prepared, methods, RELU_NET, quality.Settings(kid_subsets=50))
    return {r["method"]: r for r in rows}, references


def _at_floor(row: dict, floor: dict, k: float = 3.0) -> bool:
    return abs(row["kid"] - floor["kid"]) < k * np.hypot(row["kid_sd"], floor["kid_sd"])


def test_identity_augmenter_is_flagged_as_memorising_but_sits_at_the_floor(table):
    rows, references = table
    floor, copy = rows["real train vs real val (floor)"], rows["identity"]
    assert references[0]["dims"] == 6 == copy["dims"]  # d = ⌊60 / 10⌋: the smaller real set bounds it
    assert copy["copying"] == "yes" and copy["memorised"] == 1.0 and copy["nn_ratio"] == 0.0
    assert copy["memorised_p"] < 1e-50
    # against the validation images a copier looks like the real training images it copies
    assert _at_floor(copy, floor)
    assert copy["source_ssim"] == pytest.approx(1.0) and copy["source_rmse"] == 0.0  # closest to its sources


def test_good_generator_sits_at_the_floor_and_is_not_flagged(table):
    rows, _ = table
    floor, good = rows["real train vs real val (floor)"], rows["good"]
    assert good["copying"] == "no" and good["memorised"] < 0.15 and 0.8 < good["nn_ratio"] < 1.25
    assert _at_floor(good, floor)
    assert good["source_ssim"] < rows["identity"]["source_ssim"]  # distance from source: not a quality score


def test_noise_generator_is_far_from_the_floor_and_from_the_training_images(table):
    rows, _ = table
    floor, noise = rows["real train vs real val (floor)"], rows["noise"]
    assert noise["kid"] - floor["kid"] > 10 * np.hypot(noise["kid_sd"], floor["kid_sd"])
    assert noise["kid"] > 100 * floor["kid_sd"] and noise["fid"] > 20 * floor["fid"]
    assert noise["copying"] == "no" and noise["memorised"] == 0.0 and noise["nn_ratio"] > 2


def test_quality_outputs_name_the_network_and_the_rules(table, tmp_path):
    import pandas as pd

    from bench.stages.quality import COLUMNS, write_outputs

    rows, references = table
    write_outputs(tmp_path / "out", list(rows.values()), references, quality.Settings(kid_subsets=50))
    frame = pd.read_csv(tmp_path / "out" / "quality.csv")
    assert tuple(frame.columns) == COLUMNS and frame["method"].tolist()[0] == "real train vs real val (floor)"
    assert frame["reference"].eq("validation split").all() and frame["kid"].notna().all()
    assert frame.loc[0, ["memorised", "copying"]].isna().all()  # the floor row has no memorisation figure
    text = (tmp_path / "out" / "quality.md").read_text()
    assert "random ReLU features (test)" in text and "d = 6" in text and "one-sided beta-binomial" in text
    assert "| identity" in text and " ± " in text and "source SSIM" in text


def test_projection_keeps_kid_finite_and_stable_at_n_90(rng):
    """2,048-d features of large magnitude, 90 images a set (BUSI's GAN row): in the raw space KID of
    two samples of one distribution swings by ~1e10; projected, it is near 0 and a shift stands out."""
    weights, bias = rng.normal(size=(20, 2048)), rng.normal(size=2048)

    def draw(n, shift=0.0):
        return 50.0 * np.maximum((rng.normal(size=(n, 20)) + shift) @ weights + bias, 0.0)

    train, val = draw(90), draw(90)
    project = quality.fit_projection(train, quality.projection_dims(90, 10, 64))
    assert project.dims == 9
    same = [quality.compare(project(draw(90)), project(val), 100, 1000, 10, seed=s) for s in range(5)]
    shifted = [quality.compare(project(draw(90, 0.5)), project(val), 100, 1000, 10, seed=s) for s in range(5)]
    kids = np.array([r["kid"] for r in same])
    assert np.isfinite(kids).all() and np.abs(kids).max() < 0.1 and kids.std() < 0.05
    assert all(r["kid_subset_size"] == 45 and 0 < r["kid_sd"] < 0.1 and r["fid_note"] == "" for r in same)
    assert min(r["kid"] for r in shifted) > kids.max() + 5 * max(r["kid_sd"] for r in same)
    raw = [quality.kid(draw(90), val, 20, 45, seed=s)[0] for s in range(3)]
    assert max(abs(v) for v in raw) > 1e6  # the problem the projection solves


def test_projection_whitens_the_reference_and_refuses_degenerate_features(rng):
    ref = rng.normal(size=(200, 30)) * np.linspace(1, 30, 30) + 7.0
    project = quality.fit_projection(ref, 5)
    z = project(ref)
    np.testing.assert_allclose(np.cov(z, rowvar=False), np.eye(5), atol=1e-10)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-10)
    assert quality.fit_projection(ref[:, :3], 5).dims == 3  # no more dimensions than the features have
    with pytest.raises(ValueError, match="do not vary"):
        quality.fit_projection(np.ones((10, 4)), 2)
    with pytest.raises(ValueError, match="fitted on 30-d"):
        project(np.zeros((3, 8)))
    assert [quality.projection_dims(n, 10, 64) for n in (6, 68, 90, 5000)] == [2, 6, 9, 64]
    assert [quality.kid_subset_size(m, n, 1000) for m, n in ((90, 68), (5000, 8000), (4, 9))] == [34, 1000, 2]


def test_fid_note_when_a_set_is_small_for_the_dimension(rng):
    out = quality.compare(rng.normal(size=(30, 6)), rng.normal(size=(200, 6)), 10, 1000, 10)
    assert out["fid_note"] == "n = 30 < 10·d = 60: biased upwards" and out["kid_subset_size"] == 15
    with pytest.raises(ValueError, match="at least 4 images"):
        quality.compare(rng.normal(size=(3, 6)), rng.normal(size=(20, 6)), 10, 1000, 10)


def test_nearest_distances_are_rms_pixel_distances():
    refs = np.stack([np.zeros((4, 4)), np.ones((4, 4))])
    queries = np.stack([np.full((4, 4), 0.25), np.ones((4, 4)), np.full((4, 4), 0.5)])
    np.testing.assert_allclose(quality.nearest_distances(queries, refs, chunk=2), [0.25, 0.0, 0.5])
    with pytest.raises(ValueError, match="prepared size"):
        quality.nearest_distances(np.zeros((1, 3, 3)), refs)


def test_memorisation_rule():
    """τ = the k-th smallest held-out distance, k = ⌊0.05 · 101⌋ = 5 (here 1.0 … 100.0: τ = 5.0); copying
    when the count below τ is improbable for new images, beta-binomial(m, k, n + 1 − k) at alpha 0.01."""
    novelty = quality.Novelty(np.arange(100.0, 0.0, -1.0), 5.0)  # unsorted on purpose
    assert novelty.rank == 5 and novelty.threshold == 5.0 and novelty.median == pytest.approx(50.5)
    assert novelty.expected == pytest.approx(5 / 101)
    assert quality.Novelty(np.arange(10.0), 5.0).rank == 1  # ⌊0.55⌋ = 0: the smallest, never below it
    new = quality.memorisation(np.r_[np.full(6, 1.0), np.full(94, 60.0)], novelty)  # 6 % below τ
    assert new["memorised"] == 0.06 and new["copying"] == "no" and new["nn_ratio"] == pytest.approx(60 / 50.5)
    many = quality.memorisation(np.r_[np.full(25, 1.0), np.full(75, 60.0)], novelty)  # 25 % below τ
    assert many["copying"] == "yes" and many["memorised_p"] < 0.01
    # the noise in τ makes 13 of 100 below it not improbable (p ≈ 0.019; a binomial test at 5 % says 0.0015)
    borderline = quality.memorisation(np.r_[np.full(13, 1.0), np.full(87, 60.0)], novelty)
    assert borderline["copying"] == "no" and 0.015 < borderline["memorised_p"] < 0.025
    assert quality.memorisation(np.full(10, 80.0), novelty)["memorised_p"] == 1.0


def _false_flag_rate(n_held_out: int, m: int, trials: int, seed: int, rule) -> float:
    """The share of ``trials`` in which ``rule`` flags generated images that are new draws of the training
    distribution, against ``n_held_out`` held-out images of the same distribution (4-pixel "images")."""
    rng = np.random.default_rng(seed)
    flags = 0
    for _ in range(trials):
        train, held, gen = (rng.normal(size=(k, 2, 2)) for k in (60, n_held_out, m))
        novelty = quality.Novelty(quality.nearest_distances(held, train), 5.0)
        flags += rule(quality.nearest_distances(gen, train), novelty)
    return flags / trials


def _beta_binomial_rule(d, novelty):
    return quality.memorisation(d, novelty)["copying"] == "yes"


def _binomial_at_the_percentile(d, novelty):
    """The rule as it was: τ the interpolated 5th percentile, a binomial test at p = 0.05."""
    from scipy import stats

    below = int(np.sum(d < np.percentile(novelty.distances, 5.0)))
    return stats.binom.sf(below - 1, len(d), 0.05) < quality.COPYING_ALPHA


@pytest.mark.parametrize(("n_held_out", "m"), [(30, 90), (68, 200), (19, 40)])
def test_copying_keeps_its_level_for_new_images(n_held_out, m):
    """Generated and held-out images from one distribution: the nominal 1 % test flags at most about 2 % of
    600 simulated sets (the binomial test at the interpolated percentile, which ignored τ's noise, flagged
    far more), and it still flags a generator that copies half of its images."""
    rate = _false_flag_rate(n_held_out, m, 600, n_held_out, _beta_binomial_rule)
    assert rate <= 0.02
    assert _false_flag_rate(n_held_out, m, 200, n_held_out, _binomial_at_the_percentile) > 0.05
    rng = np.random.default_rng(1)
    train, held = rng.normal(size=(60, 2, 2)), rng.normal(size=(n_held_out, 2, 2))
    gen = np.concatenate([train[: m // 2], rng.normal(size=(m - m // 2, 2, 2))])
    novelty = quality.Novelty(quality.nearest_distances(held, train), 5.0)
    assert quality.memorisation(quality.nearest_distances(gen, train), novelty)["copying"] == "yes"


def test_the_floor_compares_training_images_the_projection_was_not_fitted_on(rng):
    """The projection is fitted on one half of the training images and the floor row compares the other half
    with the held-out ones; over repeated draws of one distribution the floor's KID is centred on 0."""
    net = quality.FeatureNetwork("identity (test)", lambda im: im.reshape(len(im), -1))
    settings = quality.Settings(kid_subsets=20)
    kids = []
    for seed in range(12):
        draw = np.random.default_rng(seed)
        ref = quality.real_reference("val", draw.normal(size=(81, 4, 4)), draw.normal(size=(60, 4, 4)), net,
                                     quality.Settings(kid_subsets=20, seed=seed))
        assert ref.projection.n_fit == 41 and len(ref.floor_z) == 40
        assert ref.summary()["n_fit"] + ref.summary()["n_floor"] == ref.summary()["n_train"] == 81
        kids.append(quality.floor_figures(ref, settings)["kid"])
    assert abs(np.mean(kids)) < 3 * np.std(kids, ddof=1) / np.sqrt(len(kids))


def test_generated_figures_need_the_reference_network(rng):
    images = blobs(rng, 12, 16)
    ref = quality.real_reference("val", images[:8], images[8:], RELU_NET, quality.Settings(kid_subsets=3))
    other = quality.FeatureNetwork("another", RELU_NET.extract)
    with pytest.raises(ValueError, match="cannot be compared"):
        quality.generated_figures(ref, images[:4], other, quality.Settings(kid_subsets=3))
    with pytest.raises(ValueError, match="at least 4 held-out and 8 training.*split.ratios"):
        quality.real_reference("val", images[:8], images[8:11], RELU_NET, quality.Settings())
    with pytest.raises(ValueError, match="at least 4 held-out and 8 training"):
        quality.real_reference("val", images[:7], images[7:], RELU_NET, quality.Settings())


def test_pseudolabel_fold_is_judged_against_its_own_held_out_images(tmp_path, rng, monkeypatch):
    """The fold-0 row: KID/FID against the fold's held-out (val + test) images, memorisation against its
    sources, after a floor row of its own; the main floor row stays first."""
    from bench.config import load_params
    from bench.io import write_json
    from bench.stages import quality as stage
    from bench.stages.common import Prepared

    images = blobs(rng, 24, 16)
    ids = [f"i{k}" for k in range(24)]
    prepared = Prepared(images, np.arange(24) % 2, ids, np.array(["train"] * 12 + ["val"] * 6 + ["test"] * 6),
                        None, {})
    folds = tmp_path / "pseudolabel"
    write_json(folds / "folds.json", {"method": "nst-pseudolabel", "folds": [
        {"index": 0, "sources": ids[:16], "val": ids[16:20], "test": ids[20:]}]})
    _method(folds / "fold0", "augmented", images[:16], ids[:16])  # copies of the fold's sources
    monkeypatch.setattr(quality, "feature_network", lambda *a, **k: RELU_NET)
    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml", "smoke", ["quality.kid_subsets=5"])
    rows = stage.measure(params, prepared, tmp_path / "augmented", tmp_path / "out", None, folds, [])
    assert [r["method"] for r in rows] == ["real train vs real val (floor)", "real fold-0 train vs held-out (floor)",
                                           "nst-pseudolabel (fold 0)"]
    fold_floor, fold_row = rows[1], rows[2]
    # the floor: the half of the fold's 16 sources that the projection was not fitted on
    assert fold_floor["n"] == 8 and fold_floor["n_reference"] == 8 and fold_row["n_reference"] == 8
    assert fold_row["n"] == 16 and fold_row["dims"] == fold_floor["dims"]
    assert fold_row["reference"] == "nst-pseudolabel (fold 0) held-out" and fold_row["copying"] == "yes"


def test_a_too_small_pseudolabel_fold_names_the_pseudolabel_settings(rng):
    from bench.plugins import ImageSet
    from bench.stages import quality as stage

    images = blobs(rng, 12, 16)
    small = ImageSet(images[:3], np.zeros(3, int), ["a", "b", "c"])
    with pytest.raises(ValueError, match="pseudolabel.folds.*pseudolabel.max_per_class"):
        stage.real_reference("fold held-out", ImageSet(images[3:], np.zeros(9, int), list("defghijkl")), small,
                             RELU_NET, quality.Settings(), stage.FOLD_HINT)


@pytest.mark.slow
def test_inception_network_gives_2048_pool_features_and_names_itself(tmp_path):
    """The real InceptionV3 path, with random (not ImageNet) weights saved as the Keras file would be."""
    import tensorflow as tf

    path = tmp_path / "inception_v3_notop.h5"
    tf.keras.applications.InceptionV3(include_top=False, weights=None, pooling="avg",
                                      input_shape=(299, 299, 3)).save_weights(str(path))
    net = quality.inception_network(path)
    out = net.extract(np.random.default_rng(0).uniform(size=(2, 16, 16)).astype(np.float32))
    assert out.shape == (2, 2048) and np.isfinite(out).all()
    assert net.name.startswith("Keras InceptionV3 pool features, not the TF-slim reference FID network")
