"""Re-create samples/sample.mp4: the embedded demo clip, made by arseg's own synthetic generator.

    python samples/make_sample.py
"""

from pathlib import Path

from arseg_cli.video.synthetic import make_clip, write_clip

if __name__ == "__main__":
    clip = make_clip(frames=48, height=360, width=480, pan_px=(2, 1), object_px=(-3, 2), object_size=96, seed=7)
    out = write_clip(clip.frames, Path(__file__).with_name("sample.mp4"), fps=30, keyint=12, crf=23)
    print(out, out.stat().st_size, "bytes")
