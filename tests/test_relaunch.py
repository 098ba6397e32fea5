"""A relaunch that `vsrlab-train` refuses (a changed config, ``ckpt_path=null`` over a checkpoint)
changes nothing in the run directory: not ``.hydra/``, not ``train.log``, no new file; an accepted
relaunch (``ckpt_path=last`` with more steps) records its config there."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import FAST
from vsrlab.run.manifest import read_hydra_overrides

BIN = Path(sys.executable).parent


def _cli(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    return subprocess.run(
        [str(BIN / "vsrlab-train"), *args], capture_output=True, text=True, timeout=300, env=env
    )


def _snapshot(folder: Path) -> dict[str, str | None]:
    """``{relative path: sha256}`` of every file under ``folder`` (hidden ones included), ``None`` for
    each directory."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None
        for p in sorted(folder.rglob("*"))
    }


def _assert_refused(args: list[str], folder: Path, before: dict[str, str | None], message: str) -> None:
    proc = _cli(args)
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert message in proc.stderr, proc.stderr[-3000:]
    after = _snapshot(folder)
    assert sorted(after) == sorted(before), "a refused relaunch added or removed files"
    changed = [name for name in before if before[name] != after[name]]
    assert not changed, f"a refused relaunch rewrote {changed}"


@pytest.mark.slow  # over 20 s on 2 cores (docs/development.md)
def test_a_refused_relaunch_leaves_the_run_directory_unchanged(tmp_path):
    args = ["run_name=r", f"paths.log_dir={tmp_path}", "test=false", *FAST]
    first = _cli(args)
    assert first.returncode == 0, first.stderr[-3000:]
    run = tmp_path / "train" / "runs" / "r"
    # .hydra/ is written by vsrlab once the run is accepted, as Hydra writes it
    config = yaml.safe_load((run / ".hydra" / "config.yaml").read_text())
    assert config["arch"]["num_feat"] == 8 and config["run_name"] == "r"
    assert yaml.safe_load((run / ".hydra" / "hydra.yaml").read_text())["hydra"]["output_subdir"] == ".hydra"
    assert read_hydra_overrides(run)["arch.num_feat"] == "8"
    before = _snapshot(run)
    assert {".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml", "train.log"} <= set(before)

    _assert_refused([*args, "arch.num_feat=16"], run, before, "arch.num_feat: 8 -> 16")
    _assert_refused(
        [*args, "ckpt_path=null"], run, before, "last.ckpt exists: resume this run with ckpt_path=last"
    )

    # an accepted relaunch with a change (logged) records its config
    more = _cli([*args, "ckpt_path=last", "trainer.max_steps=6"])
    assert more.returncode == 0, more.stderr[-3000:]
    assert yaml.safe_load((run / ".hydra" / "config.yaml").read_text())["trainer"]["max_steps"] == 6
    assert yaml.safe_load((run / "resolved_config.yaml").read_text())["trainer"]["max_steps"] == 6
    assert read_hydra_overrides(run)["trainer.max_steps"] == "6"  # the last one of the command line
    assert "trainer.max_steps: 4 -> 6" in (run / "train.log").read_text()


@pytest.mark.slow
def test_a_refused_relaunch_of_a_sweep_leaves_the_job_directory_unchanged(tmp_path):
    args = ["-m", "arch.num_offsets=9", "hydra/launcher=basic", "run_name=grid", f"paths.log_dir={tmp_path}",
            "test=false", *FAST]  # fmt: skip
    first = _cli(args)
    assert first.returncode == 0, first.stderr[-3000:]
    job = tmp_path / "train" / "multiruns" / "grid" / "job"
    assert read_hydra_overrides(job)["arch.num_offsets"] == "9"  # the report's scan mode reads it
    (job / "done").unlink()  # as if stopped before it finished: a relaunch resumes it, if the config matches
    before = _snapshot(job)
    assert {".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml", "train.log"} <= set(before)

    # the sweep reports each failed job's refusal (its last line) on stderr
    _assert_refused(
        [*args, "arch.num_feat=16"], job, before, "ckpt_path=last to continue it with the changes"
    )
    _assert_refused([*args, "ckpt_path=null"], job, before, "last.ckpt exists")
