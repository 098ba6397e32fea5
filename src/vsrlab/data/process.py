"""The process settings the data layer needs, made in one explicit, idempotent call."""

from __future__ import annotations

import os

_configured = False


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

    from vsrlab.data.stores import close_inherited_lmdb_envs

    cv2.setNumThreads(0)
    os.register_at_fork(after_in_child=close_inherited_lmdb_envs)
    _configured = True
