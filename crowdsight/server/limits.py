"""Bounds on what a client can make the server hold: body size and concurrent sign-ins.

`BodyLimitMiddleware` is a pure ASGI middleware, so it acts *before* any route reads the
body: a declared ``Content-Length`` above the limit gets 413 without a byte read, and a
chunked body is counted as it streams and cut off at the limit. Every API body is small JSON
(the largest, a camera with its scene, is a few kB), so the default limit is 1 MiB.

`SignInGate` bounds how many sign-ins verify a password at once. Each argon2id verification
costs its memory parameter (64 MiB with argon2-cffi's defaults) and a core for a fraction of a
second; without a bound, 20 concurrent attempts took the probe's server to 1.2 GB and its
health check to 952 ms. Attempts beyond the bound get 503 with ``Retry-After: 1`` at once.

Example:
    >>> gate = SignInGate(1)
    >>> with gate.slot() as first, gate.slot() as second:
    ...     (first, second)
    (True, False)
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyLimitMiddleware:
    """Answer 413 to request bodies larger than ``max_bytes`` (checked before reading).

    Args:
        app: the wrapped ASGI app.
        max_bytes: largest accepted body in bytes.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _reject(self, send: Send) -> None:
        body = json.dumps(
            {"detail": f"request body too large (limit {self.max_bytes} bytes)"}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = self.max_bytes + 1
                if declared > self.max_bytes:
                    await self._reject(send)
                    return
        seen = 0
        started = rejected = False

        async def limited_receive() -> Message:
            # Past the limit: answer 413 ourselves and tell the app the client has gone (an
            # exception would be caught by FastAPI's body parser and turned into a 422).
            nonlocal seen, rejected
            if rejected:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    rejected = True
                    if not started:
                        await self._reject(send)
                    return {"type": "http.disconnect"}
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if rejected:
                return  # the 413 has been sent; whatever the app answers is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, limited_receive, tracking_send)


class SignInGate:
    """At most ``limit`` password verifications at a time; the rest are refused at once.

    Args:
        limit: concurrent sign-ins (argon2 verifications) allowed.
    """

    def __init__(self, limit: int) -> None:
        self._slots = threading.BoundedSemaphore(limit)

    @contextmanager
    def slot(self) -> Iterator[bool]:
        """Yields True with a slot held, or False (nothing held) when all are busy."""
        acquired = self._slots.acquire(blocking=False)
        try:
            yield acquired
        finally:
            if acquired:
                self._slots.release()
