"""model.compile, model.channels_last and model.checkpointing change speed and memory, not results;
trainer.deterministic=true reproduces a run bit for bit on the CPU."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch.autograd.graph import saved_tensors_hooks

from conftest import train_tiny_checkpoint
from vsrlab.apps.train import train
from vsrlab.archs import BasicVSR, BasicVSRPlusPlus, IconVSR, PSRTRecurrent, SlidingWindowVSR
from vsrlab.archs.dksan_arch import DKSAN
from vsrlab.archs.edvr_arch import EDVR
from vsrlab.archs.vsr_transformer_arch import VSRTransformer
from vsrlab.models import VSRModule
from vsrlab.models.speed import apply_speed_options, enable_checkpointing, is_checkpointed
from vsrlab.utils.checkpoint import read_checkpoint

NETS = {  # name: (builder, input shape)
    "basicvsr": (lambda: BasicVSR(num_feat=8, num_block=2), (1, 3, 3, 64, 64)),
    "iconvsr": (lambda: IconVSR(num_feat=8, num_block=2, keyframe_stride=2), (1, 5, 3, 64, 64)),
    "basicvsr_pp": (
        lambda: BasicVSRPlusPlus(mid_channels=8, num_blocks=2, deformable_groups=2),
        (1, 3, 3, 64, 64),
    ),
    "psrt_recurrent": (lambda: PSRTRecurrent(embed_dim=12, depths=[2], num_heads=[2]), (1, 2, 3, 64, 64)),
    "vsr_transformer": (
        lambda: VSRTransformer(
            embed_dim=12, depths=[2], num_heads=[2], mid_channels=8, alignment="fgdc", deformable_groups=3
        ),  # fmt: skip
        (1, 5, 3, 32, 32),
    ),
    "edvr": (
        lambda: EDVR(num_feat=8, num_extract_block=2, num_reconstruct_block=2, deformable_groups=2),
        (1, 5, 3, 16, 16),
    ),  # fmt: skip
    "dksan": (
        lambda: DKSAN(
            num_feat=16,
            num_frame=3,
            num_extract_block=1,
            deformable_groups=4,
            rcab_per_level=(1, 1),
            upscale=4,
        ),  # fmt: skip
        (1, 3, 3, 12, 12),
    ),
}


def build(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return NETS[name][0]()


def run_step(
    net: torch.nn.Module, x: torch.Tensor, watch: list[str] = ()
) -> tuple[torch.Tensor, dict[str, torch.Tensor], int, int]:
    """Output, gradients, the bytes of the tensors kept for backward (outside checkpointed regions) and
    of those the modules named in ``watch`` kept."""
    kept, inside, depth = 0, 0, [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal kept, inside
        kept += t.numel() * t.element_size()
        inside += t.numel() * t.element_size() if depth[0] else 0
        return t

    modules = dict(net.named_modules())
    hooks = [h for n in watch for h in (
        modules[n].register_forward_pre_hook(lambda *a: depth.__setitem__(0, depth[0] + 1)),
        modules[n].register_forward_hook(lambda *a: depth.__setitem__(0, depth[0] - 1)),
    )]  # fmt: skip
    net.zero_grad(set_to_none=True)
    torch.manual_seed(1)  # stochastic depth of the transformers: the same draws with and without
    with saved_tensors_hooks(pack, lambda t: t):
        out = net(x)
    out.square().mean().backward()
    for h in hooks:
        h.remove()
    grads = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}
    return out.detach(), grads, kept, inside


@pytest.mark.parametrize("name", sorted(NETS))
def test_checkpointing_gives_the_same_outputs_and_gradients_and_keeps_less(name):
    x = torch.rand(*NETS[name][1], generator=torch.Generator().manual_seed(2))
    checkpointed = build(name).train()
    names = enable_checkpointing(checkpointed, True)
    assert names
    plain = build(name).train()
    out, grads, kept, inside = run_step(plain, x, names)
    out_c, grads_c, kept_c, _ = run_step(checkpointed, x)
    assert torch.allclose(out_c, out, rtol=1e-5, atol=1e-6)
    assert grads_c.keys() == grads.keys()
    for k in grads:
        assert torch.allclose(grads_c[k], grads[k], rtol=1e-4, atol=1e-6), k
    # at least half of what the checkpointed modules kept is no longer kept (their inputs stay; in a
    # plain run some of their tensors are kept by the modules around them too): 61-98% measured
    assert kept - kept_c > 0.5 * inside > 0, (kept, kept_c, inside)
    # evaluation is untouched: no recomputation without gradients
    checkpointed.eval()
    with torch.no_grad():
        assert torch.allclose(checkpointed(x), plain.eval()(x), rtol=1e-5, atol=1e-6)


def test_checkpointing_uses_the_architectures_own_switch_or_its_modules():
    psrt = build("psrt_recurrent")
    enable_checkpointing(psrt, True)
    assert psrt.use_checkpoint and not any(is_checkpointed(m) for m in psrt.modules())
    basicvsr = build("basicvsr")
    assert enable_checkpointing(basicvsr, True) == ["backward_trunk", "forward_trunk"]
    pp = build("basicvsr_pp")
    assert enable_checkpointing(pp, True) == [f"backbone.{k}" for k in pp.backbone]  # outermost only
    assert enable_checkpointing(build("edvr"), ["reconstruction.*"]) == [
        "reconstruction.0",
        "reconstruction.1",
    ]


def test_checkpointing_errors_name_the_network_and_the_patterns():
    with pytest.raises(ValueError, match="SlidingWindowVSR names no checkpoint_modules"):
        enable_checkpointing(SlidingWindowVSR(num_feat=8, deformable_groups=2), True)
    with pytest.raises(ValueError, match=r"\['trunk\*'\] match no module of BasicVSR"):
        enable_checkpointing(build("basicvsr"), ["trunk*", "forward_trunk"])


def test_checkpointed_copy_stays_bound_to_its_own_weights():
    """The weight average is a deepcopy of the trained net: its checkpointed forward uses its weights."""
    net = build("basicvsr")
    enable_checkpointing(net, True)
    twin = copy.deepcopy(net)
    with torch.no_grad():
        for p in twin.parameters():
            p.mul_(0.5)
    x = torch.rand(1, 3, 3, 64, 64)
    assert twin.backward_trunk.forward.__self__ is twin.backward_trunk
    assert not torch.allclose(twin.train()(x), net.train()(x))


@pytest.mark.parametrize("name", ["edvr", "basicvsr_pp"])
def test_channels_last_gives_the_same_outputs(name):
    x = torch.rand(*NETS[name][1], generator=torch.Generator().manual_seed(2))
    plain = build(name).eval()
    fast = apply_speed_options(build(name).eval(), channels_last=True)
    conv = next(m for m in fast.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert torch.allclose(fast(x), plain(x), rtol=1e-5, atol=1e-5)
    again = build(name).eval()
    again.load_state_dict(fast.state_dict())  # loads into a plain network
    with torch.no_grad():
        assert torch.allclose(again(x), plain(x), rtol=1e-5, atol=1e-5)


def test_compiled_network_gives_the_same_outputs_and_keeps_plain_keys():
    net = build("edvr").eval()
    x = torch.rand(*NETS["edvr"][1])
    with torch.no_grad():
        reference = net(x)
    keys = list(net.state_dict())
    apply_speed_options(net, compile={"backend": "aot_eager"})
    with torch.no_grad():
        assert torch.allclose(net(x), reference, rtol=1e-5, atol=1e-6)
    assert list(net.state_dict()) == keys and not any("_orig_mod" in k for k in keys)


@pytest.mark.slow
def test_inductor_compiled_network_gives_the_same_outputs():
    """The default backend (inductor: generated C++ on the CPU; needs a compiler, minutes on 2 cores)."""
    net = SlidingWindowVSR(num_feat=8, deformable_groups=2).eval()
    x = torch.rand(1, net.num_frame, 3, 16, 16)
    with torch.no_grad():
        reference = net(x)
        apply_speed_options(net, compile=True)
        assert torch.allclose(net(x), reference, rtol=1e-4, atol=1e-5)


@pytest.mark.slow  # over 20 s on 2 cores (docs/development.md)
def test_module_options_train_and_the_checkpoint_loads_uncompiled(tmp_path):
    """model.compile (backend eager: TorchDynamo tracing, no compiler), channels_last and checkpointing
    through vsrlab-train; the checkpoint's keys are the plain network's and it loads into a module
    without the options."""
    ckpt = train_tiny_checkpoint(
        tmp_path / "run",
        ["arch=edvr", "data.train.num_frames=5", "data.val.num_frames=5", "arch.num_extract_block=1",
         "+model.compile={backend:eager}", "model.channels_last=true", "model.checkpointing=true"],
    )  # fmt: skip
    state = read_checkpoint(ckpt)
    hparams = state["hyper_parameters"]
    assert hparams["compile"] == {"backend": "eager"} and hparams["checkpointing"] is True
    assert not any("_orig_mod" in k for k in state["state_dict"])
    plain = VSRModule(**{**hparams, "compile": False, "channels_last": False, "checkpointing": False})
    plain.load_state_dict(state["state_dict"])  # strict


def test_unknown_checkpointing_pattern_is_named_at_start(make_cfg):
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    cfg = make_cfg(overrides=["model.checkpointing=[nothing.*]"])
    match = r"model.checkpointing: \['nothing.\*'\] match no module"
    with pytest.raises(InstantiationException, match=match):
        instantiate(cfg.model)


@pytest.fixture
def _restore_determinism():
    yield
    torch.use_deterministic_algorithms(False)


def _final_weights(make_cfg, run: str, deterministic: bool) -> dict[str, torch.Tensor]:
    cfg = make_cfg(overrides=[f"trainer.deterministic={str(deterministic).lower()}", "test=false"], run=run)
    train(cfg)
    return read_checkpoint(next(Path(cfg.paths.output_dir).rglob("last.ckpt")))["state_dict"]


def test_deterministic_mode_reproduces_a_run_bit_for_bit(make_cfg, _restore_determinism):
    first = _final_weights(make_cfg, "a", True)
    assert torch.are_deterministic_algorithms_enabled()
    second = _final_weights(make_cfg, "b", True)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
