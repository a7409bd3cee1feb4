"""Scale-out (docs/SCALEOUT.md): a real two-node Ray cluster on this machine, loopback only, against a
plain local multi-input run of the same videos: byte-identical outputs, a corrupt video failing alone, a
worker killed mid-video, `--resume` after the driver was killed, and `--shard` covering every input once.

The tests on the cluster (marker `cluster`, ~2 minutes on 2 busy cores) run in `make test-scaleout`,
which CI runs after `make test`; the others run in `make test`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _ray_cluster import NODE, loopback_cluster
from _segment_fixtures import tiny_weights, write_test_clip
from _segment_fixtures import one_torch_thread  # noqa: F401  (autouse fixture)
from arseg_cli.cli import main
from arseg_cli.errors import OptionsError
from arseg_cli.scaleout import JobOptions, RunProgress, Shard, VideoResult, WorkerSpec, segment_many, shard_of
from arseg_cli.scaleout.records import read_records

SHORT, LONG = 9, 40  # frames of the short clips and of the long ones (a worker is killed inside one)


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under `root` (the run records aside) by relative path."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and "_runs" not in p.relative_to(root).parts}  # fmt: skip


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_weights(tmp_path_factory.mktemp("w") / "tiny.safetensors")


@pytest.fixture(scope="module")
def short_clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("short")
    return [write_test_clip(folder / f"street{i}.mp4", SHORT, seed=i) for i in range(4)]


@pytest.fixture(scope="module")
def long_clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("long")
    return [write_test_clip(folder / f"drive{i}.mp4", LONG, seed=10 + i) for i in range(3)]


def _local_run(clips: list[Path], weights: Path, out: Path) -> dict[str, bytes]:
    """The plain local multi-input run every scale-out run must equal, file for file."""
    assert main(["segment", *map(str, clips), "-o", str(out), "-w", str(weights), "--video", "colour.mp4", "-q"]) == 0
    return _tree(out)


@pytest.fixture(scope="module")
def short_reference(short_clips: list[Path], weights: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    return _local_run(short_clips, weights, tmp_path_factory.mktemp("ref") / "out")


@pytest.fixture(scope="module")
def long_reference(long_clips: list[Path], weights: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    return _local_run(long_clips, weights, tmp_path_factory.mktemp("ref") / "out")


@pytest.fixture(scope="module")
def nodes() -> Iterator[Any]:
    """Two nodes, one CPU and a 100 MB object store each."""
    with loopback_cluster(NODE, more_nodes=1) as two:
        yield two


@pytest.fixture(scope="module")
def cluster(nodes: Any) -> str:
    """The address of the two-node cluster's head."""
    return str(nodes.address)


def test_shards_partition_the_inputs_exactly_once_whatever_their_order() -> None:
    names = [f"/data/cam{i // 10}/clip{i:03d}.mp4" for i in range(200)]
    for count in (1, 2, 3, 7):
        shards = [Shard(k, count).select(names, names) for k in range(1, count + 1)]
        assert sorted(sum(shards, [])) == sorted(names)  # every input once, in one shard only
        assert all(len(s) > 0 for s in shards)
        assert shards == [Shard(k, count).select(names[::-1], names[::-1])[::-1] for k in range(1, count + 1)]
    assert [shard_of(name, 5) for name in names[:20]] == [shard_of(name, 5) for name in names[:20]]
    assert Shard.parse("2/8") == Shard(2, 8)
    for bad in ("0/3", "4/3", "1", "a/b", "1/0"):
        with pytest.raises(OptionsError):
            Shard.parse(bad)


