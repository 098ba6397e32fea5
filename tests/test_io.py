"""Atomic writes: a failed write leaves the previous file intact and no temporary behind."""

from __future__ import annotations

import pytest

from vsrlab.run import write_json
from vsrlab.utils.io import atomic_write


def test_failed_write_keeps_previous_file(tmp_path):
    path = tmp_path / "metrics.json"
    write_json(path, {"psnr": 30.0})
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_write(path, "w") as f:
            f.write('{"psnr": ')
            raise RuntimeError("killed while writing")
    assert path.read_text() == '{\n  "psnr": 30.0\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
