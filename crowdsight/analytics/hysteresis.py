"""Hysteresis: turn a noisy per-frame value into clean start/end transitions.

A condition *opens* once the value has stayed at or above ``enter`` (then above ``exit``)
for ``min_duration_s`` and ``min_updates`` values in a row, and *closes* once it has stayed
below ``exit`` for ``release_s``.
Because ``exit < enter``, a value wobbling around ``enter`` opens one event and keeps it
open instead of flapping open/closed every frame.

Example:
    >>> h = Hysteresis(enter=4.0, exit=3.0, min_duration_s=1.0)
    >>> [h.update("zone", v, float(t)) for t, v in enumerate([4.2, 3.9, 4.1, 2.0])]
    [None, Transition(kind='open', ts_s=0.0), None, Transition(kind='close', ts_s=3.0)]
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from enum import Enum
from typing import Literal


class _Phase(Enum):
    PENDING = 1
    ACTIVE = 2
    RELEASING = 3


@dataclass(frozen=True, slots=True)
class Transition:
    """An open (``ts_s`` = when the condition began) or a close (``ts_s`` = when it ended)."""

    kind: Literal["open", "close"]
    ts_s: float


@dataclass(slots=True)
class _State:
    phase: _Phase
    since_s: float  # PENDING: when the value first crossed enter; RELEASING: first below exit
    updates: int = 1  # PENDING: values fed since then, this one included


class Hysteresis:
    """Per-key enter/exit thresholds with minimum durations.

    Args:
        enter: Value at which a condition starts to be considered.
        exit: Value below which an open condition starts to end (``exit <= enter``). The
            wider the gap, the less flapping, the later the end.
        min_duration_s: Time the value must stay high before the condition opens; filters
            one-frame spikes at the cost of that much latency.
        release_s: Time the value must stay below ``exit`` before the condition closes.
        min_updates: Values in a row (the first at or above ``enter``) needed before the
            condition opens, however long they span: at a low frame rate two values can be
            seconds apart, and ``min_duration_s`` alone would let one outlier open it.
    """

    def __init__(
        self,
        enter: float,
        exit: float,
        min_duration_s: float = 0.0,
        release_s: float = 0.0,
        min_updates: int = 1,
    ) -> None:
        if exit > enter:
            raise ValueError(f"exit ({exit}) must be <= enter ({enter})")
        if min_updates < 1:
            raise ValueError(f"min_updates ({min_updates}) must be >= 1")
        self.enter = enter
        self.exit = exit
        self.min_duration_s = min_duration_s
        self.release_s = release_s
        self.min_updates = min_updates
        self._states: dict[Hashable, _State] = {}

    def reset(self) -> None:
        """Forget every key."""
        self._states.clear()

    def is_active(self, key: Hashable) -> bool:
        """True while ``key``'s condition is open (including while it is releasing)."""
        st = self._states.get(key)
        return st is not None and st.phase in (_Phase.ACTIVE, _Phase.RELEASING)

    def update(self, key: Hashable, value: float, ts_s: float) -> Transition | None:
        """Feed one value; returns the transition it causes, if any."""
        st = self._states.get(key)
        if st is None:
            if value < self.enter:
                return None
            st = self._states[key] = _State(_Phase.PENDING, ts_s, 0)
        if st.phase is _Phase.PENDING:
            if value < self.exit:
                del self._states[key]
                return None
            st.updates += 1
            if ts_s - st.since_s >= self.min_duration_s and st.updates >= self.min_updates:
                st.phase = _Phase.ACTIVE
                return Transition("open", st.since_s)
            return None
        if value >= self.exit:
            st.phase = _Phase.ACTIVE
            return None
        if st.phase is _Phase.ACTIVE:
            st.phase, st.since_s = _Phase.RELEASING, ts_s
        if ts_s - st.since_s >= self.release_s:
            end = st.since_s
            del self._states[key]
            return Transition("close", end)
        return None

    def drop(self, key: Hashable, ts_s: float) -> Transition | None:
        """The key went away (e.g. track lost): close it now if it was open."""
        st = self._states.pop(key, None)
        if st is None or st.phase is _Phase.PENDING:
            return None
        return Transition("close", st.since_s if st.phase is _Phase.RELEASING else ts_s)

    def keys(self) -> list[Hashable]:
        """Every key with state (pending or open)."""
        return list(self._states)