def test_shard_runs_together_write_what_one_local_run_writes(
    short_clips: list[Path], weights: Path, short_reference: dict[str, bytes], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    manifest = tmp_path / "list.txt"
    manifest.write_text("# the drive\n" + "\n".join(str(clip) for clip in short_clips) + "\n\n")
    for k in (1, 2, 3):
        code = main(["segment", f"@{manifest}", "-o", str(out), "-w", str(weights), "--video", "colour.mp4", "-q",
                     "--shard", f"{k}/3"])  # fmt: skip
        assert code == 0
    assert _tree(out) == short_reference
    records = [r for r in read_records(out) if r["outcome"] != "started"]  # the outcomes
    assert sorted(r["input"] for r in records) == sorted(map(str, short_clips))  # each input in one shard only
    assert {r["outcome"] for r in records} == {"done"}
    holding = {shard_of(str(clip), 3) for clip in short_clips}  # a shard may hold none: it writes no record
    assert len(list((out / "_runs").glob("*.jsonl"))) == len(holding)


@pytest.mark.cluster
def test_a_node_that_dies_mid_video_has_its_video_retried_on_the_other(
    nodes: Any, long_clips: list[Path], weights: Path, long_reference: dict[str, bytes], tmp_path: Path
) -> None:
    # First of the cluster tests: later, the head's warm worker processes can take every video before
    # the other node's worker has started.
    other = next(iter(nodes.worker_nodes))
    removed: list[str] = []

    def remove_the_other_node(progress: RunProgress, result: VideoResult | None) -> None:
        busy = [item for item in progress.in_flight.values() if item.frames >= 3 and item.worker.get("node") == other.node_id]
        if not removed and busy:
            removed.append(other.node_id)
            nodes.remove_node(other)  # its raylet and every worker on it end

    out = tmp_path / "out"
    try:
        # Three videos: while the second node's worker starts, the head's cannot finish them all.
        report = segment_many(long_clips, out, ray_address=nodes.address, weights=[str(weights)], video="colour.mp4",
                              workers=WorkerSpec(workers=2), on_event=remove_the_other_node)  # fmt: skip
    finally:
        if not nodes.worker_nodes:
            nodes.add_node(**NODE)  # the next tests get two nodes again
    if not removed:  # on a loaded machine the head can finish all three before the other's worker starts
        pytest.skip("the second node's worker started after the head had taken every video: no node to remove mid-video")
    assert [r.outcome for r in report.results] == ["done"] * 3 and report.progress.retried == 1
    assert {r.worker["node"] for r in report.results} == {nodes.head_node.node_id}  # all finished on the head
    assert _tree(out) == long_reference


@pytest.mark.cluster
def test_a_ray_run_writes_byte_identical_files_and_a_corrupt_video_fails_alone(
    cluster: str, short_clips: list[Path], weights: Path, short_reference: dict[str, bytes], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4000))
    out = tmp_path / "out"
    code = main(["segment", str(junk), str(short_clips[0].parent), "-o", str(out), "-w", str(weights), "--video",
                 "colour.mp4", "-q", "--json", "--ray", cluster, "--ray-workers", "2"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1
    errors = [line for line in captured.err.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error:") and "junk.mp4" in errors[0], captured.err
    summaries = json.loads(captured.out)
    assert [s["input"] for s in summaries] == [str(junk), *map(str, short_clips)]
    assert "error" in summaries[0] and [s["frames"] for s in summaries[1:]] == [SHORT] * len(short_clips)
    assert _tree(out) == short_reference  # byte-identical to the local run, nothing for the corrupt video
    records = [r for r in read_records(out) if r["outcome"] != "started"]  # the outcomes
    assert sorted(r["input"] for r in records) == sorted(map(str, [junk, *short_clips]))
    assert [r["outcome"] for r in records].count("failed") == 1 and all(r["frames"] == SHORT for r in records[1:] if r["outcome"] == "done")
    assert {r["worker"]["pid"] for r in records}.isdisjoint({os.getpid()})  # in workers, not in the driver


@pytest.mark.cluster
def test_killing_a_worker_mid_video_still_completes_every_video(
    cluster: str, long_clips: list[Path], weights: Path, long_reference: dict[str, bytes], tmp_path: Path
) -> None:
    killed: list[int] = []

    def kill_a_busy_worker(progress: RunProgress, result: VideoResult | None) -> None:
        busy = [item for item in progress.in_flight.values() if item.frames >= 3 and item.worker.get("pid")]
        if not killed and busy:
            killed.append(busy[0].worker["pid"])
            os.kill(killed[0], signal.SIGKILL)

    out = tmp_path / "out"
    report = segment_many(long_clips[:2], out, ray_address=cluster, weights=[str(weights)], video="colour.mp4",
                          on_event=kill_a_busy_worker)  # fmt: skip
    assert killed, "no worker was seen mid-video"
    assert [r.outcome for r in report.results] == ["done", "done"] and [r.frames for r in report.results] == [LONG, LONG]
    assert sorted(r.attempt for r in report.results) == [1, 2] and report.progress.retried == 1
    lost = [r for r in read_records(out) if r["outcome"] == "worker-lost"]
    assert len(lost) == 1 and lost[0]["worker"]["pid"] == killed[0]
    retried = next(r for r in report.results if r.attempt == 2)
    assert retried.worker["pid"] != killed[0]
    assert len({worker["node"] for worker in report.progress.workers}) == 2  # workers on both nodes
    expected = {name: data for name, data in long_reference.items() if name.split("/")[0] in ("drive0", "drive1")}
    assert _tree(out) == expected  # the retry's outputs, nothing of the dead attempt's (no temporary files)


@pytest.mark.cluster
def test_resume_after_the_driver_is_stopped_runs_only_what_was_unfinished(
    cluster: str, long_clips: list[Path], weights: Path, long_reference: dict[str, bytes], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = [*map(str, long_clips), "-o", str(out), "-w", str(weights), "--video", "colour.mp4", "-q", "--ray", cluster]
    driver = subprocess.Popen([sys.executable, "-m", "arseg_cli", "segment", *args, "--ray-workers", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not [r for r in read_records(out) if r["outcome"] == "done"] if (out / "_runs").is_dir() else True:
            assert driver.poll() is None and time.monotonic() < deadline, driver.stderr.read().decode() if driver.stderr else ""
            time.sleep(0.1)
    finally:
        driver.send_signal(signal.SIGTERM)  # as a scheduler stops a job: the CLI ends as for Ctrl-C
        code = driver.wait(timeout=60)
    stderr = driver.stderr.read().decode() if driver.stderr else ""
    assert code == 143 and "terminated" in stderr and "Traceback" not in stderr, stderr  # not Ray's abort
    first = read_records(out)
    finished = {r["input"] for r in first if r["outcome"] == "done"}
    assert 1 <= len(finished) < len(long_clips)
    for pid in {r["worker"]["pid"] for r in first if r.get("worker")}:  # the stopped driver's workers end: wait for it
        _wait_gone(pid)

    report = segment_many(long_clips, out, ray_address=cluster, weights=[str(weights)], video="colour.mp4", resume=True)
    outcomes = {r.source: r.outcome for r in report.results}
    assert {s for s, o in outcomes.items() if o == "skipped"} == finished
    assert {s for s, o in outcomes.items() if o == "done"} == {str(c) for c in long_clips} - finished
    assert _tree(out) == long_reference

    again = segment_many(long_clips, out, ray_address=cluster, weights=[str(weights)], video="colour.mp4", resume=True)
    assert {r.outcome for r in again.results} == {"skipped"}
    other = segment_many(long_clips[:1], out, weights=[str(weights)], video="colour.mp4", resume=True,
                         options=JobOptions(opacity=0.25))  # other options: not skipped  # fmt: skip
    assert [r.outcome for r in other.results] == ["done"]


@pytest.mark.cluster
def test_a_worker_that_cannot_start_is_one_line_not_a_retry_loop(
    cluster: str, short_clips: list[Path], weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["segment", str(short_clips[0]), "-o", str(tmp_path / "out"), "-w", str(weights), "--device", "cuda",
                 "--ray", cluster])  # CPU-only workers: loading the model on CUDA fails in every one  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1, err
    assert "a Ray worker failed to start" in err and "no CUDA device" in err and "Traceback" not in err


@pytest.mark.cluster
def test_a_model_ray_cannot_store_is_one_line(
    short_clips: list[Path], weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A node whose store is smaller than the model, and a disk fuller than Ray's bar for the fallback
    (the bar set below this disk's use, as a nearly full disk would be): Ray's OutOfDiskError."""
    import tempfile

    disk = os.statvfs(tempfile.gettempdir())
    used = 1 - disk.f_bavail / disk.f_blocks
    if used < 0.02:
        pytest.skip("the temporary directory's disk is empty: no bar below its use")
    small = {**NODE, "object_store_memory": 80 * 1024**2, "_system_config": {"local_fs_capacity_threshold": used / 2}}
    with loopback_cluster(small) as one:
        code = main(["segment", str(short_clips[0]), "-o", str(tmp_path / "out"), "-w", str(weights),
                     "--video", "colour.mp4", "--ray", str(one.address)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("error: Ray cannot store the model (112 MB)") and "fuller than Ray allows" in err, err
    assert not (tmp_path / "out" / "_runs").exists()


def test_an_object_store_without_room_for_the_model_is_one_line_and_writes_nothing(
    weights: Path, short_clips: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ray's other refusal, ObjectStoreFullError (a store that other jobs fill, spilling off), from a
    `ray` whose put raises it: the cluster test above provokes the disk refusal for real. The model is
    put before the run record is written, so the refused run leaves no record of videos `started`."""
    exceptions = pytest.importorskip("ray.exceptions")
    import contextlib

    import torch

    from arseg_cli.scaleout import ray_pool, run
    from arseg_cli.scaleout.ray_pool import RayStorageError, _put_model

    class FullStore:
        def put(self, value: Any) -> Any:
            raise exceptions.ObjectStoreFullError("object store is full")

    with pytest.raises(RayStorageError) as refused:
        _put_model(FullStore(), torch.nn.Linear(1000, 1000))  # 4.004 MB of float32
    message = str(refused.value)
    assert "\n" not in message and message.startswith("Ray's object store has no room for the model (4 MB)"), message
    assert "--object-store-memory" in message and refused.value.__cause__ is None
    monkeypatch.setattr(run, "ray_connection", lambda address: contextlib.nullcontext())
    monkeypatch.setattr(ray_pool, "import_ray", FullStore)
    code = main(["segment", str(short_clips[0]), "-o", str(tmp_path / "out"), "-w", str(weights), "--ray", "local"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and err.startswith("error: Ray's object store has no room"), err
    assert not (tmp_path / "out" / "_runs").exists()


def _wait_gone(pid: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    pytest.fail(f"worker {pid} of the killed driver still runs")


def test_ray_options_without_ray_installed_are_one_line(
    weights: Path, short_clips: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as when the extra is missing
    code = main(["segment", str(short_clips[0]), "-o", str(tmp_path / "out"), "-w", str(weights), "--ray", "local"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "pip install 'arseg[ray]'" in err and "Traceback" not in err
    assert main(["segment", str(short_clips[0]), "-o", "-", "--shard", "1/2"]) == 2


def test_a_ray_address_where_nothing_answers_is_one_line_and_writes_nothing(
    weights: Path, short_clips: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["segment", str(short_clips[0]), "-o", str(tmp_path / "out"), "-w", str(weights), "--ray", "127.0.0.1:1"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "no Ray cluster answers there" in err, err
    assert not (tmp_path / "out" / "_runs").exists()


def test_manifest_errors_name_the_list_and_line(weights: Path, short_clips: list[Path], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    listing = tmp_path / "list.txt"
    listing.write_text(f"{short_clips[0]}\nmissing.mp4\n")
    for manifest, expected in ((tmp_path / "none.txt", "none.txt: no such file"), (listing, "line 2: missing.mp4: no such file")):
        assert main(["segment", f"@{manifest}", "-o", str(tmp_path / "out"), "-w", str(weights), "--shard", "1/1"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and expected in err, err
    assert not (tmp_path / "out").exists()


def test_the_bar_counts_videos_frames_and_failures_on_a_terminal(
    weights: Path, short_clips: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from rich.console import Console

    screen = io.StringIO()
    monkeypatch.setattr("arseg_cli.cli._scaleout.console", Console(file=screen, force_terminal=True, width=150))
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video" * 50)
    code = main(["segment", str(junk), *map(str, short_clips[:2]), "-o", str(tmp_path / "out"), "-w", str(weights),
                 "--shard", "1/1"])  # fmt: skip
    shown = screen.getvalue()
    assert code == 1
    assert "3/3" in shown and f"{2 * SHORT} frames" in shown and "1 failed" in shown  # the bar's last state
    assert "3 videos: 2 done, 0 skipped, 1 failed, 0 retried" in shown  # the closing line


def test_resume_skips_only_videos_done_with_the_same_input_and_complete_outputs(
    weights: Path, short_clips: list[Path], short_reference: dict[str, bytes], tmp_path: Path
) -> None:
    clips = [tmp_path / clip.name for clip in short_clips]
    for source, copy in zip(short_clips, clips):
        copy.write_bytes(source.read_bytes())
    out = tmp_path / "out"

    def run(resume: bool) -> dict[str, str]:
        report = segment_many(clips, out, shard="1/1", weights=[str(weights)], video="colour.mp4", resume=resume)
        return {Path(r.source).stem: r.outcome for r in report.results}

    assert set(run(False).values()) == {"done"}
    assert set(run(True).values()) == {"skipped"}
    os.utime(clips[0], ns=(time.time_ns(), time.time_ns()))  # the input changed since
    (out / "street1" / "labels" / "000004.png").unlink()  # an output went missing
    (out / "street2" / "colour.mp4").unlink()
    assert run(True) == {"street0": "done", "street1": "done", "street2": "done", "street3": "skipped"}
    assert _tree(out) == short_reference
    # a later run with other options was cut off in street3: its outputs may mix two runs, never skipped
    import json

    cut = out / "_runs" / "zz-cut-off.jsonl"
    cut.write_text(json.dumps({"input": str(clips[3]), "outcome": "started", "options": {"other": "options"}}) + "\n")
    assert run(True) == {"street0": "skipped", "street1": "skipped", "street2": "skipped", "street3": "done"}
    assert _tree(out) == short_reference
    started = [e for e in read_records(out) if e["outcome"] == "started" and "run" in e]  # not the line above
    assert started and all(e["size"] is not None for e in started)  # the input's stamp taken at the start


def test_sharded_inputs_of_one_name_are_refused_in_one_line(
    weights: Path, short_clips: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Shards name each input's folder from the list they see: two inputs of one stem could get the
    `-2` folder in one shard and the plain one in another, so they are refused."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = tmp_path / "a" / "clip.mp4", tmp_path / "b" / "clip.mp4"
    first.write_bytes(short_clips[0].read_bytes())
    second.write_bytes(short_clips[1].read_bytes())
    code = main(["segment", str(first), str(second), "-o", str(tmp_path / "out"), "-w", str(weights), "--shard", "1/2"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "share the name 'clip'" in err, err
    assert not (tmp_path / "out").exists()
