"""What every vsrlab app does first: the config directory, the process set-up each entry point's
``main()`` does explicitly (:func:`init`), the refusal of renamed keys, and the per-run settings of
``cfg.extras`` (:func:`setup_run`). Importing vsrlab changes nothing in the process."""

from __future__ import annotations

import warnings
from pathlib import Path

from omegaconf import DictConfig

from vsrlab.data.process import configure_process
from vsrlab.engine.ddp import install_rank_command
from vsrlab.engine.resolvers import register_resolvers
from vsrlab.run.snapshot import code_state
from vsrlab.utils.console import print_config_tree
from vsrlab.utils.ddp import process_rank
from vsrlab.utils.system import keep_freed_memory

CONFIG_DIR = str(Path(__file__).resolve().parents[3] / "conf")
#: the module extra DDP ranks of a training job run (``python -m``): ``vsrlab-train``'s entry point
TRAIN_MODULE = "vsrlab.cli.train"
#: command-line keys of earlier versions: ``{app: {old key: new key}}`` (``*``: every app)
RENAMED_KEYS = {
    "*": {
        "model.metrics": "model.protocol",
        "model.evaluation.chunk_size": "model.evaluation.windows_per_forward",
    },
    "infer": {"ckpt": "ckpt_path", "chunk_size": "frames_per_chunk"},
}


class RenamedKeyError(ValueError):
    """A command-line key of an earlier version; the message names the key that replaced it."""


def init(rank_module: str = TRAIN_MODULE) -> None:
    """Set up this process for vsrlab's apps (idempotent): the OmegaConf resolvers the configs use,
    the command Lightning starts extra DDP ranks with (``python -m rank_module``), and the process
    settings of the data layer (:func:`vsrlab.data.process.configure_process`); it records the code's
    git state as imported (:func:`vsrlab.run.snapshot.code_state`)."""
    code_state()
    register_resolvers()
    install_rank_command(rank_module)
    configure_process()


def refuse_renamed_keys(argv: list[str], app: str) -> None:
    """Raise :class:`RenamedKeyError` naming the new key for each override of a renamed key
    (:data:`RENAMED_KEYS`)."""
    renamed = {**RENAMED_KEYS["*"], **RENAMED_KEYS.get(app, {})}
    for arg in argv:
        key = arg.lstrip("+~").partition("=")[0]
        for old, new in renamed.items():
            if key == old or key.startswith(old + "."):
                raise RenamedKeyError(f"`{old}` was renamed: use `{new}{key[len(old) :]}` ({arg!r})")


def setup_run(cfg: DictConfig) -> None:
    """Process-wide settings from ``cfg.extras``."""
    extras = cfg.get("extras") or {}
    if extras.get("cpu_malloc_cache"):
        keep_freed_memory()
    if extras.get("ignore_warnings"):
        warnings.filterwarnings("ignore")
    if extras.get("print_config") and process_rank() == 0:
        print_config_tree(cfg)
