"""The per-frame model step of AR-Seg, the one implementation `arseg segment` and `arseg eval` share.

Keyframe: the HR network on the normalised frame -> class scores and the feature CReFF fuses later.
Non-keyframe: the frame downscaled by s (bilinear, align_corners=True, as the official evaluation), the
LR branch with CReFF fusing the keyframe feature warped along the backward flow to the keyframe.
Labels: scores upsampled (bilinear, align_corners=True) to the wanted size, argmax over classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from arseg_cli.errors import OptionsError, WeightsError
from arseg_cli.model.arseg import ARSeg
from arseg_cli.model.resize import downscale, scores_to_labels


class FrameStep:
    """AR-Seg's forward passes on batches of frames, on the model's device.

    model: eval mode; `scale`: the LR scale s of non-keyframes (None: the weights' own).
    `half`: run in float16 (CUDA only): the model is converted in place. The model's folded inference
    copies are built here, so that the first frame does not pay for them.
    Call inside `torch.inference_mode()` for the fast folded inference copies (ARSeg's docstring).
    """

    def __init__(self, model: ARSeg, scale: float | None = None, *, half: bool = False) -> None:
        chosen = scale if scale is not None else model.meta.scale
        if chosen is None:
            chosen = 1.0
        if not 0.0 < chosen <= 1.0:
            raise OptionsError(f"--scale must be in (0, 1], got {chosen}")
        if half and model.device.type != "cuda":
            raise OptionsError("--half needs a CUDA device (float16 on the CPU is slower, not faster)")
        self.model = (model.half() if half else model).optimize_for_inference()
        self.scale = float(chosen)
        self.dtype = torch.float16 if half else torch.float32

    def inputs(self, rgb: np.ndarray) -> Tensor:
        """(N, 3, H, W) normalised input from RGB uint8 (H, W, 3) or (N, H, W, 3)."""
        return self.model.normalize(rgb).to(self.dtype)

    def key(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(scores (N, K, H, W), feature) of normalised HR frames x: the HR network."""
        return self.model.keyframe(x)

    def nonkey(self, x: Tensor, feat: Tensor, flow_px: np.ndarray | Tensor) -> Tensor:
        """scores (N, K, H, W) of normalised HR frames x (downscaled here by s), fusing the keyframe
        feature `feat` warped along `flow_px` (N, 2, H, W) float32 backward flow to the keyframe, pixels."""
        flow = torch.as_tensor(flow_px).to(device=x.device, dtype=self.dtype)
        return self.model.nonkeyframe(downscale(x, self.scale), feat, flow)

    def lowres(self, x: Tensor) -> Tensor:
        """scores of normalised HR frames x downscaled by s through the plain LR network (no fusion)."""
        x_lr = downscale(x, self.scale)
        return self.model.lowres(x_lr, (x_lr.shape[-2], x_lr.shape[-1]))

    def hr_on_lowres(self, x: Tensor) -> Tensor:
        """scores of the HR network on normalised HR frames x downscaled by s (the LR baseline without
        an LR network)."""
        return self.model.keyframe(downscale(x, self.scale))[0]




def load_model(
    specs: Sequence[str], *, arch: str | None = None, scale: float | None = None, device: str | torch.device = "cpu"
) -> tuple[ARSeg, str]:
    """The model the `--weights` values name, on `device`, eval mode; and a description of them.

    specs: empty (the default weights, model.defaults), one arseg `.safetensors` file, one directory of
    the official release (`checkpoints/` or one `{arch}/` folder: HR + the AR file at `scale`), or
    official `.pth` files as `hr=FILE`, `ar=FILE`, `lr=FILE` (a bare `.pth` is HR when its name's scale
    field is 1.0 or missing, AR otherwise).
    """
    from arseg_cli.model import load_official, load_weights
    from arseg_cli.model.defaults import default_weights
    from arseg_cli.model.official import scale_from_name
    from arseg_cli.model.official_release import find_official_files

    if not specs:
        found = default_weights()
        if found is None:
            raise WeightsError(
                "no weights given and none installed: run `make weights` (or set ARSEG_WEIGHTS), "
                "or pass --weights FILE.safetensors, official hr=FILE ar=FILE, or the official release directory"
            )
        return load_weights(found, device=device), str(found)
    if len(specs) == 1 and "=" not in specs[0]:
        path = Path(specs[0])
        if path.is_dir():
            files = find_official_files(path, arch=arch, scale=scale, kind="ar")
            model = load_official(**files.roles(), arch=arch, scale=scale)
            return model.to(device).eval(), str(path)
        if path.suffix != ".pth":
            return load_weights(path, device=device, arch=arch), str(path)
    roles: dict[str, str] = {}
    for spec in specs:
        role, _, name = spec.rpartition("=") if "=" in spec else ("", "", spec)
        if not role:
            guessed = scale_from_name(name)
            role = "hr" if guessed is None or guessed >= 1.0 else "ar"
        role = role.lower()
        if role not in ("hr", "ar", "lr"):
            raise OptionsError(f"--weights {spec}: the role must be hr, ar or lr (e.g. hr=HR.pth ar=AR.pth)")
        if role in roles:
            raise OptionsError(f"--weights: two {role.upper()} files ({roles[role]}, {name})")
        if not Path(name).is_file():
            raise WeightsError(f"--weights {spec}: no such file")
        roles[role] = name
    model = load_official(**roles, arch=arch, scale=scale)  # type: ignore[arg-type]
    return model.to(device).eval(), " + ".join(f"{r}={p}" for r, p in roles.items())


__all__ = ["FrameStep", "downscale", "load_model", "scores_to_labels"]
