"""Request and response bodies of the HTTP API (pydantic v2, ``extra="forbid"``).

Stored records (`crowdsight.store.records`) are reused as response models; this module adds
the request bodies and the envelopes that only the API needs.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator

from crowdsight.core.metrics import SceneMetrics
from crowdsight.store.records import (
    ApiToken,
    AuditEntry,
    Camera,
    EventRecord,
    Flow,
    MetricPoint,
    Record,
    Role,
    TrackDescription,
    User,
)

__all__ = [
    "ApiToken",
    "AuditEntry",
    "Camera",
    "CameraStatus",
    "ErrorBody",
    "EventRecord",
    "Flow",
    "Health",
    "LoginRequest",
    "LoginResponse",
    "MetricPoint",
    "MetricSeries",
    "Role",
    "TokenCreate",
    "TokenCreated",
    "TrackDescription",
    "User",
    "UserCreate",
    "UserUpdate",
]

USERNAME_PATTERN = r"^[A-Za-z0-9_.@-]{1,64}$"


class Body(Record):
    """Base of request/response bodies: unknown fields and NUL characters are refused."""


class ErrorBody(Body):
    """Every 4xx answer."""

    detail: Any = Field(description="What went wrong (a sentence, or per-field errors).")
    message: str | None = Field(default=None, description="One-line summary, when detailed.")


class Health(Body):
    """Liveness and readiness."""

    status: str = Field(description="'ok' when the database answers, else 'degraded'.")
    version: str = Field(description="crowdsight version.")
    database: bool = Field(description="Whether the database answered.")
    runner: bool = Field(description="Whether a camera runner is attached.")
    problem: str | None = Field(
        default=None, description="Why the service is degraded (database check, failed writes)."
    )


class LoginRequest(Body):
    """User name and password."""

    username: str = Field(min_length=1, max_length=64, description="Login name.")
    password: SecretStr = Field(min_length=1, max_length=1024, description="Password.")


class LoginResponse(Body):
    """A session: the token is also set as an HTTP-only cookie."""

    token: str = Field(description="Session token; send as 'Authorization: Bearer <token>'.")
    token_type: str = Field(default="bearer", description="Always 'bearer'.")
    expires_at: float | None = Field(description="Expiry, epoch seconds.")
    user: User = Field(description="Who signed in.")


#: Passwords refused whatever their length: the top of the public breach-frequency lists and
#: this product's own name (NIST SP 800-63B asks for such a blocklist with an 8-character
#: minimum rather than composition rules).
COMMON_PASSWORDS = frozenset(
    {
        "password", "password1", "password12", "password123", "passw0rd", "12345678",
        "123456789", "1234567890", "11111111", "00000000", "87654321", "qwertyui",
        "qwerty123", "qwertyuiop", "1q2w3e4r", "1qaz2wsx", "abc12345", "abcd1234",
        "iloveyou", "sunshine", "princess", "football", "baseball", "welcome1",
        "letmein1", "trustno1", "admin123", "administrator", "changeme", "crowdsight",
        "crowdsight1", "superman", "starwars", "dragon12", "monkey12", "master12",
    }
)  # fmt: skip


def check_password(password: SecretStr | None) -> SecretStr | None:
    """Refuse a password on the blocklist (the length is checked by the field)."""
    if password is not None and password.get_secret_value().lower() in COMMON_PASSWORDS:
        raise ValueError("this password is too common; choose another")
    return password


class UserCreate(Body):
    """A new user."""

    username: str = Field(
        pattern=USERNAME_PATTERN, description="Login name (letters, digits, _.@-)."
    )
    password: SecretStr = Field(
        min_length=8, max_length=1024, description="Password, 8 characters or more."
    )
    role: Role = Field(default=Role.VIEWER, description="viewer < operator < admin.")

    _common = field_validator("password")(check_password)

    @model_validator(mode="after")
    def _not_the_username(self) -> UserCreate:
        if self.password.get_secret_value().lower() == self.username.lower():
            raise ValueError("the password must differ from the user name")
        return self


class UserUpdate(Body):
    """Change a user's password and/or role (omit what stays)."""

    password: SecretStr | None = Field(
        default=None, min_length=8, max_length=1024, description="New password (8+ characters)."
    )
    role: Role | None = Field(default=None, description="New role.")

    _common = field_validator("password")(check_password)


class TokenCreate(Body):
    """A new API token for the signed-in user."""

    name: str = Field(min_length=1, max_length=100, description="Label, e.g. 'home-assistant'.")
    ttl_s: float | None = Field(
        default=None,
        gt=0,
        le=10 * 365 * 86400,
        allow_inf_nan=False,
        description="Lifetime in seconds; omitted: the server's api_token_ttl_s (90 days).",
    )


class TokenCreated(Body):
    """The secret is shown only here, once."""

    token: str = Field(description="The secret; store it now, it cannot be shown again.")
    info: ApiToken = Field(description="Token metadata.")


class MetricSeries(Body):
    """A metric time series."""

    camera_id: str = Field(description="Camera.")
    name: str = Field(
        description="Stored series name, e.g. 'count_density' or 'zone:a:occupancy' "
        "(see crowdsight.core.metrics for how live figures map to series names)."
    )
    bucket_s: float = Field(description="Bucket width in seconds.")
    points: list[MetricPoint] = Field(description="Buckets with data, oldest first.")


class CameraStatus(Body):
    """Live status of one camera, as the runner reports it."""

    camera_id: str = Field(description="Camera.")
    running: bool = Field(description="Whether the runner knows this camera.")
    state: str = Field(description="'running', 'starting', 'restarting', 'stopped', ...")
    metrics: SceneMetrics = Field(
        default_factory=SceneMetrics,
        description="The latest frame's figures: frame-wide counts, per-zone occupancy, "
        "density and level of service, per-line in/out counts, zone-to-zone flows.",
    )
    detail: dict[str, Any] = Field(
        description="Everything else the runner reports: fps, last_frame_ts, restarts, errors."
    )
