"""crowdsight: privacy-first video analytics for public spaces.

crowdsight turns camera feeds into crowd density, counts, tracks and safety events
without identifying anyone. See DESIGN.md for the data flow and what it never builds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crowdsight.core.types import DensityMap, Detections, Frame

__all__ = ["DensityMap", "Detections", "Frame", "__version__"]
__version__ = "0.1.0"

_LAZY = {"DensityMap", "Detections", "Frame"}


def __getattr__(name: str) -> Any:
    # Lazy: `import crowdsight` (CLI start, camera worker start) should not pay for
    # supervision and its dependencies until the types are used.
    if name in _LAZY:
        from crowdsight.core import types

        return getattr(types, name)
    raise AttributeError(f"module 'crowdsight' has no attribute {name!r}")
