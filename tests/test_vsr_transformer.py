"""The sliding-window VSR Transformer with the five alignments of Shi et al. (NeurIPS 2022): forward and
backward of every variant, zero motion makes the aligned variants equal the unaligned one, true motion
aligns, FGDC starts from the flow, the parameter counts beside the paper's, the recipe and the two sweep
files, and one debug=fdr training step per alignment row on the synthetic clips."""

from __future__ import annotations

import itertools
from contextlib import nullcontext
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from test_datasets import reds_layout

from conftest import compose_config
from vsrlab.apps.train import train
from vsrlab.archs import VSRTransformer, build_arch
from vsrlab.archs.contract import offset_axes, temporal_kind
from vsrlab.engine import CONFIG_DIR
from vsrlab.ops import record_offsets
from vsrlab.optim.param_rules import ParamRules
from vsrlab.run import plan_jobs

CONF = Path(CONFIG_DIR)
ROWS = sorted(p.stem for p in (CONF / "row" / "vsrt_alignment").glob("*.yaml"))
SMALL = dict(
    embed_dim=12, depths=[2], num_heads=[2], window_size=[5, 8, 8], mid_channels=8, deformable_groups=3
)
# (alignment, keyword arguments) of every variant
VARIANTS = {
    "none": ("none", {}),
    "image_fixed": ("image", {"flow_finetune": False}),
    "image_finetune": ("image", {}),
    "feature_bilinear": ("feature", {"interpolation": "bilinear"}),
    "feature_nearest": ("feature", {"interpolation": "nearest"}),
    "fgdc": ("fgdc", {}),
    "patch_image_nearest": ("patch", {"position": "image"}),
    "patch_feature_bilinear": ("patch", {"position": "feature", "interpolation": "bilinear"}),
    "patch_feature_nearest": ("patch", {"position": "feature"}),
}


def small_net(alignment: str, **kwargs) -> VSRTransformer:
    if alignment in ("image", "feature", "patch") and kwargs.get("flow_finetune") is False:
        with pytest.warns(UserWarning, match="spynet_path is null"):
            return VSRTransformer(alignment=alignment, **{**SMALL, **kwargs})
    return VSRTransformer(alignment=alignment, **{**SMALL, **kwargs})


def zero_spynet(net: VSRTransformer) -> None:
    """Make SPyNet predict zero flow: the last conv of every pyramid level outputs zero."""
    with torch.no_grad():
        for level in net.spynet.basic_module:
            level.basic_module[-1].weight.zero_()
            level.basic_module[-1].bias.zero_()


def test_contract():
    assert temporal_kind(VSRTransformer) == "window"
    assert offset_axes(VSRTransformer) == ("deformable_groups", "num_offsets")
    net = small_net("none", num_frame=3, window_size=[3, 8, 8])
    assert (net.num_frame, net.center_frame_idx) == (3, 1)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_variant_runs_forward_and_backward(variant):
    alignment, kwargs = VARIANTS[variant]
    net = small_net(alignment, **kwargs)
    x = torch.rand(1, 5, 3, 12, 20)  # not a multiple of the window: padded inside the MFSABs
    out = net(x)
    assert out.shape == (1, 3, 48, 80)
    out.square().mean().backward()
    trainable = {n: p for n, p in net.named_parameters() if p.requires_grad}
    # every trainable parameter gets a finite gradient (no unused parameters: DDP needs none)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in trainable.values())
    assert net.conv_first.weight.grad.abs().sum() > 0 and net.layers[0].conv.weight.grad.abs().sum() > 0
    if net.spynet is None:
        assert variant == "none"
        return
    spynet_grad = sum(float(p.grad.abs().sum()) for n, p in trainable.items() if n.startswith("spynet."))
    if variant == "image_fixed":  # fixed flow: frozen, outside the trainable parameters
        assert not any(n.startswith("spynet.") for n in trainable)
        assert all(p.grad is None for p in net.spynet.parameters())
    elif kwargs.get("interpolation", net.interpolation) == "nearest":  # rounded moves: no flow gradient
        assert spynet_grad == 0
    else:  # bilinear resampling and FGDC's offsets pass gradients to the flow
        assert spynet_grad > 0


