"""OnnxARSeg: the exported graphs run by onnxruntime, the second backend of `ModelBackend`
(arseg_cli.model.protocol; ARSeg is the first).

The calls take and return torch tensors as ARSeg's do, so the pipeline (`arseg_cli.pipeline`,
`arseg_cli.frame_step.FrameStep`) and `arseg bench` run it as they run ARSeg. Tensors cross to
onnxruntime as float32 numpy arrays on the CPU; results come back on `device`. The graphs take batch 1
(`max_batch`): the pipeline hands a keyframe group's non-keyframes on one by one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from arseg_cli.errors import InputError, InputNotFoundError, OptionsError, WeightsError
from arseg_cli.model.resize import downscale, scores_to_labels
from arseg_cli.model.arseg import ARSeg
from arseg_cli.model.meta import ModelMeta
from arseg_cli.onnx._extra import require
from arseg_cli.onnx.export import FILE_NAMES
from arseg_cli.onnx.metadata import meta_from_props


class OnnxARSeg:
    """The keyframe (and, when exported, non-keyframe) graphs of `directory`, run by onnxruntime.

    device:  where returned tensors live; onnxruntime runs on the CPU unless its CUDA provider is
             installed and `device` is CUDA.
    threads: onnxruntime intra-op threads (default: torch's thread count, for like-for-like timings).
    """

    max_batch: int | None = 1

    def __init__(self, directory: str | Path, *, device: str | torch.device = "cpu", threads: int | None = None) -> None:
        (ort,) = require("onnxruntime")
        directory = Path(directory)
        if not directory.is_dir():
            raise InputNotFoundError(f"{directory}: no such directory (give the folder `arseg export-onnx` wrote)")
        key_path = directory / FILE_NAMES["keyframe"]
        if not key_path.is_file():
            raise WeightsError(f"{directory}: no {FILE_NAMES['keyframe']} in it (made by `arseg export-onnx -o DIR`)")
        self.directory = directory
        self.device = torch.device(device)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        providers = ["CPUExecutionProvider"]
        if self.device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self._sessions: dict[str, Any] = {}
        metas: dict[str, ModelMeta] = {}
        for graph, name in FILE_NAMES.items():
            path = directory / name
            if not path.is_file():
                continue
            try:
                session = ort.InferenceSession(str(path), options, providers=providers)
            except Exception as error:  # noqa: BLE001 - onnxruntime raises its own untyped errors
                raise WeightsError(f"{path}: onnxruntime cannot load it ({str(error).splitlines()[0]})") from None
            found, meta = meta_from_props(session.get_modelmeta().custom_metadata_map, str(path))
            if found != graph:
                raise WeightsError(f"{path}: holds the {found} graph, not the {graph} graph")
            self._sessions[graph], metas[graph] = session, meta
        if "nonkeyframe" in metas and metas["nonkeyframe"] != metas["keyframe"]:
            raise WeightsError(f"{directory}: keyframe.onnx and nonkeyframe.onnx come from different models")
        self.meta = metas["keyframe"]
        self.providers = self._sessions["keyframe"].get_providers()

    # --- facts (ModelBackend) --------------------------------------------------------------------------
    @property
    def arch(self) -> str:
        return self.meta.arch

    @property
    def scale(self) -> float | None:
        return self.meta.scale if "nonkeyframe" in self._sessions else None

    @property
    def num_classes(self) -> int:
        return self.meta.num_classes

    @property
    def has_creff(self) -> bool:
        return "nonkeyframe" in self._sessions and self.meta.has_creff

    @property
    def has_lr(self) -> bool:
        """Whether the non-keyframe graph exists."""
        return "nonkeyframe" in self._sessions

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32  # the graphs are exported in float32

    # --- inputs ---------------------------------------------------------------------------------------
    def normalize(self, rgb: np.ndarray | Tensor) -> Tensor:
        """(N, 3, H, W) float32 on `device` from RGB uint8 (H, W, 3) or (N, H, W, 3): as ARSeg.normalize."""
        return ARSeg.normalize(self, rgb)  # type: ignore[arg-type]  # uses only .meta and .device

    def downscale(self, x_hr: Tensor) -> Tensor:
        """The LR input of normalised HR images: (int(H*s), int(W*s)), bilinear, align_corners=True."""
        if self.scale is None:
            raise OptionsError(f"{self.directory} holds no non-keyframe graph: process every frame as a keyframe")
        return downscale(x_hr, self.scale)

    # --- per-frame calls ------------------------------------------------------------------------------
    def keyframe(self, x_hr: Tensor) -> tuple[Tensor, Tensor]:
        """(logits (1, K, H, W), feature (1, C, Hf, Wf)) of a normalised HR image x_hr (1, 3, H, W)."""
        logits, feat = self._run("keyframe", image=x_hr)
        return logits, feat

    def nonkeyframe(self, x_lr: Tensor, feat: Tensor, flow: Tensor) -> Tensor:
        """logits (1, K, H, W) of a normalised LR image x_lr (1, 3, h, w), fusing the keyframe feature
        feat (1, C, Hf, Wf) along flow (1, 2, H, W), backward, HR pixels (as ARSeg.nonkeyframe)."""
        if "nonkeyframe" not in self._sessions:
            raise OptionsError(f"{self.directory} holds no non-keyframe graph: process every frame as a keyframe")
        return self._run("nonkeyframe", image_lr=x_lr, feature=feat, flow=flow)[0]

    def keyframe_labels(self, x_hr: Tensor) -> tuple[Tensor, Tensor]:
        """(labels (1, H, W) uint8, feature): the argmax of `keyframe`'s scores."""
        logits, feat = self.keyframe(x_hr)
        return scores_to_labels(logits, (x_hr.shape[-2], x_hr.shape[-1])).to(torch.uint8), feat

    def nonkeyframe_labels(self, x_lr: Tensor, feat: Tensor, flow: Tensor) -> Tensor:
        """(1, H, W) uint8: the argmax of `nonkeyframe`'s scores."""
        return scores_to_labels(self.nonkeyframe(x_lr, feat, flow), (flow.shape[-2], flow.shape[-1])).to(torch.uint8)

    def lowres(self, x_lr: Tensor, size: tuple[int, int]) -> Tensor:
        raise OptionsError("the exported graphs hold no plain LR network (only keyframe and non-keyframe calls)")

    def optimize_for_inference(self, *, half: bool = False) -> OnnxARSeg:
        """The sessions are ready as loaded; float16 is refused (the graphs are float32)."""
        if half:
            raise OptionsError("float16 is for the torch backend; the ONNX graphs are float32")
        return self

    def _run(self, graph: str, **inputs: Tensor) -> list[Tensor]:
        feed = {}
        for name, tensor in inputs.items():
            if tensor.dim() != 4 or tensor.shape[0] != 1:
                raise InputError(f"{graph}.onnx takes batch 1: {name} is {tuple(tensor.shape)}")
            feed[name] = np.ascontiguousarray(tensor.detach().to("cpu", torch.float32).numpy())
        outputs = self._sessions[graph].run(None, feed)
        return [torch.from_numpy(out).to(self.device) for out in outputs]
