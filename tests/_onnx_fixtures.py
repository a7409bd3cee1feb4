"""Shared by the ONNX and bench tests: a random AR model per architecture, a tiny encoded clip, and the
one `arseg export-onnx` run of the suite (started in the background when the session begins)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from arseg_cli.model import arch_config, build_arseg, save_weights
from arseg_cli.model.arseg import ARSeg
from arseg_cli.video.synthetic import make_clip, write_clip

CLIP_HW = (96, 128)


def random_model(arch: str = "camvid-bise18", scale: float | None = 0.5, seed: int = 0) -> ARSeg:
    """HR + AR (CReFF) branches at random init, with non-trivial BatchNorm statistics (so that folding
    them in the inference path changes the arithmetic the check compares)."""
    torch.manual_seed(seed)
    model = build_arseg(arch_config(arch).model_meta(scale=scale, keyframe_interval=4))
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.copy_(0.1 * torch.randn(module.num_features, generator=gen))
            module.running_var.copy_(0.5 + torch.rand(module.num_features, generator=gen))
    return model.eval()


def write_small_clip(path: Path, frames: int = 6, size_hw: tuple[int, int] = CLIP_HW) -> Path:
    """A panning textured clip (H.264, no B-frames, keyframe every 12) of `frames` frames."""
    clip = make_clip(frames=frames, height=size_hw[0], width=size_hw[1], pan_px=(3, 1), object_px=(-4, 2), object_size=32)
    return write_clip([np.ascontiguousarray(f) for f in clip.frames], path)


class BackgroundExport:
    """`arseg export-onnx` of random camvid-bise18 weights, checked on a tiny clip, as a real process.

    Exporting takes 1-2 minutes of single-threaded tracing on a 2-core CPU. The suite's conftest starts
    it when the session begins (only if an ONNX test is selected), so it runs on the second core while
    the tests before tests/test_onnx.py run; those tests then wait for it (`result`). The process runs
    torch on one thread so that it takes one core only."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.model = random_model("camvid-bise18")
        self.weights = Path(save_weights(self.model, root / "bise.safetensors"))
        self.clip = write_small_clip(root / "clip.mp4")
        self.dir = root / "graphs"
        self.argv = ["export-onnx", "-w", str(self.weights), "-o", str(self.dir), "--check-video", str(self.clip), "--json"]
        self._stdout, self._stderr = root / "export.stdout", root / "export.stderr"
        with open(self._stdout, "wb") as out, open(self._stderr, "wb") as err:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "arseg_cli", *self.argv],
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, env={**os.environ, "OMP_NUM_THREADS": "1"},
            )  # fmt: skip

    def result(self, timeout: float = 600) -> dict[str, object]:
        """Wait for the process: its exit code, stdout and stderr."""
        code = self._process.wait(timeout=timeout)
        return {"code": code, "stdout": self._stdout.read_text(), "stderr": self._stderr.read_text(errors="replace")}

    def stop(self) -> None:
        """Kill the process if it still runs (a session that ended early)."""
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
