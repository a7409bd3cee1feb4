"""The text form of `arseg bench`'s report (run.run_bench's JSON): one block per architecture."""

from __future__ import annotations

from typing import Any

_G = 1e9
_MS = 1e3


def format_report(report: dict[str, Any]) -> str:
    """Lines of text: the conventions, then per architecture a table of scales, the paper's figures and
    the ratio lines."""
    info = report["machine"]
    lines = [
        f"arseg bench: backend {report['backend']}, device {info['device']}"
        + (f" ({info['gpu']})" if "gpu" in info else f" ({info['cpu']}, {info['torch_threads']} threads)")
        + f", L = {report['keyframe_interval']}, warm-up {report['warmup']}, repeats {report['repeats']}"
        + (", CReFF attention compiled (--compile)" if report.get("compiled_attention") else ""),
        f"MACs: {report['convention']['macs']}; FLOPs = 2 x MACs.",
        f"paper: {report['convention']['paper_macs']}.",
    ]
    for arch in report["archs"]:
        lines += [""] + _arch_block(arch)
    return "\n".join(lines)


def _arch_block(arch: dict[str, Any]) -> list[str]:
    height, width = arch["size"]
    lines = [f"{arch['arch']} at {height}x{width}, weights: {arch['weights']}"]
    header = ["scale", "LR input", "HR", "LR", "CReFF", "non-key", "AR avg", "MACs ratio"]
    timed = any("latency" in row for row in arch["scales"])
    if timed:
        header += ["HR ms", "LR ms", "CReFF ms", "non-key ms", "AR avg ms", "speed-up"]
    table = [header]
    for row in arch["scales"]:
        macs, per_frame_hr = row["macs"], row["scale"] >= 1.0
        cells = [str(float(row["scale"])), "-" if per_frame_hr else "x".join(map(str, row["lr_size"])), _g(macs["hr"])]
        cells += ["-"] * 3 if per_frame_hr else [_g(macs["lr"]), _g(macs["creff"]), _g(macs["nonkeyframe"])]
        cells += [_g(macs["ar_average"]), f"{row['macs_ratio_vs_1x']:.2f}x"]
        if timed:
            latency = row["latency"]
            cells += [_ms(latency.get("hr"))] + [_ms(latency.get(name)) for name in ("lr", "creff", "nonkeyframe")]
            cells += [f"{latency['ar_average_s'] * _MS:.1f}", f"{row['speedup_vs_1x']:.2f}x"]
        table.append(cells)
    lines += _columns(table)
    lines.append("GMACs per frame; ms: median / p90 per call" if timed else "GMACs per frame (latency not measured)")
    paper = arch.get("paper")
    half = next((row for row in arch["scales"] if row["scale"] == 0.5), None)
    if paper is not None:
        ph, pw = paper["size_hw"]
        line = (f"paper at {ph}x{pw}, 0.5x: HR {paper['hr_gmacs']} G, LR {paper['lr_gmacs']} G (thop MACs)"
                + ("" if paper["creff_gmacs"] is None else f", CReFF ~{paper['creff_gmacs']} G")
                + f"; mIoU HR {paper['miou_hr']}, LR {paper['miou_lr']}, AR {paper['miou_ar']}")  # fmt: skip
        lines.append(line)
        if half is not None and half["paper_macs"] is not None and [height, width] == paper["size_hw"]:
            lines.append(f"arseg's count in the paper's convention: HR {_g(half['paper_macs']['hr'])} G, LR {_g(half['paper_macs']['lr'])} G")
    lines += arch["summary"]
    if "video" in arch:
        lines += _video_block(arch["video"])
    return lines


def _video_block(video: dict[str, Any]) -> list[str]:
    height, width = video["size"]
    lines = [f"video {video['video']} ({height}x{width}, {video['frames_timed']} frames timed after {video['warmup_frames']}, "
             f"s = {video['scale']:g}, L = {video['keyframe_interval']}; written: {video['written']}):"]  # fmt: skip
    table = [["stage", "ms/frame median", "p90", "frames"]]
    for name, stats in video["stages"].items():
        table.append([name, f"{stats['median_s'] * _MS:.1f}", f"{stats['p90_s'] * _MS:.1f}", str(stats["repeats"])])
    return lines + _columns(table)


def _g(macs: float) -> str:
    return f"{macs / _G:.2f}"


def _ms(stats: dict[str, Any] | None) -> str:
    if stats is None:
        return "-"
    return f"{stats['median_s'] * _MS:.1f} / {stats['p90_s'] * _MS:.1f}"


def _columns(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.rjust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
