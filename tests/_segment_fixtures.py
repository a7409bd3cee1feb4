"""Tiny weights and clips for the segment tests: a random-init camvid-bise18 AR model (64 x 96 frames),
synthetic textured clips with exactly known motion, encoded with libx264 (no B-frames, one reference)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from arseg_cli.model import build_arseg, save_weights
from arseg_cli.model.arseg import ARSeg
from arseg_cli.model.architecture import CAMVID_MEAN, CAMVID_STD
from arseg_cli.model.meta import ModelMeta
from arseg_cli.palettes import CAMVID
from arseg_cli.video.synthetic import make_clip, write_clip

HEIGHT, WIDTH = 64, 96
L = 4


def tiny_meta(scale: float | None = 0.5, keyint: int = L) -> ModelMeta:
    return ModelMeta("camvid-bise18", CAMVID.classes, CAMVID.colors, CAMVID_MEAN, CAMVID_STD, scale=scale,
                     keyframe_interval=keyint)  # fmt: skip


def tiny_model(scale: float | None = 0.5, *, has_hr: bool = True) -> ARSeg:
    """Random weights, fixed seed: outputs vary across the frame, so label comparisons mean something."""
    torch.manual_seed(0)
    return build_arseg(tiny_meta(scale), has_hr=has_hr).eval()


def tiny_weights(path: Path, scale: float | None = 0.5) -> Path:
    return save_weights(tiny_model(scale), path)


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny weights in a file, once per test module (import the fixture to use it)."""
    return tiny_weights(tmp_path_factory.mktemp("w") / "tiny.safetensors")


def clip_frames(frames: int, seed: int = 0) -> list[np.ndarray]:
    return make_clip(frames, HEIGHT, WIDTH, seed=seed).frames


def write_test_clip(path: Path, frames: int = 9, *, keyint: int = L, seed: int = 0, fps: float = 25) -> Path:
    """A panning texture clip; an I-frame every `keyint` frames; ultrafast for speed."""
    return write_clip(clip_frames(frames, seed), path, keyint=keyint, preset="ultrafast", fps=fps)


def write_cut_clip(path: Path, before: int, after: int, *, keyint: int = 50) -> Path:
    """`before` frames of one scene, then `after` of another (a hard cut), with x264's scene-cut
    detection off (arseg's x264 settings), so the first frame after the cut is a P-frame made mostly
    of intra blocks, not an I-frame."""
    frames = clip_frames(before, seed=1) + clip_frames(after, seed=2)
    return write_clip(frames, path, keyint=keyint, preset="ultrafast", fps=25)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """torch on one thread while a test module runs: 2 cores are shared by everyone (import it into
    a test module to use it there)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
