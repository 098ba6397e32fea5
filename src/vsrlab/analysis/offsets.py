"""Learned deformable offsets versus optical flow (Chan et al., "Understanding Deformable Alignment in
Video Super-Resolution", AAAI 2021, Sec. 4.1, Figs. 4-6): for G = N = 1 more than 80% of the pixels are
within 1 px of the flow (Fig. 5); with N offsets per group the closest follows the flow and the others
spread (Fig. 6). :func:`run_offsets` measures this for every :class:`~vsrlab.ops.DeformableAlignment` of
a network and every neighbour of a clip's centre frame against a reference flow (the synthetic clips'
true flow, or e.g. SPyNet's) and draws the figures of :mod:`vsrlab.analysis.offset_figures`.

Conventions: an offset tensor ``(B, 2*G*N, h, w)`` holds ``(dy, dx)`` at channels ``g*2N + 2n`` and
``g*2N + 2n + 1`` (``deform_conv2d``); group ``g``'s tap ``n`` samples the neighbour at ``p + taps[n] +
dp_n(p)``. The *learned offset* ``dp_n`` is what is compared to the flow (the kernel grid ``taps`` is a
fixed shift). Flows are ``(x, y)``: centre pixel ``p`` is at ``p + flow[t](p)`` in frame ``t``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from vsrlab.analysis import offset_figures as figs
from vsrlab.archs.contract import accepts_flows, is_recurrent
from vsrlab.inference.clip import window_offsets
from vsrlab.ops import alignment_modules, flow_warp, offset_diversity, record_offsets, resize_flow
from vsrlab.ops.windows import window_indices

HIST_EDGES = [0.25 * i for i in range(33)]  # px; errors beyond the last edge are counted as overflow


def offsets_as_flows(offset: Tensor, taps: Tensor, include_taps: bool = False) -> Tensor:
    """Regroup an offset tensor into one flow field per (group, offset): ``(B, G, N, 2, h, w)``, ``(x, y)``.

    Args:
        offset: ``(B, 2*G*N, h, w)``, channel ``g*2N + 2n + (0: dy, 1: dx)`` (``deform_conv2d`` layout).
        taps: ``(N, 2)`` base positions ``(dy, dx)`` (kernel grid, or zeros for free warps).
        include_taps: False: the learned offset ``dp_n`` (what the paper compares to flow); True: the
            full sampling displacement ``taps[n] + dp_n``, i.e. ``flow_warp`` by field ``(g, n)`` equals
            ``deform_sample``'s warp of group ``g`` by tap ``n``.
    """
    b, c, h, w = offset.shape
    n = taps.shape[0]
    if c % (2 * n):
        raise ValueError(f"offset must have 2*G*N channels with N={n} taps, got {c} channels")
    yx = offset.view(b, c // (2 * n), n, 2, h, w)
    if include_taps:
        yx = yx + taps.to(offset).view(1, 1, n, 2, 1, 1)
    return yx.flip(3)


def resize_mask(valid: Tensor, size: tuple[int, int]) -> Tensor:
    """A validity mask ``(1, H, W)`` at ``size``: a pixel is valid if all the pixels it covers are."""
    h, w = size
    if tuple(valid.shape[-2:]) == (h, w):
        return valid > 0.5
    if valid.shape[-2] % h == 0 and valid.shape[-1] % w == 0:
        kernel = (valid.shape[-2] // h, valid.shape[-1] // w)
        return -F.max_pool2d(-valid[None].float(), kernel)[0] > 0.5
    return F.interpolate(valid[None].float(), size=(h, w), mode="nearest")[0] > 0.5


def _mean(x: Tensor, valid: Tensor) -> float | None:
    x, valid = torch.broadcast_tensors(x, valid)
    return float(x[valid].mean()) if bool(valid.any()) else None


def error_histogram(error: Tensor, valid: Tensor, edges: Sequence[float] = HIST_EDGES) -> dict[str, Any]:
    """Distribution of ``error`` (any shape) over ``valid`` (expandable to it): counts per bin of ``edges``
    (px), ``overflow`` beyond the last edge, and ``fraction`` per bin (Fig. 5)."""
    values = error[valid.expand_as(error)]
    counts, _ = np.histogram(values.detach().cpu().double().numpy(), bins=np.asarray(edges))
    fraction = (counts / max(int(values.numel()), 1)).tolist()
    overflow = int((values >= edges[-1]).sum())
    return dict(edges=list(edges), counts=counts.tolist(), overflow=overflow, fraction=fraction)


def rank_offsets(flows: Tensor, ref: Tensor, valid: Tensor) -> dict[str, Any]:
    """The N offsets of each group ranked by mean L1 distance ``|dx - fx| + |dy - fy|`` to the flow
    (Fig. 6: the closest offset follows the flow, the others spread).

    Args:
        flows: ``(G, N, 2, h, w)`` learned offsets as flows; ref: ``(2, h, w)``; valid: ``(1, h, w)`` bool.

    Returns:
        ``per_group``: per group, ``[{"offset": n, "mean_l1_px": d}, ...]`` closest first;
        ``mean_l1_px_per_rank``: the rank-r distance averaged over groups.
    """
    dist = (flows - ref).abs().sum(dim=2)  # (G, N, h, w)
    means = [[_mean(dist[g, n], valid[0]) for n in range(dist.shape[1])] for g in range(dist.shape[0])]
    if any(d is None for row in means for d in row):
        return {"per_group": None, "mean_l1_px_per_rank": None}
    per_group = [
        sorted(({"offset": n, "mean_l1_px": d} for n, d in enumerate(row)), key=lambda r: r["mean_l1_px"])
        for row in means
    ]
    per_rank = [sum(row[r]["mean_l1_px"] for row in per_group) / len(per_group) for r in range(dist.shape[1])]
    return {"per_group": per_group, "mean_l1_px_per_rank": per_rank}


def warp_psnr(warped: Tensor, target: Tensor, valid: Tensor) -> float | None:
    """PSNR (dB, at most 100) of ``warped`` ``(C, h, w)`` in [0, 1] against ``target`` on ``valid``."""
    mse = _mean((warped - target).square(), valid)
    return None if mse is None else -10.0 * math.log10(max(mse, 1e-10))  # capped at 100 dB


def compare_to_flow(flows: Tensor, ref: Tensor, valid: Tensor) -> tuple[dict[str, Any], Tensor]:
    """Offsets ``(G, N, 2, h, w)`` against a flow ``(2, h, w)`` on ``valid`` ``(1, h, w)`` (Figs. 5-6):
    numbers (mean Euclidean error, fraction under 1 px overall / of the closest offset of each group /
    per offset, histogram, ranking for N > 1) and the error ``(G, N, h, w)`` in pixels."""
    g, n = flows.shape[:2]
    error = (flows - ref).square().sum(dim=2).sqrt()
    under = (error < 1.0).float()
    ranking = rank_offsets(flows, ref, valid) if n > 1 else None
    closest = [r[0]["offset"] for r in ranking["per_group"]] if ranking and ranking["per_group"] else None
    per = [[(_mean(error[i, k], valid), _mean(under[i, k], valid)) for k in range(n)] for i in range(g)]
    return {
        "error_mean_px": _mean(error, valid),
        "fraction_under_1px": _mean(under, valid),
        "fraction_under_1px_closest": None
        if closest is None
        else _mean(torch.stack([under[i, k] for i, k in enumerate(closest)]), valid),
        "per_offset": [[{"error_mean_px": e, "fraction_under_1px": f} for e, f in row] for row in per],
        "histogram": error_histogram(error, valid),
        "ranking": ranking,
    }, error


def analyse_frame(
    offset: Tensor,
    taps: Tensor,
    neighbour: Tensor,
    centre: Tensor,
    ref_flow: Tensor | None = None,
    valid: Tensor | None = None,
    prior: Tensor | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Offsets of one module aligning one neighbour frame to the centre frame (Figs. 4-6).

    Args:
        offset: ``(2*G*N, h', w')`` at the module's resolution; taps: ``(N, 2)``.
        neighbour, centre: LR frames ``(C, h, w)`` in [0, 1].
        ref_flow: ``(2, h, w)`` LR flow centre -> neighbour, or None; valid: ``(1, h, w)`` or None.
        prior: ``(2*G*N, h', w')`` flow prior included in ``offset`` (flow-guided alignment), or None.

    Returns:
        ``(numbers, maps)``: JSON-ready numbers, and the tensors the figures draw: ``flows``
        ``(G, N, 2, h', w')``, ``ref`` ``(2, h', w')`` or None, ``error`` ``(G, N, h', w')`` or None,
        ``diversity`` ``(G, h', w')``, ``warps`` ``[(g, n, (C, h, w))]``, ``ref_warp`` or None, ``residual``.
    """
    offset, prior = offset.detach(), None if prior is None else prior.detach()
    size, lr = tuple(offset.shape[-2:]), tuple(neighbour.shape[-2:])
    valid_lr = torch.ones(1, *lr, dtype=torch.bool) if valid is None else valid > 0.5
    valid_lr = valid_lr.to(offset.device)
    flows = offsets_as_flows(offset[None], taps)[0]
    g, n = flows.shape[:2]
    diversity = offset_diversity(offset[None], taps)[0]
    div = {"mean": float(diversity.mean()), "per_group": diversity.mean(dim=(1, 2)).tolist()}
    out: dict[str, Any] = dict(resolution=list(size), groups=g, offsets_per_group=n, diversity_px=div)
    out["offset_abs_mean_px"] = float(offset.abs().mean())
    maps: dict[str, Any] = {"flows": flows, "diversity": diversity, "ref": None, "error": None}
    if ref_flow is None:
        out["reference_flow"] = out["flow_comparison"] = None
    else:
        ref = resize_flow(ref_flow[None].to(offset), size)[0]
        vmask = resize_mask(valid_lr, size)
        out["reference_flow"] = dict(resized_to_module=size != lr, valid_fraction=float(vmask.float().mean()))
        out["flow_comparison"], error = compare_to_flow(flows, ref, vmask)
        maps.update(ref=ref, error=error, valid=vmask)
    if prior is not None:
        residual = offsets_as_flows((offset - prior)[None], taps)[0]
        out["residual"] = {"abs_mean_px": float(residual.abs().mean())}
        if ref_flow is not None:
            prior_flow = offsets_as_flows(prior[None], taps)[0]
            prior_error = (prior_flow - maps["ref"]).norm(dim=2)
            out["residual"]["prior_error_mean_px"] = _mean(prior_error, maps["valid"])
        maps["residual"] = residual
    # warps of the LR neighbour by each learned offset (upsampled to LR when the module is smaller)
    lr_flows = resize_flow(flows.reshape(g * n, 2, *size), lr).view(g, n, 2, *lr)
    nb, ct = neighbour.to(offset), centre.to(offset)
    warps = [(i, k, flow_warp(nb[None], lr_flows[i, k][None])[0]) for i in range(g) for k in range(n)]
    ref_warp = None if ref_flow is None else flow_warp(nb[None], ref_flow[None].to(offset))[0]
    out["warps"] = {
        "psnr_valid": "pixels valid for the reference flow" if valid is not None else "all pixels",
        "unaligned_psnr": warp_psnr(nb, ct, valid_lr),
        "reference_flow_psnr": None if ref_warp is None else warp_psnr(ref_warp, ct, valid_lr),
        "offset_psnr": [{"group": i, "offset": k, "psnr": warp_psnr(x, ct, valid_lr)} for i, k, x in warps],
    }
    maps.update(warps=warps, ref_warp=ref_warp, neighbour=nb, centre=ct)
    return out, maps


