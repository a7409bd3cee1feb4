"""Re-create the embedded demo clips, made by arseg's own generators.

    python samples/make_sample.py

- sample.mp4: a textured synthetic clip with exactly known motion (arseg_cli.video.synthetic), for
  `arseg info` / `arseg motion`;
- synthstreet.mp4: a SynthStreet street scene (arseg_cli.synth, seed 7: not in the default weights'
  training or test data, seeds 1 and 2), 72 frames at 360x480, H.264 with a keyframe every 12 frames,
  for `arseg segment` (the same as `arseg synth -o DIR --clips 1 --frames 72 --size 360x480 --seed 7`).
"""

import shutil
import tempfile
from pathlib import Path

from arseg_cli.synth import SynthSpec, write_dataset
from arseg_cli.video.synthetic import make_clip, write_clip

HERE = Path(__file__).parent

if __name__ == "__main__":
    clip = make_clip(frames=48, height=360, width=480, pan_px=(2, 1), object_px=(-3, 2), object_size=96, seed=7)
    out = write_clip(clip.frames, HERE / "sample.mp4", fps=30, keyint=12, crf=23)
    print(out, out.stat().st_size, "bytes")
    with tempfile.TemporaryDirectory() as tmp:
        write_dataset(Path(tmp), SynthSpec(clips=1, frames=72, height=360, width=480, seed=7))
        out = Path(shutil.copyfile(Path(tmp) / "clip_0000" / "video.mp4", HERE / "synthstreet.mp4"))
    print(out, out.stat().st_size, "bytes")
