"""Sign-in, users (admin), API tokens and the audit log."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, status

from crowdsight.config.server import ServerSettings
from crowdsight.core.errors import InputError
from crowdsight.server.auth import (
    COOKIE_NAME,
    LoginLimiter,
    audit,
    client_address,
    current_user,
    get_store,
    require_role,
)
from crowdsight.server.limits import SignInGate
from crowdsight.server.schemas import (
    ApiToken,
    AuditEntry,
    ErrorBody,
    LoginRequest,
    LoginResponse,
    TokenCreate,
    TokenCreated,
    User,
    UserCreate,
    UserUpdate,
)
from crowdsight.store import Store

router = APIRouter(tags=["auth"])

_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody, "description": "Not signed in."},
    403: {"model": ErrorBody, "description": "Role too low."},
}
USERNAME_PATH = Path(pattern=r"^[A-Za-z0-9_.@-]{1,64}$", description="Login name.")


@router.post(
    "/api/auth/login",
    responses={
        401: {"model": ErrorBody},
        429: {"model": ErrorBody},
        503: {"model": ErrorBody, "description": "Too many sign-ins at once."},
    },
    summary="Sign in: returns a session token and sets the session cookie",
)
def login(body: LoginRequest, request: Request, response: Response) -> LoginResponse:
    """Check the password; 429 after repeated failures from the same client for that user."""
    limiter: LoginLimiter = request.app.state.login_limiter
    settings: ServerSettings = request.app.state.settings
    client = client_address(request)
    wait_s = limiter.retry_after_s(body.username, client)
    if wait_s > 0:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"too many failed sign-ins; try again in {wait_s:.0f} s",
            headers={"Retry-After": str(int(wait_s))},
        )
    store = get_store(request)
    gate: SignInGate = request.app.state.sign_in_gate
    with gate.slot() as verifying:
        if not verifying:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                "too many sign-ins at once; try again in a second",
                headers={"Retry-After": "1"},
            )
        user = store.verify_password(body.username, body.password.get_secret_value())
    if user is None:
        limiter.failed(body.username, client)
        audit(request, body.username, "auth.login_failed", body.username)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong user name or password")
    limiter.succeeded(body.username, client)
    secret, info = store.issue_token(user.id, "login", kind="session", ttl_s=settings.session_ttl_s)
    response.set_cookie(
        COOKIE_NAME,
        secret,
        max_age=int(settings.session_ttl_s),
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure or request.url.scheme == "https",
        path="/",
    )
    audit(request, user, "auth.login", user.username)
    return LoginResponse(token=secret, expires_at=info.expires_at, user=user)


@router.post(
    "/api/auth/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_ERRORS,
    summary="Sign out: ends this session and clears the cookie",
)
def logout(request: Request, user: User = Depends(current_user)) -> Response:
    """Revoke the token used for this request."""
    get_store(request).revoke_token(user.id, int(request.state.token_id))
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(COOKIE_NAME, path="/")
    return response


@router.get("/api/auth/me", responses=_ERRORS, summary="Who is signed in")
def me(user: User = Depends(current_user)) -> User:
    """The signed-in user."""
    return user


# -- users (admin) -------------------------------------------------------------------------


@router.get("/api/users", responses=_ERRORS, summary="List users (admin)")
def list_users(request: Request, _: User = Depends(require_role("admin"))) -> list[User]:
    """Every user."""
    return get_store(request).list_users()


@router.post(
    "/api/users",
    status_code=status.HTTP_201_CREATED,
    responses={**_ERRORS, 409: {"model": ErrorBody}},
    summary="Create a user (admin)",
)
def create_user(
    body: UserCreate, request: Request, admin: User = Depends(require_role("admin"))
) -> User:
    """Add a user with an argon2id password hash."""
    store = get_store(request)
    try:
        user = store.create_user(body.username, body.password.get_secret_value(), body.role)
    except InputError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    audit(request, admin, "user.create", f"{user.username} ({user.role.value})")
    return user


@router.patch(
    "/api/users/{username}",
    responses={**_ERRORS, 404: {"model": ErrorBody}},
    summary="Change a user's password or role (admin)",
)
def update_user(
    body: UserUpdate,
    request: Request,
    username: str = USERNAME_PATH,
    admin: User = Depends(require_role("admin")),
) -> User:
    """Change password and/or role; a new password ends the user's sessions."""
    password = body.password.get_secret_value() if body.password is not None else None
    user = get_store(request).update_user(username, password=password, role=body.role)
    if user is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no user {username!r}")
    audit(request, admin, "user.update", username)
    return user


