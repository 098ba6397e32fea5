"""Hydra sweeper ``hydra/sweeper=search``: Optuna's Hydra sweeper (hydra-optuna-sweeper) made resumable
the way vsrlab's grid sweeps are.

- Each trial runs in ``<sweep dir>/trial=<number>`` (Optuna's trial number, unique in the study), so a
  relaunch finds its jobs again; ``sweep.json`` lists every trial with its sampled values, so
  ``vsrlab-report`` tabulates them like grid jobs.
- The study lives in ``<sweep dir>/optuna.db`` (SQLite; ``storage`` another) under the sweep's name. A
  relaunch of the same command continues it: ``n_trials`` is the total the study should reach, trials
  that finished are not run again, and trials left running by an interrupted launch (Ctrl-C, a lost
  job) are launched again with their own values in their own directories, which resume from their
  checkpoints.
- A trial's objective is read from its job's ``metrics.json`` (``val`` entry named by the config's
  ``optimized_metric``, e.g. ``val/psnr_best``), not from the process's return value, so it is the same
  whichever launcher ran the job.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper

from hydra_plugins.hydra_optuna_sweeper.config import OptunaSweeperConf
from vsrlab.run import read_json

TRIAL_PREFIX = "trial="
STORAGE_FILE = "optuna.db"


@dataclass
class SearchSweeperConf(OptunaSweeperConf):
    _target_: str = "hydra_plugins.vsrlab_sweeper.optuna_search.SearchSweeper"
    direction: Any = "maximize"
    # null: sqlite:///<sweep dir>/optuna.db, and the sweep's name as the study name
    storage: Any = None
    study_name: Any = None


ConfigStore.instance().store(group="hydra/sweeper", name="search", node=SearchSweeperConf, provider="vsrlab")


def trial_subdir(number: int) -> str:
    return f"{TRIAL_PREFIX}{number}"


def objective(job_dir: Path, metric: str) -> float:
    """``metric`` of ``job_dir/metrics.json``'s ``val`` entry (a ValueError naming it when absent)."""
    metrics = read_json(job_dir / "metrics.json") or {}
    value = (metrics.get("val") or {}).get(metric)
    if value is None:
        raise ValueError(f"{job_dir}: metrics.json has no val entry {metric!r} (optimized_metric)")
    return float(value)


class SearchSweeper(Sweeper):
    """The plugin Hydra finds (and imports at every start): it imports Optuna only when a search runs
    (:class:`hydra_plugins.vsrlab_sweeper._optuna_search.SearchSweeperImpl`, as Hydra's own Optuna
    sweeper does), so that no other command pays for it."""

    def __init__(self, **kwargs: Any) -> None:
        from hydra_plugins.vsrlab_sweeper._optuna_search import SearchSweeperImpl

        self.sweeper = SearchSweeperImpl(**kwargs)

    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        return self.sweeper.sweep(arguments)
