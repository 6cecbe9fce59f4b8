"""The batched NST engine on real phantom pairs: losses decrease, batching changes nothing,
failures are caught, runs are deterministic."""

from __future__ import annotations

import re

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from bench.data.phantom import generate_phantom  # noqa: E402
from bench.errors import NumericalError  # noqa: E402
from bench.nst.encoders import get_encoder_spec, resolve_encoder_weights  # noqa: E402
from bench.nst.engine import Job, LossConfig, NSTEngine, Schedule  # noqa: E402
from bench.nst.losses import make_style_loss  # noqa: E402
from bench.nst.transfer import TransferConfig, style_transfer  # noqa: E402
from bench.plugins import ImageSet  # noqa: E402

SIZE = 32
VGG = get_encoder_spec("vgg19")
WEIGHTS = resolve_encoder_weights("random", "vgg19", seed=0)
STYLE_WEIGHTS = {"gram": 1e3, "linear": 1e5, "poly": 1e3, "gaussian": 1e6, "bn": 5e4}


@pytest.fixture(scope="module")
def phantom() -> ImageSet:
    samples = generate_phantom(4, size=SIZE, seed=3)  # 4 benign then 4 malignant
    return ImageSet(np.stack([s.image for s in samples]).astype(np.float32),
                    np.array([int(s.label == "malignant") for s in samples]), [s.id for s in samples])


def _engine(kind="gram", batch_size=4, iterations=(8,), scales=(1.0,), optimizer="adam", init="content",
            lr=0.02, arch="vgg19", layers=None):
    spec = get_encoder_spec(arch)
    style_layers = tuple(layers or spec.style_layers)
    losses = LossConfig(spec.content_layers, style_layers, (1.0 / len(style_layers),) * len(style_layers),
                        content_weight=1.0, style_weight=STYLE_WEIGHTS[kind])
    schedule = Schedule(scales=scales, iterations=iterations, optimizer=optimizer, learning_rate=lr,
                        init=init, batch_size=batch_size)
    weights = WEIGHTS if arch == "vgg19" else resolve_encoder_weights("random", arch, seed=0)
    return NSTEngine(arch, weights, "avg", make_style_loss(kind), losses, schedule, (SIZE, SIZE))


def _run(engine, jobs, images, seed=0):
    shards = list(engine.run(jobs, images, seed=seed, progress=False))
    return (np.concatenate([s.images for s in shards]),
            {k: np.concatenate([s.losses[k] for s in shards]) for k in shards[0].losses},
            np.concatenate([s.ok for s in shards]), shards)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["gram", "linear", "poly", "gaussian", "bn"])
def test_every_style_loss_is_finite_and_decreases_on_a_real_pair(phantom, kind):
    engine = _engine(kind, iterations=(12,))
    jobs = [Job(0, (2,), seed=1), Job(5, (6,), seed=2)]  # benign-benign and malignant-malignant pairs
    images, losses, ok, _ = _run(engine, jobs, phantom.images)
    assert ok.all()
    for key in ("total", "content", "style", "initial", "grey"):
        assert np.isfinite(losses[key]).all(), key
    assert (losses["total"] < losses["initial"]).all(), (losses["total"], losses["initial"])
    assert (losses["total"] < losses["grey"]).all()
    assert not np.allclose(images, phantom.images[[0, 5]], atol=1e-3)  # it did something
    assert images.min() >= 0 and images.max() <= 1


@pytest.mark.slow
def test_multi_reference_multi_resolution_and_lbfgs_decrease(phantom):
    engine = _engine("gram", iterations=(6, 6), scales=(0.5, 1.0))
    images, losses, ok, _ = _run(engine, [Job(1, (0, 2, 3), seed=0), Job(4, (5, 6, 7), seed=1)], phantom.images)
    assert ok.all() and images.shape == (2, SIZE, SIZE)
    # the last level starts from the upsampled coarse result, so compare with the content image's own loss
    fresh = _engine("gram", iterations=(1,), lr=1e-9)
    _, start, _, _ = _run(fresh, [Job(1, (0, 2, 3), seed=0), Job(4, (5, 6, 7), seed=1)], phantom.images)
    assert (losses["total"] < start["initial"]).all()

    lbfgs = _engine("gram", iterations=(10,), optimizer="lbfgs", lr=1.0)
    _, losses, ok, _ = _run(lbfgs, [Job(0, (3,), seed=0), Job(6, (4,), seed=1)], phantom.images)
    assert ok.all() and (losses["total"] < losses["initial"]).all()


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "optimizer", "init"),
                         [("gram", "adam", "content"), ("gaussian", "adam", "noise"), ("bn", "lbfgs", "content")])
