"""Image quality metrics with the VSR literature's conventions, and their torchmetrics wrappers."""

from vsrlab.metrics.image import calculate_psnr, calculate_ssim, rgb_to_y
from vsrlab.metrics.video import ClipAveragedMetric, VideoPSNR, VideoSSIM

__all__ = ["ClipAveragedMetric", "VideoPSNR", "VideoSSIM", "calculate_psnr", "calculate_ssim", "rgb_to_y"]
