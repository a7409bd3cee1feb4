"""`arseg bench`: compute (MACs, FLOPs) and measured latency of AR-Seg side by side. docs/BENCH.md.

costs.py: the compute table (model.flops' figures per scale); reference.py: the paper's figures;
timing.py: warm-up / repeats / median / p90, CUDA synchronised; latency.py: the model's stages;
video.py: decode, motion, model and writing per frame on a real video; run.py: one bench run as JSON;
report.py: its text form.
"""

from arseg_cli.bench.run import BenchConfig, run_bench, summary_line
from arseg_cli.bench.timing import LatencyStats, interleaved

__all__ = ["BenchConfig", "LatencyStats", "interleaved", "run_bench", "summary_line"]
