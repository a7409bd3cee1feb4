"""The native CReFF (`_creff_native.c` through `_native_creff.py`): the plain definition's numbers, the
per-machine build (compiled once, under a lock) and the PyTorch fallback.

Tolerances: float64 runs the portable C code (libm's exp, sums reassociated by the compiler): rounding
of order 1e-15 on outputs of order 1, so 1e-10 as for the PyTorch kernel. float32 differs from the
plain path only by summation order (49-term logits over C channels, 9-tap convolutions, 4-tap
gathers) and its exp (relative error ~2e-7): max |difference| measured ~1e-6 for outputs up to ~5,
asserted <= 1e-5 x the output's largest magnitude, the bound the PyTorch kernel's float32 test uses.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
import torch
from torch import Tensor

from arseg_cli.model import _native_build
from arseg_cli.model._native_build import cached_build, library
from arseg_cli.model._native_creff import native_creff, use_native_creff
from arseg_cli.model.creff import CReFF, local_attention, resize_flow, warp_feature
from arseg_cli.model.resize import resize_bilinear

pytestmark = pytest.mark.skipif(library() is None, reason="no native CReFF build here (no C compiler?)")


def random_creff(channels: int, warp: str, dtype: torch.dtype, window: int = 7) -> CReFF:
    torch.manual_seed(0)
    creff = CReFF(channels, window=window, warp=warp).to(dtype).eval()  # type: ignore[arg-type]
    with torch.no_grad():
        for p in creff.parameters():
            p.normal_(0.0, 0.5)
    return creff


def definition(creff: CReFF, lr: Tensor, key: Tensor, flow_px: Tensor) -> Tensor:
    """CReFF by its plain definition (interpolate, grid_sample warp, convs, shifted products)."""
    up = resize_bilinear(lr, (key.shape[-2], key.shape[-1]), align_corners=True)
    warped = warp_feature(key, flow_px, creff.warp)  # type: ignore[arg-type]
    q, k, v = creff.lr_query_conv(up), creff.hr_key_conv(warped), creff.hr_value_conv(warped)
    return up + local_attention(q, k, v, creff.window)


def inputs(channels: int, lr_size: tuple[int, int], size: tuple[int, int], image: tuple[int, int], dtype: torch.dtype,
           batch: int = 2, channels_last: bool = True) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    gen = torch.Generator().manual_seed(1)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    lr = torch.randn(batch, channels, *lr_size, generator=gen, dtype=dtype).contiguous(memory_format=layout)
    key = torch.randn(batch, channels, *size, generator=gen, dtype=dtype).contiguous(memory_format=layout)
    flow = 3.0 * torch.randn(batch, 2, *image, generator=gen, dtype=dtype)  # reaches past the border too
    return lr, key, flow


def run_native(creff: CReFF, lr: Tensor, key: Tensor, flow_px: Tensor, **tiling: int) -> Tensor:
    flow_feat = resize_flow(flow_px, (key.shape[-2], key.shape[-1]))
    convs = (creff.lr_query_conv, creff.hr_key_conv, creff.hr_value_conv)
    out = native_creff(lr, key, flow_feat, convs, warp=creff.warp, window=creff.window, **tiling)  # type: ignore[arg-type]
    assert out is not None
    return out


@pytest.mark.parametrize("warp", ["official", "exact"])
@pytest.mark.parametrize(
    ("channels", "lr_size", "size", "image", "window", "rows", "workers"),
    [
        (8, (7, 9), (13, 17), (26, 34), 7, 3, 2),  # bands of 3 rows, two threads, image 2x the feature
        (6, (5, 6), (9, 11), (9, 11), 7, 4, 3),  # channels not a multiple of 8: the portable code
        (16, (10, 12), (20, 24), (20, 24), 7, None, None),  # default bands
        (8, (4, 5), (8, 10), (8, 10), 3, 2, 1),
        (8, (3, 3), (5, 4), (5, 4), 5, 1, 2),  # a window wider than the image
        (4, (1, 1), (1, 6), (1, 6), 7, None, None),  # size-1 axes
    ],
)
def test_native_creff_equals_the_definition_in_float64(warp: str, channels: int, lr_size, size, image, window: int,
                                                       rows: int | None, workers: int | None) -> None:  # fmt: skip
    creff = random_creff(channels, warp, torch.float64, window)
    lr, key, flow = inputs(channels, lr_size, size, image, torch.float64)
    with torch.inference_mode():
        expected = definition(creff, lr, key, flow)
        out = run_native(creff, lr, key, flow, **{k: v for k, v in (("rows", rows), ("workers", workers)) if v})
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("channels", [8, 64, 12])  # 8 and 64: the AVX2 code where the CPU has it; 12: portable
@pytest.mark.parametrize("channels_last", [True, False])
def test_native_creff_agrees_with_the_definition_in_float32(channels: int, channels_last: bool) -> None:
    creff = random_creff(channels, "exact", torch.float32)
    lr, key, flow = inputs(channels, (12, 16), (24, 32), (48, 64), torch.float32, channels_last=channels_last)
    with torch.inference_mode():
        expected = definition(creff, lr, key, flow)
        out = run_native(creff, lr, key, flow, rows=5, workers=2)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert float((out - expected).abs().max()) <= 1e-5 * float(expected.abs().max())


def test_creff_inference_takes_the_native_code_and_falls_back_to_the_pytorch_kernel() -> None:
    creff = random_creff(8, "official", torch.float64)
    lr, key, flow = inputs(8, (6, 8), (12, 16), (24, 32), torch.float64)
    with torch.inference_mode():
        native = creff(lr, key, flow)
        use_native_creff(False)
        try:
            assert native_creff(lr, key, resize_flow(flow, (12, 16)), (creff.lr_query_conv,) * 3, warp="exact", window=7) is None
            pytorch = creff(lr, key, flow)
        finally:
            use_native_creff(True)
    torch.testing.assert_close(native, pytorch, rtol=0, atol=1e-10)


def test_other_dtypes_and_devices_are_not_taken() -> None:
    creff = random_creff(8, "exact", torch.float32)
    lr, key, flow = inputs(8, (6, 8), (12, 16), (12, 16), torch.float32)
    convs = (creff.lr_query_conv, creff.hr_key_conv, creff.hr_value_conv)
    assert native_creff(lr.half(), key.half(), flow, convs, warp="exact", window=7) is None
    assert native_creff(lr, key, flow, convs, warp="exact", window=17) is None  # above the C code's largest window
    assert native_creff(lr.double(), key.double(), flow, convs, warp="exact", window=7) is None  # convs are float32


def test_the_build_is_compiled_once_per_machine_and_reused(tmp_path: Path) -> None:
    """Concurrent first uses compile one file (the lock); later ones load it without compiling."""
    built: list[Path | None] = []
    threads = [threading.Thread(target=lambda: built.append(cached_build(tmp_path))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(built)) == 1 and built[0] is not None and built[0].exists()
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".lock", ".so"]  # no scratch file left behind
    stamp = built[0].stat().st_mtime_ns
    assert cached_build(tmp_path) == built[0] and built[0].stat().st_mtime_ns == stamp


def test_without_a_compiler_there_is_no_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_native_build, "compiler", lambda: None)
    assert cached_build(tmp_path) is None
    assert list(tmp_path.iterdir()) == []


def test_the_environment_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARSEG_NATIVE_CREFF", "0")
    library.cache_clear()
    try:
        assert library() is None
    finally:
        monkeypatch.delenv("ARSEG_NATIVE_CREFF")
        library.cache_clear()
    assert library() is not None


def test_the_cache_directory_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ARSEG_CACHE_DIR", str(tmp_path / "a"))
    assert _native_build.cache_dir() == tmp_path / "a"
    monkeypatch.delenv("ARSEG_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "b"))
    assert _native_build.cache_dir() == tmp_path / "b" / "arseg"
    assert os.fspath(_native_build.SOURCE).endswith("_creff_native.c")


def test_a_build_from_other_sources_is_not_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed extension built before the sources changed carries another digest: skipped."""
    current = library()  # the build this machine uses (installed or cached): stale once the digest differs
    if current is None:
        pytest.skip("no native CReFF build on this machine")
    stale = tmp_path / "_creff_native.so"
    stale.write_bytes(Path(current._name).read_bytes())
    monkeypatch.setattr(_native_build, "_installed_builds", lambda: [stale])
    monkeypatch.setattr(_native_build, "source_digest", lambda: "0" * 16)
    monkeypatch.setattr(_native_build, "cache_dir", lambda: tmp_path / "other-cache")
    library.cache_clear()
    try:
        lib = library()
        assert lib is not None and Path(lib._name).parent == tmp_path / "other-cache"
    finally:
        library.cache_clear()


