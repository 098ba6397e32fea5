"""Datasets, degradations and the LightningDataModule."""

from vsrlab.data.datamodule import VSRDataModule
from vsrlab.data.degradations import (
    bicubic_downsample,
    blur_downsample,
    degrade,
    matlab_imresize,
    matlab_imresize_tensor,
)
from vsrlab.data.frames import (
    DataError,
    FolderStore,
    LmdbStore,
    list_frames,
    open_store,
    read_flo,
    read_image,
    write_flo,
)
from vsrlab.data.sampling import EpochSampler, ResumableDataLoader, window_indices
from vsrlab.data.synthetic import SyntheticVideoDataset
from vsrlab.data.video import VideoDataset

__all__ = [
    "DataError",
    "FolderStore",
    "LmdbStore",
    "VideoDataset",
    "blur_downsample",
    "degrade",
    "list_frames",
    "open_store",
    "read_flo",
    "read_image",
    "write_flo",
    "EpochSampler",
    "ResumableDataLoader",
    "SyntheticVideoDataset",
    "VSRDataModule",
    "bicubic_downsample",
    "matlab_imresize",
    "matlab_imresize_tensor",
    "window_indices",
]
