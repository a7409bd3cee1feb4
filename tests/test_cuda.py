"""The CUDA paths: the model, `--half`, the pipeline and an AMP training step on a GPU give what the CPU
gives. Skipped where torch sees no CUDA device (CI); run them on a GPU machine with
`python -m pytest tests/test_cuda.py`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from _segment_fixtures import tiny_model, write_test_clip
from _train_fixtures import FakePairs, camvid_meta, seeded_model
from arseg_cli.frame_step import FrameStep
from arseg_cli.model.resize import scores_to_labels
from arseg_cli.model import build_arseg
from arseg_cli.model.creff import CReFF
from arseg_cli.palettes import CAMVID
from arseg_cli.pipeline import OutputTargets, Settings, segment_video
from arseg_cli.train import TrainConfig, Trainer
from arseg_cli.train.distributed import Processes

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

CUDA = torch.device("cuda")


@pytest.fixture(autouse=True)
def exact_float32() -> Iterator[None]:
    """TF32 off: float32 on the GPU then differs from the CPU by summation order only."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _inputs(model_device: torch.device, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    key = torch.randn(1, 3, height, width, generator=generator)
    cur = torch.roll(key, 3, dims=-1) + 0.05 * torch.randn(1, 3, height, width, generator=generator)
    flow = torch.zeros(1, 2, height, width)
    flow[:, 0] = 3.0
    return key.to(model_device), cur.to(model_device), flow.to(model_device)


@pytest.mark.parametrize("arch", ["camvid-bise18", "camvid-psp18", "cityscapes-bise18", "cityscapes-psp18"])
def test_keyframe_and_nonkeyframe_on_cuda_equal_the_cpu(arch: str) -> None:
    torch.manual_seed(0)
    model = build_arseg(camvid_meta(arch, scale=0.5)).eval()
    results = {}
    for device in ("cpu", "cuda"):
        m = model.to(device)
        key, cur, flow = _inputs(m.device, 120, 160)  # 120 x 160: not a multiple of 32
        with torch.inference_mode():
            scores, feat = m.keyframe(key)
            nonkey = m.nonkeyframe(m.downscale(cur), feat, flow)
        results[device] = (scores.cpu(), feat.cpu(), nonkey.cpu())
    for cpu, gpu in zip(results["cpu"], results["cuda"], strict=True):
        # float32 sums in another order through ~20 layers: relative differences of ~1e-5
        torch.testing.assert_close(gpu, cpu, rtol=1e-3, atol=1e-3 * float(cpu.abs().max()))


@pytest.mark.parametrize("warp", ["official", "exact"])
@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_creff_kernel_on_cuda_equals_the_plain_definition(warp: str, dtype: torch.dtype, tolerance: float) -> None:
    torch.manual_seed(3)
    creff = CReFF(16, warp=warp).eval().to(CUDA, dtype)  # type: ignore[arg-type]
    lr = torch.randn(2, 16, 13, 17, device=CUDA, dtype=dtype)
    key = torch.randn(2, 16, 26, 33, device=CUDA, dtype=dtype)
    flow = 4 * torch.randn(2, 2, 52, 66, device=CUDA, dtype=dtype)
    with torch.inference_mode():
        assert creff._takes_fast_path(lr, key, flow)
        fast = creff(lr, key, flow)
    with torch.enable_grad():
        plain = creff(lr, key, flow.clone().requires_grad_())  # autograd: the plain path
    torch.testing.assert_close(fast, plain.detach(), rtol=tolerance, atol=tolerance)


def test_creff_kernel_in_float16_on_cuda_is_as_accurate_as_the_plain_path() -> None:
    torch.manual_seed(4)
    creff = CReFF(64).eval().to(CUDA)
    lr, key = torch.randn(1, 64, 45, 60, device=CUDA), torch.randn(1, 64, 90, 120, device=CUDA)
    flow = 6 * torch.randn(1, 2, 180, 240, device=CUDA)
    with torch.inference_mode():
        full = creff(lr, key, flow)
    creff.half()
    with torch.inference_mode():
        fast = creff(lr.half(), key.half(), flow.half())
    with torch.enable_grad():
        plain = creff(lr.half(), key.half(), flow.half().requires_grad_()).detach()
    assert fast.dtype == plain.dtype == torch.float16
    # Unscaled logits (no 1/sqrt(C)) of random features reach ~100, where float16 steps are 0.06: both
    # paths lose the same precision; the kernel may not lose more (its sums run in another order).
    fast_error = float((fast.float() - full).abs().mean())
    plain_error = float((plain.float() - full).abs().mean())
    assert fast_error <= 1.5 * plain_error, (fast_error, plain_error)


def test_half_on_cuda_follows_float32() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (2, 64, 96, 3), dtype=np.uint8)
    flow = np.zeros((1, 2, 64, 96), np.float32)
    labels = {}
    with torch.inference_mode():
        for half in (False, True):
            step = FrameStep(tiny_model().to(CUDA), 0.5, half=half)
            x = step.inputs(rgb[0:1])
            _, feat = step.key(x)
            scores = step.nonkey(step.inputs(rgb[1:2]), feat, flow)
            assert scores.dtype == (torch.float16 if half else torch.float32)
            labels[half] = scores_to_labels(scores.float(), (64, 96)).cpu()
    agree = float((labels[True] == labels[False]).float().mean())
    # float16 keeps ~3 significant digits: labels flip only where the two best scores nearly tie
    assert agree >= 0.98, agree


def test_segment_on_cuda_gives_the_labels_of_the_cpu(tmp_path: Path) -> None:
    clip = write_test_clip(tmp_path / "clip.mp4", frames=9)
    labels = {}
    for device in ("cpu", "cuda"):
        out = tmp_path / device
        summary = segment_video(clip, tiny_model().to(device), OutputTargets(png_dir=str(out)), Settings(), palette=CAMVID)
        assert summary.frames == 9
        labels[device] = np.stack([np.asarray(Image.open(p)) for p in sorted(out.glob("*.png"))])
    agree = float((labels["cpu"] == labels["cuda"]).mean())
    assert agree >= 0.999, agree  # the bar for another backend; float32 order only


@pytest.mark.parametrize("phase", ["hr", "ar"])
def test_an_amp_training_step_on_cuda_runs_and_lowers_the_loss(phase: str) -> None:
    # camvid_meta(scale=0.5) builds the HR network, the LR branch with CReFF and the shared classifier
    model = seeded_model(camvid_meta(scale=0.5 if phase == "ar" else None), seed=1)
    config = TrainConfig(phase=phase, arch="camvid-bise18", steps=12, batch=2, lr=1e-3, optimizer="adam", amp=True)
    trainer = Trainer(model.to(CUDA), FakePairs(2), config, Processes(0, 1, CUDA))
    assert trainer.amp
    losses: list[float] = []
    trainer.run(on_step=lambda report: losses.append(report.losses["total"]))
    assert len(losses) == 12 and all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < np.mean(losses[:3])  # the same batch twelve times: it must fit it
