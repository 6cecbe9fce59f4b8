"""SRAD speed: the vectorised implementation against the per-pixel reference loop.

Only the ratio of two timings taken in the same run (interleaved, round by round, the
fastest round of each side) is checked, never a wall-clock time, so the check holds on slow
or busy machines. The ratio goes to the session-end checker (conftest.py,
bench/benchcheck.py), which compares it with tests/benchmarks/baseline.json (floor: 50x,
the Foundation issue's requirement).
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.data.srad import srad, srad_reference
from tests.benchmarks.conftest import paired_seconds

SIZE = 256
N_ITER = 10  # identical work for both; the reference loop needs ~0.2 s per iteration at 256x256
ROUNDS = 3  # interleaved rounds of each side
HOT_CALLS = 10  # a vectorised round is this many calls (~0.1 s), so that a scheduler hiccup is not the whole round


@pytest.fixture(scope="module")
def speckled_image() -> np.ndarray:
    rng = np.random.default_rng(0)
    rows = np.linspace(0.0, 1.0, SIZE)[:, None]
    truth = 0.15 + 0.35 * (rows > 0.5) + 0.1 * np.sin(6 * np.pi * rows.T)
    speckle = np.hypot(rng.standard_normal((SIZE, SIZE)), rng.standard_normal((SIZE, SIZE)))
    return truth * speckle / np.sqrt(2.0)


@pytest.mark.slow
@pytest.mark.benchmark(group="srad")
def test_srad_vectorised_vs_reference(benchmark, record_ratio, speckled_image):
    box = {}

    def hot():
        for _ in range(HOT_CALLS):
            box["fast"] = srad(speckled_image, n_iter=N_ITER)

    def reference():
        box["loop"] = srad_reference(speckled_image, n_iter=N_ITER)

    # interleaved, the fastest of ROUNDS rounds of each side; no warm-up (NumPy and a Python loop
    # have nothing to trace, and the reference's rounds are the slow part of this test)
    fast, slow = paired_seconds(benchmark, hot, reference, rounds=ROUNDS, warmup=False)
    fast /= HOT_CALLS  # seconds per call, as the reference's

    np.testing.assert_allclose(box["fast"], box["loop"], atol=1e-6)
    benchmark.extra_info["reference_seconds"] = slow
    record_ratio("srad.vectorised_vs_loop", slow / fast,
                 what=f"vectorised SRAD vs the per-pixel reference loop, {SIZE} px, {N_ITER} iterations")
