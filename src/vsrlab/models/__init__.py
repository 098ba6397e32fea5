"""LightningModules."""

from vsrlab.models.vsr_module import VSRModule

__all__ = ["VSRModule"]
