"""The process settings the data layer needs, made in one explicit, idempotent call, and the LMDB
environments this process holds (one per path, closed in forked children)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

_configured = False
_LMDB_ENVS: dict[str, Any] = {}


def configure_process() -> None:
    """Settings every process that loads frames needs; idempotent. Each app's init calls it, and so
    do the datasets and LMDB stores (for library users).

    OpenCV's thread pool does not survive fork(): a DataLoader worker forked while the pool exists
    can hang forever in cv2 (seen as a futex wait in pthread_cond_destroy), so OpenCV runs
    single-threaded (loading parallelises over workers instead). LMDB environments inherited by a
    forked worker are closed in the child (py-lmdb refuses to reopen a path open in the parent).
    """
    global _configured
    if _configured:
        return
    import cv2

    cv2.setNumThreads(0)
    os.register_at_fork(after_in_child=close_inherited_lmdb_envs)
    _configured = True


def lmdb_env(root: Path) -> Any:
    """The read-only environment of ``root`` for this process (LMDB allows one per process and path)."""
    key = str(root.resolve())
    env = _LMDB_ENVS.get(key)
    if env is None:
        import lmdb

        env = lmdb.open(key, readonly=True, lock=False, readahead=False, meminit=False, max_readers=512)
        _LMDB_ENVS[key] = env
    return env


def close_inherited_lmdb_envs() -> None:
    """In a forked child (a DataLoader worker): LMDB environments must not be used across fork(),
    and py-lmdb refuses to reopen a path it believes open, so close the copies and start afresh."""
    for env in _LMDB_ENVS.values():
        try:
            env.close()
        except Exception:  # noqa: BLE001 - a broken inherited handle is dropped either way
            pass
    _LMDB_ENVS.clear()
