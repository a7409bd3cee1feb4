"""Inference copies of a network: every BatchNorm folded into the convolution that feeds it.

The copy is separate from the network, so the network's state_dict (the official key names) is untouched.
Which conv feeds which BN is read from the structure: consecutive (Conv2d, BatchNorm2d) children of a
Sequential, and the sibling name pairs below (every block of the families uses one of them, and in each
the conv's output goes straight into the BN). A BN left over is an error, not a silent slow path.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

_SIBLING_PAIRS = (("conv1", "bn1"), ("conv2", "bn2"), ("conv", "bn"), ("conv_atten", "bn_atten"))


def _conv_bn_pairs(module: nn.Module) -> Iterator[tuple[str, str]]:
    children = module._modules
    if isinstance(module, nn.Sequential):
        names = list(children)
        candidates = list(zip(names, names[1:]))
    else:
        candidates = [pair for pair in _SIBLING_PAIRS if pair[0] in children and pair[1] in children]
    for conv, bn in candidates:
        if isinstance(children[conv], nn.Conv2d) and isinstance(children[bn], nn.BatchNorm2d):
            yield conv, bn


def fold_batchnorms(net: nn.Module, *, channels_last: bool = False) -> nn.Module:
    """A frozen eval-mode deep copy of `net` with BatchNorms folded into convs (optionally channels-last).

    Modules registered under two names stay one module in the copy (deepcopy keeps sharing).
    """
    folded = copy.deepcopy(net).eval()
    for module in list(folded.modules()):
        for conv, bn in list(_conv_bn_pairs(module)):
            module._modules[conv] = fuse_conv_bn_eval(module._modules[conv], module._modules[bn])  # type: ignore[arg-type]
            module._modules[bn] = nn.Identity()
    leftover = [name for name, m in folded.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if leftover:
        raise RuntimeError(f"BatchNorm without a foldable conv before it: {', '.join(leftover)}")
    folded.requires_grad_(False)
    if channels_last:
        folded = folded.to(memory_format=torch.channels_last)
    return folded


def state_signature(module: nn.Module) -> tuple[tuple[int, int], ...]:
    """Changes whenever a parameter or buffer of `module` is modified in place, replaced or moved
    (storage address and autograd version counter of each). Inference tensors (a model converted, e.g.
    `.half()`, inside `torch.inference_mode()`) have no version counter: only their address counts."""
    return tuple((t.data_ptr(), -1 if t.is_inference() else t._version) for t in (*module.parameters(), *module.buffers()))
