"""Native extensions; everything else about the package is in pyproject.toml."""

from __future__ import annotations

import ast
import hashlib
import re
from pathlib import Path

from setuptools import Extension, setup

HERE = Path(__file__).parent


def creff_native_extension() -> Extension:
    """CReFF's native CPU code (arseg_cli/model/_creff_native.c), a plain shared library that
    arseg_cli/model/_native_build.py loads with ctypes: compiled with that module's FLAGS and the
    sources' digest (its `build_flags`, without importing it: it needs torch). Optional: without a C
    compiler the install goes on, and arseg compiles it on first use into a per-machine cache or,
    without a compiler there either, runs the PyTorch kernel."""
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


setup(ext_modules=[creff_native_extension()])
