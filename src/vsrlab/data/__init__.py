"""Datasets, degradations and the LightningDataModule."""

from vsrlab.data.datamodule import VSRDataModule
from vsrlab.data.degradations import bicubic_downsample, blur_downsample, degrade
from vsrlab.data.errors import DataError
from vsrlab.data.flow_io import read_flo, write_flo
from vsrlab.data.image_io import list_frames, read_image
from vsrlab.data.process import configure_process
from vsrlab.data.sampling import EpochSampler, ResumableDataLoader
from vsrlab.data.stores import FolderStore, LmdbStore, open_store
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
    "configure_process",
]
