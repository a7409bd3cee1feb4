"""CReFF: fuse the keyframe's HR feature into a non-keyframe's LR feature (warp + 7x7 local attention).

What the released AR-Seg networks compute: the flow is scaled to feature pixels and resized to the feature size, the keyframe feature is warped with
`grid_sample`, the LR feature is upsampled (bilinear, align_corners=True) to the HR feature size, depthwise
3x3 convolutions give Q (from the LR feature), K and V (from the warped feature), and each pixel attends to
its window x window neighbours: logits = sum over channels of Q * K (no 1/sqrt(C)), neighbours outside the
image have logit 0 and value 0 but still take part in the softmax, output = LR_up + sum_k w_k V_k.

This file states that computation plainly (`warp_feature`, `local_attention`): it is the path for
ONNX export, tracing and compiling; training takes the same attention with a hand-written backward
pass (`_attention_autograd.py`). CPU inference takes the tiled kernel in
`_local_attention.py`, which computes the same numbers without materialising full-size intermediates;
CUDA inference takes the Triton kernels of `_triton_creff.py` when Triton imports (it ships with CUDA
builds of torch), else that tiled kernel too.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from arseg_cli.model._attention_autograd import local_attention_for_training
from arseg_cli.model._local_attention import fused_creff
from arseg_cli.model._native_creff import native_creff
from arseg_cli.model.meta import WarpConvention
from arseg_cli.model.resize import resize_bilinear

logger = logging.getLogger(__name__)

_triton_state = {"enabled": True}


def use_triton_kernel(enabled: bool = True) -> None:
    """Let CUDA inference use the Triton kernels when Triton is importable (the default), or not."""
    _triton_state["enabled"] = enabled


def resize_flow(flow_px: Tensor, size: tuple[int, int]) -> Tensor:
    """Backward flow (N, 2, H, W) in image pixels (x, y) -> (N, 2, *size) in feature pixels.

    Each component is scaled by feature/image size along its own axis, then the field is resized with
    bilinear align_corners=True, as the official evaluation does. (The official code scales both by the
    height ratio: the same whenever the feature keeps the image's aspect ratio, as at 720x960 / 8.)
    """
    height, width = flow_px.shape[-2:]
    # Python scalars, not a tensor made of them: that host-to-device copy would stop a CUDA graph capture
    scaled = torch.stack((flow_px[:, 0] * (size[1] / width), flow_px[:, 1] * (size[0] / height)), dim=1)
    return resize_bilinear(scaled, size, align_corners=True)


def sampling_grid(flow_feat: Tensor) -> Tensor:
    """grid_sample grid (N, Hf, Wf, 2) of pixel coordinates + flow (N, 2, Hf, Wf), normalised as 2v/(W-1)-1.

    The official normalisation; a size-1 axis is normalised by 1 instead of 0.
    """
    height, width = flow_feat.shape[-2:]
    ys = torch.arange(height, dtype=flow_feat.dtype, device=flow_feat.device).view(1, height, 1)
    xs = torch.arange(width, dtype=flow_feat.dtype, device=flow_feat.device).view(1, 1, width)
    gx = 2.0 * (xs + flow_feat[:, 0]) / max(width - 1, 1) - 1.0
    gy = 2.0 * (ys + flow_feat[:, 1]) / max(height - 1, 1) - 1.0
    return torch.stack((gx, gy), dim=-1)


def warp_feature(feat: Tensor, flow_px: Tensor, convention: WarpConvention) -> Tensor:
    """Keyframe feature (N, C, Hf, Wf) warped to the current frame with backward flow (N, 2, H, W) in image px.

    'official': grid_sample with align_corners=False on a grid normalised by (W-1), the released models'
    quirk: zero flow is not the identity (x0.5 on edges, x0.25 on corners, content shifted by up to half
    a pixel). 'exact': align_corners=True, so zero flow is the identity and an integer flow moves content
    by exactly that many pixels. Samples outside the feature are zero.
    """
    flow_feat = resize_flow(flow_px, (feat.shape[-2], feat.shape[-1]))
    grid = sampling_grid(flow_feat).to(feat.dtype)
    return F.grid_sample(feat, grid, mode="bilinear", padding_mode="zeros", align_corners=convention == "exact")


def local_attention(q: Tensor, k: Tensor, v: Tensor, window: int = 7) -> Tensor:
    """sum_k softmax_k(<q, k_k>) v_k over each pixel's window x window neighbours; all (N, C, H, W).

    Neighbours outside the image have key 0 (logit 0) and value 0. Plain shifted products: exportable and
    differentiable; it keeps window^2 logit maps (N, H, W) alive.
    """
    r = window // 2
    height, width = q.shape[-2:]
    v_pad = F.pad(v, (r, r, r, r))
    shifts = [(dy, dx) for dy in range(window) for dx in range(window)]
    weights = window_logits(q, k, window).softmax(dim=1)
    out = weights[:, :1] * v_pad[..., :height, :width]
    for i, (dy, dx) in enumerate(shifts[1:], start=1):
        out.add_(weights[:, i : i + 1] * v_pad[..., dy : dy + height, dx : dx + width])  # in place: no new map
    return out


def window_logits(q: Tensor, k: Tensor, window: int = 7) -> Tensor:
    """(N, window^2, H, W) attention logits <q, k_neighbour> of q, k (N, C, H, W), neighbours in row-major
    window order (index window^2 // 2 is the pixel itself); out-of-image keys are 0 (logit 0)."""
    r = window // 2
    height, width = q.shape[-2:]
    k_pad = F.pad(k, (r, r, r, r))
    shifts = [(dy, dx) for dy in range(window) for dx in range(window)]
    return torch.stack([(q * k_pad[..., dy : dy + height, dx : dx + width]).sum(1) for dy, dx in shifts], 1)


def _triton_creff_or_none(
    lr_feat: Tensor, key_feat: Tensor, flow_feat: Tensor, convs: tuple[nn.Conv2d, nn.Conv2d, nn.Conv2d], warp: str, window: int
) -> Tensor | None:
    """The Triton kernels' CReFF; None when Triton is missing or fails to compile them here (then one
    warning, and the tiled kernel for the rest of the process). Imported on first use: Triton is slow
    to import and only CUDA needs it."""
    from arseg_cli.model import _triton_creff

    if not _triton_creff.available():
        return None
    try:
        return _triton_creff.triton_creff(lr_feat, key_feat, flow_feat, convs, warp=warp, window=window)
    except torch.OutOfMemoryError:
        raise
    except Exception as error:  # noqa: BLE001 - Triton's compiler and driver raise many kinds
        use_triton_kernel(False)
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        logger.warning("Triton CReFF kernel unavailable (%s); using the tiled kernel", reason[:200])
        return None


def _depthwise(channels: int) -> nn.Conv2d:
    return nn.Conv2d(channels, channels, kernel_size=3, padding=1, groups=channels, bias=True)


class CReFF(nn.Module):
    """Cross-resolution feature fusion. Submodule names are the official ones (`fuse_attention.*` keys).

    forward(lr_feat (N, C, h, w), key_feat (N, C, Hf, Wf), flow_px (N, 2, H, W)) -> (N, C, Hf, Wf), float.
    flow_px: backward flow (x, y) at image resolution in image pixels: current pixel p shows what the
    keyframe shows at p + flow(p).
    compiled_attention: CPU inference runs the attention compiled by inductor (opt-in, `--compile`).
    """

    compiled_attention: bool = False

    def __init__(self, channels: int, *, window: int = 7, warp: WarpConvention = "official") -> None:
        super().__init__()
        if window < 1 or window % 2 == 0:
            raise ValueError(f"CReFF window must be a positive odd number, got {window}")
        if warp not in ("official", "exact"):
            raise ValueError(f"unknown warp convention {warp!r} (expected 'official' or 'exact')")
        self.channels, self.window, self.warp = channels, window, warp
        self.lr_query_conv = _depthwise(channels)
        self.hr_key_conv = _depthwise(channels)
        self.hr_value_conv = _depthwise(channels)

    def forward(self, lr_feat: Tensor, key_feat: Tensor, flow_px: Tensor) -> Tensor:
        size = (key_feat.shape[-2], key_feat.shape[-1])
        if self._takes_fast_path(lr_feat, key_feat, flow_px):
            flow_feat = resize_flow(flow_px.to(torch.promote_types(key_feat.dtype, torch.float32)), size)
            convs = (self.lr_query_conv, self.hr_key_conv, self.hr_value_conv)
            if key_feat.device.type == "cuda" and _triton_state["enabled"]:
                fused = _triton_creff_or_none(lr_feat, key_feat, flow_feat, convs, self.warp, self.window)
                if fused is not None:
                    return fused
            if key_feat.device.type == "cpu" and not self.compiled_attention:
                fused = native_creff(lr_feat, key_feat, flow_feat, convs, warp=self.warp, window=self.window)
                if fused is not None:
                    return fused
            return fused_creff(
                lr_feat, key_feat, flow_feat, convs, warp=self.warp, window=self.window, compiled=self.compiled_attention
            )
        up = resize_bilinear(lr_feat, size, align_corners=True)
        warped = warp_feature(key_feat, flow_px, self.warp)
        q, k, v = self.lr_query_conv(up), self.hr_key_conv(warped), self.hr_value_conv(warped)
        attend = local_attention if _records_graph() else local_attention_for_training
        return up + attend(q, k, v, self.window)

    def _takes_fast_path(self, *inputs: Tensor) -> bool:
        """The tiled kernel serves inference on the CPU (float32/float64) and on CUDA (float16 too);
        anything that records the graph (autograd, tracing, export, compile) gets the plain path."""
        if _records_graph():
            return False
        if torch.is_grad_enabled() and any(t.requires_grad for t in (*inputs, *self.parameters())):
            return False
        lr_feat, key_feat, flow_px = inputs
        dtypes = {lr_feat.dtype, key_feat.dtype, *(p.dtype for p in self.parameters())}
        devices = {lr_feat.device.type, key_feat.device.type, flow_px.device.type}
        if len(dtypes) != 1 or len(devices) != 1:
            return False
        if devices == {"cpu"}:
            return dtypes <= {torch.float32, torch.float64}
        return devices == {"cuda"} and dtypes <= {torch.float16, torch.float32, torch.float64}


def _records_graph() -> bool:
    """True while tracing, ONNX export or torch.compile records the computation: they get the plain ops."""
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling()
