"""Sweeps: stable job directories, skipping finished jobs, resuming unfinished ones, the sweep files of
the seed paper's grids, DDP inside a sweep job, and checkpoints on pre-emption signals."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from pytorch_lightning.loggers import WandbLogger

from conftest import FAST, compose_config, offline_run_ids
from vsrlab.apps.evaluate import evaluate
from vsrlab.apps.train import train
from vsrlab.archs import build_arch
from vsrlab.engine import CONFIG_DIR, finish_wandb, instantiate_loggers
from vsrlab.engine.ddp import refuse_sweep_on_secondary_rank
from vsrlab.ops import alignment_modules
from vsrlab.optim.param_rules import ParamRules
from vsrlab.run import job_subdir, plan_jobs, run_id, short_keys
from vsrlab.run.resume import config_changes

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]


def _cli(args: list[str], timeout: int = 600, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "HYDRA_FULL_ERROR": "1"}
    return subprocess.run(
        [str(BIN / "vsrlab-train"), *args], capture_output=True, text=True, timeout=timeout, env=env, **kwargs
    )


# ------------------------------------------------------------------------------------- job identity
def test_job_subdirs_derive_from_swept_values_only():
    assert (
        job_subdir({"arch.deformable_groups": "8", "arch.num_offsets": "25"})
        == "deformable_groups=8,num_offsets=25"
    )
    assert job_subdir({}) == "job"
    assert job_subdir({"data": "reds/lmdb", "model.optimizer.lr": "1e-4"}) == "data=reds-lmdb,lr=1e-4"
    assert short_keys(["a.lr", "b.lr", "c.n"]) == {"a.lr": "a.lr", "b.lr": "b.lr", "c.n": "n"}
    jobs = plan_jobs(
        [["arch.num_offsets=1", "trainer.max_steps=9"], ["arch.num_offsets=9", "trainer.max_steps=9"]],
        ["arch.num_offsets"],
    )
    assert [j["subdir"] for j in jobs] == ["num_offsets=1", "num_offsets=9"]
    assert jobs[1]["overrides"] == {"arch.num_offsets": "9"}  # fixed keys are not part of the identity
    with pytest.raises(ValueError, match="same directory"):
        plan_jobs([["data=a/b"], ["data=a-b"]], ["data"])


def test_config_changes_ignore_patterns():
    stored = {"arch": {"num_feat": 8}, "paths": {"log_dir": "/a"}, "data": {"root": "/x", "batch_size": 2}}
    current = {"arch": {"num_feat": 16}, "paths": {"log_dir": "/b"}, "data": {"root": "/y", "batch_size": 2}}
    assert config_changes(stored, current, ["paths.*", "*root"]) == ["arch.num_feat: 8 -> 16"]


def test_rank_above_zero_never_launches_a_sweep(monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "1")
    with pytest.raises(RuntimeError, match="rank 1 was started with a multirun command"):
        refuse_sweep_on_secondary_rank(["vsrlab-train", "-m", "arch.num_offsets=1,9"])
    refuse_sweep_on_secondary_rank(
        ["vsrlab-train", "-cp", "job", "-cn", "resolved_config"]
    )  # a rank's own command
    monkeypatch.setenv("LOCAL_RANK", "0")
    refuse_sweep_on_secondary_rank(["vsrlab-train", "-m", "arch.num_offsets=1,9"])


# --------------------------------------------------------------------------------- the sweep files
SWEEPS = {  # experiment -> number of jobs of its grid
    "offset_diversity": 25,
    "offset_diversity_n": 6,
    "offset_fidelity_sweep": 9,
    "window_size": 3,
    "dcn_vs_decomposition": 8,
    "tdan_offsets": 3,
    "flow_networks": 3,
    "offset_fidelity_on_off": 2,
    "image_vs_feature_warping": 2,
    "sweep_demo": 4,
    "rethinking_alignment_table": 9,
    "attention_window": 4,
    "rethinking_alignment_mini": 4,
    "dksan_ablation": 4,
    "alignment_benchmark": 15,
    "alignment_benchmark_noaa": 9,
    "alignment_benchmark_warping": 9,
    "alignment_benchmark_flow_guidance": 18,
    "vsr_cnn_alignment": 2,
    "alignment_benchmark_offset_fidelity": 15,
}


def sweep_params(experiment: str) -> dict[str, list[str]]:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[f"sweep={experiment}"], return_hydra_config=True)
    GlobalHydra.instance().clear()
    parser = OverridesParser.create()  # as the sweeper parses them: values may be lists ([5,8,8],[5,16,16])
    overrides = parser.parse_overrides([f"{k}={v}" for k, v in (cfg.hydra.sweeper.params or {}).items()])
    return {o.get_key_element(): list(o.sweep_string_iterator()) for o in overrides}


def test_every_sweep_file_is_listed():
    texts = {p.stem: p.read_text() for p in (REPO / "conf" / "sweep").glob("*.yaml")}
    grids = {name for name, text in texts.items() if "/hydra/sweeper: search" not in text}
    assert grids == set(SWEEPS)  # searches (hydra/sweeper=search) have no grid: tests/test_search.py
    assert all("sweeper:" in text for text in texts.values())
    # recipes, sweeps and table rows live in separate groups: no recipe sweeps
    assert not [p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml") if "sweeper:" in p.read_text()]


@pytest.mark.parametrize("experiment", sorted(SWEEPS))
def test_every_job_of_every_sweep_composes_and_builds(tmp_path, experiment):
    params = sweep_params(experiment)
    jobs = [dict(zip(params, values, strict=True)) for values in itertools.product(*params.values())]
    assert len(jobs) == SWEEPS[experiment]
    if experiment == "offset_diversity":  # the seed paper's Fig. 16 grid
        assert params == {
            "arch.deformable_groups": ["1", "8", "16", "32", "64"],
            "arch.num_offsets": ["1", "5", "9", "15", "25"],
        }
    for i, job in enumerate(jobs):
        overrides = [f"sweep={experiment}", *(f"{k}={v}" for k, v in job.items())]
        cfg = compose_config("train", overrides, tmp_path / str(i))
        with torch.device("meta"):
            net = build_arch(cfg.arch)
        packs = [m for _, m in alignment_modules(net)]
        if "arch.num_offsets" in job:
            n = int(job["arch.num_offsets"])
            if experiment == "tdan_offsets":  # the two feature-aligning DCNs
                assert sum(m.num_offsets == n for m in packs) >= 2, job
            else:  # every alignment module is G x N: free offsets (decomposed) or a k x k DCN
                g = int(cfg.arch.deformable_groups)
                assert packs and all(m.num_offsets == n and m.offset_groups == g for m in packs), job
                base = "kernel" if job.get("arch.align_type") == "dcn" else "zero"
                assert all(m.offset_base == base for m in packs), job
        if experiment == "flow_networks":
            assert len(net.spynets) == int(job["arch.num_flows"])
        if experiment == "vsr_cnn_alignment":  # the CNN without alignment has no SPyNet to train
            aligned = job["row/vsr_cnn"] == "image_finetune"
            assert (len(net.spynets), net.warp_level) == ((1, "image") if aligned else (0, "none"))
            ParamRules(net, cfg.model.lr_mult, cfg.model.freeze)
        if experiment == "alignment_benchmark_offset_fidelity":
            row = job["row/alignment_benchmark"]
            assert bool((cfg.model.offset_fidelity or {}).get("loss")) == ("fidelity" in row)
            assert cfg.model.optimizer.lr == (1e-2 if row.endswith("high_lr") else 2e-3)
            assert row == "centre" or (not net.dcn.modulated and net.dcn.num_offsets == 9)
        if experiment == "alignment_benchmark_flow_guidance":
            row = job["row/alignment_benchmark"]
            assert cfg.model.flow_error == (1.0 if row.endswith("_err1") else 0.0)
            assert net.flow_guided == row.startswith("flow_guided")
        if experiment == "window_size":
            assert net.num_frame == int(job["arch.num_frame"]) == cfg.data.train.num_frames
        if experiment == "offset_fidelity_sweep":
            loss = cfg.model.offset_fidelity.loss
            assert (loss.loss_weight, loss.threshold) == (
                float(job["model.offset_fidelity.loss.loss_weight"]),
                float(job["model.offset_fidelity.loss.threshold"]),
            )
        if experiment == "offset_fidelity_on_off":
            assert bool((cfg.model.offset_fidelity or {}).get("loss")) == (job["offset_fidelity"] == "spynet")


# ------------------------------------------------------------------ skip finished, resume unfinished
SWEEP_ARGS = ["-m", "arch.num_offsets=1,9", "hydra/launcher=basic", "test=false", *FAST]


@pytest.mark.slow  # over 20 s on 2 cores (docs/development.md)
def test_relaunched_sweep_skips_finished_jobs_and_resumes_unfinished_ones(tmp_path):
    args = [
        *SWEEP_ARGS,
        "run_name=grid",
        f"paths.log_dir={tmp_path}",
        "logger=default",
        "callbacks.model_checkpoint.save_top_k=-1",
    ]  # keep the step-2 checkpoint
    first = _cli(args)
    assert first.returncode == 0, first.stderr[-3000:]
    sweep = tmp_path / "train" / "multiruns" / "grid"
    a, b = sweep / "num_offsets=1", sweep / "num_offsets=9"
    for job in (a, b):
        assert (job / "done").is_file() and (job / "resolved_config.yaml").is_file()
        assert json.loads((job / "git.json").read_text())["commit"]
        assert (job / "git.diff").is_file() and (job / ".hydra" / "overrides.yaml").is_file()
        metrics = json.loads((job / "metrics.json").read_text())
        assert metrics["global_step"] == 4 and len(metrics["val_history"]) == 2
        assert metrics["params"]["total"] > 0
    assert json.loads((a / "metrics.json").read_text())["offset_diversity"] == 0.0  # N = 1
    assert json.loads((b / "metrics.json").read_text())["offset_diversity"] > 0.0
    # job b as if killed after step 2: last.ckpt of step 2, no final metrics, no done marker
    uninterrupted = torch.load(b / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)[
        "state_dict"
    ]
    (b / "checkpoints" / "last.ckpt").write_bytes(
        next((b / "checkpoints").glob("best_step0000002_*.ckpt")).read_bytes()
    )
    (b / "done").unlink()
    (b / "metrics.json").unlink()
    a_mtime = (a / "metrics.json").stat().st_mtime_ns

    second = _cli(args)
    assert second.returncode == 0, second.stderr[-3000:]
    manifest = json.loads((sweep / "sweep.json").read_text())
    assert [j["subdir"] for j in manifest["jobs"]] == ["num_offsets=1", "num_offsets=9"]
    assert manifest["launches"][-1]["skipped"] == ["num_offsets=1"]
    assert manifest["launches"][-1]["launched"] == ["num_offsets=9"]
    assert (a / "metrics.json").stat().st_mtime_ns == a_mtime
    status = json.loads((b / "status.json").read_text())
    assert status["state"] == "done" and [s["start_step"] for s in status["sessions"]] == [0, 2]  # resumed
    assert (b / "done").is_file() and json.loads((b / "metrics.json").read_text())["global_step"] == 4
    resumed = torch.load(b / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)[
        "state_dict"
    ]
    for key in uninterrupted:
        torch.testing.assert_close(resumed[key], uninterrupted[key], rtol=0, atol=1e-7)
    runs = sorted((b / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and offline_run_ids(runs) == [run_id(b, tmp_path)] * 2, "the same W&B run continues"

    third = _cli(args)  # everything finished: nothing launched
    assert third.returncode == 0 and "2 finished (skipped), 0 to run" in third.stdout + third.stderr


def test_wandb_run_of_a_sweep_job_group_name_tags_config_and_git(make_cfg, tmp_path):
    cfg = make_cfg(overrides=["logger=default", "arch.num_offsets=9"])
    context = {"sweep": "grid", "job": "num_offsets=9", "swept": {"arch.num_offsets": "9"}}
    try:
        loggers = instantiate_loggers(cfg, context, {"commit": "0123abc", "dirty": False})
        run = next(lg for lg in loggers if isinstance(lg, WandbLogger)).experiment
        assert (run.group, run.job_type, run.name) == ("grid", "train", "grid/num_offsets=9")
        assert set(run.tags) == {"dev", "num_offsets=9"}
        assert run.id == run_id(cfg.paths.output_dir, cfg.paths.log_dir) == "run"
        assert run.config["swept"] == {"arch.num_offsets": "9"} and run.config["git"]["commit"] == "0123abc"
        assert run.config["config"]["arch"]["num_offsets"] == 9  # the resolved config
        assert run.settings.mode in ("offline", "dryrun")  # wandb names offline mode "dryrun" internally
    finally:
        finish_wandb()


def test_resume_refuses_a_changed_config_and_skips_a_finished_run(make_cfg, tmp_path):
    first = train(make_cfg(overrides=["test=false"]))
    again = train(make_cfg(overrides=["test=false"]))  # finished: not trained again
    assert again == json.loads((tmp_path / "run" / "metrics.json").read_text()) and again["global_step"] == 4
    (tmp_path / "run" / "done").unlink()
    with pytest.raises(ValueError, match=r"arch.num_feat: 8 -> 12"):
        train(make_cfg(overrides=["test=false", "arch.num_feat=12"]))
    resumed = train(
        make_cfg(overrides=["test=false", "data.num_workers=0", "trainer.enable_progress_bar=true"])
    )
    assert resumed["global_step"] == first["global_step"]  # ignored keys may change


# ---------------------------------------------------------------------------------------------- DDP
@pytest.mark.slow  # over 20 s on 2 cores (docs/development.md)
def test_ddp_job_of_a_sweep_two_cpu_ranks_share_the_job_dir_and_reduce_metrics(tmp_path):
    args = [
        "-m",
        "arch.num_offsets=9",
        "hydra/launcher=basic",
        "run_name=ddp",
        f"paths.log_dir={tmp_path}",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.benchmark=false",
        *FAST,
        "data.val.num_clips=3",
    ]
    proc = _cli(args)
    assert proc.returncode == 0, proc.stderr[-4000:]
    sweep = tmp_path / "train" / "multiruns" / "ddp"
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert jobs == ["job"], f"rank 1 must not relaunch the sweep: {jobs}"
    assert len(json.loads((sweep / "sweep.json").read_text())["launches"]) == 1
    job = sweep / "job"
    assert (job / "train.log").is_file() and (job / "rank1.log").is_file()  # both ranks log into the job
    assert "training" in (job / "rank1.log").read_text()
    metrics = json.loads((job / "metrics.json").read_text())
    assert set(metrics["test"]["clips"]) == {
        "val_00000",
        "val_00001",
        "val_00002",
    }  # gathered from both ranks
    assert set(metrics["test"]["data"]["clips"]) == set(metrics["test"]["clips"])  # fingerprints too
    assert metrics["test"]["data"]["fingerprint"]["clips"] == 3

    # a single process scoring the final weights on the same clips gives the DDP numbers
    cfg = compose_config(
        "eval",
        [
            "extras.print_config=false",
            f"ckpt_path={job / 'checkpoints' / 'last.ckpt'}",
            "data.val.num_clips=3",
            "data.val.num_frames=5",
            "data.val.lq_size=[24,24]",
            "trainer.enable_progress_bar=false",
            "logger=csv",
        ],
        tmp_path / "eval",
    )
    single = evaluate(cfg)
    assert metrics["val"]["val/psnr"] == pytest.approx(single["mean"]["psnr"], abs=1e-4)
    assert metrics["test"]["mean"]["ssim"] == pytest.approx(single["mean"]["ssim"], abs=1e-6)
    for name, row in single["clips"].items():
        assert metrics["test"]["clips"][name]["psnr"] == pytest.approx(row["psnr"], abs=1e-6)


def render_sbatch(tmp_path, monkeypatch, overrides: list[str]) -> tuple[str, object, str]:
    """The sbatch script submitit writes for conf/hydra/launcher/slurm.yaml with ``overrides``, after
    submitit's own parameter checks, as the submitit launcher passes the config (a fake `srun`
    stands in for a cluster); returns (script, executor, submitit folder)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import instantiate

    (tmp_path / "bin").mkdir(exist_ok=True)
    (tmp_path / "bin" / "srun").write_text("#!/bin/sh\nexit 0\n")
    (tmp_path / "bin" / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                "hydra/launcher=slurm",
                f"paths.log_dir={tmp_path}",
                "hydra.mode=MULTIRUN",
                *overrides,
            ],
            return_hydra_config=True,
        )
    GlobalHydra.instance().clear()
    HydraConfig.instance().set_config(cfg)
    launcher = instantiate(cfg.hydra.launcher)
    assert type(launcher).__module__ == "hydra_plugins.vsrlab_launcher.vsrlab_launcher"
    executor = launcher.make_executor()  # submitit's parameter checks
    folder = str(launcher.params["submitit_folder"])
    return (
        executor._make_submission_file_text(executor._submitit_command_str, "uid"),
        executor,
        folder,
    )


