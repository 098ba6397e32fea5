"""load_pretrained: checkpoint layouts, key translation and errors that name what is wrong."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from vsrlab.archs import IncompatibleCheckpointError, load_pretrained


class Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv_first = nn.Conv2d(3, 4, 3)
        self.upconv1 = nn.Conv2d(4, 16, 3)


def _perturbed() -> dict[str, torch.Tensor]:
    return {k: v + 1.0 for k, v in Toy().state_dict().items()}


@pytest.mark.parametrize("layout", ["plain", "params", "params_ema", "module", "mmagic", "lightning"])
def test_every_layout_loads(layout, tmp_path):
    sd = _perturbed()
    ckpt = {
        "plain": sd,
        "params": {"params": sd},
        "params_ema": {"params": {k: torch.zeros_like(v) for k, v in sd.items()}, "params_ema": sd},
        "module": {"params": {"module." + k: v for k, v in sd.items()}},
        "mmagic": {
            "meta": {"epoch": 3},
            "state_dict": {
                "generator.conv_first.conv.weight": sd["conv_first.weight"],
                "generator.conv_first.conv.bias": sd["conv_first.bias"],
                "generator.upsample1.upsample_conv.weight": sd["upconv1.weight"],
                "generator.upsample1.upsample_conv.bias": sd["upconv1.bias"],
            },
        },
        "lightning": {"state_dict": {"net." + k: v for k, v in sd.items()}, "epoch": 1},
    }[layout]
    path = tmp_path / "w.pth"
    torch.save(ckpt, path)
    model = Toy()
    assert load_pretrained(model, path) == {"missing": [], "unexpected": [], "mismatched": []}
    for k, v in model.state_dict().items():
        assert torch.equal(v, sd[k]), k


def test_missing_unexpected_and_mismatched_keys_are_listed():
    sd = _perturbed()
    sd["extra.weight"] = torch.zeros(1)
    del sd["upconv1.bias"]
    sd["conv_first.weight"] = torch.zeros(4, 3, 5, 5)
    with pytest.raises(IncompatibleCheckpointError) as err:
        load_pretrained(Toy(), {"params": sd})
    msg = str(err.value)
    assert "1 missing keys: upconv1.bias" in msg
    assert "1 unexpected keys: extra.weight" in msg
    assert "conv_first.weight: checkpoint (4, 3, 5, 5) vs model (4, 3, 3, 3)" in msg


def test_non_strict_loads_what_fits_and_reports_the_rest():
    sd = _perturbed()
    del sd["upconv1.bias"]
    model = Toy()
    before = model.upconv1.bias.clone()
    report = load_pretrained(model, sd, strict=False)
    assert report == {"missing": ["upconv1.bias"], "unexpected": [], "mismatched": []}
    assert torch.equal(model.conv_first.weight, sd["conv_first.weight"])
    assert torch.equal(model.upconv1.bias, before)


def test_missing_and_unreadable_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_pretrained(Toy(), tmp_path / "nope.pth")
    bad = tmp_path / "corrupt.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupt.pth"):
        load_pretrained(Toy(), bad)
    with pytest.raises(KeyError, match="'params_x'"):
        load_pretrained(Toy(), {"params": _perturbed()}, param_key="params_x")
