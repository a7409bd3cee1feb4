"""Flow files: exact .flo/.npy round trips, the standard .flo header, colour-wheel pictures, the writer."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from arseg_cli.errors import InputError, OptionsError, OutputExistsError
from arseg_cli.video.flowio import (
    INDEX_NAME,
    FlowFileWriter,
    MotionExport,
    flo_bytes,
    flow_from_flo,
    flow_to_rgb,
    npy_bytes,
    png_bytes,
    read_flow,
)
from arseg_cli.video.records import FlowToKey


def random_flow(height: int = 5, width: int = 7, seed: int = 0) -> np.ndarray:
    """(2, H, W) float32 with awkward values: sub-normal, huge, negative zero, many mantissa bits."""
    flow = np.random.default_rng(seed).normal(0, 30, (2, height, width)).astype(np.float32)
    flow[0, 0, :3] = [np.float32(1e-42), np.float32(3.4e38), np.float32(-0.0)]
    return flow


def test_flo_header_is_the_middlebury_one() -> None:
    flow = random_flow(height=3, width=4)
    data = flo_bytes(flow)
    assert data[:4] == b"PIEH"
    assert struct.unpack("<f", data[:4])[0] == 202021.25
    assert struct.unpack("<ii", data[4:12]) == (4, 3)  # width, then height
    assert len(data) == 12 + 3 * 4 * 2 * 4
    # Interleaved u, v per pixel, row by row: the second pixel of the first row is bytes 20..27.
    assert struct.unpack("<ff", data[20:28]) == (flow[0, 0, 1], flow[1, 0, 1])


@pytest.mark.parametrize("suffix", [".flo", ".npy"])
def test_flow_files_round_trip_bit_for_bit(tmp_path: Path, suffix: str) -> None:
    flow = random_flow()
    path = tmp_path / f"f{suffix}"
    path.write_bytes(flo_bytes(flow) if suffix == ".flo" else npy_bytes(flow))
    back = read_flow(path)
    assert back.dtype == np.float32 and back.shape == flow.shape
    assert back.tobytes() == flow.tobytes()  # -0.0 and sub-normals included


def test_npy_file_is_a_plain_2_h_w_float32_array() -> None:
    flow = random_flow()
    array = np.load(io.BytesIO(npy_bytes(flow)), allow_pickle=False)
    assert array.dtype == np.float32 and array.shape == (2, 5, 7)


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"PIE", "too short"), (b"XXXX" + bytes(8), "bad magic"), (flo_bytes(random_flow())[:-4], "header says 7x5")],
)
def test_bad_flo_bytes_raise_one_line_input_errors(data: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message):
        flow_from_flo(data)


def test_flow_of_wrong_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="must be"):
        flo_bytes(np.zeros((3, 4, 4), np.float32))


def test_colour_wheel_white_at_rest_red_to_the_right_and_paler_when_shorter() -> None:
    flow = np.zeros((2, 1, 6), np.float32)
    flow[:, 0, 1] = [4, 0]  # right, full length: pure wheel colour, red
    flow[:, 0, 2] = [2, 0]  # right, half length: halfway to white
    flow[:, 0, 3] = [0, 4]  # down: between red and yellow on the wheel
    flow[:, 0, 4] = [-4, 0]  # left: the opposite side, blue-cyan
    flow[:, 0, 5] = [np.nan, 0]
    rgb = flow_to_rgb(flow)
    assert rgb.shape == (1, 6, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == [255, 255, 255]
    assert rgb[0, 1].tolist() == [255, 0, 0]
    assert rgb[0, 2].tolist() == [255, 128, 128]
    red, green, blue = rgb[0, 3].tolist()
    assert red == 255 and 128 < green < 255 and blue == 0
    red, green, blue = rgb[0, 4].tolist()
    assert red == 0 and green > 128 and blue == 255
    assert rgb[0, 5].tolist() == [0, 0, 0]
    # A given maximum caps the saturation; longer vectors are darkened, not wrapped.
    assert flow_to_rgb(flow, max_magnitude=2.0)[0, 1].tolist() == [191, 0, 0]


def test_colour_wheel_hue_turns_with_direction() -> None:
    angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    flow = np.stack([np.cos(angles), np.sin(angles)])[:, None, :].astype(np.float32)
    rgb = flow_to_rgb(flow)[0].astype(int)
    assert len({tuple(c) for c in rgb}) == 16  # every direction its own colour
    assert np.all(rgb.max(axis=1) == 255)  # all at full length: saturated


def test_png_bytes_decode_to_the_same_picture() -> None:
    rgb = flow_to_rgb(random_flow())
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png_bytes(rgb)))), rgb)


def _record(index: int, key: int) -> FlowToKey:
    return FlowToKey(index, key, random_flow(seed=index) * (index != key), index == key)


def test_writer_names_files_by_frame_index_and_writes_an_index(tmp_path: Path) -> None:
    writer = FlowFileWriter(tmp_path / "out", fmt="npy", png=True)
    for index in (0, 1, 2):
        writer.write(_record(index, 0), "I" if index == 0 else "P")
    writer.close({"mode": "to-key", "to_key": 3})
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["000000.npy", "000000.png", "000001.npy", "000001.png", "000002.npy", "000002.png", INDEX_NAME]
    assert read_flow(tmp_path / "out" / "000002.npy").tobytes() == _record(2, 0).flow_px.tobytes()
    index = json.loads((tmp_path / "out" / INDEX_NAME).read_text())
    assert index["format"] == "npy" and index["to_key"] == 3
    assert index["frames"][1] == {"index": 1, "pict_type": "P", "reference": 0, "exact": False}


def test_writer_refuses_a_non_empty_directory_without_force(tmp_path: Path) -> None:
    (tmp_path / "000000.flo").write_bytes(b"mine")
    with pytest.raises(OutputExistsError):
        FlowFileWriter(tmp_path)
    assert (tmp_path / "000000.flo").read_bytes() == b"mine"
    writer = FlowFileWriter(tmp_path, force=True)
    writer.write(_record(0, 0))
    assert read_flow(tmp_path / "000000.flo").shape == (2, 5, 7)


@pytest.mark.parametrize(
    "settings", [{"keyframe_interval": 0}, {"fmt": "png"}, {"motion": "none"}], ids=["to-key-0", "format", "motion-none"]
)
def test_export_settings_that_make_no_sense_are_usage_errors(settings: dict[str, object]) -> None:
    with pytest.raises(OptionsError) as error:
        MotionExport(**settings)  # type: ignore[arg-type]
    assert error.value.exit_code == 2