@pytest.mark.parametrize(
    "trainer,lines,absent",
    [
        (["trainer=default"], ["--nodes=1", "--ntasks-per-node=1"], "--gpus-per-node"),
        (["trainer=gpu"], ["--nodes=1", "--ntasks-per-node=1", "--gpus-per-node=1"], None),
        (
            ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"],
            ["--nodes=1", "--ntasks-per-node=2"],
            "--gpus-per-node",
        ),
    ],
    ids=["cpu", "gpu", "ddp-cpu"],
)
def test_slurm_launcher_works_with_every_trainer_config(tmp_path, monkeypatch, trainer, lines, absent):
    sbatch, _, _ = render_sbatch(tmp_path, monkeypatch, ["sweep=sweep_demo", *trainer])
    for line in lines:
        assert f"#SBATCH {line}\n" in sbatch, (line, sbatch)
    assert absent is None or absent not in sbatch


def test_slurm_launcher_config_renders_one_task_per_gpu_and_requeue(tmp_path, monkeypatch):
    """conf/hydra/launcher/slurm.yaml through submitit's own parameter checks and sbatch rendering, as
    the submitit launcher passes it (a fake `srun` stands in for a cluster)."""
    sbatch, executor, folder = render_sbatch(
        tmp_path,
        monkeypatch,
        [
            "sweep=offset_diversity",
            "trainer=ddp",
            "trainer.devices=4",
            "trainer.num_nodes=2",
            "hydra.launcher.partition=gpu",
            "hydra.launcher.account=lab",
            "hydra.launcher.qos=high",
            "hydra.launcher.setup=[module load cuda]",
        ],
    )
    for line in (
        "--nodes=2",
        "--ntasks-per-node=4",
        "--gpus-per-node=4",
        "--partition=gpu",
        "--account=lab",
        "--qos=high",
        "--signal=USR2@120",
        "--cpus-per-task=8",
        "--time=1440",
        "--mem=64GB",
    ):
        assert f"#SBATCH {line}" in sbatch, (line, sbatch)
    assert "module load cuda" in sbatch
    # vsrlab's job process, the warning delay it arms a timer with, a multi-node step that ends when a
    # task dies, and the requeue of a task killed before it could act on the warning
    assert "-u -m vsrlab.cluster.task" in sbatch and "export VSRLAB_SIGNAL_DELAY_S=120" in sbatch
    assert "--kill-on-bad-exit=1" in sbatch and 'scontrol requeue "$vsrlab_id"' in sbatch
    assert sbatch.index("srun ") < sbatch.index("scontrol requeue")
    assert executor.max_num_timeout == 20
    assert folder.startswith(str(tmp_path / "train" / "multiruns" / "offset_diversity"))


