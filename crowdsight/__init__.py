"""crowdsight: privacy-first video analytics for public spaces.

crowdsight turns camera feeds into crowd density, counts, tracks and safety events
without identifying anyone. See DESIGN.md for the data flow and what it never builds.
"""

from crowdsight.core.types import DensityMap, Detections, Frame

__all__ = ["DensityMap", "Detections", "Frame", "__version__"]
__version__ = "0.1.0"
