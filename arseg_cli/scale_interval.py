"""AR-Seg's two numbers, checked and resolved in this one place: the LR scale s of non-keyframes,
s in (0, 1], and the keyframe interval L >= 1, the most frames from one keyframe to the next.

A run's (s, L) come from the caller's values, else from the weights' metadata (the scale their LR
branch was trained at, their keyframe interval). s = 1 or L = 1 both mean per-frame HR: every frame a
keyframe, which needs no LR branch and makes the keyframe policy moot. Anything else needs weights
with an LR branch.
"""

from __future__ import annotations

from typing import NamedTuple

from arseg_cli.errors import OptionsError, OutOfRangeError


def scale_problem(scale: float) -> str | None:
    """Why `scale` cannot be an LR scale s, or None when it can."""
    return None if 0.0 < scale <= 1.0 else f"scale s must be in (0, 1], got {scale}"


def keyframe_interval_problem(keyframe_interval: int) -> str | None:
    """Why `keyframe_interval` cannot be a keyframe interval L, or None when it can."""
    return None if keyframe_interval >= 1 else f"keyframe interval L must be >= 1, got {keyframe_interval}"


def check_scale(scale: float) -> float:
    """`scale` as a float; OutOfRangeError unless 0 < s <= 1."""
    problem = scale_problem(scale)
    if problem:
        raise OutOfRangeError(problem)
    return float(scale)


def check_keyframe_interval(keyframe_interval: int) -> int:
    """`keyframe_interval`; OutOfRangeError unless L >= 1."""
    problem = keyframe_interval_problem(keyframe_interval)
    if problem:
        raise OutOfRangeError(problem)
    return int(keyframe_interval)


def is_per_frame_hr(scale: float, keyframe_interval: int) -> bool:
    """Whether (s, L) means per-frame HR: s = 1 (no LR frames) or L = 1 (every frame a keyframe)."""
    return scale >= 1.0 or keyframe_interval == 1


class ScaleInterval(NamedTuple):
    """A run's resolved (s, L); per-frame HR is (1.0, 1)."""

    scale: float
    keyframe_interval: int

    @property
    def per_frame_hr(self) -> bool:
        return self.keyframe_interval == 1


PER_FRAME_HR = ScaleInterval(1.0, 1)


def resolve_scale_interval(
    scale: float | None,
    keyframe_interval: int | None,
    *,
    trained_scale: float | None,
    trained_interval: int,
    has_lr: bool,
) -> ScaleInterval:
    """The (s, L) a run uses (module docstring). scale, keyframe_interval: the caller's, None for the
    weights' own (`trained_scale`: None for weights without an LR branch; `trained_interval`). has_lr:
    whether the weights hold an LR branch. OutOfRangeError for values out of range, OptionsError for
    s < 1 and L > 1 with HR-only weights."""
    chosen_scale = check_scale(scale if scale is not None else (trained_scale or 1.0))
    chosen_interval = check_keyframe_interval(keyframe_interval if keyframe_interval is not None else trained_interval)
    if is_per_frame_hr(chosen_scale, chosen_interval):
        return PER_FRAME_HR
    if not has_lr:
        raise OptionsError(
            "the weights hold no LR branch (HR only): use scale s 1.0 or keyframe interval L 1 for per-frame HR, "
            f"not scale s {chosen_scale:g}"
        )
    return ScaleInterval(chosen_scale, chosen_interval)


__all__ = [
    "PER_FRAME_HR",
    "ScaleInterval",
    "check_keyframe_interval",
    "check_scale",
    "is_per_frame_hr",
    "keyframe_interval_problem",
    "resolve_scale_interval",
    "scale_problem",
]
