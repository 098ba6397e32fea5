"""Launch one study of experiments/understanding_deformable_alignment/studies.yaml as a Hydra multirun.

    python scripts/run_study.py --list
    python scripts/run_study.py fig16_groups_x_offsets [extra overrides ...]   # e.g. hydra/launcher=submitit_slurm
    python scripts/run_study.py table4_image_vs_feature_warping --dry-run

Each study is a recipe (``experiment=``), a few fixed overrides and a sweep; extra arguments are
passed to ``vsrlab-train`` after them (data, trainer, launcher, ...).
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

STUDIES = Path(__file__).resolve().parents[1] / "experiments" / "understanding_deformable_alignment" / "studies.yaml"


def load_studies(path: Path = STUDIES) -> dict:
    return yaml.safe_load(path.read_text())


def study_overrides(study: dict) -> list[str]:
    """Hydra overrides of a study: experiment, fixed keys, then the sweep."""
    out = [f"experiment={study['experiment']}"]
    out += [f"{k}={v}" for k, v in (study.get("fixed") or {}).items()]
    out += [f"{k}={v}" for k, v in study["sweep"].items()]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", nargs="?")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--list", action="store_true", help="list the studies")
    parser.add_argument("--dry-run", action="store_true", help="print the command only")
    args = parser.parse_args()
    studies = load_studies()
    if args.list or not args.study:
        for name, study in studies.items():
            print(f"{name:36s} {study['what']}")
        return
    if args.study not in studies:
        sys.exit(f"unknown study {args.study!r}; one of: {', '.join(studies)}")
    cmd = ["vsrlab-train", "-m", *study_overrides(studies[args.study]), f"run_name=uda/{args.study}", *args.overrides]
    print(shlex.join(cmd), flush=True)
    if not args.dry_run:
        sys.exit(subprocess.call(cmd))


if __name__ == "__main__":
    main()
