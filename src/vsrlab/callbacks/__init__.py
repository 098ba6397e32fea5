"""Lightning callbacks."""

from vsrlab.callbacks.images import EvaluationImages
from vsrlab.callbacks.last_checkpoint import LastCheckpoint
from vsrlab.callbacks.offset_monitor import OffsetMonitor
from vsrlab.callbacks.preemption import PreemptionCheckpoint
from vsrlab.callbacks.progress import StepProgressBar
from vsrlab.callbacks.status import StatusFile

__all__ = [
    "EvaluationImages",
    "LastCheckpoint",
    "OffsetMonitor",
    "PreemptionCheckpoint",
    "StatusFile",
    "StepProgressBar",
]
