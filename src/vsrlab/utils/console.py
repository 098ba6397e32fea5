"""What the apps print: a short summary of the run (or the composed config as a tree), per-clip results
as a table; and the known third-party noise dropped at its source."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import rich
import rich.syntax
import rich.tree
from omegaconf import DictConfig, OmegaConf
from rich.table import Table


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


#: third-party console lines that say nothing about the run (issue 25): message fragments per logger
NOISE_LOGS = {
    "pytorch_lightning.utilities.rank_zero": ("💡 Tip:",),
    "lightning.pytorch.utilities.rank_zero": ("💡 Tip:",),
    "pytorch_lightning.trainer.connectors.checkpoint_connector": ("`weights_only` was not set",),
}
#: third-party warnings that say nothing about the run: message patterns (regular expressions)
NOISE_WARNINGS = (
    r"The `srun` command is available on your system but is not used",
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
)


class _DropMessages(logging.Filter):
    def __init__(self, fragments: tuple[str, ...]) -> None:
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(f in message for f in self.fragments)


def quiet_third_party() -> None:
    """Drop the known third-party noise at its source (idempotent): Lightning's tips and checkpoint
    notices, the srun hint, a deprecation inside Lightning."""
    for name, fragments in NOISE_LOGS.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessages) for f in logger.filters):
            logger.addFilter(_DropMessages(fragments))
    for pattern in NOISE_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
