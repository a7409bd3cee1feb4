"""Where the native code of `_native_creff.py` comes from, and its C interface (ctypes).

First found:
1. the optional extension that `pip install` builds with setup.py (`arseg_cli/model/_creff_native*.so`),
   if it was built from the current sources (the build carries their digest);
2. a per-machine cache, `$ARSEG_CACHE_DIR` or `$XDG_CACHE_HOME/arseg` or `~/.cache/arseg`: the first
   process on a machine without (1) compiles the sources there with the C compiler (`$CC`, else
   Python's, else `cc`; a second or a few), under a file lock so that concurrent processes compile them
   once; the file name carries a digest of the sources, flags and compiler, so edited sources are rebuilt.
Without either (no compiler, a read-only cache, not POSIX) or with `ARSEG_NATIVE_CREFF=0`, `library()`
is None. The library is plain C (no Python API): one build serves every Python version.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import importlib.machinery
import logging
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
from pathlib import Path

logger = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("_creff_native.c")
HEADER = SOURCE.with_name("_creff_native_real.h")  # included by SOURCE
#: The flags of both builds (setup.py reads them here; both add the sources' digest, `build_flags`). Reassociation lets the compiler vectorise the
#: portable code's channel sums; no -march: the AVX2 variant is chosen at run time (see the C file).
FLAGS = ("-O3", "-fPIC", "-fno-math-errno", "-fno-trapping-math", "-fassociative-math", "-fno-signed-zeros", "-ffp-contract=fast")
_DISABLE = "ARSEG_NATIVE_CREFF"


class ImageArgs(ctypes.Structure):
    """`creff_image` of the C file: one image's pointers and sizes."""

    _fields_ = [(name, ctypes.c_void_p) for name in ("lr", "key", "flow", "weights", "biases", "out")] + [
        (name, ctypes.c_int64) for name in ("lr_height", "lr_width", "height", "width", "channels")
    ] + [("window", ctypes.c_int32), ("exact_warp", ctypes.c_int32)]  # fmt: skip


@functools.cache
def library() -> ctypes.CDLL | None:
    """The loaded build (module docstring), or None."""
    if os.environ.get(_DISABLE, "1") == "0":
        return None
    for path in _installed_builds():
        try:
            lib = _declare(ctypes.CDLL(str(path)))
        except (OSError, AttributeError) as error:
            logger.debug("native CReFF: cannot load %s (%s)", path, error)
            continue
        if lib.arseg_creff_source_digest() == source_digest().encode():
            return lib
        logger.debug("native CReFF: %s was built from other sources; not used", path)
    try:
        path = cached_build(cache_dir())
        return None if path is None else _declare(ctypes.CDLL(str(path)))
    except (OSError, AttributeError, subprocess.SubprocessError) as error:
        logger.debug("native CReFF unavailable (%s); using the PyTorch kernel", error)
        return None


def source_digest() -> str:
    """16 hex digits of the C sources' SHA-256: a build carries the digest of what it was built from."""
    return hashlib.sha256((SOURCE.read_text() + HEADER.read_text()).encode()).hexdigest()[:16]


def build_flags() -> list[str]:
    """FLAGS plus the definition of the sources' digest: what both builds pass the compiler."""
    return [*FLAGS, f'-DARSEG_SOURCE_DIGEST="{source_digest()}"']


def cache_dir() -> Path:
    """Where per-machine builds go: $ARSEG_CACHE_DIR, else $XDG_CACHE_HOME/arseg, else ~/.cache/arseg."""
    if os.environ.get("ARSEG_CACHE_DIR"):
        return Path(os.environ["ARSEG_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "arseg"


_SYSCONFIG_LOCK = threading.Lock()


def compiler() -> str | None:
    """The C compiler found here ($CC, the one Python was built with, cc), or None."""
    with _SYSCONFIG_LOCK:  # sysconfig fills its variables on first use, not thread-safely: a thread could see no CC
        configured = sysconfig.get_config_var("CC") or ""
    candidates = [os.environ.get("CC", ""), configured.split(" ")[0], "cc"]
    for name in candidates:
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def cached_build(directory: Path) -> Path | None:
    """The build in `directory` for this source, flags and compiler, compiled now if missing; None
    without a compiler or off POSIX (the lock is an flock)."""
    cc = compiler()
    if cc is None or os.name != "posix":
        return None
    import fcntl

    identity = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    digest = hashlib.sha256("\0".join([*build_flags(), cc, identity, sys.platform]).encode()).hexdigest()[:16]
    target = directory / f"creff_native-{digest}.so"
    if target.exists():
        return target
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "creff_native.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if target.exists():  # another process built it while this one waited
            return target
        handle, scratch = tempfile.mkstemp(suffix=".so", dir=directory)
        os.close(handle)
        try:
            command = [cc, *build_flags(), "-shared", "-o", scratch, str(SOURCE), "-lm"]
            result = subprocess.run(command, capture_output=True, text=True, timeout=300)
            if result.returncode != 0:
                logger.debug("native CReFF: %s failed: %s", cc, result.stderr.strip()[:300])
                return None
            os.replace(scratch, target)
        finally:
            if os.path.exists(scratch):
                os.unlink(scratch)
    return target


def _installed_builds() -> list[Path]:
    here = SOURCE.parent
    return [here / f"_creff_native{suffix}" for suffix in importlib.machinery.EXTENSION_SUFFIXES if (here / f"_creff_native{suffix}").exists()]


def _declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    image, rows = ctypes.POINTER(ImageArgs), [ctypes.c_int64] * 2
    lib.arseg_creff_band_f32.argtypes = [image, *rows, ctypes.c_void_p, ctypes.c_int32]
    lib.arseg_creff_band_f64.argtypes = [image, *rows, ctypes.c_void_p]
    lib.arseg_creff_isa.argtypes = [ctypes.c_int64]
    lib.arseg_creff_scratch_size.argtypes = [image, ctypes.c_int64]
    lib.arseg_creff_scratch_size.restype = ctypes.c_int64
    lib.arseg_creff_source_digest.argtypes, lib.arseg_creff_source_digest.restype = [], ctypes.c_char_p
    lib.arseg_scores_to_labels_f32.argtypes = [ctypes.c_void_p, *[ctypes.c_int64] * 8, ctypes.c_int32, ctypes.c_double,
                                               ctypes.c_double, ctypes.c_void_p]  # fmt: skip
    lib.arseg_scores_to_labels_f32.restype = ctypes.c_int32
    for function in (lib.arseg_creff_band_f32, lib.arseg_creff_band_f64, lib.arseg_creff_isa):
        function.restype = ctypes.c_int32
    return lib
