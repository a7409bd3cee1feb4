"""Compute accounting: multiply-accumulates (MACs) and FLOPs (= 2 MACs) of each part of AR-Seg.

Two conventions, both counted on the meta device (shapes only: counting at 1024x2048 allocates
nothing and takes well under a second):

`branch_costs` - what arseg reports. Each convolution and linear layer that the inference path
executes is counted once, by `torch.utils.flop_counter.FlopCounterMode` (which reports 2 x MACs;
halved here). Bias additions, BatchNorm, activations, pooling, resizing, grid_sample and softmax
are not counted (elementwise work, well under 1% of these networks); only the counter's
`convolution` and `mm`/`addmm` entries are kept. Training-only heads are not run. CReFF never runs
under the counter: its three depthwise convolutions are counted on stand-ins of their shape and
its local attention analytically (`creff_attention_macs`), so however the attention is
implemented (unfold, shifted sums, band GEMMs) it is counted exactly once.

`paper_costs` - the paper's "GFLOPs", which are MACs from `thop` (0.1.x) run on the authors' model
classes. Reading thop and the official code shows three things arseg's count leaves out, and this
function puts them back so that the published figures can be reproduced (within 1%) and explained:

1. Auxiliary heads the official forward runs even in eval mode: BiSeNetV1 is built with
   aux_mode='train' (conv_out16, conv_out32 always run); the Cityscapes `PSPNetWithFuse`, which the
   official evaluation uses for the HR network, runs its `aux` head in every forward; the CamVid
   PSPNet always runs its image-level classifier. The Cityscapes PSP LR figure (135.2 G) matches
   only without the aux head (with it: ~140 G), so it was measured on a net that skips it.
2. Modules registered under two names (BiSeNet `feat_conv_out` = `conv_out.conv`, `final_conv` =
   `conv_out.conv_out`; Cityscapes PSP `final_conv` = `cls.4`): thop's `model.apply` visits such a
   module once per name and adds one hook each time, and its result walks every name path, so a
   module with k names is counted k^2 times. For BiSeNet that alone adds 3 x 6.4 G at 720x960 -
   why the published 60.2 G is 1.54 x the 39.1 G that actually runs. The networks are not the cause.
3. thop's charges for non-conv modules: BatchNorm 4 per input element (2, doubled when affine),
   PReLU 1 per element (eval), AdaptiveAvgPool (in/out area + 1) per output element, nn.Upsample
   11 per output element (bilinear) or 1 (nearest); ReLU, max pooling and dropout 0; conv bias 0.
   Resizing is counted only for the family whose official code resizes with nn.Upsample modules
   (BiSeNet); the PSP code resizes with F.interpolate, which thop does not see. (The official
   BiSeNet also names the main head's nn.Upsample twice; that 4x is not reproduced: ~0.5%.)

`paper_costs` exists to validate the networks against the published numbers; report
`branch_costs`.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode
from torch.utils.flop_counter import FlopCounterMode

from arseg_cli.model._registry import arch_config, build
from arseg_cli.model._segnet import SegNet
from arseg_cli.model.fusion_gate import FusionGate
from arseg_cli.model.resize import lr_size
from arseg_cli.scale_interval import check_keyframe_interval

#: The counter entries that are convolutions and linear layers.
_COUNTED_OPS = frozenset({"aten::convolution", "aten::mm", "aten::addmm"})
COUNTER_NOTE = "conv + linear via torch FlopCounterMode (bias, BN, activations, pooling, resizing not counted)"
ATTENTION_NOTE = "analytic: 2 x window^2 x C x Hf x Wf (logits + weighted sum of values)"
PAPER_NOTE = "thop 0.1.x convention of the paper (aux heads, aliased modules k^2, BN/upsample charges)"
#: Depthwise 3x3 convolutions of CReFF: query (LR), key and value (warped HR).
CREFF_CONVS = 3
CREFF_KERNEL = 3
CREFF_WINDOW = 7


@dataclass(frozen=True, slots=True)
class Cost:
    """The cost of one forward pass of one part of the model, for one image.

    part:     what ran, e.g. 'hr', 'lr', 'creff.attention'.
    input_hw: (height, width) in pixels of that part's input (the image, or the feature map).
    macs:     multiply-accumulates; FLOPs are 2 x MACs.
    note:     how it was counted.
    """

    part: str
    input_hw: tuple[int, int]
    macs: int
    note: str

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9

    def to_json(self) -> dict[str, Any]:
        return {"part": self.part, "input_hw": list(self.input_hw), "macs": self.macs, "flops": self.flops, "note": self.note}


@dataclass(frozen=True, slots=True)
class BranchCosts:
    """Per-frame costs of AR-Seg at one image size (batch 1).

    feature:      (C, Hf, Wf) of the HR feature F that CReFF fuses.
    hr:           keyframe: the HR network at the image size (features + classifier).
    lr:           the plain LR baseline network at (int(H*s), int(W*s)), classifier at LR size.
    lr_features:  the LR network up to its feature (non-keyframe, before fusion).
    creff_convs:  CReFF's three depthwise 3x3 convolutions (Q, K, V) at (Hf, Wf).
    creff_attention: CReFF's 7x7 local attention at (Hf, Wf), analytic.
    classifier:   the 1x1 classifier on the fused feature at (Hf, Wf).
    fusion_gate:  the fusion gate's two convolutions at (Hf, Wf) (model/fusion_gate.py), None without one.
    Not counted anywhere: warping (grid_sample), feature/flow resizing, softmax, BN, activations.
    """

    arch: str
    image_hw: tuple[int, int]
    scale: float
    feature: tuple[int, int, int]
    hr: Cost
    lr: Cost
    lr_features: Cost
    creff_convs: Cost
    creff_attention: Cost
    classifier: Cost
    fusion_gate: Cost | None = None

    @property
    def creff(self) -> Cost:
        """CReFF in total: its convolutions plus its attention."""
        macs = self.creff_convs.macs + self.creff_attention.macs
        return Cost("creff", self.creff_convs.input_hw, macs, "creff.convs + creff.attention")

    @property
    def nonkeyframe(self) -> Cost:
        """A non-keyframe: LR features + CReFF + classifier on the fused feature."""
        macs = self.lr_features.macs + self.creff.macs + self.classifier.macs
        if self.fusion_gate is None:
            return Cost("nonkeyframe", self.lr_features.input_hw, macs, "lr_features + creff + classifier")
        macs += self.fusion_gate.macs
        return Cost("nonkeyframe", self.lr_features.input_hw, macs, "lr_features + creff + fusion_gate + classifier")

    def ar_average(self, keyframe_interval: int) -> float:
        """Mean MACs per frame of AR-Seg with keyframe interval L (one HR frame, L-1 non-keyframes)."""
        return ar_average_macs(self.hr.macs, self.nonkeyframe.macs, keyframe_interval)

    def parts(self) -> dict[str, Cost]:
        """Every part by name, the sums included ('creff', 'nonkeyframe')."""
        names = ("hr", "lr", "lr_features", "creff_convs", "creff_attention", "classifier", "creff", "nonkeyframe")
        parts = {name: getattr(self, name) for name in names}
        if self.fusion_gate is not None:
            parts["fusion_gate"] = self.fusion_gate
        return parts

    def to_json(self, keyframe_interval: int = 12) -> dict[str, Any]:
        return {
            "arch": self.arch,
            "image_hw": list(self.image_hw),
            "scale": self.scale,
            "feature_chw": list(self.feature),
            "parts": {name: cost.to_json() for name, cost in self.parts().items()},
            "keyframe_interval": keyframe_interval,
            "ar_average_macs": self.ar_average(keyframe_interval),
        }


# ---------------------------------------------------------------------------------------------
# arseg's count


@functools.lru_cache(maxsize=64)
def branch_costs(
    arch: str, height: int, width: int, scale: float, *, num_classes: int | None = None, fusion_gate: bool = False,
    input_multiple: int = 1,
) -> BranchCosts:
    """MACs of each part of AR-Seg `arch` for a (height, width) image and LR scale `scale`, with the fusion
    gate's when `fusion_gate`, the networks padding their input to `input_multiple` (ModelMeta's) (kept
    per arguments: the count builds the networks on the meta device, ~0.4 s each; the result is frozen)."""
    h_lr, w_lr = lr_size(height, width, scale)
    net = _meta_net(arch, num_classes)
    net.input_multiple = input_multiple
    hr_macs, (_, feat) = _count(lambda: net(meta_input(height, width)))
    lr_macs, _ = _count(lambda: net(meta_input(h_lr, w_lr)))
    lr_feat_macs, _ = _count(lambda: net.features(meta_input(h_lr, w_lr)))
    channels, hf, wf = (int(d) for d in feat.shape[1:])
    cls_macs, _ = _count(lambda: net.classify(torch.empty(1, channels, hf, wf, device="meta")))
    conv_macs = creff_conv_macs(channels, hf, wf)
    gate = None
    if fusion_gate:
        with torch.device("meta"):
            module = FusionGate(channels)
        maps = torch.empty(1, channels, hf, wf, device="meta")
        gate = Cost("fusion_gate", (hf, wf), count_macs(lambda: module(maps, maps, maps)), COUNTER_NOTE)
    return BranchCosts(
        arch=arch,
        image_hw=(height, width),
        scale=scale,
        feature=(channels, hf, wf),
        hr=Cost("hr", (height, width), hr_macs, COUNTER_NOTE),
        lr=Cost("lr", (h_lr, w_lr), lr_macs, COUNTER_NOTE),
        lr_features=Cost("lr_features", (h_lr, w_lr), lr_feat_macs, COUNTER_NOTE),
        creff_convs=Cost("creff.convs", (hf, wf), conv_macs, COUNTER_NOTE),
        creff_attention=Cost("creff.attention", (hf, wf), creff_attention_macs(channels, hf, wf), ATTENTION_NOTE),
        classifier=Cost("classifier", (hf, wf), cls_macs, COUNTER_NOTE),
        fusion_gate=gate,
    )


def count_macs(run: Callable[[], object]) -> int:
    """MACs of the convolutions and linear layers executed by `run()` (meta tensors welcome)."""
    return _count(run)[0]


def creff_conv_macs(channels: int, height: int, width: int) -> int:
    """MACs of CReFF's three depthwise 3x3 convolutions (weights (C, 1, 3, 3), padding 1) on a
    (channels, height, width) map, counted by FlopCounterMode on stand-ins of the same shape."""
    with torch.device("meta"):
        conv = nn.Conv2d(channels, channels, CREFF_KERNEL, padding=CREFF_KERNEL // 2, groups=channels)
    x = torch.empty(1, channels, height, width, device="meta")
    return CREFF_CONVS * count_macs(lambda: conv(x))


def creff_attention_macs(
    channels: int, height: int, width: int, *, window: int = CREFF_WINDOW, count_outside: bool = True
) -> int:
    """MACs of CReFF's local attention on a (channels, height, width) feature map.

    Derivation: for a pixel p and one neighbour q of its window x window neighbourhood, the logit is
    the dot product of the query Q(p) with the key K(q) over the channels: C multiply-adds. The output
    adds the neighbour's value V(q) times its softmax weight w(p, q), per channel: C more. So each
    (pixel, neighbour) pair costs 2C MACs, and the whole map 2 * window^2 * C * H * W
    (2 * 49 * C * Hf * Wf for the 7x7 window; at 64x720x960 that is 4.34 G, plus 1.19 G for the
    three depthwise 3x3 convolutions (3 * 9 * C * Hf * Wf): the ~5.5 G the paper gives for CReFF).
    The softmax (49 exponentials, a sum and a division per pixel) is not a multiply-add and is left
    out, like the networks' activations.

    count_outside: out-of-image neighbours have logit 0 and value 0. A vectorised implementation
    computes them anyway (True, the default, the formula above); a naive loop can skip them (False):
    then a pixel in column x has n(x) = min(x, r) + min(W-1-x, r) + 1 neighbour columns (r = window//2),
    likewise n(y), and the count is 2 * C * (sum over x of n(x)) * (sum over y of n(y)).
    """
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be a positive odd number, got {window}")
    if count_outside:
        return 2 * window * window * channels * height * width
    radius = window // 2

    def neighbours(size: int) -> int:
        return sum(min(i, radius) + min(size - 1 - i, radius) + 1 for i in range(size))

    return 2 * channels * neighbours(width) * neighbours(height)


def ar_average_macs(keyframe_macs: float, nonkeyframe_macs: float, keyframe_interval: int) -> float:
    """Mean MACs per frame of AR-Seg with keyframe interval L: (HR + (L - 1) x non-keyframe) / L."""
    check_keyframe_interval(keyframe_interval)
    return (keyframe_macs + (keyframe_interval - 1) * nonkeyframe_macs) / keyframe_interval


def meta_input(height: int, width: int, channels: int = 3) -> Tensor:
    """A (1, channels, height, width) float32 tensor on the meta device: shapes without memory."""
    return torch.empty(1, channels, height, width, device="meta")


def _meta_net(arch: str, num_classes: int | None = None) -> SegNet:
    with torch.device("meta"):
        net = build(arch, num_classes=num_classes)
    return net.eval()


def _count(run: Callable[[], Any]) -> tuple[int, Any]:
    """(conv + linear MACs, result) of `run()` without autograd."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        result = run()
    per_op = counter.get_flop_counts().get("Global", {})
    flops = sum(int(n) for op, n in per_op.items() if op._qualified_op_name in _COUNTED_OPS)
    return flops // 2, result


# ---------------------------------------------------------------------------------------------
# the paper's count (thop on the official classes)

_THOP_UPSAMPLE_PER_ELEMENT = {"bilinear": 11, "nearest": 1}


def paper_costs(arch: str, height: int, width: int, scale: float) -> dict[str, Cost]:
    """{'hr': Cost, 'lr': Cost} as the paper counted them (module docstring: what and why); which
    branches' figures include the aux heads and whether resizing counts come from `ArchConfig.paper`."""
    return dict(_paper_costs(arch, height, width, scale))


@functools.lru_cache(maxsize=64)
def _paper_costs(arch: str, height: int, width: int, scale: float) -> dict[str, Cost]:
    paper = arch_config(arch).paper
    if paper is None:
        raise ValueError(f"no published figures to reproduce for {arch!r}")
    with_aux, upsample_modules = paper.aux_in_macs, paper.resizing_in_macs
    net = _meta_net(arch)
    costs = {}
    for branch, size in (("hr", (height, width)), ("lr", lr_size(height, width, scale))):
        aux = branch in with_aux

        def run(size: tuple[int, int] = size, aux: bool = aux) -> None:
            feat, _ = net.features_and_aux(meta_input(*size), aux=aux)
            net.to_image_size(net.classify(feat), size)

        costs[branch] = Cost(branch, size, thop_convention_macs(net, run, count_resizing=upsample_modules), PAPER_NOTE)
    return costs


def thop_convention_macs(net: nn.Module, run: Callable[[], Any], *, count_resizing: bool) -> int:
    """What thop 0.1.x reports for the modules of `net` while `run()` executes (module docstring)."""
    names = Counter(id(m) for _, m in net.named_modules(remove_duplicate=False))
    total = 0

    def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        nonlocal total
        total += _thop_module_ops(module, inputs[0], output) * names[id(module)] ** 2

    handles = [m.register_forward_hook(hook) for m in net.modules() if not list(m.children())]
    resizing = _ResizeCounter() if count_resizing else None
    try:
        with torch.no_grad(), resizing or _nothing():
            run()
    finally:
        for handle in handles:
            handle.remove()
    return int(total + (resizing.ops if resizing else 0))


def _thop_module_ops(module: nn.Module, x: Tensor, y: Tensor) -> float:
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return y.numel() * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return module.in_features * y.numel()
    if isinstance(module, nn.BatchNorm2d):
        return (4 if module.affine else 2) * x.numel()
    if isinstance(module, nn.PReLU):
        return 0 if module.training else x.numel()
    if isinstance(module, nn.AdaptiveAvgPool2d):
        kernel = (x.shape[-2] / y.shape[-2]) * (x.shape[-1] / y.shape[-1])
        return (kernel + 1) * y.numel()
    return 0


class _ResizeCounter(TorchFunctionMode):
    """Charges each F.interpolate call as thop charges an nn.Upsample module."""

    def __init__(self) -> None:
        super().__init__()
        self.ops = 0

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        result = func(*args, **(kwargs or {}))
        if func is nn.functional.interpolate:
            mode = (kwargs or {}).get("mode", args[3] if len(args) > 3 else "nearest")
            self.ops += _THOP_UPSAMPLE_PER_ELEMENT.get(mode, 0) * result.numel()
        return result


@contextmanager
def _nothing() -> Iterator[None]:
    yield
