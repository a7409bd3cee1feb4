"""Evaluation: confusion matrices and IoU, the official per-keyframe-distance protocol, its report."""

from arseg_cli.evaluate.metrics import ConfusionMatrix
from arseg_cli.evaluate.protocol import MODES, ClassRule, EvalResult, class_rule, evaluate

__all__ = ["MODES", "ClassRule", "ConfusionMatrix", "EvalResult", "class_rule", "evaluate"]
