"""Searches beyond grids (issue 25): the Optuna sweeper (hydra/sweeper=search), resumable like the grid
sweeps, with the objective read from each trial's metrics.json and its trials in sweep.json for the report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf

BIN = Path(sys.executable).parent
PARAMS = ["model.optimizer.lr", "model.offset_fidelity.loss.loss_weight"]
TINY = ["trainer.max_steps=2", "trainer.val_check_interval=2", "trainer.enable_progress_bar=false",
        "test=false", "logger=csv", "callbacks=none", "data.batch_size=2", "data.train.lq_size=[16,16]",
        "data.val.num_clips=1", "data.val.lq_size=[16,16]", "arch.num_feat=8"]  # fmt: skip


def search(log_dir: Path, n_trials: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    args = ["-m", "sweep=search_loss_weights", f"hydra.sweeper.n_trials={n_trials}",
            f"paths.log_dir={log_dir}"]  # fmt: skip
    proc = subprocess.run([str(BIN / "vsrlab-train"), *args, *TINY], capture_output=True, text=True, env=env,
                          timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def trials(sweep: Path) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=sweep.name, storage=f"sqlite:///{sweep / 'optuna.db'}")
    return sorted(study.trials, key=lambda t: t.number)


@pytest.mark.slow  # over 20 s on 2 cores (docs/development.md)
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_search_reads_objectives_from_metrics_and_resumes(tmp_path):
    sweep = tmp_path / "train" / "multiruns" / "search_loss_weights"
    search(tmp_path, 2)
    done = trials(sweep)
    assert [(t.number, t.state.name) for t in done] == [(0, "COMPLETE"), (1, "COMPLETE")]
    for t in done:
        job = sweep / f"trial={t.number}"
        assert t.value == json.loads((job / "metrics.json").read_text())["val"]["val/psnr_best"]
        cfg = OmegaConf.load(job / "resolved_config.yaml")
        assert cfg.model.optimizer.lr == t.params[PARAMS[0]]
        assert cfg.model.offset_fidelity.loss.loss_weight == t.params[PARAMS[1]]
    manifest = json.loads((sweep / "sweep.json").read_text())
    assert manifest["swept_keys"] == PARAMS
    assert [j["subdir"] for j in manifest["jobs"]] == ["trial=0", "trial=1"]
    assert [j["state"] for j in manifest["jobs"]] == ["done", "done"]
    best = OmegaConf.load(sweep / "optimization_results.yaml")
    assert best.best_value == max(t.value for t in done) and best.metric == "val/psnr_best"
    stamps = {p: p.stat().st_mtime_ns for p in sweep.glob("trial=*/metrics.json")}

    # an interrupted launch leaves a trial running: the next launch runs it again with its own values
    study = optuna.load_study(study_name=sweep.name, storage=f"sqlite:///{sweep / 'optuna.db'}")
    stale = study.ask()
    lr = stale.suggest_float(PARAMS[0], 1e-4, 1e-2, log=True)
    stale.suggest_float(PARAMS[1], 1e-3, 1.0, log=True)
    proc = search(tmp_path, 4)  # the total: 2 finished, 1 interrupted, 1 new
    assert "2 of 4 trials finished, 1 interrupted (resumed), 1 new" in proc.stdout + proc.stderr
    after = trials(sweep)
    assert [(t.number, t.state.name) for t in after] == [(i, "COMPLETE") for i in range(4)]
    assert OmegaConf.load(sweep / "trial=2" / "resolved_config.yaml").model.optimizer.lr == lr
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # finished trials were not run again
    assert sorted(p.name for p in sweep.glob("trial=*")) == [f"trial={i}" for i in range(4)]
    assert after[3].params != after[0].params  # the relaunch's sampler does not repeat the first launch
