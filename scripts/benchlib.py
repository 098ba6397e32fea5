"""What the benchmark scripts share: writing their section of ``docs/benchmarks.md``.

The scripts write measured tables only; what the numbers mean is prose written once, in sections
of ``docs/benchmarks.md`` that no script rewrites (``## Reading ...``).
"""

from __future__ import annotations

import re
from pathlib import Path

HEADER = "# Benchmarks\n\nTables written by the scripts in `scripts/`.\n\n"


def write_section(path: Path, title: str, text: str) -> None:
    """Replace the section ``title`` (``## ...``, up to the next ``## ``) of ``path`` with ``text``,
    or append it; the rest of the file is kept."""
    old = path.read_text() if path.exists() else HEADER
    pattern = re.compile(rf"{re.escape(title)}\n.*?(?=\n## |\Z)", re.S)
    if pattern.search(old):
        new = pattern.sub(lambda _: text.rstrip("\n") + "\n", old)
    else:
        new = old.rstrip("\n") + "\n\n" + text
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new)
