"""Defaults of the video front end that the command line shows in its options.

Kept apart from the decoding modules so that `arseg --help` can show them without importing PyAV.
"""

#: The largest frame arseg decodes by default, in pixels: 8K UHD (7680 x 4320). A header declaring more
#: (a decompression bomb: a few bytes that claim 65535 x 65535) is refused before anything is allocated.
DEFAULT_MAX_PIXELS = 7680 * 4320

#: Frames decoded by `probe_video` to find the first GOP's pattern and the vectors (the rest is only demuxed).
DEFAULT_SCAN_FRAMES = 300
