"""The seed paper's studies (experiments/understanding_deformable_alignment/studies.yaml): every job
of every sweep composes and builds the network it describes."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest
import torch

from conftest import compose_config
from vsrlab.archs import build_arch
from vsrlab.ops import alignment_modules

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from run_study import load_studies, study_overrides  # noqa: E402

STUDIES = load_studies()


def _jobs(study: dict) -> list[list[str]]:
    base = study_overrides({**study, "sweep": {}})
    axes = [[f"{k}={v}" for v in str(vals).split(",")] for k, vals in study["sweep"].items()]
    return [base + list(combo) for combo in itertools.product(*axes)]


def test_all_seven_studies_are_listed():
    assert len(STUDIES) == 7
    assert len(_jobs(STUDIES["fig16_groups_x_offsets"])) == 20


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_every_job_composes_and_builds(tmp_path, name):
    for i, job in enumerate(_jobs(STUDIES[name])):
        cfg = compose_config("train", job, tmp_path / f"{i}")
        with torch.device("meta"):
            net = build_arch(cfg.arch)
        overrides = dict(o.split("=", 1) for o in job)
        packs = [m for _, m in alignment_modules(net)]
        if "arch.num_offsets" in overrides:
            n = int(overrides["arch.num_offsets"])
            if cfg.arch.get("align_type") == "decomposed":  # EDVR: every PCD pack is G x N
                g = int(cfg.arch.deformable_groups)
                assert packs and all(m.num_offsets == n and m.offset_groups == g for m in packs), job
            else:  # TDAN: the two feature-aligning DCNs
                assert sum(m.num_offsets == n for m in packs) >= 2, job
        if name == "table2_flow_networks":
            assert len(net.spynets) == int(overrides["arch.num_flows"])
        if name == "table3_offset_fidelity":
            assert bool(cfg.model.offset_fidelity.loss) == job[-1].endswith("batch")
