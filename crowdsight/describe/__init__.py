"""Non-biometric descriptions: clothing colours, carried objects, vehicle type and colour."""

from crowdsight.describe.describer import Description, TrackDescriber

__all__ = ["Description", "TrackDescriber"]
