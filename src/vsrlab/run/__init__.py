"""The run-directory protocol, in one place: file names and JSON (:mod:`~vsrlab.run.layout`), status
and the ``done`` marker (:mod:`~vsrlab.run.status`), job identity and short key names
(:mod:`~vsrlab.run.identity`), the sweep manifest (:mod:`~vsrlab.run.manifest`), the resume check
(:mod:`~vsrlab.run.resume`), the git and environment snapshot (:mod:`~vsrlab.run.snapshot`) and
the run's checkpoints (:mod:`~vsrlab.run.checkpoints`, which needs torch and is not imported here:
Hydra's sweeper imports this package at every start-up)."""

from vsrlab.run.identity import job_subdir, plan_jobs, run_id, short_keys, split_override
from vsrlab.run.layout import (
    CHECKPOINT_DIR,
    DONE_MARKER,
    ENVIRONMENT_FILE,
    GIT_DIFF,
    GIT_FILE,
    LAST_CHECKPOINT,
    MANIFEST,
    METRICS_FILE,
    RESOLVED_CONFIG,
    STATUS_FILE,
    read_json,
    read_json_object,
    timestamp,
    write_json,
)
from vsrlab.run.manifest import (
    ManifestError,
    job_swept_values,
    read_manifest,
    read_submissions,
    record_job_states,
    record_submissions,
    update_manifest,
)
from vsrlab.run.status import is_done, job_state, mark_done, read_status, record_preemption, write_status

__all__ = [
    "CHECKPOINT_DIR",
    "DONE_MARKER",
    "ENVIRONMENT_FILE",
    "GIT_DIFF",
    "GIT_FILE",
    "LAST_CHECKPOINT",
    "MANIFEST",
    "METRICS_FILE",
    "RESOLVED_CONFIG",
    "STATUS_FILE",
    "ManifestError",
    "is_done",
    "job_state",
    "job_subdir",
    "job_swept_values",
    "mark_done",
    "plan_jobs",
    "read_json",
    "read_json_object",
    "read_manifest",
    "read_status",
    "read_submissions",
    "record_job_states",
    "record_submissions",
    "record_preemption",
    "run_id",
    "short_keys",
    "split_override",
    "timestamp",
    "update_manifest",
    "write_json",
    "write_status",
]
