"""arseg's optional native extensions; everything else about the package is in pyproject.toml.

Both are optional: without a C compiler `pip install -e .` still succeeds. The HEVC bitstream motion
parser is then missing and arseg falls back to motion from a libx264 re-encode for HEVC inputs; CReFF's
native CPU code is compiled on first use into a per-machine cache, or the PyTorch kernel runs."""

from __future__ import annotations

import ast
import hashlib
import re
from glob import glob
from pathlib import Path

from setuptools import Extension, setup

HERE = Path(__file__).parent


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


def creff_native_extension() -> Extension:
    """CReFF's native CPU code (arseg_cli/model/_creff_native.c), a plain shared library that
    arseg_cli/model/_native_build.py loads with ctypes: compiled with that module's FLAGS and the
    sources' digest (its `build_flags`, without importing it: it needs torch)."""
    model = HERE / "arseg_cli" / "model"
    found = re.search(r"^FLAGS = (\(.*?\))$", (model / "_native_build.py").read_text(), re.MULTILINE)
    assert found is not None, "FLAGS not found in _native_build.py"
    sources = (model / "_creff_native.c").read_text() + (model / "_creff_native_real.h").read_text()
    digest = hashlib.sha256(sources.encode()).hexdigest()[:16]
    flags = [flag for flag in ast.literal_eval(found.group(1)) if flag != "-fPIC"]
    return Extension(
        "arseg_cli.model._creff_native",
        sources=["arseg_cli/model/_creff_native.c"],
        depends=["arseg_cli/model/_creff_native_real.h"],
        extra_compile_args=[*flags, f'-DARSEG_SOURCE_DIGEST="{digest}"'],
        libraries=["m"],
        optional=True,
    )


setup(ext_modules=[hevc_extension(), creff_native_extension()])