def _expand_prior(flow: Tensor, groups: int, taps: int) -> Tensor:
    """Flows ``(B, 2*F, h, w)`` ``(x, y)`` as the offsets they add: ``(B, 2*G*N, h, w)`` (group ``g`` gets
    flow ``g // (G/F)``; :meth:`DeformableAlignment.predict_offsets`)."""
    b, c, h, w = flow.shape
    yx = flow.view(b, c // 2, 1, 1, 2, h, w).flip(4)
    return yx.expand(b, c // 2, groups // (c // 2), taps, 2, h, w).reshape(b, 2 * groups * taps, h, w)


def gather_offsets(net: nn.Module, lq: Tensor, flow_pairs: Tensor | None = None) -> dict[str, dict[str, Any]]:
    """Offsets of every alignment module aligning a neighbour frame to the clip's centre frame ``L // 2``.

    Sliding-window networks: the window centred on the clip's middle frame (reflection padding, as
    :func:`~vsrlab.inference.clip.window_offsets`); a module called once per window frame (T calls, or
    T-1 without the centre, as TDAN) gets each neighbour. BasicVSR++: the step of each propagation
    branch at the centre frame; the first half of its groups align frame ``c+1`` (backward branches)
    or ``c-1`` (forward), the second half ``c+2`` / ``c-2`` (flow prior: SPyNet's flow).

    Args:
        lq: clip ``(L, C, h, w)``; flow_pairs: ``(L, L, 2, h, w)`` for networks taking window flows.

    Returns:
        ``{module: {"taps": (N, 2), "frames": {clip frame: {"offset": (2*G'*N, h', w'), "groups":
        [g, ...], "prior": (2*G'*N, h', w') or None, "window_position": int or None}}}}``.
    """
    modules = dict(alignment_modules(net))
    name = type(net).__name__
    if not modules:
        raise ValueError(f"{name} has no DeformableAlignment module: no learned offsets to analyse")
    length, centre = lq.shape[0], lq.shape[0] // 2
    out: dict[str, dict[str, Any]] = {}
    if not is_recurrent(net):
        window = window_indices(centre, length, net.num_frame, "reflection")
        ci = int(net.center_frame_idx)
        for mod, offsets in window_offsets(net, lq, "reflection", flow_pairs).items():
            if offsets.shape[0] == len(window):
                positions = list(range(len(window)))
            elif offsets.shape[0] == len(window) - 1:
                positions = [p for p in range(len(window)) if p != ci]
            else:
                raise ValueError(
                    f"{name}.{mod}: {offsets.shape[0]} aligned maps for a window of {len(window)} frames; "
                    "supported: one per window frame, or one per neighbour"
                )
            frames: dict[int, Any] = {}
            for k, p in enumerate(positions):
                if window[p] != centre and window[p] not in frames:
                    frames[window[p]] = dict(offset=offsets[k], groups=None, prior=None, window_position=p)
            out[mod] = {"taps": modules[mod].taps, "frames": frames}
        return out
    if name != "BasicVSRPlusPlus":
        raise ValueError(
            f"{name} is recurrent: offset analysis supports sliding-window networks and BasicVSRPlusPlus "
            "(whose alignment calls can be attributed to frames)"
        )
    priors: dict[str, list[Tensor]] = {mod: [] for mod in modules}
    for mod, m in modules.items():

        def wrapped(cond: Tensor, flow: Tensor | None = None, _f=m.predict_offsets, _s=priors[mod]):
            _s.append(flow)
            return _f(cond, flow)

        m.predict_offsets = wrapped  # type: ignore[method-assign]
    try:
        with torch.no_grad(), record_offsets(net) as records:
            net(lq[None])
    finally:
        for m in modules.values():
            del m.predict_offsets
    for mod, m in modules.items():
        backward = mod.rsplit(".", 1)[-1].startswith("backward")
        step = length - 1 - centre if backward else centre
        if step < 1:
            continue  # the centre frame is this branch's first: nothing aligned to it
        g, n = m.offset_groups, m.num_offsets
        offset = records[mod][step - 1][0]
        prior = _expand_prior(priors[mod][step - 1], g, n)[0]
        sign = 1 if backward else -1
        frames = {}
        for k, groups in enumerate([range(g // 2), range(g // 2, g)]):
            if k == 1 and step < 2:
                break  # no second-order neighbour yet (zero features, zero flow)
            sl = slice(2 * n * groups[0], 2 * n * (groups[-1] + 1))
            frames[centre + sign * (k + 1)] = dict(
                offset=offset[sl], groups=list(groups), prior=prior[sl], window_position=None
            )
        out[mod] = {"taps": m.taps, "frames": frames}
    return out


def run_offsets(
    net: nn.Module,
    clip: Mapping[str, Tensor],
    out_dir: str | Path,
    *,
    frame: int | None = None,
    modules: Sequence[str] | None = None,
    max_offsets_drawn: int = 9,
) -> dict[str, Any]:
    """Offsets versus flow for every alignment module and neighbour of a clip's centre frame (Figs. 4-6).

    Args:
        net: a sliding-window network with :class:`~vsrlab.ops.DeformableAlignment`, or BasicVSR++.
        clip: ``lq`` ``(L, C, h, w)`` in [0, 1]; optional ``flow`` ``(L, 2, h, w)`` from the centre frame
            ``L // 2`` to every frame (reference flow), ``flow_valid`` ``(L, 1, h, w)``, ``flow_pairs``.
        out_dir: where the PNGs and ``offsets.json`` go.
        frame: the clip frame whose figures are drawn (default: the neighbour farthest from the centre).
        modules: module names to restrict to (default: all).
        max_offsets_drawn: warped frames drawn per module (all are measured).

    Returns:
        The contents of ``offsets.json``: ``{"network", "centre_frame", "frame", "reference_flow",
        "modules": {module: {str(frame): numbers of analyse_frame}}, "figures": [paths]}``.
    """
    device = next(net.parameters()).device
    lq = clip["lq"].to(device)
    flow, valid = clip.get("flow"), clip.get("flow_valid")
    pairs = clip.get("flow_pairs") if accepts_flows(net) else None
    was_training = net.training
    net.eval()
    try:
        gathered = gather_offsets(net, lq, None if pairs is None else pairs.to(device))
    finally:
        net.train(was_training)
    if modules is not None:
        unknown = sorted(set(modules) - set(gathered))
        if unknown:
            raise ValueError(
                f"unknown alignment modules {unknown}; {type(net).__name__} has {sorted(gathered)}"
            )
        gathered = {m: gathered[m] for m in modules}
    centre = lq.shape[0] // 2
    available = sorted({t for g in gathered.values() for t in g["frames"]})
    if frame is None:
        frame = max(available, key=lambda t: (abs(t - centre), -t)) if available else None
    elif frame not in available:
        raise ValueError(f"frame={frame} is not a neighbour aligned to centre frame {centre}: {available}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "network": type(net).__name__,
        "centre_frame": centre,
        "frame": frame,
        "reference_flow": None if flow is None else "clip['flow'] (resized to each module's resolution)",
        "error": "Euclidean |learned offset dp_n - flow| in pixels of the module's resolution",
        "modules": {},
        "figures": [],
    }
    with torch.no_grad():
        for mod, info in gathered.items():
            result["modules"][mod] = {}
            for t, entry in info["frames"].items():
                ref, ok = (None if x is None else x[t].to(device) for x in (flow, valid))
                numbers, maps = analyse_frame(
                    entry["offset"], info["taps"], lq[t], lq[centre], ref, ok, entry["prior"]
                )
                numbers.update(window_position=entry["window_position"], groups_of_module=entry["groups"])
                result["modules"][mod][str(t)] = numbers
                if t == frame:
                    stem = out_dir / f"{mod.replace('.', '_')}_frame{t}"
                    result["figures"] += [
                        str(p) for p in figs.draw_frame(stem, mod, t, numbers, maps, max_offsets_drawn)
                    ]
    (out_dir / "offsets.json").write_text(json.dumps(result, indent=1))
    return result
