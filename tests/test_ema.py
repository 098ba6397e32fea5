"""EMA of the weights (model.ema): BasicSR's recurrence, exact resumption (also after a pre-emption),
evaluation of the average, BasicSR-layout export."""

from __future__ import annotations

import signal

import pytest
import pytorch_lightning as pl
import torch

from vsrlab.apps.evaluate import evaluate
from vsrlab.apps.export import export_weights
from vsrlab.apps.train import train
from vsrlab.archs import SlidingWindowVSR, load_pretrained
from vsrlab.archs.pretrained import basicsr_weights
from vsrlab.cli.export import main as export_main

EMA = ["+model.ema.decay=0.5"]  # a short memory, so that 6 steps move the average visibly


def _state(path):
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


class RecordWeights(pl.Callback):
    """Copies of the trained and averaged parameters at fit start and after every step."""

    history: list[tuple[int, list[torch.Tensor], list[torch.Tensor]]] = []

    def _record(self, trainer, module) -> None:
        RecordWeights.history.append(
            (
                trainer.global_step,
                [p.detach().clone() for p in module.net.parameters()],
                [p.detach().clone() for p in module.net_ema.module.parameters()],
            )
        )

    def on_fit_start(self, trainer, module) -> None:
        RecordWeights.history = []

    def on_train_start(self, trainer, module) -> None:
        self._record(trainer, module)

    def on_train_batch_end(self, trainer, module, *args) -> None:
        self._record(trainer, module)


def test_ema_follows_basicsrs_recurrence_from_the_initial_weights(make_cfg):
    train(
        make_cfg(
            overrides=[
                *EMA,
                "test=false",
                "trainer.max_steps=4",
                "+model.ema.start_step=1",
                "+callbacks.record._target_=test_ema.RecordWeights",
            ]
        )
    )
    history = RecordWeights.history
    assert [step for step, _, _ in history] == [0, 1, 2, 3, 4]
    _, initial, ema0 = history[0]
    assert all(torch.equal(a, b) for a, b in zip(initial, ema0, strict=True))  # a copy of the initial weights
    _, weights1, ema1 = history[1]
    assert all(
        torch.equal(a, b) for a, b in zip(weights1, ema1, strict=True)
    )  # start_step=1: follows the weights
    for (_, _, previous), (step, weights, ema) in zip(history[1:], history[2:], strict=False):
        for p, w, e in zip(previous, weights, ema, strict=True):
            torch.testing.assert_close(e, 0.5 * p + 0.5 * w, rtol=0, atol=1e-7, msg=f"step {step}")
        assert not all(torch.equal(w, e) for w, e in zip(weights, ema, strict=True))


