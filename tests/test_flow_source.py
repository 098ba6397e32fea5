"""model.flow_source=batch (oracle flow): the network gets exactly the training batch's flows, and in clip
inference each window's flows from the clip's flow_pairs at predict_clip's window indices (padded ends
included); errors name the key; the sweep that uses it runs a debug step."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import default_collate

from conftest import compose_config
from vsrlab.apps.train import train
from vsrlab.archs import VSRTransformer
from vsrlab.data.synthetic import SyntheticVideoDataset
from vsrlab.inference.clip import predict_clip, window_flows
from vsrlab.models import VSRModule
from vsrlab.models.flow_source import smooth_flow_error
from vsrlab.ops.windows import window_indices

TINY = {"embed_dim": 8, "depths": [2], "num_heads": [1], "window_size": [5, 4, 4], "mid_channels": 8}
ARCH = {"_target_": "vsrlab.archs.vsr_transformer_arch.VSRTransformer", **TINY}
LOSS = {"_target_": "vsrlab.losses.CharbonnierLoss"}
MOTION = {"speed": [1, 4]}


def module(alignment: str = "patch", **kwargs) -> VSRModule:
    return VSRModule({**ARCH, "alignment": alignment, "position": "feature"}, loss=LOSS, **kwargs)


def spy(net: torch.nn.Module) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """Record the ``(x, flows)`` of every call of ``net`` (which still runs)."""
    calls: list[tuple[torch.Tensor, torch.Tensor | None]] = []
    forward = net.forward

    def recording(x: torch.Tensor, flows: torch.Tensor | None = None) -> torch.Tensor:
        calls.append((x.clone(), None if flows is None else flows.clone()))
        return forward(x, flows)

    net.forward = recording
    return calls


def test_training_step_passes_the_batch_flows():
    batch = default_collate(
        [SyntheticVideoDataset("train", num_frames=5, lq_size=(8, 8), motion=MOTION)[i] for i in range(2)]
    )
    model = module(flow_source="batch")
    calls = spy(model.net)
    model.training_step(batch, 0)
    assert len(calls) == 1 and torch.equal(calls[0][0], batch["lq"])
    assert torch.equal(calls[0][1], batch["flow"])
    # without flow_source the network computes its own (here: its SPyNet, which gets no flows)
    plain = module()
    calls = spy(plain.net)
    plain.training_step(batch, 0)
    assert calls[0][1] is None


@pytest.mark.parametrize("padding", ["reflection", "replicate", "reflection_circle"])
def test_clip_inference_gives_each_window_its_flows_from_flow_pairs(padding):
    ds = SyntheticVideoDataset("val", num_clips=1, num_frames=7, lq_size=(8, 8), motion=MOTION)
    batch = default_collate([ds[0]])
    model = module(flow_source="batch", evaluation={"padding": padding, "windows_per_forward": 3})
    model.eval()
    calls = spy(model.net)
    with torch.no_grad():
        out = model.validation_step(batch, 0)["out"]
    assert out.shape == (7, 3, 32, 32)
    pairs, lq = batch["flow_pairs"][0], batch["lq"][0]
    got_x, got_flows = torch.cat([c[0] for c in calls]), torch.cat([c[1] for c in calls])
    assert got_flows.shape == (7, 5, 2, 8, 8)
    for t in range(7):
        window = window_indices(t, 7, 5, padding)
        assert torch.equal(got_x[t], lq[window])
        for i, j in enumerate(window):  # from the centre t to each frame of its window, padded ones too
            assert torch.equal(got_flows[t, i], pairs[t, j]), (t, i, j)
        assert float(got_flows[t, 2].abs().max()) < 1e-6  # the centre's own flow: zero
    # the window at a padded clip end really holds a repeated or reflected frame
    assert window_indices(0, 7, 5, padding)[0] in (0, 1, 2, 4)


def test_window_flows_indexes_centre_and_frame():
    length = 6
    pairs = torch.zeros(length, length, 2, 3, 3)
    for c in range(length):
        for t in range(length):
            pairs[c, t] = 10 * c + t
    frames = [0, 3, 5]
    windows = torch.tensor([window_indices(t, length, 5, "reflection") for t in frames])
    flows = window_flows(pairs, windows, frames)
    assert flows.shape == (3, 5, 2, 3, 3)
    expected = [[10 * c + t for t in window_indices(c, length, 5, "reflection")] for c in frames]
    assert flows[:, :, 0, 0, 0].tolist() == expected  # e.g. frame 0: [2, 1, 0, 1, 2]


def test_predict_clip_with_flows_equals_the_network_on_each_window():
    torch.manual_seed(0)
    net = VSRTransformer(alignment="patch", **TINY).eval()
    ds = SyntheticVideoDataset("val", num_clips=1, num_frames=6, lq_size=(8, 8), motion=MOTION)
    sample = ds[0]
    lq, pairs = sample["lq"], sample["flow_pairs"]
    with torch.no_grad():
        out = predict_clip(net, lq, [0, 3], flow_pairs=pairs, windows_per_forward=8)
        for k, t in enumerate([0, 3]):
            window = window_indices(t, 6, 5)
            alone = net(lq[window][None], flows=pairs[t, window][None])[0]
            torch.testing.assert_close(out[k], alone, rtol=1e-5, atol=1e-5)
        # without them the network aligns with its own SPyNet's flow (random weights): another output
        assert not torch.equal(out, predict_clip(net, lq, [0, 3]))
    with pytest.raises(ValueError, match=r"flow_pairs must be \(6, 6, 2, h, w\)"):
        predict_clip(net, lq, flow_pairs=pairs[:5])


def test_errors_name_the_key():
    with pytest.raises(ValueError, match="model.flow_source must be null or one of"):
        module(flow_source="spynet")
    with pytest.raises(ValueError, match=r"model.flow_source=batch: .* is recurrent"):
        VSRModule(
            {"_target_": "vsrlab.archs.BasicVSR", "num_feat": 4, "num_block": 1},
            loss=LOSS,
            flow_source="batch",
        )
    with pytest.raises(ValueError, match=r"model.flow_source=batch: EDVR.forward takes no flows"):
        VSRModule(
            {"_target_": "vsrlab.archs.EDVR", "num_feat": 8, "deformable_groups": 1},
            loss=LOSS,
            flow_source="batch",
        )
    with pytest.raises(ValueError, match="model.flow_source=batch: .* super-resolves frame 1"):
        VSRModule({**ARCH, "center_frame_idx": 1}, loss=LOSS, flow_source="batch")
    model = module(flow_source="batch")
    train_batch = default_collate([SyntheticVideoDataset("train", num_frames=5, lq_size=(8, 8))[0]])
    del train_batch["flow"]
    with pytest.raises(ValueError, match="model.flow_source=batch but the training batch has no 'flow'"):
        model.training_step(train_batch, 0)
    lean = SyntheticVideoDataset("val", num_clips=1, num_frames=5, lq_size=(8, 8), flow_pairs=False)
    with pytest.raises(ValueError, match="model.flow_source=batch but the val batch has no 'flow_pairs'"):
        model.validation_step(default_collate([lean[0]]), 0)


def test_debug_step_of_the_sweep(tmp_path):
    """One train / val / test step of each alignment of sweep=rethinking_alignment_mini (fast_dev_run):
    the true flow reaches the network in training and in the motion-binned test."""
    trainable = []
    for row in ("none", "patch_feature_nearest"):
        overrides = [
            "sweep=rethinking_alignment_mini",
            f"row/vsrt_alignment={row}",
            "debug=fdr",
            "extras.print_config=false",
            "trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false",
            "data.batch_size=2",
            "data.train.lq_size=[16,16]",
            "data.val.lq_size=[16,16]",
            "data.val.num_clips=1",
            "data.test.lq_size=[16,16]",
            "data.test.num_clips=1",
            "arch.embed_dim=8",
        ]
        cfg = compose_config("train", overrides, tmp_path / row)
        assert cfg.model.flow_source == "batch" and cfg.data.train.num_frames == 5
        assert not cfg.model.freeze and not cfg.arch.flow_finetune  # SPyNet frozen, never called
        results = train(cfg)
        assert results["global_step"] == 1
        assert results["test"]["motion_bins"]["overall"]
        trainable.append(results["params"]["trainable"])
    assert trainable[0] == trainable[1]  # patch alignment adds no trainable parameter (its SPyNet is frozen)


def test_neighbours_centre_is_the_same_network_on_the_centre_frame_repeated():
    batch = default_collate(
        [SyntheticVideoDataset("train", num_frames=5, lq_size=(8, 8), motion=MOTION)[i] for i in range(2)]
    )
    torch.manual_seed(0)
    frames = module(flow_source="batch", ema={"decay": 0.9})
    centre = module(flow_source="batch", neighbours="centre", ema={"decay": 0.9})
    centre.load_state_dict(frames.state_dict())  # the same weights under the same names
    lq, flows = batch["lq"], batch["flow"]
    repeated = lq[:, 2:3].expand_as(lq)
    with torch.no_grad():
        for net in (centre.net, centre.evaluation_net("test")):
            torch.testing.assert_close(
                net(lq, flows=flows), frames.net(repeated, flows=torch.zeros_like(flows)), rtol=0, atol=0
            )
        still = frames.net(repeated, flows=torch.zeros_like(flows))
        assert not torch.equal(frames.net(lq, flows=flows), still)
    assert centre.hparams.neighbours == "centre" and frames.hparams.neighbours == "frames"
    with pytest.raises(ValueError, match=r"model.neighbours must be one of \('frames', 'centre'\)"):
        module(neighbours="center")
    with pytest.raises(ValueError, match="model.neighbours=centre: BasicVSR is recurrent"):
        VSRModule({"_target_": "vsrlab.archs.BasicVSR", "num_feat": 8, "num_block": 1}, loss=LOSS,
                  neighbours="centre")  # fmt: skip


def test_sliding_window_flow_alignment_undoes_a_known_shift():
    """align_type=flow with the true flow: neighbours that are the centre frame shifted by whole pixels
    give, away from the borders, the output of the centre frame repeated (zero flow)."""
    from vsrlab.archs import SlidingWindowVSR

    torch.manual_seed(0)
    net = SlidingWindowVSR(num_feat=8, num_frame=3, num_extract_block=1, num_reconstruct_block=1,
                           align_type="flow").eval()  # fmt: skip
    with torch.no_grad():
        net.upsample[0].weight.mul_(100)  # undo the small start of the last conv: differences show
        net.fusion.weight.mul_(10)
    centre = torch.rand(1, 3, 24, 24)
    shifts = [(2, -1), (0, 0), (-3, 2)]  # (dx, dy) of each frame's content relative to the centre
    x = torch.stack([torch.roll(centre, (dy, dx), dims=(2, 3)) for dx, dy in shifts], 1)
    flows = torch.tensor([[dx, dy] for dx, dy in shifts], dtype=torch.float32).view(1, 3, 2, 1, 1)
    flows = flows.expand(-1, -1, -1, 24, 24)
    with torch.no_grad():
        aligned = net(x, flows=flows)
        still = net(centre[:, None].expand(-1, 3, -1, -1, -1), flows=torch.zeros_like(flows))
        unaligned = net(x, flows=torch.zeros_like(flows))
    inner = (..., slice(4 * 8, 4 * 16), slice(4 * 8, 4 * 16))  # 8 LR px from every border (receptive field)
    torch.testing.assert_close(aligned[inner], still[inner], rtol=0, atol=1e-5)
    assert (unaligned[inner] - still[inner]).abs().max() > 1e-3
    with pytest.raises(ValueError, match=r"align_type='flow' needs flows \(model.flow_source=batch\)"):
        net(x)
    with pytest.raises(ValueError, match="model.flow_source=batch: this SlidingWindowVSR uses no flows"):
        VSRModule({"_target_": "vsrlab.archs.SlidingWindowVSR", "align_type": "none"}, loss=LOSS,
                  flow_source="batch")  # fmt: skip
    with pytest.raises(
        ValueError, match="flow_guided adds flows to deformable offsets; align_type is 'flow'"
    ):
        SlidingWindowVSR(align_type="flow", flow_guided=True)


def test_flow_guided_offsets_are_the_learned_offsets_plus_the_flow():
    from vsrlab.archs import SlidingWindowVSR

    torch.manual_seed(0)
    kw = {"num_feat": 8, "num_frame": 3, "num_extract_block": 1, "num_reconstruct_block": 1,
          "deformable_groups": 2, "num_offsets": 1, "modulated": False}  # fmt: skip
    guided, plain = SlidingWindowVSR(**kw, flow_guided=True), SlidingWindowVSR(**kw)
    plain.load_state_dict(guided.state_dict())
    x, flows = torch.rand(1, 3, 3, 8, 8), torch.randn(1, 3, 2, 8, 8)
    with torch.no_grad():
        guided(x, flows=flows)
        offset = guided.dcn.last_offset
        plain(x, flows=flows)  # ignored: the plain network uses no flows
        base = plain.dcn.last_offset
    yx = flows[0].flip(1).repeat(1, 2, 1, 1)  # (dy, dx) for each of the G = 2 groups
    torch.testing.assert_close(offset - base, yx, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match=r"align_type='deformable' needs flows \(model.flow_source=batch\)"):
        guided(x)


def test_smooth_flow_error_has_the_rms_asked_for_and_is_smooth():
    error = smooth_flow_error((3, 5, 2, 32, 40), 1.0, seed=7)
    rms = error.square().sum(2).mean((-2, -1)).sqrt()
    torch.testing.assert_close(rms, torch.ones(3, 5), rtol=1e-5, atol=0)
    assert torch.equal(error, smooth_flow_error((3, 5, 2, 32, 40), 1.0, seed=7))
    assert not torch.equal(error, smooth_flow_error((3, 5, 2, 32, 40), 1.0, seed=8))
    # smooth: neighbouring pixels differ by a fraction of the field's size (independent pixels: ~1.1)
    step = (error[..., 1:, :] - error[..., :-1, :]).abs().mean() / error.abs().mean()
    assert step < 0.25
    assert torch.equal(
        smooth_flow_error((2, 2, 8, 8), 0.5, seed=0) * 2, smooth_flow_error((2, 2, 8, 8), 1.0, 0)
    )


def test_flow_error_corrupts_every_flow_but_a_frame_to_itself():
    batch = default_collate(
        [SyntheticVideoDataset("train", num_frames=5, lq_size=(8, 8), motion=MOTION)[i] for i in range(2)]
    )
    model = module(flow_source="batch", flow_error=0.5)
    calls = spy(model.net)
    model.training_step(batch, 0)
    given, true = calls[0][1], batch["flow"]
    assert torch.equal(given[:, 2], true[:, 2])  # the centre frame's flow to itself stays zero
    epe = (given - true).square().sum(2).mean((-2, -1)).sqrt()
    torch.testing.assert_close(epe[:, [0, 1, 3, 4]], torch.full((2, 4), 0.5), rtol=1e-5, atol=0)
    # evaluation: every pair (i, j != i) of a clip's flow_pairs, the same error for the same clip
    ds = SyntheticVideoDataset("val", num_clips=1, num_frames=5, lq_size=(8, 8), motion=MOTION)
    clip = default_collate([ds[0]])
    seen = []
    for _ in range(2):
        calls = spy(model.net)
        model.validation_step(clip, 0)
        seen.append(torch.cat([c[1] for c in calls]))
    assert torch.equal(seen[0], seen[1])
    with pytest.raises(
        ValueError, match="model.flow_error=1.0 corrupts the data's flows: set model.flow_source"
    ):
        module(flow_error=1.0)
    with pytest.raises(ValueError, match=r"model.flow_error is an RMS end-point error .* got -1.0"):
        module(flow_source="batch", flow_error=-1)
