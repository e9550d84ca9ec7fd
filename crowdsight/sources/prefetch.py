"""Decode ahead in a background thread so decoding overlaps inference.

PyAV/FFmpeg and ONNX Runtime both release the GIL, so a small bounded queue of decoded
frames hides decode time behind the detector instead of adding to it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def prefetch(items: Iterable[T], depth: int = 4) -> Iterator[T]:
    """Iterate ``items`` with up to ``depth`` of them produced ahead in a thread.

    Errors raised by the producer are re-raised in the consumer at the point they
    happened, after the items produced before them. Stopping early (``break``) stops the
    producer after at most ``depth`` more items.

    Example:
        >>> list(prefetch(range(5), depth=2))
        [0, 1, 2, 3, 4]
    """
    if depth < 1:
        raise ValueError("depth must be >= 1")
    q: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_DONE)
        except BaseException as exc:
            q.put(_Failure(exc))

    thread = threading.Thread(target=produce, name="prefetch", daemon=True)
    thread.start()
    try:
        while True:
            got = q.get()
            if got is _DONE:
                return
            if isinstance(got, _Failure):
                raise got.exc
            yield got  # type: ignore[misc]
    finally:
        stop.set()
        # Unblock a producer waiting on a full queue, then let it finish.
        while thread.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.1)
