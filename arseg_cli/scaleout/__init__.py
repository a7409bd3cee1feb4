"""Scale-out: many videos across many machines on Ray (or split into shards without an engine), each
into `OUT/<stem>/` as a local multi-input run writes it, with run records and `--resume` (docs/SCALEOUT.md).

    from arseg_cli.scaleout import segment_many
    report = segment_many(["clips/"], "out", ray_address="auto")
"""

from arseg_cli.scaleout.jobs import JobOptions, VideoJob, VideoResult
from arseg_cli.scaleout.progress import RunProgress
from arseg_cli.scaleout.ray_pool import RayExtraMissingError, WorkerSpec
from arseg_cli.scaleout.run import RunReport, segment_many
from arseg_cli.scaleout.shards import Shard, shard_of

__all__ = ["JobOptions", "RayExtraMissingError", "RunProgress", "RunReport", "Shard", "VideoJob", "VideoResult",
           "WorkerSpec", "segment_many", "shard_of"]  # fmt: skip
