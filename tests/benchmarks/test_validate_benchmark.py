"""Near-duplicate search of ``bench.data.validate`` against the obvious loop, in the same run.

``validate.near_pairs_vs_pair_loop``
    ``pair loop seconds / near_pairs seconds`` for 800 random 64-bit perceptual hashes (the
    size tests/test_validate.py used to hold to a wall-clock second) at threshold 4:
    ``near_pairs`` (row blocks of XOR + popcount in NumPy) against a Python loop over all
    319,600 pairs with ``int.bit_count``. Both find the same pairs (asserted; eight are
    planted). Timed interleaved (``paired_seconds``), fastest round of each side.

Only the ratio is checked, against tests/benchmarks/baseline.json (conftest.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.data.validate import near_pairs
from tests.benchmarks.conftest import paired_seconds

N_HASHES, THRESHOLD = 800, 4


def _hashes() -> np.ndarray:
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 2**63, size=N_HASHES, dtype=np.int64).astype(np.uint64)
    hashes[1::100] = hashes[::100] ^ np.uint64(0b101)  # eight near pairs, 2 bits apart
    return hashes


def _pair_loop(hashes: list[int], threshold: int) -> list[tuple[int, int]]:
    n = len(hashes)
    return [(i, j) for i in range(n) for j in range(i + 1, n) if (hashes[i] ^ hashes[j]).bit_count() <= threshold]


@pytest.mark.slow
@pytest.mark.benchmark(group="validate")
def test_near_pairs_vs_pair_loop(benchmark, record_ratio):
    hashes = _hashes()
    as_int = [int(h) for h in hashes]
    box = {}

    def hot():
        box["fast"] = near_pairs(hashes, THRESHOLD)

    def reference():
        box["loop"] = _pair_loop(as_int, THRESHOLD)

    fast, slow = paired_seconds(benchmark, hot, reference, rounds=5)
    assert sorted(map(tuple, box["fast"].tolist())) == box["loop"]
    assert len(box["loop"]) >= 8
    record_ratio("validate.near_pairs_vs_pair_loop", slow / fast,
                 what=f"near_pairs on {N_HASHES} random 64-bit hashes, threshold {THRESHOLD}, vs a Python loop over "
                      "all pairs with int.bit_count")
