"""arseg: efficient semantic segmentation of compressed videos by altering resolutions (AR-Seg)."""

__version__ = "0.1.0"