def test_fgdc_offset_network_learns_once_its_last_layer_moves():
    net = small_net("fgdc")
    x = torch.rand(1, 5, 3, 16, 16)
    net(x).mean().backward()
    convs = [m for m in net.deform_align.conv_offset if isinstance(m, torch.nn.Conv2d)]
    assert convs[-1].weight.grad.abs().sum() > 0  # the zero-initialised last layer learns first
    assert convs[0].weight.grad.abs().sum() == 0  # nothing reaches the others through its zero weights
    net.zero_grad()
    with torch.no_grad():
        convs[-1].weight.normal_(std=0.01)
    net(x).mean().backward()
    for conv in convs:
        assert conv.weight.grad.abs().sum() > 0 and torch.isfinite(conv.weight.grad).all()
    assert net.deform_align.weight.grad.abs().sum() > 0


def test_fgdc_starts_from_the_flow():
    """Offsets are flow + residue, and the residue starts at zero: every offset of a frame is its flow
    (as (dy, dx)); the centre frame goes through the same module with zero flow."""
    net = small_net("fgdc").eval()
    flows = torch.randn(1, 5, 2, 16, 16)
    flows[:, 2] = 0
    with torch.no_grad(), record_offsets(net) as records:
        net(torch.rand(1, 5, 3, 16, 16), flows=flows)
    (offset,) = records["deform_align"]
    assert offset.shape == (5, 2 * 3 * 9, 16, 16)  # one call for the B*T frames; G = 3, N = 9
    expected = flows[0].flip(1).repeat(1, 3 * 9, 1, 1)
    torch.testing.assert_close(offset, expected)


