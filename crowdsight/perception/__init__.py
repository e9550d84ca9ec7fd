"""Perception: people/object detection, crowd density, faces."""
