"""Builds one clip's world from a random generator: street, light, camera, scenery, actors, ground, sky."""

from __future__ import annotations

import dataclasses

import numpy as np

from arseg_cli.synth.actors import ActorBuilder
from arseg_cli.synth.camera import CameraPath, Intrinsics, make_camera_path
from arseg_cli.synth.layout import SceneryBuilder
from arseg_cli.synth.lighting import random_look
from arseg_cli.synth.render import FAR_M
from arseg_cli.synth.scene import Scene
from arseg_cli.synth.street import random_street
from arseg_cli.synth.surfaces import make_ground, make_sky
from arseg_cli.synth.textures import NoiseBank


FULL_DETAIL_F_PX = 400.0


@dataclasses.dataclass(frozen=True, slots=True)
class World:
    """Everything needed to render a clip: the scene, the camera's intrinsics and its path."""

    scene: Scene
    intrinsics: Intrinsics
    camera: CameraPath


def build_world(rng: np.random.Generator, frames: int, height: int, width: int, fps: float) -> World:
    """A random street scene and camera path for a clip of `frames` frames of height x width at `fps`.

    Only the stretch of street the camera can see during the clip is populated.
    """
    if frames < 1 or height < 2 or width < 2:
        raise ValueError(f"need frames >= 1 and a size of at least 2 x 2, got {frames} frames of {height} x {width}")
    street = random_street(rng)
    look = random_look(rng)
    intrinsics = Intrinsics.for_size(height, width, hfov_deg=rng.uniform(50, 68), horizon=rng.uniform(0.42, 0.55))
    ego_lane = int(rng.integers(street.lanes_each_way))
    camera = make_camera_path(
        rng, frames, fps, street.center, street.slope, street.lane_offset(ego_lane), height_m=rng.uniform(1.1, 1.35)
    )
    z_from, z_to = float(camera.z[0]) - 30.0, float(camera.z[-1]) + FAR_M
    crosswalks = np.arange(z_from + rng.uniform(15, 120), z_to, rng.uniform(70, 200))
    street = dataclasses.replace(street, crosswalks_z=tuple(float(z) for z in crosswalks))
    bank = NoiseBank(rng)
    # Textures as fine as the frames need: full detail from about 480 pixels wide, less below.
    detail = float(np.clip(intrinsics.f / FULL_DETAIL_F_PX, 0.25, 1.0))
    actors = ActorBuilder(rng, bank, look, street, frames, fps, detail)
    scenery = SceneryBuilder(rng, bank, look, street, detail).populate(z_from, z_to, actors.car_quads)
    actors.traffic(z_from, z_to, camera, ego_lane)
    actors.pedestrians(z_from, z_to, crossings_from_z=float(camera.z[-1]) + 10.0)
    actors.bicyclists(z_from, z_to, camera, ego_lane)
    tan_max = float((intrinsics.cy + 1) / intrinsics.f)
    scene = Scene(
        street=street,
        look=look,
        quads=tuple(scenery + actors.quads),
        mover_xz=actors.mover_tracks(),
        ground=make_ground(rng, bank, look),
        sky=make_sky(rng, look, tan_max),
    )
    return World(scene, intrinsics, camera)
