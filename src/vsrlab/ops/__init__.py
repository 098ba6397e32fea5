"""Operators: warping, deformable convolution as N warps, G x N deformable alignment, MATLAB's
bicubic resize, the temporal windows of sliding-window networks, patch alignment and the
windows of multi-frame self-attention."""

from vsrlab.ops.alignment import (
    DeformableAlignment,
    alignment_modules,
    offset_diversity,
    offsets_per_frame,
    record_offsets,
    sampling_positions,
)
from vsrlab.ops.attention_windows import (
    merge_windows,
    pad_to_windows,
    partition_windows,
    relative_position_index,
    shifted_window_mask,
)
from vsrlab.ops.correlation import local_correlation, pyramid_correlation
from vsrlab.ops.deform_conv import DeformConv2d, deform_conv2d, deform_sample, fuse_taps, kernel_taps
from vsrlab.ops.deform_kernel import (
    DeformKernelConv2d,
    GlobalDeformKernelConv2d,
    deform_kernel_conv2d,
    kernel_mixing,
)
from vsrlab.ops.patch_align import patch_align, patch_mean_flow
from vsrlab.ops.resize import matlab_imresize, matlab_imresize_tensor
from vsrlab.ops.warp import flow_warp, resize_flow, sample_at
from vsrlab.ops.windows import window_indices, window_reach

__all__ = [
    "DeformConv2d",
    "DeformableAlignment",
    "alignment_modules",
    "deform_conv2d",
    "deform_sample",
    "flow_warp",
    "fuse_taps",
    "kernel_taps",
    "local_correlation",
    "matlab_imresize",
    "merge_windows",
    "pad_to_windows",
    "partition_windows",
    "pyramid_correlation",
    "patch_align",
    "patch_mean_flow",
    "relative_position_index",
    "shifted_window_mask",
    "matlab_imresize_tensor",
    "offset_diversity",
    "offsets_per_frame",
    "record_offsets",
    "resize_flow",
    "sample_at",
    "sampling_positions",
    "window_indices",
    "window_reach",
    "DeformKernelConv2d",
    "GlobalDeformKernelConv2d",
    "deform_kernel_conv2d",
    "kernel_mixing",
]
