"""Backbones shared by the model families."""

from arseg_cli.model.backbones.resnet import BasicBlock, Layout, ResNet18, resnet18

__all__ = ["BasicBlock", "Layout", "ResNet18", "resnet18"]
