"""Converters from the pinned wheels to ONNX (or OpenCV-readable) files."""
