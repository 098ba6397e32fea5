"""Run identity, config printing and the results file of a run directory."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import rich
import rich.syntax
import rich.tree
from omegaconf import DictConfig, OmegaConf
from rich.table import Table

from vsrlab.utils.io import atomic_write


def run_id(output_dir: str | os.PathLike, log_dir: str | os.PathLike) -> str:
    """A W&B-safe id derived from the run directory relative to the log directory.

    The same directory always gives the same id, so a resumed run logs into the same W&B run.
    """
    try:
        rel = Path(output_dir).resolve().relative_to(Path(log_dir).resolve())
    except ValueError:
        rel = Path(output_dir)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", rel.as_posix()).strip("-")
    return slug[-120:] or "run"


def print_config_tree(
    cfg: DictConfig,
    fields: tuple[str, ...] = ("data", "arch", "model", "trainer", "callbacks", "logger", "paths"),
) -> None:
    """Print the resolved config as a tree, main groups first."""
    tree = rich.tree.Tree("CONFIG", style="dim", guide_style="dim")
    names = [f for f in fields if f in cfg] + [f for f in cfg if f not in fields]
    for name in names:
        branch = tree.add(str(name), style="bold")
        value = cfg[name]
        text = OmegaConf.to_yaml(value, resolve=True) if isinstance(value, DictConfig) else str(value)
        branch.add(rich.syntax.Syntax(text, "yaml"))
    rich.print(tree)


def write_json(path: str | os.PathLike, data: dict[str, Any]) -> Path:
    """Write ``data`` as indented JSON atomically (:func:`vsrlab.utils.io.atomic_write`)."""
    with atomic_write(path, "w") as f:
        f.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return Path(path)


def results_table(results: dict[str, Any], title: str) -> Table:
    """Per-clip and mean PSNR / SSIM (and bicubic PSNR) of :meth:`VSRModule.per_clip_results` as a table."""
    table = Table(title=title)
    for column in ("clip", "frames", "PSNR", "SSIM", "bicubic PSNR"):
        table.add_column(column, justify="left" if column == "clip" else "right")
    for name, row in results["clips"].items():
        table.add_row(
            name, str(row["frames"]), f"{row['psnr']:.4f}", f"{row['ssim']:.4f}", f"{row['psnr_bicubic']:.4f}"
        )
    mean = results["mean"]
    table.add_row(
        "mean",
        str(sum(r["frames"] for r in results["clips"].values())),
        f"{mean['psnr']:.4f}",
        f"{mean['ssim']:.4f}",
        f"{mean['psnr_bicubic']:.4f}",
        style="bold",
    )
    return table
