"""A SynthStreet clip: frames with labels and exact backward flow, deterministic from a seed.

Clip `index` of a data set with seed `seed` draws everything from
`np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))`, so any clip can be made
again alone, on any machine, and clips of one seed are independent.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from arseg_cli.synth.flow import GroundTruthFlow, backward_flow
from arseg_cli.synth.render import RenderedFrame, Renderer
from arseg_cli.synth.world import World, build_world
from arseg_cli.scale_interval import check_keyframe_interval


@dataclass(frozen=True, slots=True)
class SynthFrame:
    """One frame of a clip.

    index:     0-based frame number.
    rgb:       (H, W, 3) uint8.
    labels:    (H, W) uint8 CamVid ids (arseg_cli.synth.classes.Label).
    depth:     (H, W) float32 camera depth in metres, +inf for sky.
    reference: the frame the flow points into: the previous frame, or the keyframe (see
               SynthClip.frames); == index for the first frame (or a keyframe).
    flow:      (2, H, W) float32 exact backward flow to `reference`, pixels (zeros when it is itself).
    visible:   (H, W) bool, the pixel's surface point is visible in `reference` (all True when it is
               itself).
    """

    index: int
    rgb: np.ndarray
    labels: np.ndarray
    depth: np.ndarray
    reference: int
    flow: np.ndarray
    visible: np.ndarray


def clip_rng(seed: int, index: int) -> np.random.Generator:
    """The random generator of clip `index` of a data set made with `seed`."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))


class SynthClip:
    """One clip's world and renderer; `frames()` renders it frame by frame (memory stays flat)."""

    def __init__(self, seed: int, index: int, frames: int, height: int, width: int, fps: float = 30.0) -> None:
        self.seed, self.index, self.fps = seed, index, fps
        self.world: World = build_world(clip_rng(seed, index), frames, height, width, fps)
        self.renderer = Renderer(self.world.scene, self.world.intrinsics)
        self._surface_movers = self.renderer.surface_movers()

    @property
    def num_frames(self) -> int:
        return len(self.world.camera)

    def render(self, t: int) -> RenderedFrame:
        """Frame `t` as rendered (colours, labels, depth, surface ids)."""
        return self.renderer.render(t, self.world.camera.pose(t))

    def flow(self, t: int, frame: RenderedFrame, ref: int, reference: RenderedFrame) -> GroundTruthFlow:
        """Exact backward flow of rendered frame `t` to rendered frame `ref` (any other frame, e.g. a keyframe)."""
        movers = self.world.scene.mover_xz
        camera = self.world.camera
        shift = (movers[:, t] - movers[:, ref])[self._surface_movers]
        return backward_flow(frame, camera.pose(t), reference, camera.pose(ref), shift, self.world.intrinsics)

    def frames(self, keyint: int | None = None) -> Iterator[SynthFrame]:
        """Every frame in order, with its flow to the previous frame, or with `keyint` to its
        keyframe: the last frame whose index is a multiple of `keyint` (AR-Seg's L)."""
        if keyint is not None:
            check_keyframe_interval(keyint)
        reference: RenderedFrame | None = None
        for t in range(self.num_frames):
            frame = self.render(t)
            ref = t - t % keyint if keyint else max(t - 1, 0)
            if ref == t:
                flow = np.zeros((2, *frame.labels.shape), np.float32)
                visible = np.ones(frame.labels.shape, bool)
            else:
                assert reference is not None
                truth = self.flow(t, frame, ref, reference)
                flow, visible = truth.flow_px, truth.visible
            yield SynthFrame(t, frame.rgb, frame.labels, frame.depth, ref, flow, visible)
            if not keyint or ref == t:
                reference = frame  # the previous frame, or the newest keyframe
