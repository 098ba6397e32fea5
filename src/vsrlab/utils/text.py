"""Text helpers shared by data loading and reports."""

from __future__ import annotations

import re
from typing import Any


def natural_key(name: str) -> list[Any]:
    """Sort key that orders digit runs by value and ignores case: ``im2 < im10``,
    ``Frame 9 < Frame 10``, ``job2 < job10``."""
    return [(0, int(t), t) if t.isdigit() else (1, 0, t.lower()) for t in re.split(r"(\d+)", name) if t]


_ERROR_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b")


def error_summary(text: str) -> str:
    """The line of a traceback that names the exception (the last such line), else its last line."""
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    named = [line for line in lines if _ERROR_LINE.match(line)]
    return (named or lines or [""])[-1]


def describe_error(error: BaseException | str) -> str:
    """What ended a job, in a line or a few: the line naming the exception of a traceback's text (as
    submitit reports a failed job), else ``<exception type>: <message>``."""
    text = str(error)
    if "Traceback (most recent call last)" in text:
        return error_summary(text)
    return f"{type(error).__name__}: {text}" if isinstance(error, BaseException) else text
