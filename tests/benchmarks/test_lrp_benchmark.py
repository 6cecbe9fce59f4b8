"""LRP cost: one α2β1 relevance pass through ResNet50 against one gradient × input pass.

The reference is the cheapest explanation of the same model on the same batch: one
forward and one backward pass (``bench.xai.lrp.gradient_x_input``, which is *not*
LRP). The ratio ``gradient_x_input time / LRP time`` says what fraction of a plain
backward pass an LRP pass costs (below 1: LRP is slower); the rule-by-rule pass in
float64 with separate positive and negative parts (Panigrahi 2024 Eq. 16) costs
several backward passes, and a regression there (e.g. a lost ``tf.function`` or a
per-layer host round trip) shows as a drop. The graph is canonised once (BatchNorm
folded), as a caller explaining many batches would do.
"""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from bench.xai import lrp  # noqa: E402
from tests.benchmarks.conftest import paired_seconds  # noqa: E402

SIZE, BATCH = 64, 2
# Keras's ResNet50 builder seeds its layers through random.randrange with a float (Python 3.11 warns).
pytestmark = pytest.mark.filterwarnings("ignore:non-integer arguments to randrange:DeprecationWarning")


@pytest.fixture(scope="module")
def resnet50():
    tf.keras.utils.set_random_seed(3)
    base = tf.keras.applications.ResNet50(weights=None, include_top=False, input_shape=(SIZE, SIZE, 3),
                                          pooling="avg")
    model = tf.keras.Sequential([base, tf.keras.layers.Dense(2)])
    model.build((None, SIZE, SIZE, 3))
    functional = tf.keras.Model(base.input, model.layers[-1](base.output))
    yield functional
    tf.keras.backend.clear_session()


@pytest.mark.slow
@pytest.mark.benchmark(group="lrp")
def test_lrp_pass_vs_gradient_x_input(benchmark, record_ratio, resnet50):
    x = np.random.default_rng(0).uniform(-120.0, 150.0, (BATCH, SIZE, SIZE, 3))
    graph = lrp.canonize(resnet50)
    box = {}

    def hot():
        box["r"] = lrp.explain(graph, x, rule="alpha-beta", alpha=2.0, beta=1.0)

    def reference():
        box["g"] = lrp.gradient_x_input(resnet50, x.astype(np.float32))

    fast, slow = paired_seconds(benchmark, hot, reference, rounds=3)
    assert box["r"].shape == x.shape and np.isfinite(box["r"]).all()
    assert box["g"].shape == x.shape
    record_ratio("lrp.alpha_beta_vs_gradient_x_input", slow / fast,
                 what=f"one α2β1 LRP pass through ResNet50 (weights none, {SIZE} px, batch {BATCH}, BN folded) "
                      "vs one gradient × input pass")
