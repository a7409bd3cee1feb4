"""What arseg writes into each exported graph's `metadata_props`, and reading it back.

Keys (all strings, JSON where the value is not a plain word or number):
- `arseg.graph`: 'keyframe' or 'nonkeyframe'; `arseg.format`: version of this layout;
- `arseg.arch`, `arseg.classes` (JSON list), `arseg.palette` (JSON list of [r, g, b]),
  `arseg.mean` / `arseg.std` (JSON, normalisation of RGB in [0, 1]), `arseg.scale` (LR scale s, '' for
  none), `arseg.keyframe_interval` (default L), `arseg.warp` ('official' or 'exact'), and
  `arseg.inputs` (one line on what each input and output is);
- `arseg.meta`: the whole ModelMeta as JSON, provenance and metrics included, from which the model is
  rebuilt (the keys above are for people and other tools).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from arseg_cli.errors import WeightsError
from arseg_cli.model.meta import ModelMeta

FORMAT = "1"
GRAPHS = ("keyframe", "nonkeyframe")
GRAPH_IO = {
    "keyframe": "image (1,3,H,W) float32 normalised RGB -> logits (1,K,H,W), feature (1,C,Hf,Wf)",
    "nonkeyframe": (
        "image_lr (1,3,h,w) float32 normalised RGB at scale s, feature (1,C,Hf,Wf) of the keyframe, "
        "flow (1,2,H,W) float32 backward flow (x, y) in HR pixels to the keyframe -> logits (1,K,H,W)"
    ),
}


def metadata_props(meta: ModelMeta, graph: str) -> dict[str, str]:
    """The metadata_props of graph `graph` ('keyframe' or 'nonkeyframe') of a model described by `meta`."""
    if graph not in GRAPHS:
        raise ValueError(f"graph must be one of {', '.join(GRAPHS)}, got {graph!r}")
    return {
        "arseg.format": FORMAT,
        "arseg.graph": graph,
        "arseg.arch": meta.arch,
        "arseg.classes": json.dumps(list(meta.classes)),
        "arseg.palette": json.dumps([list(c) for c in meta.palette]),
        "arseg.mean": json.dumps(list(meta.mean)),
        "arseg.std": json.dumps(list(meta.std)),
        "arseg.scale": "" if meta.scale is None else repr(float(meta.scale)),
        "arseg.keyframe_interval": str(meta.keyframe_interval),
        "arseg.warp": meta.warp,
        "arseg.inputs": GRAPH_IO[graph],
        "arseg.meta": json.dumps(meta.to_json()),
    }


def meta_from_props(props: Mapping[str, str], source: str) -> tuple[str, ModelMeta]:
    """(graph name, ModelMeta) from a graph's metadata_props; WeightsError when they are not arseg's."""
    if "arseg.meta" not in props or props.get("arseg.graph") not in GRAPHS:
        raise WeightsError(f"{source}: not an arseg ONNX graph (no arseg.meta / arseg.graph metadata)")
    if props.get("arseg.format") != FORMAT:
        raise WeightsError(f"{source}: arseg ONNX metadata format {props.get('arseg.format')!r}, this arseg reads {FORMAT!r}")
    try:
        meta = ModelMeta.from_json(json.loads(props["arseg.meta"]))
    except (ValueError, KeyError, TypeError) as error:
        raise WeightsError(f"{source}: unreadable arseg.meta metadata ({error})") from None
    return props["arseg.graph"], meta
