"""Datasets, degradations and the LightningDataModule."""

from vsrlab.data.datamodule import VSRDataModule
from vsrlab.data.degradations import bicubic_downsample, matlab_imresize, matlab_imresize_tensor
from vsrlab.data.sampling import EpochSampler, ResumableDataLoader, window_indices
from vsrlab.data.synthetic import SyntheticVideoDataset

__all__ = [
    "EpochSampler",
    "ResumableDataLoader",
    "SyntheticVideoDataset",
    "VSRDataModule",
    "bicubic_downsample",
    "matlab_imresize",
    "matlab_imresize_tensor",
    "window_indices",
]
