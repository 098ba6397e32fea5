"""Hydra sweeper ``hydra/sweeper=vsrlab``: Hydra's basic grid sweeper with stable job directories.

Each job runs in ``<sweep dir>/<swept values>`` (:func:`vsrlab.run.identity.job_subdir`) instead of
``<sweep dir>/<job number>``; jobs whose ``done`` marker exists are not launched again, and
``sweep.json`` records the grid and every launch. Lives in ``hydra_plugins`` because Hydra only
instantiates sweepers found there.
"""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobStatus
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from vsrlab.cluster.slurm import JobLost
from vsrlab.run import is_done, plan_jobs, record_job_states, update_manifest
from vsrlab.run.progress import SweepProgress
from vsrlab.utils.text import describe_error

log = logging.getLogger(__name__)


class SweepJobsFailed(RuntimeError):
    """Jobs of a sweep that failed or were lost, each named with what ended it."""


def failure_message(subdir: str, error: BaseException) -> str:
    """``<subdir>: <what ended it>`` (the launcher's messages already start with the job's name)."""
    text = str(error)
    return text if text.startswith(subdir) else f"{subdir}: {describe_error(error)}"


@dataclass
class StableSweeperConf:
    _target_: str = "hydra_plugins.vsrlab_sweeper.vsrlab_sweeper.StableSweeper"
    # jobs launched at once (null: all); the submitit launchers submit each batch as one array
    max_batch_size: int | None = None
    # sweeps defined in config: {key: "v1,v2,..."} (experiment files), as Hydra's basic sweeper
    params: dict[str, str] | None = None
    # do not launch jobs whose directory holds a `done` marker
    skip_finished: bool = True


ConfigStore.instance().store(group="hydra/sweeper", name="vsrlab", node=StableSweeperConf, provider="vsrlab")


class StableSweeper(BasicSweeper):
    """Grid sweeper whose jobs are named by their swept values and skipped once finished."""

    def __init__(
        self,
        max_batch_size: int | None = None,
        params: dict[str, str] | None = None,
        skip_finished: bool = True,
    ) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.skip_finished = skip_finished

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        # Hydra does not set this in the sweeping process, and the sweep name resolves through it
        # (vsrlab.engine.resolvers.default_run_name names a multirun after its experiment) as soon
        # as the launcher is instantiated
        HydraConfig.instance().set_config(config)
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def offset_axes(self, swept_keys: list[str]) -> dict[str, str] | None:
        """``{'groups': key, 'offsets': key}`` when the sweep varies both G and N of the configured
        architecture (its contract's ``offset_axes``: EDVR's ``deformable_groups`` / ``num_offsets``,
        TDAN's ``deform_groups`` / ``num_offsets``), for the report's G x N heatmaps."""
        target = OmegaConf.select(self.config, "arch._target_", default=None)
        if target is None or "arch" in swept_keys:
            return None
        from hydra.utils import get_class

        from vsrlab.archs.contract import offset_axes

        axes = offset_axes(get_class(str(target)))
        if not axes:
            return None
        groups, offsets = (f"arch.{name}" for name in axes)
        if groups not in swept_keys or offsets not in swept_keys:
            return None
        return {"groups": groups, "offsets": offsets}

    def sweep(self, arguments: list[str]) -> Any:
        assert self.config is not None and self.launcher is not None and self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides([*self._parse_config(), *arguments])
        swept_keys = [o.get_key_element().lstrip("+~") for o in overrides if o.is_sweep_override()]
        jobs = plan_jobs(self.split_arguments(overrides, None)[0], swept_keys)

        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        skipped = [j for j in jobs if self.skip_finished and is_done(sweep_dir / j["subdir"])]
        todo = [j for j in jobs if j not in skipped]
        update_manifest(
            sweep_dir,
            sweep_dir.name,
            swept_keys,
            jobs,
            [j["subdir"] for j in todo],
            [j["subdir"] for j in skipped],
            axes=self.offset_axes(swept_keys),
        )
        log.info(
            f"sweep {sweep_dir}: {len(jobs)} jobs, {len(skipped)} finished (skipped), {len(todo)} to run"
        )
        for job in skipped:
            log.info(f"\tfinished, skipped: {job['subdir']}")

        batch = [[*j["args"], f"hydra.sweep.subdir='{j['subdir']}'"] for j in todo]
        size = self.max_batch_size or len(batch) or 1
        self.overrides = [batch[i : i + size] for i in range(0, len(batch), size)]
        self.batch_index = 0
        returns = []
        initial_job_idx = 0
        failures: dict[str, str] = {}
        lost: set[str] = set()
        while not self.is_done():
            chunk = self.get_job_batch()
            self.validate_batch_is_legal(chunk)
            subdirs = [j["subdir"] for j in todo[initial_job_idx : initial_job_idx + len(chunk)]]
            results: Any = []
            try:
                with SweepProgress(sweep_dir, subdirs, log.info):
                    results = self.launcher.launch(chunk, initial_job_idx=initial_job_idx)
                for subdir, result in zip(subdirs, results, strict=True):
                    if result.status == JobStatus.FAILED:
                        failures[subdir] = failure_message(subdir, result._return_value)
                        if isinstance(result._return_value, JobLost):
                            lost.add(subdir)
            finally:  # final state and pre-emptions of each job, also when the launch was interrupted
                record_job_states(sweep_dir, subdirs, failures, lost)
            initial_job_idx += len(chunk)
            returns.append(results)
        if failures:
            raise SweepJobsFailed(
                f"{len(failures)} of {len(jobs)} jobs of {sweep_dir} did not finish:\n  "
                + "\n  ".join(m.replace("\n", "\n    ") for m in failures.values())
                + "\na relaunch of the same command resumes lost and pre-empted jobs from their checkpoints"
            )
        return returns
