"""``vsrlab-train``: train a VSR model from the Hydra config in ``conf/train.yaml``.

    vsrlab-train                                  # default experiment on the synthetic data
    vsrlab-train debug=fdr                        # one train and one val batch
    vsrlab-train experiment=align_flow            # an experiment file from conf/experiment/
    vsrlab-train run_name=my_run                  # resume (or skip, if finished) logs/train/runs/my_run
    vsrlab-train -m experiment=offset_diversity   # a sweep; relaunching it resumes/skips its jobs

Extra DDP ranks started by Lightning run ``python -m vsrlab.cli.train`` on the job's resolved config
(:data:`vsrlab.utils.ddp.RANK_MODULE`).
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from vsrlab.app import CONFIG_DIR, init, setup_run, translate_renamed_keys
from vsrlab.training import train
from vsrlab.utils.ddp import refuse_sweep_on_secondary_rank


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def hydra_main(cfg: DictConfig) -> float | None:
    """The Hydra app: one run, or one job of a multirun; returns the optimized metric."""
    setup_run(cfg)
    results = train(cfg)
    metric = cfg.get("optimized_metric")
    return results.get("val", {}).get(metric) if metric else None


def main() -> None:
    """Console entry point ``vsrlab-train``."""
    init()
    sys.argv[1:] = translate_renamed_keys(sys.argv[1:], "train")
    refuse_sweep_on_secondary_rank()
    hydra_main()


if __name__ == "__main__":
    main()
