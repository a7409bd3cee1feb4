"""SynthStreet: procedural street-scene videos with CamVid labels and exact ground-truth flow.

`SynthClip` makes one clip frame by frame; `write_dataset` writes a whole set (H.264 videos, label
PNGs, optional flow, manifest) as `arseg synth` does. docs/SYNTH.md describes the model and formats.

Modules, one job each: camera (intrinsics, poses, the ego path), street (the road's plan), lighting
(sun, sky, tone curve), textures (noise, mip-maps), paint (albedos), shapes (silhouettes), assemble
(quads from skins), layout (static scenery), actors (things that move), surfaces (ground and sky),
scene (the records), world (building a clip's scene), render (drawing a frame), flow (exact flow),
clip (frames of a clip), dataset (writing a set).
"""

from arseg_cli.synth.clip import SynthClip, SynthFrame, clip_rng
from arseg_cli.synth.dataset import SynthSpec, write_dataset

__all__ = ["SynthClip", "SynthFrame", "SynthSpec", "clip_rng", "write_dataset"]