def test_an_image_alone_equals_the_same_image_in_a_batch(phantom, kind, optimizer, init):
    lr = 1.0 if optimizer == "lbfgs" else 0.02
    target = Job(3, (1,), seed=11)
    others = [Job(4, (7,), seed=12), Job(0, (2,), seed=13), Job(6, (5,), seed=14)]
    alone, loss_alone, _, _ = _run(_engine(kind, batch_size=1, optimizer=optimizer, init=init, lr=lr),
                                   [target], phantom.images, seed=5)
    batch, loss_batch, _, _ = _run(_engine(kind, batch_size=4, optimizer=optimizer, init=init, lr=lr),
                                   [others[0], target, *others[1:]], phantom.images, seed=5)
    np.testing.assert_allclose(batch[1], alone[0], atol=2e-4)  # float32 reassociation
    np.testing.assert_allclose(loss_batch["total"][1], loss_alone["total"][0], rtol=1e-3)
    assert np.abs(batch[1] - phantom.images[3]).max() > 0.01  # it moved, so the comparison means something


@pytest.mark.slow
def test_padding_determinism_and_noise_init(phantom):
    engine = _engine("gram", batch_size=4, iterations=(3,), init="noise")
    jobs = [Job(i % 8, ((i + 1) % 8,), seed=100 + i) for i in range(5)]
    a, _, _, shards = _run(engine, jobs, phantom.images)
    b, _, _, _ = _run(engine, jobs, phantom.images)
    assert [len(s.jobs) for s in shards] == [4, 1]
    np.testing.assert_array_equal(a, b)  # reused variables, reset state: same result
    c, _, _, _ = _run(engine, [Job(j.content, j.styles, j.seed + 1) for j in jobs], phantom.images)
    assert not np.allclose(a, c)  # the noise init follows the job seed


def _spy(engine):
    """Record every batch that reaches TensorFlow: the inputs of ``features`` and the images
    the optimiser is stepped from (``steps``), per level."""
    seen = {"features": [], "steps": []}
    for level in engine.levels:
        def features(grey, _f=level.features):
            seen["features"].append(np.asarray(grey))
            return _f(grey)

        def steps(n, _s=level.steps, _level=level):
            seen["steps"].append(_level.x.numpy()[..., 0].copy())
            return _s(n)

        level.features, level.steps = features, steps
    return seen


@pytest.mark.slow
def test_a_non_finite_content_or_style_image_is_refused_before_optimisation(phantom):
    """The explicit input check: independent of whether the CPU's kernels (max_pool) carry a
    NaN into the loss, the refused source never reaches TensorFlow and its job is never
    stepped; the other job of the batch comes out exactly as in a clean run without it."""
    engine = _engine("gram", batch_size=2, iterations=(2,))
    clean, _, clean_ok, _ = _run(engine, [Job(1, (3,), 1)], phantom.images)
    assert clean_ok.all()

    poisoned = phantom.images.copy()
    poisoned[2, 5, 5] = np.nan  # a style image
    poisoned[4, 0, 0] = np.inf  # a content image
    seen = _spy(engine)
    for jobs, role, source in [([Job(0, (2,), 0), Job(1, (3,), 1)], "style", 2),
                               ([Job(4, (0,), 0), Job(1, (3,), 1)], "content", 4)]:
        images, losses, ok, shards = _run(engine, jobs, poisoned)
        assert ok.tolist() == [False, True]
        assert shards[0].reasons[0] == f"non-finite {role} image (source {source}): refused before optimisation"
        assert shards[0].reasons[1] == ""
        assert np.isnan(images[0]).all() and np.isnan(losses["total"][0])  # nothing made from it
        # The other job is untouched by the refused one. It sits in another batch slot than in the clean
        # run, and on some CPUs (a 2-core AVX2 EPYC) oneDNN's convolution rounds slots differently (up to
        # 6e-8 here), so equal up to rounding; a NaN or a leaked source would be far outside this.
        np.testing.assert_allclose(images[1], clean[0], rtol=0, atol=1e-6)
    assert seen["features"] and all(np.isfinite(x).all() for x in seen["features"])  # NaN never entered TF
    assert len(seen["steps"]) == 2  # one call of the step loop per run: only the clean job is stepped
    for x in seen["steps"]:
        np.testing.assert_array_equal(x, poisoned[[1, 1]])  # its content init, refilling the refused slot

    seen["steps"].clear()
    _, losses, ok, shards = _run(engine, [Job(2, (0,), 0), Job(1, (4,), 1)], poisoned)  # both refused
    assert ok.tolist() == [False, False] and seen["steps"] == []  # the optimiser never stepped
    assert [r.split(":")[0] for r in shards[0].reasons] == ["non-finite content image (source 2)",
                                                           "non-finite style image (source 4)"]
    assert set(losses) == {"total", "content", "style", "tv", "grey", "initial"}