class SignalAtStep(pl.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            signal.raise_signal(signal.SIGUSR2)


@pytest.mark.parametrize(
    "interruption,stop_step",
    [("preempted", 3), ("preempted", 6), ("stopped", 4)],
    ids=["preempted-mid-epoch", "preempted-at-epoch-end", "stopped"],
)
def test_interrupted_and_resumed_run_ends_with_the_same_ema(make_cfg, tmp_path, interruption, stop_step):
    # batch 2, 12 clips: 6 steps per epoch; a checkpoint after step 6 is written after the epoch's
    # last batch (the next epoch must then start from its beginning, with its own order)
    common = [
        *EMA,
        "test=false",
        "trainer.max_steps=9",
        "trainer.val_check_interval=4",
        "data.train.num_clips=12",
    ]
    train(make_cfg(overrides=common, run="full"))
    if interruption == "preempted":  # SIGUSR2 after step n - 1: checkpoint after step n (the next boundary)
        with pytest.raises(SystemExit) as stop:
            train(
                make_cfg(
                    overrides=[
                        *common,
                        "+callbacks.signal._target_=test_ema.SignalAtStep",
                        f"+callbacks.signal.step={stop_step - 1}",
                    ],
                    run="part",
                )
            )
        assert stop.value.code == 128 + signal.SIGUSR2
        assert (
            torch.load(tmp_path / "part/checkpoints/last.ckpt", weights_only=False)["global_step"]
            == stop_step
        )
        resumed = train(
            make_cfg(
                overrides=[
                    *common,
                    "+callbacks.signal._target_=test_ema.SignalAtStep",
                    "+callbacks.signal.step=-1",
                ],
                run="part",
            )
        )
    else:  # a run stopped at step 4 and continued to 8
        train(make_cfg(overrides=[*common, "trainer.max_steps=4"], run="part"))
        resumed = train(make_cfg(overrides=[*common, "ckpt_path=last"], run="part"))
    assert resumed["global_step"] == 9
    full, part = (
        _state(tmp_path / "full/checkpoints/last.ckpt"),
        _state(tmp_path / "part/checkpoints/last.ckpt"),
    )
    ema_keys = [k for k in full if k.startswith("net_ema.module.")]
    assert ema_keys and full.keys() == part.keys()
    for key in full:
        assert torch.equal(full[key], part[key]), f"{key} differs after the resumption"
    assert not torch.equal(full[ema_keys[0]], full[ema_keys[0].replace("net_ema.module.", "net.")])


def test_validation_and_test_evaluate_the_average_and_export_gives_params_and_params_ema(
    make_cfg, tmp_path, capsys
):
    trained = train(make_cfg(overrides=EMA))
    ckpt = trained["best"]["ckpt_path"]
    state = _state(ckpt)
    weights = basicsr_weights({"state_dict": state})
    assert set(weights) == {"params", "params_ema"}
    assert weights["params"].keys() == weights["params_ema"].keys()

    export_main([f"source={tmp_path / 'run'}", f"output={tmp_path / 'weights.pth'}"])
    assert "params (" in capsys.readouterr().out
    exported = torch.load(tmp_path / "weights.pth", weights_only=True)
    for key in ("params", "params_ema"):
        assert all(torch.equal(exported[key][k], weights[key][k]) for k in weights[key])
    assert export_weights(ckpt).name == ckpt.rsplit("/", 1)[-1].replace(".ckpt", ".pth")

    eval_args = [
        "extras.print_config=false",
        "data.val.num_clips=2",
        "data.val.num_frames=5",
        "data.val.lq_size=[24,24]",
        "trainer.enable_progress_bar=false",
    ]
    arch = [
        "arch=sliding_window",
        "arch.num_feat=8",
        "arch.num_extract_block=1",
        "arch.num_reconstruct_block=1",
        "arch.deformable_groups=2",
    ]
    ema = evaluate(make_cfg("eval", overrides=[*eval_args, f"ckpt_path={ckpt}"], run="ema"))
    assert ema["mean"]["psnr"] == pytest.approx(trained["test"]["mean"]["psnr"], abs=1e-6)
    # the same numbers from the exported params_ema loaded as official weights (preferred over params)
    official = evaluate(
        make_cfg(
            "eval",
            overrides=[*eval_args, *arch, f"arch.pretrained={tmp_path / 'weights.pth'}"],
            run="official",
        )
    )
    assert official["mean"]["psnr"] == pytest.approx(ema["mean"]["psnr"], abs=1e-6)
    raw = evaluate(
        make_cfg("eval", overrides=[*eval_args, f"ckpt_path={ckpt}", "+model.ema.test=false"], run="raw")
    )
    # the evaluations above agree to 1e-6 when they evaluate the same weights: beyond that, other weights
    assert raw["mean"]["psnr"] != pytest.approx(ema["mean"]["psnr"], abs=1e-6)
    # params (the trained weights) load by key
    model = SlidingWindowVSR(
        num_feat=8, num_frame=3, num_extract_block=1, num_reconstruct_block=1, deformable_groups=2
    )
    load_pretrained(model, tmp_path / "weights.pth", param_key="params")
    assert all(torch.equal(v, weights["params"][k]) for k, v in model.state_dict().items())


def test_unknown_ema_key_is_named(make_cfg):
    with pytest.raises(Exception, match="unknown model.ema keys \\['decya'\\]"):  # Hydra wraps the KeyError
        train(make_cfg(overrides=["+model.ema.decya=0.9"]))
