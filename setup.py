"""Build of arseg's optional native extensions (the project metadata is in pyproject.toml).

The HEVC bitstream motion parser is optional: without a C compiler `pip install -e .` still succeeds and
arseg falls back to motion from a libx264 re-encode for HEVC inputs."""

from glob import glob

from setuptools import Extension, setup


def hevc_extension() -> Extension:
    native = "arseg_cli/video/hevc/native"
    return Extension(
        "arseg_cli.video.hevc._hevcparse",
        sources=sorted(glob(f"{native}/*.c")),
        depends=sorted(glob(f"{native}/*.h")),  # rebuilt when a header changes, and shipped in the sdist
        include_dirs=[native],
        extra_compile_args=["-O2", "-std=c99"],
        optional=True,
    )


setup(ext_modules=[hevc_extension()])