@pytest.mark.parametrize(("arch", "size"), [("camvid-bise18", (96, 128)), ("camvid-psp18", (64, 96))])
def test_labels_are_the_argmax_of_the_image_size_scores(arch: str, size: tuple[int, int]) -> None:
    """ARSeg's *_labels calls (native upsample-and-argmax; psp18 skips its log_softmax) give the argmax
    of keyframe / nonkeyframe scores: equal on every pixel of these random-weight frames."""
    from arseg_cli.model import build_arseg
    from arseg_cli.model.architecture import CAMVID_MEAN, CAMVID_STD
    from arseg_cli.model.meta import ModelMeta
    from arseg_cli.palettes import CAMVID

    torch.manual_seed(0)
    meta = ModelMeta(arch, CAMVID.classes, CAMVID.colors, CAMVID_MEAN, CAMVID_STD, scale=0.5, keyframe_interval=12)
    model = build_arseg(meta).eval()
    x, flow = torch.randn(2, 3, *size), torch.randn(2, 2, *size)
    with torch.inference_mode():
        scores, feat = model.keyframe(x)
        labels, feat_too = model.keyframe_labels(x)
        x_lr = model.downscale(x)
        nonkey_scores, nonkey_labels = model.nonkeyframe(x_lr, feat, flow), model.nonkeyframe_labels(x_lr, feat, flow)
    assert labels.dtype == torch.uint8 and labels.shape == (2, *size)
    torch.testing.assert_close(feat_too, feat, rtol=0, atol=0)
    assert torch.equal(labels.long(), scores.argmax(1))
    assert torch.equal(nonkey_labels.long(), nonkey_scores.argmax(1))


