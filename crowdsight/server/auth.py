"""Authentication, roles, login rate limiting and the audit log, for every API router.

Two ways in, both backed by the same token table (only SHA-256 hashes stored):

- ``Authorization: Bearer <token>``: API tokens (``POST /api/tokens``) or the token that
  ``POST /api/auth/login`` returns;
- the ``crowdsight_session`` cookie (HTTP-only, SameSite=Lax) that login also sets, so the
  browser dashboard works without handling tokens.

Roles are ordered ``viewer < operator < admin``; `require_role` builds the dependency:

    @router.get("/api/things")
    def things(user: User = Depends(require_role("viewer"))) -> ...: ...
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from crowdsight.store import Role, Store, User

COOKIE_NAME = "crowdsight_session"

bearer_scheme = HTTPBearer(
    auto_error=False, description="API token or the token returned by /api/auth/login."
)
cookie_scheme = APIKeyCookie(
    name=COOKIE_NAME, auto_error=False, description="Session cookie set by /api/auth/login."
)


@dataclass
class LoginLimiter:
    """Counts failed logins per (user name, client), per client and overall, in a window.

    After ``max_failures`` failures within ``window_s`` seconds, further attempts for that
    pair are refused (HTTP 429) until the oldest failure leaves the window. Keying on the
    pair, not the user alone, stops one attacker from locking a user out everywhere. A client
    trying random user names meets ``max_failures_per_client``; many clients together meet
    ``max_failures_global``.

    Attributes:
        max_failures: failures allowed per window.
        window_s: window length in seconds.
        clock: monotonic time source (tests may inject one).
    """

    max_failures: int = 5
    window_s: float = 300.0
    max_failures_per_client: int = 20
    max_failures_global: int = 300
    clock: Callable[[], float] = time.monotonic
    _failures: dict[tuple[str, str], deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and now - times[0] > self.window_s:
            times.popleft()
        return times

    def _keys(self, username: str, client: str) -> list[tuple[tuple[str, str], int]]:
        return [
            ((username.lower(), client), self.max_failures),
            (("\0client", client), self.max_failures_per_client),
            (("\0all", ""), self.max_failures_global),
        ]

    def retry_after_s(self, username: str, client: str) -> float:
        """0 when a login may be tried now, else seconds until it may."""
        wait_s = 0.0
        with self._lock:
            now = self.clock()
            for key, limit in self._keys(username, client):
                times = self._recent(key, now)
                if len(times) >= limit:
                    wait_s = max(wait_s, self.window_s - (now - times[-limit]), 1.0)
        return wait_s

    def failed(self, username: str, client: str) -> None:
        """Record one failed attempt."""
        with self._lock:
            now = self.clock()
            for key, limit in self._keys(username, client):
                times = self._recent(key, now)
                times.append(now)
                while len(times) > limit:  # memory stays bounded under a flood
                    times.popleft()
            if len(self._failures) > 10_000:  # pairs left by a random-name flood
                for key in [k for k in self._failures if not self._recent(k, now)]:
                    del self._failures[key]

    def succeeded(self, username: str, client: str) -> None:
        """Forget the failures of this pair."""
        with self._lock:
            self._failures.pop((username.lower(), client), None)

    def reset(self) -> None:
        """Forget every failure."""
        with self._lock:
            self._failures.clear()


#: Methods that change nothing: no Origin check needed.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def check_origin(request: Request) -> None:
    """403 for a cookie-authenticated state-changing request from another site (CSRF).

    Browsers send ``Origin`` with every cross-site POST/PUT/PATCH/DELETE; it must name this
    server's host. SameSite=Lax already keeps the cookie off most cross-site requests; this
    is the second lock. Requests without ``Origin`` (scripts, curl) are not from a browser
    page and pass; bearer-token requests are not checked (a page cannot attach the token).
    """
    if request.method in SAFE_METHODS:
        return
    origin = request.headers.get("origin")
    if origin is None:
        return
    host = request.headers.get("host", "")
    if origin == "null" or urlsplit(origin).netloc.lower() != host.lower():
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "cross-site request refused: Origin does not match this server",
        )


def client_address(request: Request) -> str:
    """The client's IP address ("unknown" when the server does not know it)."""
    return request.client.host if request.client is not None else "unknown"


def get_store(request: Request) -> Store:
    """The app's `Store`."""
    store: Store = request.app.state.store
    return store


def _token_from(bearer: HTTPAuthorizationCredentials | None, cookie: str | None) -> str | None:
    if bearer is not None and bearer.credentials:
        return bearer.credentials
    return cookie or None


def current_user(
    request: Request,
    bearer: HTTPAuthorizationCredentials | None = Depends(bearer_scheme),
    cookie: str | None = Depends(cookie_scheme),
) -> User:
    """The signed-in user; 401 when no valid token or session cookie is sent."""
    cached: User | None = getattr(request.state, "user", None)
    if cached is not None:
        return cached
    token = _token_from(bearer, cookie)
    if cookie and (bearer is None or not bearer.credentials):
        check_origin(request)
    found = get_store(request).resolve_token(token) if token and len(token) <= 512 else None
    if found is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "not signed in: send 'Authorization: Bearer <token>' or sign in at /api/auth/login",
            headers={"WWW-Authenticate": "Bearer"},
        )
    request.state.user = found.user
    request.state.token_id = found.token_id
    return found.user


def require_role(role: Role | str) -> Callable[..., User]:
    """A dependency that returns the user when their role is at least ``role`` (else 403).

    Args:
        role: "viewer", "operator" or "admin".
    """
    needed = Role(role)

    def dependency(user: User = Depends(current_user)) -> User:
        if not user.role.allows(needed):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"this needs the {needed.value} role; {user.username!r} is {user.role.value}",
            )
        return user

    dependency.__name__ = f"require_{needed.value}"
    return dependency


def audit(request: Request, user: Any, action: str, detail: str) -> None:
    """Write who did what to the audit log (e.g. ``live.view``, ``snapshot.export``).

    Args:
        request: the current request (gives the store and the client address).
        user: a `User` (or anything with ``username``).
        action: dotted verb, e.g. "live.view".
        detail: what it was done to, e.g. a camera or event id.
    """
    username = str(getattr(user, "username", user))
    get_store(request).audit(username, action, detail, client_address(request))
