"""Users (argon2id password hashes), API tokens and sessions (stored hashed), audit log."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from crowdsight.core.errors import InputError
from crowdsight.store.records import ApiToken, AuditEntry, Role, User
from crowdsight.store.tables import ApiTokenRow, AuditRow, UserRow

TOKEN_PREFIX = "cs_"


def hash_token(secret: str) -> str:
    """SHA-256 hex of a token secret.

    Tokens are 256-bit random strings, so a fast hash is enough (no dictionary to attack);
    passwords, which people choose, get argon2 instead.
    """
    return hashlib.sha256(secret.encode()).hexdigest()


def new_token_secret() -> str:
    """A fresh URL-safe token secret (``cs_`` + 43 characters)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Authenticated:
    """Who a token belongs to, resolved on each request."""

    user: User
    token_id: int
    token_kind: str


def _user(row: UserRow) -> User:
    return User(id=row.id, username=row.username, role=Role(row.role), created_at=row.created_at)


def _token(row: ApiTokenRow) -> ApiToken:
    return ApiToken(
        id=row.id,
        name=row.name,
        kind=row.kind,
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
    )


class Accounts:
    """User, token and audit operations on a session; holds the password hasher.

    Args:
        hasher: argon2 hasher; its defaults (argon2id, 64 MiB, 3 passes) trade ~50 ms per
            login for resistance to offline guessing. Tests pass a cheaper one.
    """

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self.hasher = hasher or PasswordHasher()

    def create_user(self, s: Session, username: str, password: str, role: Role, now: float) -> User:
        """Add a user. Raises InputError when the name is taken."""
        if s.scalars(select(UserRow).where(UserRow.username == username)).first() is not None:
            raise InputError(f"user {username!r} already exists")
        row = UserRow(
            username=username,
            password_hash=self.hasher.hash(password),
            role=str(role),
            created_at=now,
        )
        s.add(row)
        s.flush()
        return _user(row)

    def update_user(
        self, s: Session, username: str, *, password: str | None, role: Role | None
    ) -> User | None:
        """Change a user's password and/or role; None when there is no such user."""
        row = s.scalars(select(UserRow).where(UserRow.username == username)).first()
        if row is None:
            return None
        if password is not None:
            row.password_hash = self.hasher.hash(password)
            # A new password ends every session and API token: whatever was stolen with (or
            # made from) the old password dies with it.
            s.execute(delete(ApiTokenRow).where(ApiTokenRow.user_id == row.id))
        if role is not None:
            row.role = str(role)
        return _user(row)

    def verify_password(self, s: Session, username: str, password: str) -> User | None:
        """The user when ``password`` is right, else None (same cost for unknown users)."""
        row = s.scalars(select(UserRow).where(UserRow.username == username)).first()
        if row is None:
            # Hash anyway so response time does not reveal which usernames exist.
            self.hasher.hash(password)
            return None
        try:
            self.hasher.verify(row.password_hash, password)
        except (VerificationError, InvalidHashError):
            return None
        if self.hasher.check_needs_rehash(row.password_hash):
            row.password_hash = self.hasher.hash(password)
        return _user(row)

    @staticmethod
    def list_users(s: Session) -> list[User]:
        """All users by name."""
        return [_user(r) for r in s.scalars(select(UserRow).order_by(UserRow.username)).all()]

    @staticmethod
    def count_users(s: Session) -> int:
        """How many users exist (0 triggers the admin bootstrap)."""
        return len(s.scalars(select(UserRow.id)).all())

    @staticmethod
    def delete_user(s: Session, username: str) -> bool:
        """Remove a user and their tokens; False when absent."""
        row = s.scalars(select(UserRow).where(UserRow.username == username)).first()
        if row is None:
            return False
        s.delete(row)
        return True

    @staticmethod
    def issue_token(
        s: Session, user_id: int, name: str, kind: str, expires_at: float | None, now: float
    ) -> tuple[str, ApiToken]:
        """Create a token; returns the secret (shown once) and its metadata."""
        secret = new_token_secret()
        row = ApiTokenRow(
            user_id=user_id,
            name=name,
            kind=kind,
            token_hash=hash_token(secret),
            created_at=now,
            expires_at=expires_at,
        )
        s.add(row)
        s.flush()
        return secret, _token(row)

    @staticmethod
    def resolve_token(s: Session, secret: str, now: float) -> Authenticated | None:
        """Who ``secret`` belongs to, or None when unknown or expired."""
        found = s.execute(
            select(ApiTokenRow, UserRow)
            .join(UserRow, UserRow.id == ApiTokenRow.user_id)
            .where(ApiTokenRow.token_hash == hash_token(secret))
        ).first()
        if found is None:
            return None
        token, user = found
        if token.expires_at is not None and token.expires_at < now:
            s.delete(token)
            return None
        # Refresh last use at most once a minute to keep reads from writing every time.
        if token.last_used_at is None or now - token.last_used_at > 60:
            token.last_used_at = now
        return Authenticated(user=_user(user), token_id=token.id, token_kind=token.kind)

    @staticmethod
    def list_tokens(s: Session, user_id: int, kind: str | None = "api") -> list[ApiToken]:
        """A user's tokens (API tokens only by default)."""
        stmt = select(ApiTokenRow).where(ApiTokenRow.user_id == user_id)
        if kind is not None:
            stmt = stmt.where(ApiTokenRow.kind == kind)
        return [_token(r) for r in s.scalars(stmt.order_by(ApiTokenRow.id)).all()]

    @staticmethod
    def revoke_token(s: Session, user_id: int, token_id: int) -> bool:
        """Delete one of the user's tokens; False when it is not theirs or absent."""
        result = s.execute(
            delete(ApiTokenRow).where(ApiTokenRow.id == token_id, ApiTokenRow.user_id == user_id)
        )
        return bool(getattr(result, "rowcount", 0))

    @staticmethod
    def audit(
        s: Session, username: str, action: str, detail: str, client: str | None, now: float
    ) -> None:
        """Append one line to the audit log."""
        s.add(AuditRow(ts_s=now, username=username, action=action, detail=detail, client=client))

    @staticmethod
    def query_audit(
        s: Session, *, action: str | None, username: str | None, limit: int
    ) -> list[AuditEntry]:
        """Newest audit entries first."""
        stmt = select(AuditRow).order_by(AuditRow.id.desc())
        if action is not None:
            stmt = stmt.where(AuditRow.action == action)
        if username is not None:
            stmt = stmt.where(AuditRow.username == username)
        return [
            AuditEntry(
                id=r.id,
                ts_s=r.ts_s,
                username=r.username,
                action=r.action,
                detail=r.detail,
                client=r.client,
            )
            for r in s.scalars(stmt.limit(limit)).all()
        ]
