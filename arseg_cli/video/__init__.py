"""The compressed-video stages: decode (with bitstream motion vectors), motion fields, writers."""
