"""The implementation of ``hydra/sweeper=search`` (:mod:`hydra_plugins.vsrlab_sweeper.optuna_search`):
Optuna's Hydra sweeper with stable trial directories, a study in the sweep directory and resumption. Its
name starts with ``_`` so that Hydra's plugin scan, which runs at every start, does not import Optuna."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import optuna
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobStatus
from omegaconf import OmegaConf

from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl, create_params_from_overrides
from hydra_plugins.vsrlab_sweeper.optuna_search import STORAGE_FILE, objective, trial_subdir
from vsrlab.cluster.slurm import JobLost
from vsrlab.run import record_job_states, update_manifest
from vsrlab.run.progress import SweepProgress

log = logging.getLogger("hydra_plugins.vsrlab_sweeper.optuna_search")


class SearchSweeperImpl(OptunaSweeperImpl):
    """:class:`OptunaSweeperImpl` with stable trial directories, a study in the sweep directory and
    resumption (see the module docstring)."""

    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        # the sweep's name resolves through HydraConfig (as in the grid sweeper, StableSweeper.setup)
        HydraConfig.instance().set_config(config)
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        assert self.config is not None and self.launcher is not None
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        metric = str(self.config.get("optimized_metric") or "val/psnr")
        self.storage = self.storage or f"sqlite:///{(sweep_dir / STORAGE_FILE).resolve()}"
        self.study_name = self.study_name or sweep_dir.name

        self._process_searchspace_config()
        params_conf = [*self._parse_sweeper_params_config(), *arguments]
        distributions, fixed = create_params_from_overrides(params_conf)
        distributions = {**(self.search_space_distributions or {}), **distributions}
        for name in fixed:
            distributions.pop(name, None)
        study = optuna.create_study(
            study_name=self.study_name,
            storage=self.storage,
            sampler=self.sampler,
            directions=self._get_directions(),
            load_if_exists=True,
        )
        if study.trials:  # a relaunch: seeded as before, the sampler would repeat the first launch
            study.sampler.reseed_rng()
        finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        stale = [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
        todo = max(self.n_trials - len(finished) - len(stale), 0)
        log.info(
            f"search {sweep_dir}: study {self.study_name!r} ({self.storage}), {len(finished)} of "
            f"{self.n_trials} trials finished, {len(stale)} interrupted (resumed), {todo} new"
        )
        keys = list(distributions)

        batches = [stale[i : i + self.n_jobs] for i in range(0, len(stale), self.n_jobs)]
        failures: dict[str, str] = {}
        lost: list[str] = []
        ran = 0
        while batches or todo > 0:
            if batches:  # interrupted trials: their own values, in their own directories
                trials = batches.pop(0)
            else:
                trials = [study.ask() for _ in range(min(todo, self.n_jobs))]
                self._configure_trials(trials, distributions, fixed)  # samples each trial's values
                todo -= len(trials)
            subdirs = [trial_subdir(t.number) for t in trials]
            overrides = [[f"{k}={v}" for k, v in {**t.params, **fixed}.items()] for t in trials]
            jobs = [
                {"subdir": s, "overrides": {k: str(t.params[k]) for k in keys}}
                for s, t in zip(subdirs, trials, strict=True)
            ]
            update_manifest(sweep_dir, sweep_dir.name, keys, jobs, subdirs, [])
            launched = [
                [*args, f"hydra.sweep.subdir='{s}'"] for s, args in zip(subdirs, overrides, strict=True)
            ]
            try:
                with SweepProgress(sweep_dir, subdirs, log.info):
                    returns = self.launcher.launch(launched, initial_job_idx=self.job_idx)
            finally:
                record_job_states(sweep_dir, subdirs, failures)
            self.job_idx += len(returns)
            for trial, subdir, ret in zip(trials, subdirs, returns, strict=True):
                if ret.status == JobStatus.FAILED and isinstance(ret._return_value, JobLost):
                    # ended without a result (a signal, a failed node): left running in the study, so
                    # that the next launch resumes it in its directory, from its checkpoint
                    failures[subdir], lost = str(ret._return_value), [*lost, subdir]
                    continue
                try:
                    if ret.status == JobStatus.FAILED:
                        raise RuntimeError(f"{subdir}: {ret._return_value}")
                    value = objective(sweep_dir / subdir, metric)
                except Exception as error:  # noqa: BLE001 - a failed trial is told, the search goes on
                    failures[subdir] = str(error)
                    study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
                    log.warning(f"trial {subdir} failed: {error}")
                    continue
                study.tell(trial.number, value)
                log.info(f"{subdir}: {metric} = {value:.4f} {trial.params}")
            record_job_states(sweep_dir, subdirs, failures, lost)
            ran += len(trials)
            if len(failures) > self.max_failure_rate * ran:
                rate = self.max_failure_rate
                raise RuntimeError(
                    f"{len(failures)} trials of {sweep_dir} failed (max_failure_rate {rate}):\n  "
                    + "\n  ".join(failures.values())
                    + ("\na relaunch of the same command resumes the lost ones" if lost else "")
                )

        if not any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials):
            log.warning(f"search {sweep_dir}: no trial finished")
            return
        best = study.best_trial
        results = {"name": "optuna", "study": self.study_name, "metric": metric,
                   "best_trial": trial_subdir(best.number), "best_params": best.params,
                   "best_value": best.value}  # fmt: skip
        OmegaConf.save(OmegaConf.create(results), sweep_dir / "optimization_results.yaml")
        log.info(f"best trial {trial_subdir(best.number)}: {metric} = {best.value:.4f} {best.params}")
