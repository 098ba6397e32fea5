"""Cross-check vsrlab's LAM against the official code (X-Lowlevel-Vision/LAM_Demo).

    python scripts/crosscheck_lam.py --lam /path/to/LAM_Demo

On the same network and weights (the reference's own EDSR class, small and randomly initialised, and a
plain convolutional x4 network) and the same LR image, it runs the reference's ``GaussianBlurPath`` +
``Path_gradient`` + ``saliency_map_PG`` + ``grad_abs_norm`` + ``gini`` and
:func:`vsrlab.analysis.lam.local_attribution_map`, and prints the largest difference of the maps relative
to the reference map's maximum (target <= 1e-4), of the raw attributions, and of the diffusion indices
(target <= 1e-3), for several windows, sigmas and folds. It also compares the KDE picture's density with
``scipy.stats.gaussian_kde``. Exit status 1 when a target is missed.

Two adaptations let the reference run on today's libraries without changing what it computes: its
``Path_gradient`` collects the outputs with ``np.asarray`` on tensors that require grad (refused by
today's torch; its module gets a numpy whose ``asarray`` detaches them), and its ``ModelZoo.utils``
imports torchvision only for PIL conversions it does not use here (where torchvision is not importable an
empty stand-in module is registered so that it imports).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from vsrlab.analysis.lam import diffusion_index, local_attribution_map
from vsrlab.analysis.lam_figures import kde_density
from vsrlab.data.synthetic import load_image


def import_reference(root: Path) -> types.SimpleNamespace:
    if importlib.util.find_spec("torchvision") is None:
        sys.modules["torchvision"] = types.ModuleType("torchvision")
    sys.path.insert(0, str(root))
    from ModelZoo.NN.edsr import EDSR
    from SaliencyModel import BackProp, attributes, utils

    # Path_gradient ends with np.asarray(list of outputs that require grad), which today's torch refuses;
    # its module sees a numpy whose asarray detaches them (the outputs are only returned, never used here)
    class _NumpyDetaching(types.ModuleType):
        def __getattr__(self, name: str):
            return getattr(np, name)

        @staticmethod
        def asarray(value, *args, **kwargs):
            if isinstance(value, list):
                value = [v.detach().numpy() if isinstance(v, torch.Tensor) else v for v in value]
            return np.asarray(value, *args, **kwargs)

    BackProp.np = _NumpyDetaching("numpy")
    return types.SimpleNamespace(EDSR=EDSR, BackProp=BackProp, attributes=attributes, utils=utils)


def plain_x4(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, 1, 1),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, 1, 1),
        nn.ReLU(),
        nn.Conv2d(16, 48, 3, 1, 1),
        nn.PixelShuffle(4),
    )


def reference_lam(ref: types.SimpleNamespace, model: nn.Module, lr: np.ndarray, case: dict) -> tuple:
    objective = ref.BackProp.attribution_objective(
        ref.attributes.attr_grad, case["row"], case["col"], case["window"]
    )
    path = ref.BackProp.GaussianBlurPath(case["sigma"], case["fold"], case["l"])
    grads, results, _ = ref.BackProp.Path_gradient(lr, model, objective, path)
    grad, _ = ref.BackProp.saliency_map_PG(grads, results)
    normed = ref.utils.grad_abs_norm(grad)
    return grad, normed, (1 - ref.utils.gini(normed.copy())) * 100


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lam", type=Path, required=True, help="a checkout of X-Lowlevel-Vision/LAM_Demo")
    parser.add_argument("--size", type=int, default=48, help="LR side (px)")
    args = parser.parse_args()
    ref = import_reference(args.lam)

    image = load_image("astronaut")[: args.size * 4, : args.size * 4]
    lr = np.ascontiguousarray(image[::4, ::4].transpose(2, 0, 1).astype(np.float32) / 255.0)
    torch.manual_seed(0)
    networks = {
        "reference EDSR (width 16, depth 2)": ref.EDSR(num_channels=3, factor=4, width=16, depth=2),
        "plain x4 conv": plain_x4(1),
    }
    cases = [
        {"row": 60, "col": 70, "window": 16, "sigma": 1.2, "fold": 50, "l": 9},
        {"row": 8, "col": 120, "window": 8, "sigma": 2.0, "fold": 20, "l": 9},
        {"row": 150, "col": 10, "window": 16, "sigma": 1.2, "fold": 10, "l": 5},
        {"row": 100, "col": 100, "window": 12, "sigma": 1.5, "fold": 15, "l": 8},
    ]
    worst_map = worst_di = worst_gini = 0.0
    print(f"LR {args.size}x{args.size} (astronaut, every 4th pixel); targets: map <= 1e-4 of max, DI <= 1e-3")
    for name, net in networks.items():
        net.eval()
        for case in cases:
            grad, normed, di = reference_lam(ref, net, lr, case)
            ours = local_attribution_map(
                net,
                torch.from_numpy(lr)[None],
                case["row"],
                case["col"],
                window_size=case["window"],
                sigma=case["sigma"],
                fold=case["fold"],
                kernel_size=case["l"],
            )
            map_diff = float(np.abs(ours.attribution_map.numpy() - normed).max() / normed.max())
            raw_diff = float(np.abs(ours.attribution.numpy() - grad).max() / np.abs(grad).max())
            di_diff = abs(ours.diffusion_index - di)
            worst_map, worst_di = max(worst_map, map_diff), max(worst_di, di_diff)
            print(
                f"{name:36s} {case}: map {map_diff:.2e}, raw {raw_diff:.2e}, "
                f"DI {ours.diffusion_index:.4f} vs {di:.4f} ({di_diff:.1e})"
            )
            # the same map through both Gini functions (the reference sums in float32)
            worst_gini = max(worst_gini, abs(diffusion_index(normed) - di))

    from scipy import stats

    attribution_map = ours.attribution_map.numpy()
    ys, xs = np.mgrid[0 : attribution_map.shape[0], 0 : attribution_map.shape[1]]
    points = np.vstack([xs.ravel(), ys.ravel()])
    kde = stats.gaussian_kde(points, weights=attribution_map.ravel())
    density = kde(points).reshape(attribution_map.shape)
    kde_diff = float(np.abs(kde_density(attribution_map) - density / density.max()).max())
    print(f"KDE density vs scipy.stats.gaussian_kde: {kde_diff:.2e} (of 1)")
    ok = worst_map <= 1e-4 and worst_di <= 1e-3 and worst_gini <= 1e-3 and kde_diff <= 1e-6
    print(
        f"worst: map {worst_map:.2e}, DI {worst_di:.1e}, DI of the same map {worst_gini:.1e} "
        f"-> {'OK' if ok else 'FAILED'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
