"""Temporal windows and the resumable, rank-aware sampler."""

from __future__ import annotations

import pytest

from vsrlab.data.sampling import EpochSampler
from vsrlab.ops.windows import window_indices


@pytest.mark.parametrize(
    "padding,expected",
    [
        ("replicate", [0, 0, 0, 1, 2]),
        ("reflection", [2, 1, 0, 1, 2]),
        ("reflection_circle", [4, 3, 0, 1, 2]),
        ("circle", [3, 4, 0, 1, 2]),
    ],
)
def test_window_indices_at_clip_start_as_basicsr(padding, expected):
    assert window_indices(0, 10, 5, padding) == expected


def test_window_indices_interior_and_end():
    assert window_indices(5, 10, 5) == [3, 4, 5, 6, 7]
    assert window_indices(9, 10, 5, "reflection") == [7, 8, 9, 8, 7]
    assert window_indices(9, 10, 5, "replicate") == [7, 8, 9, 9, 9]
    with pytest.raises(ValueError, match="odd"):
        window_indices(0, 10, 4)
    with pytest.raises(ValueError, match="too short"):
        window_indices(0, 2, 7, "reflection")


def test_epoch_sampler_is_seeded_per_epoch_and_streams():
    a, b = EpochSampler(10, seed=1, world=(1, 0)), EpochSampler(10, seed=1, world=(1, 0))
    assert list(a) == list(b) and sorted(a) == list(range(10))
    a.set_epoch(1)
    assert list(a) != list(b)
    stream = EpochSampler(10, seed=1, stream=True, world=(1, 0))
    stream.set_epoch(3)
    assert sorted(stream) == list(range(30, 40))


def test_epoch_sampler_shards_ranks_and_skips():
    ranks = [EpochSampler(10, seed=0, world=(2, r)) for r in range(2)]
    parts = [list(s) for s in ranks]
    assert len(parts[0]) == len(parts[1]) == 5 and not set(parts[0]) & set(parts[1])
    ranks[0].skip(3)
    assert list(ranks[0]) == parts[0][3:]
    assert list(ranks[0]) == parts[0]  # skipping applies to one pass only
    evaluation = [list(EpochSampler(5, shuffle=False, drop_last=False, world=(2, r))) for r in range(2)]
    assert evaluation == [[0, 2, 4], [1, 3]]
