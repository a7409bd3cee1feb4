"""open_dataset: each layout detected and read, labels mapped to train ids exactly, bad roots refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _data_fixtures import SYNTH_SPEC, camvid_colour_labels, make_synthstreet, save_png, texture_frame

from arseg_cli.data import detect_layout, open_dataset
from arseg_cli.data.labels import CITYSCAPES_TRAIN_IDS, read_label_png
from arseg_cli.data.synthstreet import split_clips
from arseg_cli.errors import InputError, InputNotFoundError
from arseg_cli.palettes import CAMVID, CITYSCAPES

H, W = 48, 64


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synthstreet(tmp_path_factory.mktemp("synth") / "set")


def test_synthstreet_detected_and_every_frame_labelled(synth_root: Path) -> None:
    assert detect_layout(synth_root) == "synthstreet"
    every = open_dataset(synth_root, split="all")
    assert every.layout == "synthstreet" and every.classes == CAMVID.classes
    assert len(every) == SYNTH_SPEC.clips * SYNTH_SPEC.frames
    frame = every.frames[13]
    assert (frame.name, frame.index) == ("synth/clip_0001/000001", 1)
    rgb = frame.source.read(frame.index, frame.index + 1)[0]
    labels = every.read_labels(frame)
    assert rgb.shape == (SYNTH_SPEC.height, SYNTH_SPEC.width, 3) and labels.shape == rgb.shape[:2]
    assert labels.dtype == np.uint8 and labels.max() < len(CAMVID.classes)


def test_synthstreet_one_manifest_splits_by_clip(synth_root: Path) -> None:
    splits = {s: open_dataset(synth_root, split=s) for s in ("train", "val", "test")}
    clips = {s: {frame.name.split("/")[1] for frame in data.frames} for s, data in splits.items()}
    assert clips == {"train": {"clip_0000"}, "val": {"clip_0001"}, "test": {"clip_0002"}}
    assert [len(split_clips(10, s)) for s in ("train", "val", "test")] == [7, 1, 2]
    assert list(split_clips(2, "train")) == [0, 1]
    with pytest.raises(InputError, match="no 'test' split"):
        split_clips(2, "test")


def test_synthstreet_split_subdirectories(synth_root: Path, tmp_path: Path) -> None:
    (tmp_path / "test").symlink_to(synth_root, target_is_directory=True)
    dataset = open_dataset(tmp_path, split="test")
    assert detect_layout(tmp_path) == "synthstreet" and len(dataset) == SYNTH_SPEC.clips * SYNTH_SPEC.frames
    assert (dataset.name, dataset.split) == (tmp_path.name, "test")
    with pytest.raises(InputNotFoundError, match="train/manifest.json"):
        open_dataset(tmp_path, split="train")


def _camvid_tree(root: Path, official: bool) -> np.ndarray:
    """Two stills of sequence 0016E5 (frame numbers 390 and 420) in `train`, with labels; extracted
    sequence frames 385..392 (1-based file numbers, i.e. the still 390 is file 392)."""
    ids = np.arange(H * W, dtype=np.int64).reshape(H, W) % 13
    ids = np.where(ids == 12, 255, ids).astype(np.uint8)
    for number in (390, 420):
        save_png(root / "train" / f"0016E5_{number:05d}.png", texture_frame(0, H, W))
        if official:
            save_png(root / "train_labels_with_ignored" / f"0016E5_{number:05d}.png", ids, "L")
        else:
            save_png(root / "train_labels" / f"0016E5_{number:05d}_L.png", camvid_colour_labels(ids))
    for t, file_number in enumerate(range(385, 393)):
        save_png(root / "frames" / "0016E5" / f"0016E5_{file_number:06d}.png", texture_frame(t, H, W))
    return ids


@pytest.mark.parametrize("layout", ["camvid-official", "camvid"])
def test_camvid_layouts_read_ids_and_sequence_frames(tmp_path: Path, layout: str) -> None:
    expected = _camvid_tree(tmp_path, official=layout == "camvid-official")
    assert detect_layout(tmp_path) == layout
    dataset = open_dataset(tmp_path)
    assert dataset.layout == layout and dataset.palette == CAMVID and len(dataset) == 2
    frame = dataset.frames[0]
    assert frame.name == "camvid/0016E5_00390"
    assert frame.index == 390 + 2 - 1  # AR-Seg's table: file number 392, 0-based 391
    np.testing.assert_array_equal(dataset.read_labels(frame), expected)  # Void = 11, unknown colour = 255
    frames = frame.source.read(frame.index - 3, frame.index + 1)
    np.testing.assert_array_equal(frames[-1], texture_frame(7, H, W))
    np.testing.assert_array_equal(frames[0], texture_frame(4, H, W))
    far = dataset.frames[1]  # frame 420: its sequence frames are not on disk
    with pytest.raises(InputError, match=r"frames \[420, 422\) asked"):
        far.source.read(far.index - 1, far.index + 1)


def test_camvid_colours_map_to_ids_exactly(tmp_path: Path) -> None:
    ids = np.array([[i for i in range(12)] + [255]], np.uint8)
    path = save_png(tmp_path / "l.png", camvid_colour_labels(ids, unknown=(1, 2, 3)))
    np.testing.assert_array_equal(read_label_png(path, "camvid", num_classes=12), ids)
    for colour, class_id in zip(CAMVID.colors, range(12)):
        single = save_png(tmp_path / "c.png", np.array([[colour]], np.uint8))
        assert read_label_png(single, "camvid", num_classes=12)[0, 0] == class_id
    grey = save_png(tmp_path / "g.png", np.array([[0, 11, 12, 200]], np.uint8), "L")  # SegNet-style ids
    np.testing.assert_array_equal(read_label_png(grey, "camvid", num_classes=12), [[0, 11, 255, 255]])


def _cityscapes_tree(root: Path) -> np.ndarray:
    label_ids = np.arange(H * W).reshape(H, W).astype(np.uint8) % 35
    save_png(root / "gtFine" / "val" / "aachen" / "aachen_000001_000019_gtFine_labelIds.png", label_ids, "L")
    for number in range(15, 22):
        name = f"aachen_000001_{number:06d}_leftImg8bit.png"
        save_png(root / "leftImg8bit_sequence" / "val" / "aachen" / name, texture_frame(number - 15, H, W))
    return label_ids


def test_cityscapes_label_ids_become_train_ids(tmp_path: Path) -> None:
    label_ids = _cityscapes_tree(tmp_path)
    assert detect_layout(tmp_path) == "cityscapes"
    dataset = open_dataset(tmp_path, split="val")
    assert dataset.classes == CITYSCAPES.classes and len(dataset) == 1
    frame = dataset.frames[0]
    assert (frame.name, frame.index) == ("cityscapes/aachen_000001_000019", 19)  # 20th of its 30-frame snippet
    train_ids = dataset.read_labels(frame)
    for label_id in range(35):
        assert set(np.unique(train_ids[label_ids == label_id])) == {CITYSCAPES_TRAIN_IDS.get(label_id, 255)}
    assert sorted(set(CITYSCAPES_TRAIN_IDS.values())) == list(range(19))
    assert CITYSCAPES_TRAIN_IDS[7] == 0 and CITYSCAPES_TRAIN_IDS[26] == 13 and CITYSCAPES_TRAIN_IDS[33] == 18
    frames = frame.source.read(15, 20)  # the snippet starts at file 000000: files 000015 .. 000019
    np.testing.assert_array_equal(frames[0], texture_frame(0, H, W))
    np.testing.assert_array_equal(frames[-1], texture_frame(4, H, W))
    with pytest.raises(InputError, match="frame 14 is missing"):
        frame.source.read(14, 20)


def test_missing_root_is_one_line_not_found(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError, match="does not exist") as info:
        open_dataset(tmp_path / "nowhere")
    assert "\n" not in str(info.value)


def test_unknown_layout_names_what_was_expected(tmp_path: Path) -> None:
    (tmp_path / "stuff").mkdir()
    with pytest.raises(InputError, match="unknown data set layout.*manifest.json.*gtFine.*train_labels") as info:
        open_dataset(tmp_path)
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match="unknown layout 'kitti'"):
        open_dataset(tmp_path, layout="kitti")


def test_missing_split_and_bad_manifest_are_one_line_errors(tmp_path: Path) -> None:
    _cityscapes_tree(tmp_path)
    with pytest.raises(InputNotFoundError, match="gtFine/train/"):
        open_dataset(tmp_path, split="train")
    camvid = tmp_path / "camvid"
    _camvid_tree(camvid, official=True)
    with pytest.raises(InputNotFoundError, match="test_labels_with_ignored"):
        open_dataset(camvid, split="test")
    (camvid / "train_labels_with_ignored" / "0016E5_00420.png").unlink()
    with pytest.raises(InputNotFoundError, match="no label file"):
        open_dataset(camvid)
    bad = tmp_path / "synth"
    bad.mkdir()
    (bad / "manifest.json").write_text("{not json")
    with pytest.raises(InputError, match="cannot read SynthStreet manifest"):
        open_dataset(bad)


def test_camvid_frames_from_a_raw_video_and_a_separate_sequence_root(tmp_path: Path) -> None:
    """The stills' sequences may be raw videos (decoded on demand) under SEQ_ROOT/videos/, SEQ_ROOT given
    apart from the data set root. Seq05VD_f00005 is file number 5 + 2 = 7, i.e. frame index 6."""
    from arseg_cli.data.records import FrameSource
    from arseg_cli.video.x264 import H264Writer

    root, sequences = tmp_path / "camvid", tmp_path / "sequences"
    save_png(root / "val" / "Seq05VD_f00005.png", texture_frame(6, H, W))
    save_png(root / "val_labels" / "Seq05VD_f00005_L.png", camvid_colour_labels(np.zeros((H, W), np.uint8)))
    (sequences / "videos").mkdir(parents=True)
    with H264Writer(sequences / "videos" / "Seq05VD.mp4", W, H, 30, keyint=4, crf=10, preset="ultrafast") as writer:
        for t in range(9):
            writer.write(texture_frame(t, H, W))
    dataset = open_dataset(root, split="val", sequence_root=sequences)
    frame = dataset.frames[0]
    assert isinstance(frame.source, FrameSource) and len(frame.source) == 9 and frame.index == 6
    decoded = frame.source.read(4, 7)
    for t, rgb in zip((4, 5, 6), decoded):  # each decoded frame is closest to the frame it should be
        errors = [np.abs(rgb.astype(int) - texture_frame(u, H, W)).mean() for u in range(9)]
        assert int(np.argmin(errors)) == t
    alone = open_dataset(root, split="val")  # without the sequences only the still itself can be read
    assert alone.frames[0].source.read(6, 7)[0].shape == (H, W, 3)
    with pytest.raises(InputError, match="frame 5 is missing"):
        alone.frames[0].source.read(5, 7)
