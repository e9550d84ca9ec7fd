"""Density off the frame loop: a one-slot background worker for live cameras.

Live cameras must keep detection and tracking at the camera's frame rate, while a density
estimate of the same frame costs ~50× a detection on a CPU. `AsyncDensity` runs the estimator
in one background thread (ONNX Runtime releases the GIL while it computes) and never queues:
a request made while the worker is busy is dropped, so density lags by at most one estimate
and never builds a backlog. Offline analysis keeps the synchronous estimator (deterministic).
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import numpy.typing as npt

from crowdsight.core.types import DensityMap, ImageRGB


class AsyncDensity:
    """Wraps an estimator with ``estimate(image, roi_mask) -> DensityMap``.

    Args:
        estimator: The synchronous estimator (give it fewer ORT threads than cores, so the
            detector keeps a core).
    """

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator
        self._lock = threading.Lock()
        self._busy = threading.Event()
        self._result: DensityMap | None = None
        self._new = False
        self._error: BaseException | None = None

    def submit(
        self,
        image: ImageRGB,
        roi_mask: npt.NDArray[np.bool_] | None = None,
        scale: float = 1.0,
    ) -> bool:
        """Start an estimate of ``image`` (resized by ``scale``) unless one is running.

        Returns True when started."""
        if self._busy.is_set():
            return False
        self._busy.set()
        img = image.copy()  # the caller may reuse its buffer
        threading.Thread(
            target=self._run, args=(img, roi_mask, scale), daemon=True, name="crowdsight-density"
        ).start()
        return True

    def _run(self, image: ImageRGB, roi_mask: npt.NDArray[np.bool_] | None, scale: float) -> None:
        from crowdsight.perception.density import estimate_at_scale

        try:
            dm = estimate_at_scale(self.estimator, image, scale, roi_mask)
            with self._lock:
                self._result, self._new = dm, True
        except BaseException as exc:  # re-raised on the caller's thread by poll()
            with self._lock:
                self._error = exc
        finally:
            self._busy.clear()

    @property
    def busy(self) -> bool:
        return self._busy.is_set()

    def poll(self) -> tuple[DensityMap | None, bool]:
        """(latest finished map, whether it is new since the last poll)."""
        with self._lock:
            if self._error is not None:
                err, self._error = self._error, None
                raise err
            new, self._new = self._new, False
            return self._result, new

    def wait(self, timeout_s: float = 60.0) -> None:
        """Block until the running estimate (if any) finishes."""
        import time

        deadline = time.monotonic() + timeout_s
        while self._busy.is_set() and time.monotonic() < deadline:
            time.sleep(0.005)

    def reset(self) -> None:
        """Drop the latest result (a running estimate still completes)."""
        with self._lock:
            self._result, self._new, self._error = None, False, None