@router.delete(
    "/api/users/{username}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**_ERRORS, 404: {"model": ErrorBody}, 409: {"model": ErrorBody}},
    summary="Delete a user (admin)",
)
def delete_user(
    request: Request,
    username: str = USERNAME_PATH,
    admin: User = Depends(require_role("admin")),
) -> Response:
    """Remove a user and their tokens (not yourself: avoids locking every admin out)."""
    if username == admin.username:
        raise HTTPException(status.HTTP_409_CONFLICT, "you cannot delete your own account")
    if not get_store(request).delete_user(username):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no user {username!r}")
    audit(request, admin, "user.delete", username)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- API tokens ----------------------------------------------------------------------------


@router.get("/api/tokens", responses=_ERRORS, summary="Your API tokens")
def list_tokens(request: Request, user: User = Depends(current_user)) -> list[ApiToken]:
    """The signed-in user's API tokens (secrets are never shown again)."""
    return get_store(request).list_tokens(user.id)


@router.post(
    "/api/tokens",
    status_code=status.HTTP_201_CREATED,
    responses=_ERRORS,
    summary="Create an API token for yourself",
)
def create_token(
    body: TokenCreate, request: Request, user: User = Depends(current_user)
) -> TokenCreated:
    """A random token with your role; only its hash is stored, so copy it now."""
    settings: ServerSettings = request.app.state.settings
    ttl_s = body.ttl_s if body.ttl_s is not None else settings.api_token_ttl_s
    secret, info = get_store(request).issue_token(user.id, body.name, kind="api", ttl_s=ttl_s)
    audit(request, user, "token.create", body.name)
    return TokenCreated(token=secret, info=info)


@router.delete(
    "/api/tokens/{token_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**_ERRORS, 404: {"model": ErrorBody}},
    summary="Revoke one of your API tokens",
)
def revoke_token(
    request: Request,
    token_id: int = Path(ge=1, le=2**31 - 1, description="Token id."),
    user: User = Depends(current_user),
) -> Response:
    """Delete the token; requests using it get 401 from now on."""
    store: Store = get_store(request)
    if not store.revoke_token(user.id, token_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"you have no token {token_id}")
    audit(request, user, "token.revoke", str(token_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _user_id(request: Request, username: str) -> int:
    found = next((u for u in get_store(request).list_users() if u.username == username), None)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no user {username!r}")
    return found.id


@router.get(
    "/api/users/{username}/tokens",
    responses={**_ERRORS, 404: {"model": ErrorBody}},
    summary="A user's API tokens (admin)",
)
def list_user_tokens(
    request: Request,
    username: str = USERNAME_PATH,
    _: User = Depends(require_role("admin")),
) -> list[ApiToken]:
    """Another user's API tokens (metadata only)."""
    return get_store(request).list_tokens(_user_id(request, username))


@router.delete(
    "/api/users/{username}/tokens/{token_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**_ERRORS, 404: {"model": ErrorBody}},
    summary="Revoke a user's API token (admin)",
)
def revoke_user_token(
    request: Request,
    username: str = USERNAME_PATH,
    token_id: int = Path(ge=1, le=2**31 - 1, description="Token id."),
    admin: User = Depends(require_role("admin")),
) -> Response:
    """Delete another user's token (e.g. one that leaked); it answers 401 from now on."""
    if not get_store(request).revoke_token(_user_id(request, username), token_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{username!r} has no token {token_id}")
    audit(request, admin, "token.revoke", f"{username}:{token_id}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- audit log -----------------------------------------------------------------------------


@router.get("/api/audit", responses=_ERRORS, summary="Audit log (admin)")
def audit_log(
    request: Request,
    action: str | None = Query(None, max_length=64, description="e.g. 'live.view'."),
    username: str | None = Query(None, max_length=64, description="Only this user."),
    limit: int = Query(100, ge=1, le=1000, description="At most this many, newest first."),
    _: User = Depends(require_role("admin")),
) -> list[AuditEntry]:
    """Who viewed live video, exported snapshots, or changed users and cameras."""
    return get_store(request).query_audit(action=action, username=username, limit=limit)
