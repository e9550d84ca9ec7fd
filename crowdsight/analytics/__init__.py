"""Scene analytics: zones, lines, crowd metrics, event rules and motion normality."""

from crowdsight.analytics.draw import draw_occupancy_heatmap, draw_scene
from crowdsight.analytics.scene import AnalyticsResult, SceneAnalytics

__all__ = ["AnalyticsResult", "SceneAnalytics", "draw_occupancy_heatmap", "draw_scene"]
