"""The two graphs an AR-Seg model exports to: the keyframe call and the non-keyframe call, as modules.

Each wraps the model's own per-frame call (`ARSeg.keyframe`, `ARSeg.nonkeyframe`), so the graphs compute
exactly what the PyTorch pipeline computes. They are traced with autograd on and the model in eval mode:
ARSeg then runs its plain branches (BatchNorm unfolded; onnxruntime folds it itself) and CReFF its plain
path (`creff.local_attention`), never the CPU-only tiled kernel.

Trace sizes: the networks skip a resize when two sizes already agree (`model.resize.resize_bilinear`), and a
trace keeps whatever branch the trace sizes took, for every size. The trace sizes are therefore chosen
so that no two sizes agree anywhere: 100x132 (HR) and 68x100 (LR) are not multiples of 8, and
ceil(x/8), ceil(x/16) are odd, so a x2 upsampling never lands on the next level's size (BiSeNet's
context path) and an OS-8 map times 8 is never the image size (the PSP decoders, BiSeNet's head).

Adaptive average pooling (the PSP heads' bins 2, 3, 6): torch's decomposition of it bakes the trace
size's window lengths into index tensors, so the graph fails (or silently averages the wrong windows) at
other sizes. The exported copy of the model pools with `IntegralAvgPool2d` instead: the same windows
(start floor(i*n/b), end ceil((i+1)*n/b)) computed from the input's size at run time, averaged from an
integral image in float64 (so the sums lose nothing against float32 averaging).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.export import Dim

from arseg_cli.model.arseg import ARSeg

TRACE_HW = (100, 132)
TRACE_LR_HW = (68, 100)

#: Input and output names of each graph (metadata.GRAPH_IO says what they hold).
INPUTS = {"keyframe": ("image",), "nonkeyframe": ("image_lr", "feature", "flow")}
OUTPUTS = {"keyframe": ("logits", "feature"), "nonkeyframe": ("logits",)}


class KeyframeGraph(nn.Module):
    """image (1, 3, H, W) normalised -> (logits (1, K, H, W), feature (1, C, Hf, Wf)): `ARSeg.keyframe`."""

    def __init__(self, model: ARSeg) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        return self.model.keyframe(image)


class NonkeyframeGraph(nn.Module):
    """(image_lr (1, 3, h, w), feature (1, C, Hf, Wf), flow (1, 2, H, W)) -> logits (1, K, H, W):
    `ARSeg.nonkeyframe` (LR network, CReFF fusing the keyframe feature warped along the flow)."""

    def __init__(self, model: ARSeg) -> None:
        super().__init__()
        self.model = model

    def forward(self, image_lr: Tensor, feature: Tensor, flow: Tensor) -> Tensor:
        return self.model.nonkeyframe(image_lr, feature, flow)


def trace_inputs(model: ARSeg) -> dict[str, tuple[Tensor, ...]]:
    """Example inputs of each graph the model has, at the trace sizes (module docstring)."""
    gen = torch.Generator().manual_seed(0)
    image = torch.randn(1, 3, *TRACE_HW, generator=gen)
    inputs: dict[str, tuple[Tensor, ...]] = {"keyframe": (image,)}
    if model.lr is not None:
        with torch.no_grad():
            _, feature = model.keyframe(image)
        flow = 2.0 * torch.randn(1, 2, *TRACE_HW, generator=gen)
        inputs["nonkeyframe"] = (torch.randn(1, 3, *TRACE_LR_HW, generator=gen), feature.contiguous(), flow)
    return inputs


def dynamic_shapes(graph: str) -> dict[str, dict[int, object]]:
    """Height and width of every input are dynamic; the batch is 1."""
    return {name: {2: Dim.DYNAMIC, 3: Dim.DYNAMIC} for name in INPUTS[graph]}


def graph_module(model: ARSeg, graph: str) -> nn.Module:
    """The module to trace for `graph`; `model` should come from `exportable`."""
    return (KeyframeGraph if graph == "keyframe" else NonkeyframeGraph)(model).eval()


class IntegralAvgPool2d(nn.Module):
    """nn.AdaptiveAvgPool2d(output_size) with its windows computed at run time (module docstring).

    forward(x (N, C, H, W) float) -> (N, C, bh, bw): window (i, j) is the mean of rows
    [floor(i*H/bh), ceil((i+1)*H/bh)) and columns likewise, as nn.AdaptiveAvgPool2d averages.
    """

    def __init__(self, output_size: tuple[int, int]) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, x: Tensor) -> Tensor:
        integral = F.pad(x.double().cumsum(-2).cumsum(-1), (1, 0, 1, 0))  # (N, C, H+1, W+1), zero first row/col
        (rows0, rows1), (cols0, cols1) = (_windows(n, b, x.device) for n, b in zip(x.shape[-2:], self.output_size))

        def corner(rows: Tensor, cols: Tensor) -> Tensor:
            return integral.index_select(-2, rows).index_select(-1, cols)

        sums = corner(rows1, cols1) - corner(rows0, cols1) - corner(rows1, cols0) + corner(rows0, cols0)
        area = (rows1 - rows0).view(-1, 1) * (cols1 - cols0).view(1, -1)
        return (sums / area).to(x.dtype)


def _windows(size: int, bins: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """(start, end) indices (int64, (bins,)) of adaptive pooling's windows along an axis of `size`."""
    i = torch.arange(bins, device=device)
    return (i * size) // bins, ((i + 1) * size + bins - 1) // bins


def exportable(model: ARSeg) -> ARSeg:
    """A copy of `model` whose non-global adaptive average pools are IntegralAvgPool2d (module docstring)."""
    copied = copy.deepcopy(model).eval()
    for module in list(copied.modules()):
        for name, child in list(module._modules.items()):
            if isinstance(child, nn.AdaptiveAvgPool2d):
                size = nn.modules.utils._pair(child.output_size)
                if size != (1, 1):
                    setattr(module, name, IntegralAvgPool2d((int(size[0]), int(size[1]))))
    return copied