@pytest.mark.slow
def test_a_loss_that_becomes_non_finite_from_finite_inputs_is_caught(phantom, monkeypatch):
    """The output guard: finite inputs, but an op (here a patched total variation) makes one
    image's loss NaN — that image fails, the other of the batch does not."""
    import bench.nst.engine as engine_module

    real_tv = engine_module.total_variation

    def nan_for_the_first_image(x):
        tv = real_tv(x)
        return tv * tf.where(tf.range(tf.shape(tv)[0]) == 0, float("nan"), 1.0)

    monkeypatch.setattr(engine_module, "total_variation", nan_for_the_first_image)
    engine = _engine("gram", batch_size=2, iterations=(2,))  # traced after the patch
    assert np.isfinite(phantom.images).all()
    _, _, ok, shards = _run(engine, [Job(0, (2,), 0), Job(1, (3,), 1)], phantom.images)
    assert ok.tolist() == [False, True]
    assert shards[0].reasons[0] == "non-finite loss, gradient or image"


def test_style_transfer_refuses_a_non_finite_training_image_before_building_the_engine(phantom, monkeypatch):
    import bench.nst.transfer as transfer

    def no_engine(*args, **kwargs):
        raise AssertionError("the engine was built for a plan with a non-finite image")

    monkeypatch.setattr(transfer, "get_engine", no_engine)
    poisoned = phantom.images.copy()
    poisoned[2, 5, 5] = np.nan
    layers = VGG.style_layers
    config = TransferConfig(method="nst-test", arch="vgg19", weights=WEIGHTS, pooling="avg",
                            style_loss=make_style_loss("gram"),
                            losses=LossConfig(VGG.content_layers, layers, (1.0 / len(layers),) * len(layers),
                                              content_weight=1.0, style_weight=STYLE_WEIGHTS["gram"]),
                            schedule=Schedule(iterations=(2,), batch_size=4),
                            sampling="k-per-content", pairs_per_content=1, max_retries=1)
    train = ImageSet(poisoned, phantom.labels, phantom.ids)
    name = re.escape(repr(phantom.ids[2]))
    with pytest.raises(NumericalError, match=rf"content image {name} \(training index 2\) has NaN/inf pixels; "
                                             r"1 planned image\(s\) use it.*refused before optimisation"):
        style_transfer(train, 8, np.random.default_rng(0), config, progress=False)  # k-per-content: all 8
    with pytest.raises(NumericalError, match=rf"nst-test: style image {name} \(training index 2\)"):
        transfer.check_sources_finite(train, [Job(0, (1,), 0), Job(3, (1, 2), 0)], "nst-test")
    transfer.check_sources_finite(train, [Job(0, (1,), 0)], "nst-test")  # a plan that does not use it runs


@pytest.mark.slow
def test_resnet50_encoder_runs_and_decreases(phantom):
    engine = _engine("gram", arch="resnet50", iterations=(6,))
    _, losses, ok, _ = _run(engine, [Job(0, (1,), 0)], phantom.images)
    assert ok.all() and losses["total"][0] < losses["initial"][0]


def test_gaussian_mmd_refuses_a_layer_with_one_position():
    from bench.errors import AugbenchError

    with pytest.raises(AugbenchError, match="at least 2 positions"):
        _engine("gaussian", iterations=(1, 1), scales=(0.5, 1.0))  # block5_conv1 is 1×1 at 16 px


def test_schedule_is_validated():
    from bench.errors import AugbenchError

    with pytest.raises(AugbenchError, match="end at 1.0"):
        Schedule(scales=(1.0, 0.5), iterations=(1, 1))
    with pytest.raises(AugbenchError, match="one entry per resolution level"):
        Schedule(scales=(1.0,), iterations=(1, 1))
