"""`Store`: the one object the runner, the API and the dispatcher share.

Every public method opens its own short transaction, so the store is safe to use from
several threads (the API's thread pool, the runner's writer thread, the dispatcher).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from crowdsight.config.scene import parse_scene
from crowdsight.core.errors import InputError
from crowdsight.core.events import Event
from crowdsight.store import descriptions, migrate, outbox
from crowdsight.store import events as event_queries
from crowdsight.store import metrics as metric_queries
from crowdsight.store.accounts import Accounts, Authenticated
from crowdsight.store.engine import default_url, make_engine
from crowdsight.store.events import EventFilter
from crowdsight.store.records import (
    ApiToken,
    AuditEntry,
    Camera,
    EventRecord,
    Flow,
    MetricPoint,
    OutboxItem,
    Role,
    TrackDescription,
    User,
)
from crowdsight.store.tables import CameraRow

Clock = Callable[[], float]


#: Prefix of a camera source stored encrypted (Fernet: AES-128-CBC + HMAC-SHA256).
SEALED = "sealed:v1:"


class CredentialSeal:
    """Encrypts camera sources that carry credentials before they reach the database.

    A database dump or backup then holds ``sealed:v1:<token>`` instead of
    ``rtsp://user:password@...``; the key lives apart from the database (a 0600 file in the
    data dir, or the config), so one leaked without the other reveals no stream password.

    Args:
        key: a Fernet key (32 url-safe base64-encoded bytes), e.g. ``Fernet.generate_key()``.
    """

    def __init__(self, key: bytes) -> None:
        from cryptography.fernet import Fernet

        self._fernet = Fernet(key)

    def seal(self, source: str) -> str:
        """``source`` encrypted when it holds a ``user:password@`` part, else unchanged."""
        from crowdsight.sources.policy import has_credentials

        if not has_credentials(source):
            return source
        return SEALED + self._fernet.encrypt(source.encode()).decode()

    def unseal(self, stored: str) -> str:
        """The original source of a stored value.

        Raises:
            InputError: the value was sealed with another key.
        """
        if not stored.startswith(SEALED):
            return stored
        from cryptography.fernet import InvalidToken

        try:
            return self._fernet.decrypt(stored[len(SEALED) :].encode()).decode()
        except InvalidToken:
            raise InputError(
                "a camera source was encrypted with another key (server.secret_key or "
                "secret.key in the data dir)"
            ) from None


def _camera(row: CameraRow, seal: CredentialSeal | None = None) -> Camera:
    source = row.source
    if source.startswith(SEALED):
        if seal is None:
            raise InputError("camera sources are encrypted but the store has no key")
        source = seal.unseal(source)
    return Camera(
        id=row.id,
        name=row.name,
        source=source,
        loop=row.loop,
        enabled=row.enabled,
        detect_every=row.detect_every,
        density_every_s=row.density_every_s,
        scene=parse_scene(row.scene, f"camera {row.id!r}: stored scene"),
    )


class Store:
    """Cameras, events (+ outbox), metrics, descriptions, users, tokens and audit log.

    Args:
        url: SQLAlchemy URL; None means SQLite ``crowdsight.db`` in ``$CROWDSIGHT_DATA``.
        sinks: names of the output sinks (e.g. ``["mqtt", "webhook:ops"]``); each stored
            event state gets one outbox row per sink. More can be added with `add_sinks`.
        snapshot_dir: write snapshot JPEGs as files here; None stores them in the database.
        metrics_bucket_s: storage resolution of metric series; coarser saves rows.
        hasher: argon2 password hasher (tests pass a cheap one).
        clock: time source (epoch seconds); tests may inject one.

    Example:
        >>> store = Store("sqlite://")
        >>> store.migrate()
        >>> store.record_metrics("cam", 10.0, {"count_density": 3.0})
        1
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        sinks: Sequence[str] = (),
        snapshot_dir: Path | None = None,
        metrics_bucket_s: float = 5.0,
        hasher: PasswordHasher | None = None,
        clock: Clock = time.time,
        seal: CredentialSeal | None = None,
    ) -> None:
        self.url = url or default_url()
        self.engine: Engine = make_engine(self.url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._sinks: list[str] = list(dict.fromkeys(sinks))
        self.snapshot_dir = snapshot_dir
        self.metrics_bucket_s = metrics_bucket_s
        self.accounts = Accounts(hasher)
        self.clock = clock
        #: Encrypts stream credentials in camera sources (None: stored as given).
        self.seal = seal
        self._listeners: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------

    def migrate(self) -> None:
        """Create or upgrade the schema to the latest migration (safe to call every start)."""
        migrate.upgrade(self.engine)

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()

    def ping(self) -> bool:
        """True when the database answers a real read (a table, not just ``SELECT 1``).

        A SQLite file whose pages are damaged still answers ``SELECT 1``; reading the
        users and audit tables touches real pages.
        """
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT count(*) FROM users")).scalar()
                conn.execute(text("SELECT max(id) FROM audit_log")).scalar()
        except Exception:
            return False
        return True

    def integrity_problem(self) -> str | None:
        """SQLite's ``PRAGMA quick_check`` (None when fine, or on PostgreSQL).

        Cheap enough for every start (it reads every page once, without the index
        cross-checks of a full integrity_check); a corrupt file is reported, not served as
        healthy.
        """
        if self.engine.dialect.name != "sqlite":
            return None
        try:
            with self.engine.connect() as conn:
                rows = [str(r[0]) for r in conn.execute(text("PRAGMA quick_check")).all()]
        except Exception as exc:
            return f"database check failed: {exc.__class__.__name__}: {str(exc).splitlines()[0]}"
        if rows == ["ok"]:
            return None
        return f"database is corrupt (quick_check: {rows[0][:200]})"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed on success, rolled back on error."""
        with self._sessions.begin() as s:
            yield s

    # -- sinks and listeners ---------------------------------------------------------------

    @property
    def sinks(self) -> list[str]:
        """Sink names that get outbox rows for each event state."""
        with self._lock:
            return list(self._sinks)

    def add_sinks(self, names: Iterable[str]) -> None:
        """Register more sinks; events recorded from now on are queued for them too."""
        with self._lock:
            for name in names:
                if name not in self._sinks:
                    self._sinks.append(name)

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after each commit that queued outbox rows (wakes dispatchers)."""
        with self._lock:
            self._listeners.append(callback)

    def _notify(self) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for callback in listeners:
            callback()

    # -- cameras ---------------------------------------------------------------------------

    def _stored(self, camera: Camera) -> dict[str, Any]:
        """The camera's columns, its source sealed when a key is set."""
        values = camera.model_dump()
        # The scene as it was given (JSON; defaults left out), validated again when loaded.
        values["scene"] = camera.scene.model_dump(mode="json", exclude_unset=True)
        if self.seal is not None:
            values["source"] = self.seal.seal(camera.source)
        return values

    def list_cameras(self) -> list[Camera]:
        """All cameras by id."""
        with self.session() as s:
            rows = s.scalars(select(CameraRow).order_by(CameraRow.id))
            return [_camera(r, self.seal) for r in rows]

    def get_camera(self, camera_id: str) -> Camera | None:
        """One camera, or None."""
        with self.session() as s:
            row = s.get(CameraRow, camera_id)
            return None if row is None else _camera(row, self.seal)

    def create_camera(self, camera: Camera) -> Camera:
        """Add a camera. Raises InputError when the id exists."""
        now = self.clock()
        with self.session() as s:
            if s.get(CameraRow, camera.id) is not None:
                raise InputError(f"camera {camera.id!r} already exists")
            s.add(CameraRow(**self._stored(camera), created_at=now, updated_at=now))
        return camera

    def update_camera(self, camera: Camera) -> Camera | None:
        """Replace a camera's settings; None when it does not exist."""
        with self.session() as s:
            row = s.get(CameraRow, camera.id)
            if row is None:
                return None
            for key, value in self._stored(camera).items():
                setattr(row, key, value)
            row.updated_at = self.clock()
        return camera

    def delete_camera(self, camera_id: str) -> bool:
        """Remove a camera (its events stay, for history); False when absent."""
        with self.session() as s:
            row = s.get(CameraRow, camera_id)
            if row is None:
                return False
            s.delete(row)
        return True

    # -- events ----------------------------------------------------------------------------

    def record_events(
        self, events: Sequence[Event], snapshots: Mapping[str, bytes] | None = None
    ) -> list[str]:
        """Upsert events by ``event_id`` and queue outbox rows, in ONE transaction.

        Args:
            events: events as emitted; an open event re-emitted closed updates the same row.
            snapshots: redacted JPEG bytes by event id (already redacted by the caller).

        Returns:
            Ids of events whose state changed (replays of identical states are not listed).
        """
        for attempt in range(2):
            try:
                with self.session() as s:
                    changed = event_queries.upsert_events(
                        s,
                        events,
                        snapshots=snapshots,
                        sinks=self.sinks,
                        snapshot_dir=self.snapshot_dir,
                        now=self.clock(),
                    )
                break
            except IntegrityError:
                # Another writer (a second node on PostgreSQL) inserted the same event_id
                # between our lookup and insert; the retry sees its row and updates it.
                if attempt == 1:
                    raise
        if changed and self.sinks:
            self._notify()
        return changed

    def query_events(self, f: EventFilter | None = None, **filters: Any) -> list[EventRecord]:
        """Events matching an `EventFilter` (or its fields as keywords), newest first."""
        with self.session() as s:
            return event_queries.query_events(s, f or EventFilter(**filters))

    def get_event(self, event_id: str) -> EventRecord | None:
        """One event by id."""
        with self.session() as s:
            return event_queries.get_event(s, event_id)

    def get_snapshot(self, event_id: str) -> bytes | None:
        """The stored redacted snapshot of an event."""
        with self.session() as s:
            return event_queries.get_snapshot(s, event_id)

    def flows(
        self, camera_id: str | None = None, since: float | None = None, until: float | None = None
    ) -> list[Flow]:
        """Anonymous zone-to-zone counts."""
        with self.session() as s:
            return event_queries.zone_flows(s, camera_id, since, until)

    def delete_before(self, cutoff_s: float) -> int:
        """Retention: delete everything older than ``cutoff_s`` (epoch seconds).

        Removes events that ended before the cutoff (with their outbox rows, track links and
        snapshot files), metric buckets and track descriptions last seen before it. Fits
        `crowdsight.privacy.retention.purge_rows(days, store.delete_before)`.

        Returns:
            How many events were deleted.
        """
        with self.session() as s:
            n, files = event_queries.delete_before(s, cutoff_s)
            metric_queries.delete_before(s, cutoff_s)
            descriptions.delete_before(s, cutoff_s)
        for path in files:
            Path(path).unlink(missing_ok=True)
        return n

    # -- metrics and descriptions -------------------------------------------------------------

    def record_metrics(self, camera_id: str, ts_s: float, metrics: Mapping[str, float]) -> int:
        """Fold one sample of each metric into its storage bucket."""
        with self.session() as s:
            return metric_queries.record_metrics(s, camera_id, ts_s, metrics, self.metrics_bucket_s)

    def query_metrics(
        self,
        camera_id: str,
        name: str,
        since: float | None = None,
        until: float | None = None,
        bucket_s: float = 60.0,
    ) -> list[MetricPoint]:
        """A metric series aggregated into ``bucket_s`` buckets."""
        with self.session() as s:
            return metric_queries.query_metrics(
                s, camera_id=camera_id, name=name, since=since, until=until, bucket_s=bucket_s
            )

    def metric_names(self, camera_id: str | None = None) -> list[str]:
        """Distinct metric names."""
        with self.session() as s:
            return metric_queries.metric_names(s, camera_id)

    def record_descriptions(
        self, camera_id: str, items: Iterable[Mapping[str, Any]], *, strict: bool = False
    ) -> int:
        """Upsert track descriptions; items naming personal traits are refused.

        See `crowdsight.store.descriptions.record_descriptions` (``strict`` raises instead
        of skipping a refused item).
        """
        with self.session() as s:
            return descriptions.record_descriptions(s, camera_id, items, strict=strict)

    def query_descriptions(
        self,
        camera_id: str | None = None,
        limit: int = 100,
        *,
        q: str | None = None,
        min_confidence: float = 0.0,
    ) -> list[TrackDescription]:
        """Latest track descriptions, or those matching ``q`` (most confident first)."""
        with self.session() as s:
            return descriptions.query_descriptions(
                s, camera_id, limit, q=q, min_confidence=min_confidence
            )

    # -- outbox ----------------------------------------------------------------------------

    def outbox_due(self, sinks: Sequence[str], limit: int = 100) -> list[OutboxItem]:
        """Rows due for delivery to ``sinks``."""
        with self.session() as s:
            return outbox.due(s, sinks, self.clock(), limit)

    def outbox_delivered(self, row_id: int) -> None:
        """Mark a row delivered."""
        with self.session() as s:
            outbox.mark_delivered(s, row_id, self.clock())

    def outbox_failed(self, row_id: int, error: str, retry_at: float | None) -> None:
        """Mark a try failed; ``retry_at`` None dead-letters the row."""
        with self.session() as s:
            outbox.mark_failed(s, row_id, error, retry_at)

    def list_outbox(
        self,
        event_id: str | None = None,
        pending_only: bool = False,
        dead_only: bool = False,
        limit: int | None = None,
    ) -> list[OutboxItem]:
        """Outbox rows, oldest first."""
        with self.session() as s:
            return outbox.list_outbox(
                s, event_id=event_id, pending_only=pending_only, dead_only=dead_only, limit=limit
            )

    def outbox_retry(self, row_id: int) -> bool:
        """Revive a dead-lettered delivery (after fixing the sink); False if not dead."""
        with self.session() as s:
            revived = outbox.retry(s, row_id, self.clock())
        if revived:
            self._notify()
        return revived

    def outbox_pending(self) -> int:
        """Rows still to deliver."""
        with self.session() as s:
            return outbox.pending_count(s)

    # -- users, tokens, audit --------------------------------------------------------------

    def create_user(self, username: str, password: str, role: Role | str) -> User:
        """Add a user with an argon2id password hash."""
        with self.session() as s:
            return self.accounts.create_user(s, username, password, Role(role), self.clock())

    def update_user(
        self, username: str, *, password: str | None = None, role: Role | str | None = None
    ) -> User | None:
        """Change password and/or role."""
        with self.session() as s:
            return self.accounts.update_user(
                s, username, password=password, role=None if role is None else Role(role)
            )

    def delete_user(self, username: str) -> bool:
        """Remove a user and their tokens."""
        with self.session() as s:
            return self.accounts.delete_user(s, username)

    def list_users(self) -> list[User]:
        """All users."""
        with self.session() as s:
            return self.accounts.list_users(s)

    def count_users(self) -> int:
        """Number of users."""
        with self.session() as s:
            return self.accounts.count_users(s)

    def verify_password(self, username: str, password: str) -> User | None:
        """The user when the password is right."""
        with self.session() as s:
            return self.accounts.verify_password(s, username, password)

    def issue_token(
        self, user_id: int, name: str, kind: str = "api", ttl_s: float | None = None
    ) -> tuple[str, ApiToken]:
        """New token: the secret (show it once) and its metadata."""
        now = self.clock()
        expires = None if ttl_s is None else now + ttl_s
        with self.session() as s:
            return self.accounts.issue_token(s, user_id, name, kind, expires, now)

    def resolve_token(self, secret: str) -> Authenticated | None:
        """The user behind a token secret, or None."""
        with self.session() as s:
            return self.accounts.resolve_token(s, secret, self.clock())

    def list_tokens(self, user_id: int, kind: str | None = "api") -> list[ApiToken]:
        """A user's tokens."""
        with self.session() as s:
            return self.accounts.list_tokens(s, user_id, kind)

    def revoke_token(self, user_id: int, token_id: int) -> bool:
        """Delete a token of this user."""
        with self.session() as s:
            return self.accounts.revoke_token(s, user_id, token_id)

    def audit(self, username: str, action: str, detail: str, client: str | None = None) -> None:
        """Append to the audit log (who viewed live video, exported snapshots, ...)."""
        with self.session() as s:
            self.accounts.audit(s, username, action, detail, client, self.clock())

    def query_audit(
        self, action: str | None = None, username: str | None = None, limit: int = 100
    ) -> list[AuditEntry]:
        """Newest audit entries first."""
        with self.session() as s:
            return self.accounts.query_audit(s, action=action, username=username, limit=limit)
