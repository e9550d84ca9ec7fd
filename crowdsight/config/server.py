"""Settings of the HTTP service (database, auth, outputs, live view)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from crowdsight.config.outputs import DeliverySettings, MqttSettings, WebhookSettings
from crowdsight.config.sources import SourcePolicy


class TlsSettings(BaseModel):
    """HTTPS for the API and dashboard (PEM files; keep the key readable by this user only)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    certfile: Path = Field(description="Certificate chain (PEM).")
    keyfile: Path = Field(description="Private key (PEM).")


class ServerSettings(BaseModel):
    """Everything `crowdsight.server.app.create_app` needs; every field has a default.

    Example:
        >>> ServerSettings(database_url="sqlite:///tmp/cs.db").port
        8080
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL (sqlite:///path.db or postgresql+psycopg://...); "
        "default: SQLite crowdsight.db in the data dir.",
    )
    data_dir: Path | None = Field(
        default=None,
        description="Where the database and snapshots live; default $CROWDSIGHT_DATA or the "
        "platform's user data dir.",
    )
    snapshots_in_database: bool = Field(
        default=False,
        description="Store event snapshots as database blobs instead of files in data_dir "
        "(handy with PostgreSQL on several machines).",
    )
    host: str = Field(default="127.0.0.1", description="Address to bind; 0.0.0.0 exposes it.")
    port: int = Field(default=8080, ge=1, le=65535, description="TCP port to bind.")
    admin_password: SecretStr | None = Field(
        default=None,
        description="Password of the 'admin' user created on first start when no user exists "
        "(else $CROWDSIGHT_ADMIN_PASSWORD, else a generated one printed once).",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Fernet key (Fernet.generate_key()) encrypting stream credentials in the "
        "database; default: secret.key in the data dir, created once (0600). Servers sharing "
        "one database need the same key.",
    )
    session_ttl_s: float = Field(
        default=12 * 3600.0, gt=0, description="Lifetime of a login session (cookie/token)."
    )
    cookie_secure: bool = Field(
        default=False,
        description="Mark the session cookie Secure (always on under `tls` or behind a trusted "
        "proxy that says https; turn on when a proxy terminates TLS).",
    )
    api_token_ttl_s: float = Field(
        default=90 * 86400.0,
        gt=0,
        le=10 * 365 * 86400,
        description="Lifetime of an API token created without ttl_s (90 days: a leaked token "
        "does not work forever).",
    )
    tls: TlsSettings | None = Field(
        default=None, description="Serve HTTPS with this certificate and key (else plain HTTP)."
    )
    login_max_failures: int = Field(
        default=5, ge=1, description="Failed logins per user name and client before 429."
    )
    login_window_s: float = Field(
        default=300.0, gt=0, description="Window over which failed logins are counted."
    )
    # A priori, not tuned on any data: 20 = a shared office NAT where four people mistype
    # five times each; 300 per 5 min globally is far above any real sign-in rate yet stops a
    # distributed guesser; 1 argon2 verification at a time (64 MiB) leaves the other core of
    # the smallest supported box (2 vCPUs) to serving: with 2 at once a random-name flood
    # from many addresses held /api/health p50 at 85 ms, with 1 at 34 ms
    # (benchmarks/abuse.py --no-client-limit, 2 vCPUs); a sign-in that meets a busy gate is
    # told to retry in 1 s.
    login_max_failures_per_client: int = Field(
        default=20, ge=1, description="Failed logins per client (any user names) before 429."
    )
    login_max_failures_global: int = Field(
        default=300, ge=1, description="Failed logins from all clients per window before 429."
    )
    login_concurrency: int = Field(
        default=1,
        ge=1,
        description="Sign-ins verified at once (each argon2 check holds 64 MiB); more get 503.",
    )
    max_body_bytes: int = Field(
        default=1 << 20,
        ge=1024,
        description="Largest request body accepted (413 before reading it); API bodies are "
        "small JSON.",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses of reverse proxies whose X-Forwarded-For/-Proto are believed "
        "(uvicorn forwarded_allow_ips); empty: the headers are ignored.",
    )
    mqtt: MqttSettings | None = Field(default=None, description="Publish events over MQTT.")
    webhooks: list[WebhookSettings] = Field(
        default_factory=list, description="Signed HTTP endpoints receiving every event state."
    )
    delivery: DeliverySettings = Field(
        default_factory=DeliverySettings, description="Retry policy of MQTT/webhook delivery."
    )
    sources: SourcePolicy = Field(
        default_factory=SourcePolicy,
        description="Camera sources the API accepts: URL schemes, media roots, host allow/deny "
        "lists (loopback and link-local refused by default). Only this file widens them.",
    )
    live_fps: float = Field(
        default=5.0, gt=0, le=30, description="Highest frame rate of live MJPEG streams."
    )
    live_allow_unredacted: bool = Field(
        default=False,
        description="Serve live frames the runner reports as not redacted (never by default).",
    )
    metrics_bucket_s: float = Field(
        default=5.0, gt=0, description="Storage resolution of metric time series."
    )
    retention_days: float | None = Field(
        default=30.0,
        ge=0,
        description="Delete stored events, snapshots, metrics and descriptions older than "
        "this many days (None keeps everything; privacy by default keeps 30).",
    )
    retention_check_s: float = Field(
        default=3600.0, gt=0, description="Seconds between retention purges while serving."
    )
