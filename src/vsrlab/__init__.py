"""vsrlab: video super-resolution experiments on alignment, with Lightning and Hydra."""

__version__ = "0.1.0"
