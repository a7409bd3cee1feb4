"""HEVC motion vectors read from the bitstream (a native parser in native/, wrapped by parser.py)."""
