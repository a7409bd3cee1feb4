"""The model card's ablation table (weights/ablation_table.py, weights/model_card.py) and the CReFF
diagnosis's attention statistics (benchmarks/diagnose_creff.py)."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def _load(path: Path) -> ModuleType:
    sys.path.insert(0, str(path.parent))  # model_card imports its sibling ablation_table
    try:
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(path.parent))


def _record(directory: Path, name: str, order: int, ar: float, **extra: object) -> None:
    record = {"order": order, "name": name, "change": f"change {name}", "recipe": {"steps": 10},
              "command": f"arseg train {name}", "miou": {"hr": 50.0, "lr": 40.0, "lr_trained": None, "ar": ar},
              "source": "test", **extra}
    (directory / f"{name}.json").write_text(json.dumps(record), encoding="utf-8")


def test_ablation_table_has_one_row_per_run_in_order_with_its_figures(tmp_path: Path) -> None:
    table = _load(ROOT / "weights" / "ablation_table.py")
    _record(tmp_path, "second", 2, 45.5, diagnosis={"own_feature": 47.25, "centre_weight": 0.1, "entropy": 0.5})
    _record(tmp_path, "first", 1, 44.0)
    rows = [line for line in table.ablation_lines(tmp_path) if line.startswith("| first") or line.startswith("| second")]
    assert rows == [
        "| first | change first | 10 | 50 | 40 | - | 44 | - | - | - | - | - |",
        "| second | change second | 10 | 50 | 40 | - | 45.5 | 47.25 | - | - | 0.1 | 0.5 |",
    ]


def test_rewriting_the_ablation_section_keeps_the_rest_of_the_card(tmp_path: Path, monkeypatch) -> None:
    card_module = _load(ROOT / "weights" / "model_card.py")
    card = tmp_path / "README.md"
    card.write_text("# card\n\nintro\n\n## How they were made\n\nrecipe\n", encoding="utf-8")
    runs = tmp_path / "ablations"
    runs.mkdir()
    _record(runs, "only", 1, 44.0)
    monkeypatch.setattr(card_module, "ablation_lines", lambda _: card_module_lines(runs))
    card_module.rewrite_ablations(card)
    once = card.read_text(encoding="utf-8")
    card_module.rewrite_ablations(card)
    assert card.read_text(encoding="utf-8") == once  # replaced, not inserted twice
    assert once.startswith("# card\n\nintro\n\n## Ablations")
    assert once.endswith("## How they were made\n\nrecipe\n")
    assert "| only | change only |" in once


def card_module_lines(directory: Path) -> list[str]:
    return _load(ROOT / "weights" / "ablation_table.py").ablation_lines(directory)


def test_attention_statistics_of_uniform_attention() -> None:
    diagnose = _load(ROOT / "benchmarks" / "diagnose_creff.py")
    creff = diagnose.CReFF(4)
    with torch.no_grad():
        creff.lr_query_conv.weight.zero_()
        creff.lr_query_conv.bias.zero_()  # every logit 0: the softmax is uniform over the 49 positions
    with torch.no_grad():
        centre, entropy = diagnose.attention_statistics(creff, torch.rand(1, 4, 3, 4), torch.rand(1, 4, 6, 8))
    assert math.isclose(centre, 1 / 49, rel_tol=1e-6)
    assert math.isclose(entropy, 1.0, rel_tol=1e-6)


def test_attention_statistics_of_attention_on_one_position() -> None:
    diagnose = _load(ROOT / "benchmarks" / "diagnose_creff.py")
    creff = diagnose.CReFF(1, warp="exact")  # zero flow leaves the key feature as it is
    key = torch.zeros(1, 1, 6, 6)
    key[0, 0, 3, 3] = 1.0  # one bright key: a huge query makes every window that sees it pick it alone
    with torch.no_grad():
        for conv in (creff.lr_query_conv, creff.hr_key_conv):
            conv.weight.zero_()
            conv.bias.zero_()
            conv.weight[0, 0, 1, 1] = 1.0
        creff.lr_query_conv.bias.fill_(1000.0)
    with torch.no_grad():
        centre, entropy = diagnose.attention_statistics(creff, torch.zeros(1, 1, 3, 3), key)
    # Every position of the 6x6 map has (3, 3) in its 7x7 window: all weight goes there, so the entropy
    # is 0 and only the window centred on (3, 3) puts its weight on its centre.
    assert entropy < 1e-6
    assert math.isclose(centre, 1 / 36, rel_tol=1e-6)


def test_value_gain_of_the_fusion_probe_weighs_only_the_keyframe_term() -> None:
    from types import SimpleNamespace

    from arseg_cli.model.creff import CReFF, resize_bilinear

    probe = _load(ROOT / "benchmarks" / "fusion_by_distance.py")
    torch.manual_seed(0)
    creff = CReFF(6, warp="exact")
    model = SimpleNamespace(lr=SimpleNamespace(fuse_attention=creff))
    lr, key, flow = torch.rand(1, 6, 4, 5), torch.rand(1, 6, 8, 10), 3 * torch.randn(1, 2, 64, 80)
    with torch.no_grad():
        before = creff(lr, key, flow)
        up = resize_bilinear(lr, (8, 10), align_corners=True)
        original = probe._scaled_value(model, 2.5)
        scaled = creff(lr, key, flow)
        probe._restore_value(model, original)
        after = creff(lr, key, flow)
    # up + G * sum_k w_k V_k: the LR term stays, the keyframe term is multiplied by G (float32 rounding)
    assert torch.allclose(scaled - up, 2.5 * (before - up), atol=1e-5)
    assert not torch.allclose(scaled, before, atol=1e-2)
    assert torch.equal(after, before)


def test_label_warp_of_the_fusion_probe_moves_labels_along_the_backward_flow() -> None:
    probe = _load(ROOT / "benchmarks" / "fusion_by_distance.py")
    key = np.arange(20, dtype=np.uint8).reshape(4, 5)
    flow = np.zeros((2, 4, 5), np.float32)
    flow[0] = 1.0  # pixel p shows what the keyframe shows one pixel to its right
    flow[1, 2:] = -0.6  # and the lower half what it shows (rounded) one row up
    moved = probe.warp_labels(key, flow)
    np.testing.assert_array_equal(moved[:2, :4], key[:2, 1:])
    np.testing.assert_array_equal(moved[2:, :4], key[1:3, 1:])
    np.testing.assert_array_equal(moved[:, 4], [4, 9, 9, 14])  # past the right edge: the border column


def test_label_warp_is_left_out_where_the_keyframe_has_no_labels(tmp_path: Path) -> None:
    from types import SimpleNamespace

    probe = _load(ROOT / "benchmarks" / "fusion_by_distance.py")
    labels = tmp_path / "000012.png"
    (tmp_path / "000011.png").write_bytes(b"")  # a keyframe label file of the same naming
    frame = SimpleNamespace(name="f", source=None, index=12, labels=labels)
    camvid = SimpleNamespace(layout="camvid")  # CamVid labels one frame in 30, under other names
    assert probe._keyframe_labels(camvid, frame, 1, scored_as=11) is None
    assert probe._keyframe_labels(SimpleNamespace(layout="synthstreet"), frame, 2, scored_as=11) is None  # no 000010.png


def test_the_card_follows_the_phase_ar_chain_back_through_ar_start(tmp_path: Path) -> None:
    import dataclasses

    from arseg_cli.model import save_weights
    from tests._train_fixtures import camvid_meta, seeded_model

    card = _load(ROOT / "weights" / "model_card.py")
    model = seeded_model(camvid_meta(scale=0.5))
    calibration = {"data": "d", "source_weights": "ar.safetensors", "split": "train", "limit": 24, "factor": 6.0,
                   "miou_by_factor": {"1": 0.5, "6": 0.55}}  # fmt: skip
    first = {"command": "arseg train d --phase ar", "config": {"batch": 8, "crop_hw": [192, 256]}, "attention_calibration": calibration}
    calibrated = save_weights(model, tmp_path / "cal.safetensors", meta=dataclasses.replace(model.meta, provenance=first))
    gated = {"command": "arseg train d --fusion-gate --gate-only", "config": {"batch": 4, "crop_hw": None, "gate_only": True},
             "ar_start": str(calibrated)}  # fmt: skip
    chain = card.phase_ar_chain(gated)
    assert [facts["command"] for facts in chain] == [gated["command"], first["command"]]
    text = "\n".join(card._made_lines(chain))
    order = [text.index(words) for words in ("Phase ar:", "Attention calibration", "chosen: x6", "The fusion gate")]
    assert order == sorted(order) and "(whole frames)" in text and "(crops 192x256)" in text
    assert card.phase_ar_chain({"ar_start": str(tmp_path / "gone.safetensors")}) == [{"ar_start": str(tmp_path / "gone.safetensors")}]
