"""The rows of a sweep report: one per job, read from its files only (no W&B)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from vsrlab.run import METRICS_FILE, STATUS_FILE, job_state, read_json_object, read_manifest
from vsrlab.run.manifest import read_hydra_overrides

MISSING = "—"


def finite(value: Any) -> float | None:
    """``value`` as a finite float, or ``None`` when missing, not a number, NaN or infinite."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def as_int(value: Any) -> int | None:
    """``value`` as an int (``"40"``, ``40.0`` -> 40), or ``None`` when it is not an integral number."""
    number = finite(value)
    return int(number) if number is not None and number.is_integer() else None


def format_params(count: int | float | None) -> str:
    """A parameter count for humans: ``1234567`` -> ``"1.23M"``, ``12345`` -> ``"12.3K"``."""
    if count is None:
        return MISSING
    if abs(count) >= 1e6:
        return f"{count / 1e6:.2f}M"
    if abs(count) >= 1e3:
        return f"{count / 1e3:.1f}K"
    return str(int(count))


def best_and_final(metrics: dict[str, Any]) -> dict[str, Any]:
    """Best and final validation results of a ``metrics.json``.

    Best: the ``val_history`` entry with the highest PSNR (the earliest on ties), with its SSIM and step;
    without a history, ``val/psnr_best`` (SSIM and step unknown).  Final: the last ``val_history``
    entry; without a history, ``val/psnr`` and ``val/ssim``.  Missing values are ``None``.
    """
    history = [h for h in metrics.get("val_history") or [] if isinstance(h, dict)]
    val = metrics.get("val") if isinstance(metrics.get("val"), dict) else {}
    out: dict[str, Any] = dict.fromkeys(("best_psnr", "best_ssim", "best_step", "final_psnr", "final_ssim"))
    scored = [h for h in history if finite(h.get("psnr")) is not None]
    if scored:
        best = max(scored, key=lambda h: finite(h["psnr"]))  # max keeps the first of equal values
        out.update(
            best_psnr=finite(best["psnr"]),
            best_ssim=finite(best.get("ssim")),
            best_step=as_int(best.get("step")),
        )
    else:
        out["best_psnr"] = finite(val.get("val/psnr_best"))
    if history:
        last = history[-1]
        out.update(final_psnr=finite(last.get("psnr")), final_ssim=finite(last.get("ssim")))
    else:
        out.update(final_psnr=finite(val.get("val/psnr")), final_ssim=finite(val.get("val/ssim")))
    return out


def test_scores(metrics: dict[str, Any]) -> tuple[float | None, dict[str, float]]:
    """Test PSNR of a ``metrics.json``: the mean and ``{clip: PSNR}`` of a training run's ``test`` results
    or an evaluation's (top level).  The mean is ``mean.psnr``, else the mean over the clips; None and
    ``{}`` without test scores."""
    test = metrics.get("test") if isinstance(metrics.get("test"), dict) else metrics
    clips_data = test.get("clips") if isinstance(test.get("clips"), dict) else {}
    clips = {
        str(name): psnr
        for name, scores in clips_data.items()
        if isinstance(scores, dict) and (psnr := finite(scores.get("psnr"))) is not None
    }
    mean_data = test.get("mean") if isinstance(test.get("mean"), dict) else {}
    mean = finite(mean_data.get("psnr"))
    if mean is None and clips:
        mean = math.fsum(clips.values()) / len(clips)
    return mean, clips


def read_job(sweep_dir: Path, job: dict[str, Any]) -> dict[str, Any]:
    """One table row from the files of ``<sweep_dir>/<subdir>``.

    Swept values come from the manifest's overrides, else ``metrics.json``'s ``swept``, else
    ``.hydra/overrides.yaml``.
    """
    job_dir = sweep_dir / job["subdir"]
    metrics = read_json_object(job_dir / METRICS_FILE) or {}
    status = read_json_object(job_dir / STATUS_FILE) or {}
    metrics_swept = metrics.get("swept") if isinstance(metrics.get("swept"), dict) else {}
    swept = {
        **read_hydra_overrides(job_dir),
        **{str(k): str(v) for k, v in metrics_swept.items()},
        **job.get("overrides", {}),
    }
    params = metrics.get("params") if isinstance(metrics.get("params"), dict) else {}
    steps = as_int(metrics.get("global_step"))
    test_psnr, test_clips = test_scores(metrics)
    row: dict[str, Any] = {
        "job": job["subdir"],
        "dir": str(job_dir),
        "swept": swept,
        "params": as_int(params.get("total")),
        **best_and_final(metrics),
        "test_psnr": test_psnr,
        "test_clips": test_clips,
        "offset_diversity": finite(metrics.get("offset_diversity")),
        "steps": steps if steps is not None else as_int(status.get("step")),
        "max_steps": as_int(status.get("max_steps")),
        "preemptions": as_int(status.get("preemptions", 0)) if status else None,
        "status": job_state(job_dir, status),
        "error": status.get("error") if isinstance(status.get("error"), str) else None,
        "updated": status.get("updated"),
    }
    return row


def collect_jobs(sweep_dir: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The manifest (:func:`read_manifest`) and one row per job (:func:`read_job`), in manifest order.

    Row fields: ``job``, ``dir``, ``swept`` (``{key: value string}``), ``params``, ``best_psnr``,
    ``best_ssim``, ``best_step``, ``final_psnr``, ``final_ssim``, ``test_psnr``, ``test_clips``
    (``{clip: PSNR}``, :func:`test_scores`), ``offset_diversity``, ``steps``,
    ``max_steps``, ``preemptions``, ``status``, ``error``, ``updated``; missing values are ``None``.
    """
    manifest = read_manifest(sweep_dir)
    sweep_dir = Path(sweep_dir)
    return manifest, [read_job(sweep_dir, job) for job in manifest["jobs"]]