def test_native_labels_follow_interpolate_then_argmax() -> None:
    from arseg_cli.model._native_creff import native_labels

    gen = torch.Generator().manual_seed(2)
    for layout in (torch.channels_last, torch.contiguous_format):
        scores = torch.randn(2, 5, 9, 7, generator=gen).contiguous(memory_format=layout)
        for align_corners, size, factor in ((False, (72, 56), 8.0), (True, (20, 31), None), (False, (13, 17), None)):
            up = torch.nn.functional.interpolate(scores, size=size if factor is None else None, scale_factor=factor,
                                                 mode="bilinear", align_corners=align_corners)  # fmt: skip
            labels = native_labels(scores, size, align_corners=align_corners, scale_factor=factor)
            assert labels is not None and torch.equal(labels.long(), up.argmax(1))


def test_native_labels_of_region_scores_and_near_ties() -> None:
    """Scores as a network gives them (regions of one winning class, so most pixels take their corners'
    class without interpolating) with ties and near-ties (1 ulp to 1e-5 apart) sprinkled in, at
    magnitudes from 1e-3 to 1e4: the labels still equal interpolate + argmax on every pixel."""
    from arseg_cli.model._native_creff import native_labels

    gen = torch.Generator().manual_seed(5)
    for magnitude in (1e-3, 1.0, 1e4):
        regions = torch.randint(0, 12, (1, 1, 6, 8), generator=gen).float()
        winners = torch.nn.functional.interpolate(regions, size=(45, 60), mode="nearest").long()[:, 0]
        scores = torch.rand(1, 12, 45, 60, generator=gen) * magnitude
        scores.scatter_(1, winners[:, None], magnitude * 1.5)
        near = torch.rand(45, 60, generator=gen) < 0.05
        rival = (winners[0] + 1) % 12
        gap = magnitude * 1.5 * torch.tensor([0.0, 1e-7, 1e-6, 1e-5])[torch.randint(0, 4, (45, 60), generator=gen)]
        rival_scores = scores[0].gather(0, rival[None])[0]
        scores[0].scatter_(0, rival[None], torch.where(near, magnitude * 1.5 - gap, rival_scores)[None])
        for align_corners, factor in ((False, 8.0), (True, None)):
            up = torch.nn.functional.interpolate(scores, size=None if factor else (360, 480), scale_factor=factor,
                                                 mode="bilinear", align_corners=align_corners)  # fmt: skip
            labels = native_labels(scores, (360, 480), align_corners=align_corners, scale_factor=factor)
            assert labels is not None and torch.equal(labels.long(), up.argmax(1))


def test_default_bands_give_each_thread_two_and_take_whole_images_from_a_batch() -> None:
    from arseg_cli.model._native_creff import _default_rows

    assert _default_rows(90, 2) == 23  # one bise18 frame on two threads: 4 bands
    assert _default_rows(90, 2, images=4) == 90  # a group chunk of 4 frames: one band each, no rows recomputed
    assert _default_rows(90, 2, images=3) == 45
    assert _default_rows(720, 1) == 360
    assert _default_rows(20, 8) == 8 and _default_rows(5, 2) == 5  # never under 8 rows, never over the height
