"""Lightning callbacks."""

from vsrlab.callbacks.offset_monitor import OffsetMonitor

__all__ = ["OffsetMonitor"]
