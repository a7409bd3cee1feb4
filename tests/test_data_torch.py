"""PairDataset: item format, distance policies, seeding and epochs, cache use."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from _data_fixtures import SYNTH_SPEC, make_synthstreet

from arseg_cli.data import Dataset, PairDataset, make_pair, open_dataset
from arseg_cli.errors import InputError

KEYINT = 6


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return open_dataset(make_synthstreet(tmp_path_factory.mktemp("synth") / "set"), split="all")


def test_items_have_the_agreed_tensors(synth: Dataset) -> None:
    data = PairDataset(synth, keyframe_interval=KEYINT, policy="official")
    item = data[0]
    h, w = SYNTH_SPEC.height, SYNTH_SPEC.width
    assert item["key"].shape == (3, h, w) and item["key"].dtype == torch.uint8
    assert item["cur"].shape == (3, h, w) and item["cur"].dtype == torch.uint8
    assert item["flow"].shape == (2, h, w) and item["flow"].dtype == torch.float32
    assert item["labels"].shape == (h, w) and item["labels"].dtype == torch.int64
    assert item["distance"] == KEYINT - 1
    pair = make_pair(synth, data.frames[0], KEYINT - 1)
    np.testing.assert_array_equal(item["cur"].numpy().transpose(1, 2, 0), pair.rgb)
    np.testing.assert_array_equal(item["flow"].numpy(), pair.flow)
    batch = next(iter(torch.utils.data.DataLoader(data, batch_size=2)))
    assert batch["key"].shape == (2, 3, h, w) and batch["distance"].tolist() == [KEYINT - 1] * 2


def test_only_frames_with_room_for_every_distance(synth: Dataset) -> None:
    data = PairDataset(synth, keyframe_interval=KEYINT)
    assert len(data) == SYNTH_SPEC.clips * (SYNTH_SPEC.frames - (KEYINT - 1))
    assert min(frame.index for frame in data.frames) == KEYINT - 1
    with pytest.raises(InputError, match="no labelled frame has 99 frames before it"):
        PairDataset(synth, keyframe_interval=100)
    with pytest.raises(InputError, match="unknown distance policy"):
        PairDataset(synth, policy="random")  # type: ignore[arg-type]


def test_uniform_policy_covers_1_to_L_minus_1_and_is_seeded(synth: Dataset) -> None:
    data = PairDataset(synth, keyframe_interval=KEYINT, policy="uniform", seed=3)
    epoch0 = [data.distance_of(i) for i in range(len(data))]
    assert data.pair(4).distance == epoch0[4] and data[7]["distance"] == epoch0[7]
    again = PairDataset(synth, keyframe_interval=KEYINT, policy="uniform", seed=3)
    assert [again.distance_of(i) for i in reversed(range(len(data)))][::-1] == epoch0  # order does not matter
    other_seed = PairDataset(synth, keyframe_interval=KEYINT, policy="uniform", seed=4)
    assert [other_seed.distance_of(i) for i in range(len(data))] != epoch0
    draws = []
    for epoch in range(20):
        data.set_epoch(epoch)
        draws += [data.distance_of(i) for i in range(len(data))]
    assert draws[len(epoch0) : 2 * len(epoch0)] != epoch0  # another epoch, other distances
    counts = np.bincount(draws, minlength=KEYINT)
    assert counts[0] == 0 and set(np.nonzero(counts)[0]) == set(range(1, KEYINT))
    assert counts[1:].min() > 0.6 * counts[1:].mean()  # 420 draws over 5 values: roughly uniform
    official = PairDataset(synth, keyframe_interval=KEYINT, policy="official", seed=3)
    assert {official.distance_of(i) for i in range(len(official))} == {KEYINT - 1}


def test_augmented_items_repeat_with_the_seed(synth: Dataset, tmp_path: Path) -> None:
    kwargs = dict(keyframe_interval=KEYINT, policy="uniform", seed=1, augment=True, crop_hw=(96, 128))
    a = PairDataset(synth, **kwargs)[2]  # type: ignore[arg-type]
    b = PairDataset(synth, cache=str(tmp_path / "cache"), **kwargs)[2]  # type: ignore[arg-type]
    assert a["cur"].shape == (3, 96, 128) and a["labels"].shape == (96, 128)
    for name in ("key", "cur", "flow", "labels"):
        assert torch.equal(a[name], b[name]), name
    assert list((tmp_path / "cache").rglob("*.npz"))


def test_dataset_pickles_for_loader_workers(synth: Dataset) -> None:
    import pickle

    data = PairDataset(synth, keyframe_interval=KEYINT, policy="official", seed=2)
    copy = pickle.loads(pickle.dumps(data))
    assert torch.equal(copy[3]["flow"], data[3]["flow"]) and copy[3]["distance"] == KEYINT - 1
