"""Pinned model sources, download + verify, converters to ONNX, runtime backends."""
