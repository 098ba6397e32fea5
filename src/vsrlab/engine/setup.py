"""What every vsrlab app does first: the config directory, the process set-up each entry point's
``main()`` does explicitly (:func:`init`), the refusal of renamed keys, and the per-run settings of
``cfg.extras`` (:func:`setup_run`). Importing vsrlab changes nothing in the process."""

from __future__ import annotations

import warnings
from pathlib import Path

from hydra.utils import get_class
from omegaconf import DictConfig

from vsrlab.archs.contract import offset_axes
from vsrlab.data.process import configure_process
from vsrlab.engine.ddp import install_rank_command
from vsrlab.engine.paths import CONFIG_DIR
from vsrlab.engine.resolvers import register_resolvers
from vsrlab.run.snapshot import code_state
from vsrlab.utils.console import print_config_tree, quiet_third_party
from vsrlab.utils.ddp import process_rank
from vsrlab.utils.system import keep_freed_memory

#: the module extra DDP ranks of a training job run (``python -m``): ``vsrlab-train``'s entry point
TRAIN_MODULE = "vsrlab.cli.train"
#: command-line keys of earlier versions: ``{app: {old key: new key}}`` (``*``: every app)
RENAMED_KEYS = {
    "*": {
        "model.metrics": "model.protocol",
        "model.evaluation.chunk_size": "model.evaluation.windows_per_forward",
    },
    "infer": {"ckpt": "ckpt_path", "chunk_size": "frames_per_chunk"},
    # the rows of a paper's table moved under row/<table>
    "train": {"bench_variant": "row/alignment_benchmark", "dksan_variant": "row/dksan_ablation",
              "vsrt_alignment": "row/vsrt_alignment"},
}  # fmt: skip


#: the argparse options and positional argument of the apps' earlier command lines, and their keys
EARLIER_FLAGS = {
    "report": {"--out": "out", "--metric": "metric", "--baseline": "baseline", "": "sweep_dir"},
    "export": {"-o": "output", "--output": "output", "": "source"},
}
#: Hydra's own options that take a value (the value is not a positional argument)
_HYDRA_VALUE_OPTIONS = {"--cfg", "-c", "--package", "-p", "--info", "-i", "--config-path", "-cp",
                        "--config-name", "-cn", "--config-dir", "-cd", "--experimental-rerun"}  # fmt: skip


class RenamedKeyError(ValueError):
    """A command-line key of an earlier version; the message names the key that replaced it."""


def init(rank_module: str = TRAIN_MODULE) -> None:
    """Set up this process for vsrlab's apps (idempotent): the OmegaConf resolvers the configs use,
    the command Lightning starts extra DDP ranks with (``python -m rank_module``), and the process
    settings of the data layer (:func:`vsrlab.data.process.configure_process`); it records the code's
    git state as imported (:func:`vsrlab.run.snapshot.code_state`)."""
    code_state()
    quiet_third_party()
    register_resolvers()
    install_rank_command(rank_module)
    configure_process()


def refuse_renamed_keys(argv: list[str], app: str) -> None:
    """Raise :class:`RenamedKeyError` naming the new key for each override of a renamed key
    (:data:`RENAMED_KEYS`), and for the options and positional argument of an earlier argparse command
    line (:data:`EARLIER_FLAGS`)."""
    renamed = {**RENAMED_KEYS["*"], **RENAMED_KEYS.get(app, {})}
    sweeps = {p.stem for p in (Path(CONFIG_DIR) / "sweep").glob("*.yaml")}
    flags = EARLIER_FLAGS.get(app, {})
    for previous, arg in zip(["", *argv], argv, strict=False):
        flag, _, value = arg.partition("=")
        positional = "=" not in arg and not arg.startswith("-") and previous not in _HYDRA_VALUE_OPTIONS
        if flag in flags or (positional and "" in flags):
            key = flags[flag] if flag in flags else flags[""]
            given = value if flag in flags else arg
            raise RenamedKeyError(
                f"vsrlab-{app} takes key=value arguments: use `{key}={given or '...'}` ({arg!r})"
            )
        key, _, value = arg.lstrip("+~").partition("=")
        for old, new in renamed.items():
            if key == old or key.startswith(old + "."):
                raise RenamedKeyError(f"`{old}` was renamed: use `{new}{key[len(old) :]}` ({arg!r})")
        moved = [v for v in value.split(",") if v in sweeps] if key == "experiment" else []
        if moved:  # sweeps were experiment files before they got their own group
            raise RenamedKeyError(f"{', '.join(moved)}: a sweep, not a recipe: use `sweep={value}` ({arg!r})")


def run_summary(cfg: DictConfig, app: str) -> str:
    """A few lines on what a run is: its arch (with G x N where the arch has them), data, steps or
    checkpoint, and run directory (``extras.print_config=true`` prints the whole config instead)."""

    lines = []
    arch = cfg.get("arch") or {}
    target = str(arch.get("_target_", "?"))
    name = target.rsplit(".", 1)[-1]
    try:
        axes = offset_axes(get_class(target))
    except Exception:  # noqa: BLE001 - a summary never stops a run
        axes = None
    if axes and all(a in arch for a in axes):
        name += f" (G={arch[axes[0]]} x N={arch[axes[1]]})"
    if cfg.get("ckpt_path") not in (None, "auto"):
        name += f", checkpoint {cfg.ckpt_path}"
    lines.append(f"arch   {name}")
    data = cfg.get("data") or {}
    split = data.get("train") if app == "train" else data.get("test")
    if isinstance(split, DictConfig) and "_target_" in split:
        source = split.get("root") or split.get("dataset") or ""
        lines.append(f"data   {str(split._target_).rsplit('.', 1)[-1]} {source}".rstrip())
    if app == "train" and "trainer" in cfg:
        every = cfg.trainer.get("val_check_interval")
        lines.append(f"steps  {cfg.trainer.get('max_steps')} (validation every {every})")
    paths = cfg.get("paths") or {}
    if paths.get("output_dir"):
        lines.append(f"run    {paths.output_dir}")
    return "\n".join(
        f"vsrlab-{app}: {line}" if i == 0 else f"{' ' * (len(app) + 9)}{line}" for i, line in enumerate(lines)
    )


def setup_run(cfg: DictConfig, app: str = "train") -> None:
    """Process-wide settings from ``cfg.extras``; on rank 0 the run's summary (:func:`run_summary`), or
    its whole config with ``extras.print_config=true``."""
    extras = cfg.get("extras") or {}
    if extras.get("cpu_malloc_cache"):
        keep_freed_memory()
    if extras.get("ignore_warnings"):
        warnings.filterwarnings("ignore")
    if process_rank() == 0:
        if extras.get("print_config"):
            print_config_tree(cfg)
        else:
            print(run_summary(cfg, app), flush=True)
