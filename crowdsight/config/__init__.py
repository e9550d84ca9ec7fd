"""Configuration files read at the boundary (scene files per camera)."""

from crowdsight.config.scene import SceneConfig, load_scene, parse_scene

__all__ = ["SceneConfig", "load_scene", "parse_scene"]