@pytest.mark.slow  # over 20 s on 2 cores (docs/development.md)
def test_a_tdan_g_x_n_sweep_records_its_axes_and_gets_heatmaps(tmp_path):
    """TDAN names G `deform_groups`: the sweeper records the axes from the architecture's contract,
    so the report draws the G x N heatmaps without guessing from key names."""
    tiny_tdan = ["arch=tdan", "arch.mid_channels=8", "arch.num_blocks_before_align=1",
                 "arch.num_blocks_after_align=1", "arch.num_frame=3"]  # fmt: skip
    fast = [o for o in FAST if not o.startswith("arch.")]
    args = ["-m", "arch.deform_groups=1,2", "arch.num_offsets=1,9", "hydra/launcher=basic", "test=false",
            "run_name=tdan", f"paths.log_dir={tmp_path}", *fast, *tiny_tdan, "trainer.max_steps=2",
            "model.scheduler.periods=[2]"]  # fmt: skip
    proc = _cli(args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep = tmp_path / "train" / "multiruns" / "tdan"
    manifest = json.loads((sweep / "sweep.json").read_text())
    assert manifest["axes"] == {"groups": "arch.deform_groups", "offsets": "arch.num_offsets"}
    report = subprocess.run(
        [str(BIN / "vsrlab-report"), f"sweep_dir={sweep}"], capture_output=True, text=True, timeout=300
    )
    assert report.returncode == 0, report.stderr
    assert (sweep / "heatmap_psnr.png").stat().st_size > 0 and (
        sweep / "heatmap_gain_per_mparam.png"
    ).is_file()
    assert "## G x N grid" in (sweep / "report.md").read_text()
