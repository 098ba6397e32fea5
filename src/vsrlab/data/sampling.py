"""Resumable, rank-aware sampling of training and evaluation data.

Training data in vsrlab is a pure function of the sample index, and the sampler below decides
which indices a step sees from ``(seed, epoch, position)`` alone. Saving the position in the
checkpoint (through Lightning's stateful-dataloader hooks) therefore lets a resumed run see
exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch.distributed as dist
from torch.utils.data import DataLoader, Sampler


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


class EpochSampler(Sampler[int]):
    """Indices of one epoch, shuffled per ``(seed, epoch)``, split across distributed ranks.

    With ``stream=True`` epoch ``e`` draws from the block ``[e*length, (e+1)*length)`` of an
    endless dataset (synthetic data), otherwise from ``[0, length)``. Rank ``r`` of ``W`` takes
    positions ``r, r+W, ...``; training drops the remainder so every rank takes as many steps
    (``drop_last``), evaluation keeps it (ranks may then differ by one sample).

    Lightning calls :meth:`set_epoch`; :meth:`skip` starts the next pass later (resume).
    """

    def __init__(
        self,
        length: int,
        shuffle: bool = True,
        seed: int = 0,
        stream: bool = False,
        drop_last: bool = True,
        world: tuple[int, int] | None = None,
    ) -> None:
        if length < 1:
            raise ValueError(f"cannot sample from an empty dataset (length {length})")
        self.length, self.shuffle, self.seed, self.stream, self.drop_last = (
            length,
            shuffle,
            seed,
            stream,
            drop_last,
        )
        self._world = world
        self.epoch = 0
        self._skip: tuple[int, int] | None = None  # (epoch, samples to skip in it)

    @property
    def world(self) -> tuple[int, int]:
        return self._world if self._world is not None else _world()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def skip(self, num_samples: int, epoch: int | None = None) -> None:
        """Skip the first ``num_samples`` of this rank's share at the next iteration, if it is of
        ``epoch`` (default: the current one). A checkpoint written after the last batch of an
        epoch resumes in the next epoch (Lightning moves on), which then starts from its beginning."""
        self._skip = (self.epoch if epoch is None else int(epoch), int(num_samples))

    def __len__(self) -> int:
        size, rank = self.world
        if self.drop_last:
            return self.length // size
        return len(range(rank, self.length, size))

    def __iter__(self) -> Iterator[int]:
        size, rank = self.world
        order = np.arange(self.length)
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.length)
        if self.stream:
            order = order + self.epoch * self.length
        mine = order[rank::size][: len(self)]
        skip, self._skip = self._skip, None
        start = skip[1] if skip is not None and skip[0] == self.epoch else 0
        return iter(mine[start:].tolist())


class ResumableDataLoader(DataLoader):
    """A DataLoader whose position survives a checkpoint (Lightning's ``state_dict`` protocol).

    ``progress`` returns how many batches of the current epoch the trainer has processed; the
    state is the epoch and that count, and loading it makes the next pass skip those batches.
    Counting what the trainer processed, rather than what the loader yielded, keeps prefetched
    batches out of the count.
    """

    def __init__(self, *args: Any, progress: Callable[[], int] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.progress = progress
        if not isinstance(self.sampler, EpochSampler):
            raise TypeError("ResumableDataLoader needs an EpochSampler")

    def state_dict(self) -> dict[str, int]:
        batches = self.progress() if self.progress is not None else 0
        return {"epoch": self.sampler.epoch, "samples": batches * (self.batch_size or 1)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.set_epoch(state["epoch"])
        self.sampler.skip(state["samples"], epoch=state["epoch"])
