"""Text helpers shared by data loading and reports."""

from __future__ import annotations

import re
from typing import Any


def natural_key(name: str) -> list[Any]:
    """Sort key that orders digit runs by value and ignores case: ``im2 < im10``,
    ``Frame 9 < Frame 10``, ``job2 < job10``."""
    return [(0, int(t), t) if t.isdigit() else (1, 0, t.lower()) for t in re.split(r"(\d+)", name) if t]
