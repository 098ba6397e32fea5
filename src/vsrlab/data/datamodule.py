"""One LightningDataModule for every VSR dataset: datasets come from the config.

Training uses :class:`EpochSampler` in a :class:`ResumableDataLoader`, so runs resume at the
exact batch they stopped at and shard across DDP ranks themselves (set the trainer's
``use_distributed_sampler=False``, as ``conf/trainer/default.yaml`` does). Validation and test
loaders yield one whole clip per batch.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from hydra.utils import instantiate
from torch.utils.data import DataLoader, Dataset, default_collate

from vsrlab.data.sampling import EpochSampler, ResumableDataLoader


def collate_skipping_none(items: list[Any]) -> Any:
    """``default_collate`` of the items that are not ``None`` (bad clips skipped), or ``None``."""
    items = [item for item in items if item is not None]
    return default_collate(items) if items else None


class VSRDataModule(pl.LightningDataModule):
    """Wraps train / val / test datasets with VSR loading conventions.

    Args:
        train, val, test: datasets, or their configs (instantiated when first used); ``test``
            defaults to ``val``.
        batch_size: training clips per step and process.
        num_workers: loader worker processes (0 loads in the main process).
        pin_memory, persistent_workers, prefetch_factor: DataLoader options.
        shuffle: shuffle training samples (per ``(seed, epoch)``).
        stream: the training dataset is endless (every index is a new clip) and each epoch
            draws ``len(train)`` fresh samples.
        seed: seed of the training order.
        protocol: the dataset's evaluation protocol (``test_y_channel``, ``crop_border``,
            ``frames``: ``all`` or ``center``, ``mirror``: recurrent nets see the clip mirrored
            in time), which the model reads from the config.
        name, root, degradation, backend, skip_bad: what the dataset is, where it lives and how
            bad clips are handled; the split configs interpolate them (``${data.root}``), the
            module only reports them.
    """

    def __init__(
        self,
        train: Dataset | None = None,
        val: Dataset | None = None,
        test: Dataset | None = None,
        batch_size: int = 8,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = True,
        prefetch_factor: int | None = 2,
        shuffle: bool = True,
        stream: bool = False,
        seed: int = 0,
        protocol: dict[str, Any] | None = None,
        name: str | None = None,
        root: str | None = None,
        degradation: str | None = None,
        backend: str | None = None,
        skip_bad: bool = False,
    ) -> None:
        super().__init__()
        self._splits: dict[str, Any] = {"train": train, "val": val, "test": test}
        self.batch_size, self.num_workers = batch_size, num_workers
        self.pin_memory, self.persistent_workers, self.prefetch_factor = (
            pin_memory,
            persistent_workers,
            prefetch_factor,
        )
        self.shuffle, self.stream, self.seed = shuffle, stream, seed
        self.protocol = dict(protocol or {})
        self.name, self.root, self.degradation, self.backend = name, root, degradation, backend
        self.skip_bad = skip_bad

    def _split(self, split: str) -> Dataset | None:
        """The dataset of ``split``, instantiated from its config on first use (``_recursive_: false``
        in the data config), so evaluating never needs the training folders to exist."""
        spec = self._splits[split]
        if spec is not None and not isinstance(spec, Dataset):
            spec = self._splits[split] = instantiate(spec)
        return spec

    @property
    def train_set(self) -> Dataset | None:
        return self._split("train")

    @property
    def val_set(self) -> Dataset | None:
        return self._split("val")

    @property
    def test_set(self) -> Dataset | None:
        """The test split, or the val split when the config has none."""
        return self._split("test") if self._splits["test"] is not None else self.val_set

    def _loader_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "num_workers": self.num_workers,
            "pin_memory": self.pin_memory,
            "collate_fn": collate_skipping_none,
        }
        if self.num_workers > 0:
            kwargs.update(persistent_workers=self.persistent_workers, prefetch_factor=self.prefetch_factor)
        return kwargs

    def _batches_processed(self) -> int:
        trainer = self.trainer
        if trainer is None:
            return 0
        return trainer.fit_loop.epoch_loop.batch_progress.current.processed

    def train_dataloader(self) -> DataLoader:
        if self.train_set is None:
            raise ValueError("this data config has no training set (data.train is null)")
        sampler = EpochSampler(len(self.train_set), shuffle=self.shuffle, seed=self.seed, stream=self.stream)
        if len(sampler) < self.batch_size:
            raise ValueError(
                f"the training set gives {len(sampler)} samples per process, fewer than "
                f"batch_size={self.batch_size}"
            )
        return ResumableDataLoader(
            self.train_set,
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=True,
            progress=self._batches_processed,
            **self._loader_kwargs(),
        )

    def _eval_loader(self, dataset: Dataset | None, split: str) -> DataLoader:
        if dataset is None:
            raise ValueError(f"this data config has no {split} set (data.{split} is null)")
        sampler = EpochSampler(len(dataset), shuffle=False, drop_last=False)
        return DataLoader(dataset, batch_size=1, sampler=sampler, **self._loader_kwargs())

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.val_set, "val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.test_set, "test")