@pytest.mark.parametrize(
    "variant", ["image_finetune", "feature_bilinear", "feature_nearest", "patch_image_nearest",
                "patch_feature_bilinear", "patch_feature_nearest"],
)  # fmt: skip
def test_zero_motion_makes_an_aligned_variant_the_unaligned_network(variant):
    """With zero flow, image, feature and patch alignment are the identity: with the weights of the
    network without alignment they give its output, on any frames (SPyNet made to predict zero)."""
    torch.manual_seed(1)
    plain = small_net("none").eval()
    alignment, kwargs = VARIANTS[variant]
    aligned = small_net(alignment, **kwargs).eval()
    report = aligned.load_state_dict(plain.state_dict(), strict=False)
    assert not report.unexpected_keys and all(k.startswith("spynet.") for k in report.missing_keys)
    zero_spynet(aligned)
    x = torch.rand(1, 5, 3, 20, 24)
    with torch.no_grad():
        assert aligned.compute_flows(x).abs().max() == 0
        torch.testing.assert_close(aligned(x), plain(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(
            aligned(x, flows=torch.zeros(1, 5, 2, 20, 24)), plain(x), atol=1e-5, rtol=1e-5
        )


@pytest.mark.parametrize("alignment,position", [("image", "image"), ("patch", "image"), ("feature", None)])
def test_true_flow_aligns_a_translating_clip(alignment, position):
    """Frame t shows the centre frame moved by (t - c) * (2, -1) pixels; the flow from the centre to
    frame t is that motion, and nearest image / patch / feature alignment with it gives back the centre
    frame (its features) away from the borders."""
    net = small_net(alignment, interpolation="nearest", **({"position": position} if position else {}))
    h, w, move = 32, 32, torch.tensor([2.0, -1.0])  # (x, y) per frame
    big = torch.rand(1, 3, h + 16, w + 16)
    frames, flows = [], []
    for t in range(5):
        dx, dy = ((t - 2) * move).long().tolist()
        frames.append(big[:, :, 8 - dy : 8 - dy + h, 8 - dx : 8 - dx + w])  # content moved by (dx, dy)
        flows.append((t - 2) * move.view(1, 2, 1, 1).expand(1, 2, h, w))
    x, flows = torch.stack(frames, 1), torch.stack(flows, 1)
    with torch.no_grad():
        feats = net.align(x, flows)
        centre = net.extract(x[:, 2:3].expand(-1, 5, -1, -1, -1))
    inner = (Ellipsis, slice(6, h - 6), slice(6, w - 6))
    torch.testing.assert_close(feats[inner], centre[inner])
    assert not torch.allclose(net.extract(x)[inner], centre[inner])  # unaligned, they differ


def test_alignment_runs_in_float32_under_mixed_precision():
    """Autocast is off for flows and resampling (float16 coordinates are too coarse), on for the body."""
    net = small_net("fgdc")
    dtypes = {}
    for name, module in [
        ("flow", net.spynet),
        ("aligned", net.deform_align),
        ("qkv", net.layers[0].residual_group.blocks[0].attn.qkv),
    ]:
        module.register_forward_hook(lambda m, i, o, name=name: dtypes.__setitem__(name, o.dtype))
    x = torch.rand(1, 5, 3, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(x)
    assert dtypes == {"flow": torch.float32, "aligned": torch.float32, "qkv": torch.bfloat16}
    torch.testing.assert_close(out.float(), net(x), atol=0.05, rtol=0.05)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="alignment must be one of"):
        VSRTransformer(alignment="flow", **SMALL)
    with pytest.raises(ValueError, match=r"window_size\[0\]=3 must divide num_frame=5"):
        VSRTransformer(**{**SMALL, "window_size": [3, 8, 8]})
    with pytest.raises(ValueError, match="square spatial window"):
        VSRTransformer(alignment="patch", **{**SMALL, "window_size": [5, 8, 16]})
    with pytest.raises(ValueError, match="interpolation"):
        VSRTransformer(alignment="feature", interpolation="bicubic", **SMALL)
    with pytest.raises(ValueError, match="expected windows"):
        small_net("none")(torch.rand(1, 3, 3, 16, 16))


# ----------------------------------------------------------------------------- parameter counts
# trainable parameters at the defaults, beside the paper's alignment study (12.9M, 12.9M, 14.8M, 16.1M)
COUNTS = {
    "none": 13_161_187,
    "image_fixed": 13_161_187,
    "image_finetune": 14_601_487,
    "feature_bilinear": 14_601_487,
    "feature_nearest": 14_601_487,
    "fgdc": 15_689_932,
    "patch_image_nearest": 14_601_487,
    "patch_feature_bilinear": 14_601_487,
    "patch_feature_nearest": 14_601_487,
}
SPYNET = 1_440_300


def _counts(net: torch.nn.Module) -> tuple[int, int]:
    params = list(net.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


@pytest.mark.parametrize("variant", sorted(COUNTS))
def test_parameter_counts_at_the_defaults(variant):
    alignment, kwargs = VARIANTS[variant]
    with torch.device("meta"), pytest.warns(UserWarning) if variant == "image_fixed" else nullcontext():
        net = VSRTransformer(alignment=alignment, **kwargs)
    trainable, total = _counts(net)
    assert trainable == COUNTS[variant]
    assert total == COUNTS[variant] + (SPYNET if variant == "image_fixed" else 0)
    paper = {"none": 12.9e6, "image_fixed": 12.9e6, "feature_bilinear": 14.8e6, "fgdc": 16.1e6}.get(variant)
    if paper is not None:  # within 3% of the paper's
        assert abs(trainable / paper - 1) < 0.03


def test_arch_config_is_the_class_defaults_and_a_16_window_adds_its_position_tables(make_cfg):
    cfg = make_cfg("eval", overrides=["arch=vsr_transformer"])
    with torch.device("meta"):
        net = build_arch(cfg.arch)
        wide = VSRTransformer(window_size=[5, 16, 16])
    assert _counts(net)[0] == COUNTS["none"] and net.window_size == (5, 8, 8)
    assert _counts(wide)[0] - COUNTS["none"] == 84 * 6 * (9 * 31 * 31 - 9 * 15 * 15) == 3_338_496


# ------------------------------------------------------------------------ recipe and sweep files
def sweep_jobs(experiment: str) -> list[dict[str, str]]:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[f"sweep={experiment}"], return_hydra_config=True)
    GlobalHydra.instance().clear()
    params = cfg.hydra.sweeper.params
    overrides = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    axes = {o.get_key_element(): list(o.sweep_string_iterator()) for o in overrides}
    return [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]


def test_recipe_values(tmp_path):
    cfg = compose_config("train", ["experiment=vsr_transformer"], tmp_path / "run")
    assert cfg.arch._target_.endswith(".VSRTransformer") and cfg.arch.alignment == "none"
    assert (cfg.data.name, cfg.data.train.gt_size, cfg.data.train.num_frames) == ("reds", 256, 5)
    assert cfg.data.train.sampling == "window" and not cfg.data.train.random_reverse
    assert cfg.data.batch_size == 1
    assert cfg.model.optimizer.lr == 2e-4 and list(cfg.model.optimizer.betas) == [0.9, 0.99]
    assert cfg.trainer.max_steps == 600_000 and list(cfg.model.scheduler.periods) == [600_000]
    assert cfg.model.loss.reduction == "mean" and cfg.model.ema.decay == 0.999
    assert not cfg.model.lr_mult and not cfg.model.freeze
    assert cfg.trainer.precision == "32-true"
    gpu = compose_config("train", ["experiment=vsr_transformer", "trainer=gpu"], tmp_path / "gpu")
    assert gpu.trainer.precision == "16-mixed"
    fgdc = compose_config(
        "train", ["experiment=vsr_transformer", "row/vsrt_alignment=fgdc"], tmp_path / "fgdc"
    )
    assert fgdc.arch.alignment == "fgdc"
    assert dict(fgdc.model.lr_mult) == {"spynet": 0.125, "deform_align": 0.125}
    assert (
        list(fgdc.model.freeze[0].modules) == ["spynet", "deform_align"]
        and fgdc.model.freeze[0].until_step == 5000
    )


# the paper's rows: (alignment, interpolation the net uses, position, flow fine-tuned)
TABLE = {
    "none": ("none", "bilinear", "feature", True),
    "image": ("image", "bilinear", "image", False),
    "image_finetune": ("image", "bilinear", "image", True),
    "feature_bilinear": ("feature", "bilinear", "feature", True),
    "feature_nearest": ("feature", "nearest", "feature", True),
    "fgdc": ("fgdc", "bilinear", "feature", True),
    "patch_image_nearest": ("patch", "nearest", "image", True),
    "patch_feature_bilinear": ("patch", "bilinear", "feature", True),
    "patch_feature_nearest": ("patch", "nearest", "feature", True),
}


def _check_job(tmp_path: Path, experiment: str, job: dict[str, str]) -> VSRTransformer:
    cfg = compose_config("train", [f"sweep={experiment}", *(f"{k}={v}" for k, v in job.items())], tmp_path)
    with (
        torch.device("meta"),
        pytest.warns(UserWarning) if job["row/vsrt_alignment"] == "image" else nullcontext(),
    ):
        net = build_arch(cfg.arch)
    alignment, interpolation, position, finetune = TABLE[job["row/vsrt_alignment"]]
    assert (net.alignment, net.interpolation, net.flow_finetune) == (alignment, interpolation, finetune)
    if alignment == "patch":
        assert net.position == position
    # the row's learning-rate and freezing rules name the network's modules (ParamRules checks them)
    rules = ParamRules(net, cfg.model.lr_mult, cfg.model.freeze)
    if net.spynet is not None and finetune:
        assert cfg.model.lr_mult.spynet == 0.125 and rules.frozen(0) and not rules.frozen(5000)
    else:
        assert not cfg.model.lr_mult and not rules.frozen(0)
    return net


def test_alignment_table_sweep_has_one_job_per_row_of_the_paper(tmp_path):
    jobs = sweep_jobs("rethinking_alignment_table")
    assert [j["row/vsrt_alignment"] for j in jobs] == list(TABLE)
    planned = plan_jobs([[f"row/vsrt_alignment={r}"] for r in TABLE], ["row/vsrt_alignment"])
    assert [j["subdir"] for j in planned] == [f"vsrt_alignment={r}" for r in TABLE]
    counts = {}
    for i, job in enumerate(jobs):
        net = _check_job(tmp_path / str(i), "rethinking_alignment_table", job)
        counts[job["row/vsrt_alignment"]] = _counts(net)[0]
    assert counts["none"] == counts["image"] == COUNTS["none"]
    assert counts["feature_nearest"] == COUNTS["feature_nearest"] and counts["fgdc"] == COUNTS["fgdc"]
    assert set(ROWS) == set(TABLE) | {"image_finetune"}


def test_attention_window_sweep_crosses_8_and_16_with_none_and_patch_alignment(tmp_path):
    jobs = sweep_jobs("attention_window")
    assert [(j["arch.window_size"], j["row/vsrt_alignment"]) for j in jobs] == [
        ("[5,8,8]", "none"),
        ("[5,8,8]", "patch_feature_nearest"),
        ("[5,16,16]", "none"),
        ("[5,16,16]", "patch_feature_nearest"),
    ]
    subdirs = [
        j["subdir"] for j in plan_jobs([[f"{k}={v}" for k, v in j.items()] for j in jobs], list(jobs[0]))
    ]
    assert subdirs[-1] == "window_size=5-16-16,vsrt_alignment=patch_feature_nearest"
    for i, job in enumerate(jobs):
        net = _check_job(tmp_path / str(i), "attention_window", job)
        assert net.window_size == tuple(int(v) for v in job["arch.window_size"].strip("[]").split(","))
    # window_size.yaml still sweeps EDVR's frames per window
    assert [j["arch.num_frame"] for j in sweep_jobs("window_size")] == ["3", "5", "7"]


# ---------------------------------------------------------------------------- debug=fdr training
TINY = [f"arch.{k}={v}".replace(" ", "") for k, v in SMALL.items()]
FDR = [
    "debug=fdr",
    "extras.print_config=false",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "data.batch_size=1",
    "data.num_workers=0",
    "data.train.gt_size=64",
    "data.val.lq_size=[24,24]",
    "data.val.num_frames=5",
    "data.val.num_clips=1",
]


@pytest.mark.parametrize("row", ROWS)
def test_debug_run_of_every_alignment_row_on_synthetic_clips(tmp_path, row):
    """The recipe with each row on the embedded synthetic clips (its GT patch size made 64: LR 16)."""
    overrides = ["experiment=vsr_transformer", "data=synthetic", f"row/vsrt_alignment={row}", *TINY, *FDR]
    cfg = compose_config("train", overrides, tmp_path / "run")
    assert (cfg.data.train.num_frames, cfg.data.train.gt_size) == (5, 64)
    if row == "image":
        with pytest.warns(UserWarning, match="spynet_path is null"):
            results = train(cfg)
    else:
        results = train(cfg)
    assert results["global_step"] == 1


def test_debug_run_of_the_recipe_on_a_tiny_reds(tmp_path):
    root = tmp_path / "data"
    reds_layout(root, (32, 48))
    generic = ["data.train.gt_size=32", "data.pin_memory=false", f"data.root={root}"]
    overrides = [
        "experiment=vsr_transformer",
        "row/vsrt_alignment=patch_feature_nearest",
        *TINY,
        *FDR[:6],
        *generic,
    ]
    results = train(compose_config("train", overrides, tmp_path / "run"))
    assert results["global_step"] == 1
