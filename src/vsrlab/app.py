"""What every vsrlab app shares: the config directory, the process set-up each entry point's
``main()`` does explicitly (:func:`init`), and the per-run settings of ``cfg.extras``
(:func:`setup_run`). Importing vsrlab changes nothing in the process."""

from __future__ import annotations

import warnings
from pathlib import Path

from omegaconf import DictConfig

from vsrlab.data.process import configure_process
from vsrlab.run.snapshot import code_state
from vsrlab.utils.console import print_config_tree
from vsrlab.utils.ddp import install_rank_command, process_rank
from vsrlab.utils.resolvers import register_resolvers
from vsrlab.utils.system import keep_freed_memory

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")
#: command-line keys of earlier versions: ``{app: {old key: new key}}`` (``*``: every app)
RENAMED_KEYS = {
    "*": {"model.metrics": "model.protocol"},
    "infer": {"ckpt": "ckpt_path", "chunk_size": "frames_per_chunk"},
}


def init() -> None:
    """Set up this process for vsrlab's apps (idempotent): the OmegaConf resolvers the configs use,
    the command Lightning starts extra DDP ranks with, and the process settings of the data layer
    (:func:`vsrlab.utils.system.configure_process`); it records the code's git state as imported
    (:func:`vsrlab.run.snapshot.code_state`)."""
    code_state()
    register_resolvers()
    install_rank_command()
    configure_process()


def translate_renamed_keys(argv: list[str], app: str) -> list[str]:
    """Command-line overrides with the keys of earlier versions (:data:`RENAMED_KEYS`) renamed, each
    with a warning, so that users' scripts keep working."""
    renamed = {**RENAMED_KEYS["*"], **RENAMED_KEYS.get(app, {})}
    out = []
    for arg in argv:
        prefix = arg[: len(arg) - len(arg.lstrip("+~"))]
        key, sep, value = arg[len(prefix) :].partition("=")
        for old, new in renamed.items():
            if key == old or key.startswith(old + "."):
                arg = f"{prefix}{new}{key[len(old) :]}{sep}{value}"
                warnings.warn(f"`{old}` is now `{new}`: use {arg}", FutureWarning, stacklevel=2)
                break
        out.append(arg)
    return out


def setup_run(cfg: DictConfig) -> None:
    """Process-wide settings from ``cfg.extras``."""
    extras = cfg.get("extras") or {}
    if extras.get("cpu_malloc_cache"):
        keep_freed_memory()
    if extras.get("ignore_warnings"):
        warnings.filterwarnings("ignore")
    if extras.get("print_config") and process_rank() == 0:
        print_config_tree(cfg)
