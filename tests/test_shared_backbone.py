"""ModelMeta.lr_backbone == 'shared': the LR branch runs the HR branch's backbone module (BiSeNet: the
context path, CamVid PSPNet: the ResNet-18); files store it once and load back tied; architectures without
one backbone module refuse it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from arseg_cli.errors import OptionsError
from arseg_cli.model import build_arseg, load_weights, save_weights
from arseg_cli.model.backbones.resnet import ResNet18
from arseg_cli.model.architecture import CAMVID_MEAN, CAMVID_STD
from arseg_cli.model.meta import ModelMeta
from arseg_cli.palettes import CAMVID


def _meta(arch: str = "camvid-bise18", **changes: object) -> ModelMeta:
    meta = ModelMeta(arch, CAMVID.classes, CAMVID.colors, CAMVID_MEAN, CAMVID_STD, scale=0.5)
    return replace(meta, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(("arch", "name"), [("camvid-bise18", "cp"), ("camvid-psp18", "feats")])
def test_shared_backbone_is_the_hr_module(arch: str, name: str) -> None:
    model = build_arseg(_meta(arch, lr_backbone="shared"))
    assert getattr(model.lr, name) is getattr(model.hr, name)
    hr_backbones = [m for m in model.hr.modules() if isinstance(m, ResNet18)]
    lr_backbones = [m for m in model.lr.modules() if isinstance(m, ResNet18)]
    assert len(hr_backbones) == 1 and lr_backbones == hr_backbones
    own = build_arseg(_meta(arch))
    assert getattr(own.lr, name) is not getattr(own.hr, name)


def test_shared_backbone_file_stores_it_once_and_loads_tied(tmp_path: Path) -> None:
    torch.manual_seed(0)
    shared, own = build_arseg(_meta(lr_backbone="shared")), build_arseg(_meta())
    backbone_values = sum(t.numel() for t in shared.hr.cp.state_dict().values())
    shared_path = save_weights(shared, tmp_path / "shared.safetensors")
    own_path = save_weights(own, tmp_path / "own.safetensors")
    # float32 (int64 step counters aside): smaller by the backbone's values, plus their header entries.
    saved_bytes = own_path.stat().st_size - shared_path.stat().st_size
    assert 4 * backbone_values <= saved_bytes <= 4 * backbone_values + 200_000
    loaded = load_weights(shared_path)
    assert loaded.meta.lr_backbone == "shared" and loaded.lr.cp is loaded.hr.cp
    shared.eval()
    x = torch.randn(1, 3, 64, 96)
    flow = torch.randn(1, 2, 64, 96)
    with torch.inference_mode():
        logits, feat = shared.keyframe(x)
        expected = shared.nonkeyframe(shared.downscale(x), feat, flow)
        got_logits, got_feat = loaded.keyframe(x)
        got = loaded.nonkeyframe(loaded.downscale(x), got_feat, flow)
    torch.testing.assert_close(got_logits, logits, rtol=0, atol=0)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_frozen_hr_freezes_the_shared_backbone_and_keeps_its_statistics() -> None:
    model = build_arseg(_meta(lr_backbone="shared"))
    model.freeze_hr()
    model.train()
    assert not model.lr.cp.training and all(not p.requires_grad for p in model.lr.cp.parameters())
    assert model.lr.sp.training and all(p.requires_grad for p in model.lr.sp.parameters())  # LR heads train
    before = {k: v.clone() for k, v in model.hr.cp.state_dict().items()}
    model.lr.features(torch.randn(2, 3, 64, 96))
    assert all(torch.equal(v, before[k]) for k, v in model.hr.cp.state_dict().items())


def test_architecture_without_resnet_module_refuses_sharing() -> None:
    meta = ModelMeta("cityscapes-psp18", tuple(f"c{i}" for i in range(19)), tuple((i, i, i) for i in range(19)), CAMVID_MEAN, CAMVID_STD, scale=0.5)
    with pytest.raises(OptionsError, match="lr_backbone 'shared' is not possible"):
        build_arseg(replace(meta, lr_backbone="shared"))
