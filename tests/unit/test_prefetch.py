"""`prefetch`: same items in the same order, errors where they happened, early stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from crowdsight.sources.prefetch import prefetch


@pytest.mark.parametrize("depth", [1, 2, 8])
def test_order_is_kept(depth: int) -> None:
    assert list(prefetch(iter(range(100)), depth)) == list(range(100))


def test_error_arrives_after_the_items_before_it() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise OSError("stream dropped")

    got: list[int] = []
    with pytest.raises(OSError, match="stream dropped"):
        for x in prefetch(items(), 4):
            got.append(x)
    assert got == [1, 2]


def test_break_stops_the_producer() -> None:
    produced: list[int] = []

    def items() -> Iterator[int]:
        for i in range(10_000):
            produced.append(i)
            yield i

    for x in prefetch(items(), 3):
        if x == 5:
            break
    time.sleep(0.3)
    # At most `depth` items ahead of the consumer, plus the one being put.
    assert len(produced) <= 5 + 1 + 3 + 1
    assert not [t for t in threading.enumerate() if t.name == "prefetch"]


def test_runs_ahead_in_another_thread() -> None:
    seen: list[str] = []

    def items() -> Iterator[int]:
        for i in range(3):
            seen.append(threading.current_thread().name)
            yield i

    assert list(prefetch(items())) == [0, 1, 2]
    assert set(seen) == {"prefetch"}


def test_depth_must_be_positive() -> None:
    with pytest.raises(ValueError, match="depth"):
        list(prefetch([1], 0))
