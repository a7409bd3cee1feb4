"""ModelMeta.input_multiple: BiSeNet networks pad their input to a multiple (edge pixels repeated) and crop
their feature and auxiliary scores back to the input's extent; 1 leaves every network as before."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from arseg_cli.errors import OptionsError
from arseg_cli.model import arch_config, build_arseg, load_weights, save_weights
from arseg_cli.model.meta import ModelMeta


def _meta(arch: str = "camvid-bise18", multiple: int = 1) -> ModelMeta:
    return arch_config(arch).model_meta(scale=0.5, input_multiple=multiple)


def _models() -> tuple[torch.nn.Module, torch.nn.Module]:
    """The same weights without and with padding to 32 (BatchNorm statistics moved off 0 and 1)."""
    torch.manual_seed(0)
    plain = build_arseg(_meta())
    for module in plain.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    padded = build_arseg(_meta(multiple=32))
    padded.load_state_dict(plain.state_dict())
    return plain.eval(), padded.eval()


def _edge_padded(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """x grown to (height, width) by repeating its last row and column (gathered, not F.pad)."""
    rows = torch.arange(height).clamp(max=x.shape[-2] - 1)
    cols = torch.arange(width).clamp(max=x.shape[-1] - 1)
    return x[..., rows, :][..., cols]


def test_padding_leaves_a_frame_it_divides_unchanged() -> None:
    plain, padded = _models()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        for net_plain, net_padded in ((plain.hr, padded.hr), (plain.lr, padded.lr)):
            feat_plain, aux_plain = net_plain.features_and_aux(x, aux=True)
            feat_padded, aux_padded = net_padded.features_and_aux(x, aux=True)
            assert torch.equal(feat_plain, feat_padded)
            assert all(torch.equal(a, b) for a, b in zip(aux_plain, aux_padded, strict=True))


def test_a_padded_network_is_the_network_on_the_edge_padded_frame_cropped_back() -> None:
    plain, padded = _models()
    x = torch.randn(2, 3, 40, 72)  # 40 = 1.25 x 32 rows, 72 = 2.25 x 32 columns
    with torch.no_grad():
        feat, aux = padded.hr.features_and_aux(x, aux=True)
        full_feat, full_aux = plain.hr.features_and_aux(_edge_padded(x, 64, 96), aux=True)
        unpadded = plain.hr.features(x)
    assert feat.shape[-2:] == (math.ceil(40 / 8), math.ceil(72 / 8)) == (5, 9)
    assert torch.equal(feat, full_feat[..., :5, :9])
    assert [a.shape[-2:] for a in aux] == [(40, 72), (40, 72)]
    assert all(torch.equal(a, b[..., :40, :72]) for a, b in zip(aux, full_aux, strict=True))
    assert unpadded.shape[-2:] == (6, 10)  # the plain network's grid: 40 -> 20 -> 10 -> 5 -> 3 rows, x2 x2
    assert not torch.allclose(feat, unpadded[..., :5, :9], atol=1e-3)


def test_padded_weights_segment_at_the_frame_size_in_every_path(tmp_path: Path) -> None:
    """Saved and loaded, both branches pad; the folded inference copies too (they differ from the plain
    model's at a size 32 does not divide, and agree with the unfolded branch up to BatchNorm folding)."""
    plain, padded = _models()
    path = tmp_path / "padded.safetensors"
    save_weights(padded, path, meta=padded.meta, force=False)
    loaded = load_weights(path).eval()
    assert loaded.meta.input_multiple == 32 and loaded.hr.input_multiple == 32 and loaded.lr.input_multiple == 32
    x_hr = torch.randn(1, 3, 72, 104)
    x_lr = loaded.downscale(x_hr)
    flow = torch.zeros(1, 2, 72, 104)
    with torch.no_grad():
        logits, feat = loaded.keyframe(x_hr)
        fused = loaded.nonkeyframe(x_lr, feat, flow)
        plain_logits, _ = plain.keyframe(x_hr)
    with torch.enable_grad():  # grad mode: the branches themselves, not the folded copies
        unfolded_logits, unfolded_feat = loaded.keyframe(x_hr)
        unfolded_fused = loaded.nonkeyframe(x_lr, unfolded_feat, flow)
    assert logits.shape[-2:] == fused.shape[-2:] == (72, 104) and feat.shape[-2:] == (9, 13)
    assert torch.allclose(logits, unfolded_logits, atol=1e-3) and torch.allclose(fused, unfolded_fused, atol=1e-3)
    assert not torch.allclose(logits, plain_logits, atol=1e-2)


def test_input_multiple_travels_in_the_meta_and_old_files_read_as_one() -> None:
    meta = _meta(multiple=32)
    assert ModelMeta.from_json(meta.to_json()).input_multiple == 32
    old = _meta().to_json()
    assert "input_multiple" not in old  # a file of before the field is written as it was
    assert ModelMeta.from_json(old).input_multiple == 1


def test_families_that_do_not_pad_refuse_a_multiple_in_one_line() -> None:
    with pytest.raises(OptionsError, match="camvid-psp18 networks do not pad their input") as refused:
        build_arseg(_meta("camvid-psp18", 32))
    assert "\n" not in str(refused.value)
    with pytest.raises(OptionsError, match="at least 1"):
        build_arseg(replace(_meta(), input_multiple=0))
    from arseg_cli.train import TrainConfig  # `arseg train --arch camvid-psp18 --input-multiple 32`: before any work

    with pytest.raises(OptionsError, match="camvid-psp18 networks do not pad their input"):
        TrainConfig(phase="hr", arch="camvid-psp18", steps=1, batch=2, lr=1e-3, optimizer="adam", input_multiple=32)


def test_a_file_with_an_impossible_padding_is_refused_naming_it(tmp_path: Path) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    from arseg_cli.errors import WeightsError
    from arseg_cli.model.weights import read_state_dict

    plain, _ = _models()
    good = tmp_path / "good.safetensors"
    save_weights(plain, good, meta=plain.meta, force=False)
    with safe_open(str(good), "pt") as stored:
        tensors, header = {k: stored.get_tensor(k) for k in stored.keys()}, dict(stored.metadata())
    for arch, multiple, problem in (("camvid-bise18", 0, "input_multiple must be at least 1"),
                                    ("camvid-psp18", 32, "camvid-psp18 networks do not pad their input")):  # fmt: skip
        meta = {**json.loads(header["meta"]), "arch": arch, "input_multiple": multiple}
        path = tmp_path / f"{arch}-{multiple}.safetensors"
        save_file(tensors, str(path), metadata={**header, "meta": json.dumps(meta)})
        with pytest.raises(WeightsError, match=problem) as refused:
            read_state_dict(path)
        assert str(path) in str(refused.value) and "\n" not in str(refused.value)


def test_a_resumed_scale_out_run_tells_padded_from_unpadded_weights() -> None:
    from arseg_cli.scaleout.jobs import model_fingerprint

    plain, padded = _models()
    assert model_fingerprint(plain) != model_fingerprint(padded)
    again, _ = _models()
    assert model_fingerprint(again) == model_fingerprint(plain)
