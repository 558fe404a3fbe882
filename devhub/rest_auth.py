"""Who is calling: tokens, app JWTs and HTTP Basic turned into a `Principal`.

GitHub accepts `Authorization: token X`, `Bearer X` and, for git and the API alike, HTTP Basic with
the token as the password. App JWTs are checked the way GitHub checks them, with GitHub's messages:
https://docs.github.com/apps/creating-github-apps/authenticating-with-a-github-app/generating-a-json-web-token-jwt-for-a-github-app
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import jwt

from devhub.state import Account, App, Repo, State, Token, utcnow

if TYPE_CHECKING:
    from aiohttp import web

PrincipalKind = Literal["anonymous", "user", "app", "installation", "admin"]

BAD_CREDENTIALS = "Bad credentials"
JWT_UNDECODABLE = "A JSON web token could not be decoded"
JWT_BAD_IAT = (
    "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was "
    "issued"
)
JWT_EXPIRED = (
    "'Expiration time' claim ('exp') must be a numeric value representing the future time at "
    "which the assertion expires"
)
JWT_TOO_LONG = "'Expiration time' claim ('exp') is too far in the future"
JWT_MAX_LIFETIME = 600
CLOCK_SKEW = 60
USER_LIMIT = 5000
INSTALLATION_LIMIT = 5000
ANONYMOUS_LIMIT = 60


@dataclass(frozen=True)
class Principal:
    """The caller of one request."""

    kind: PrincipalKind
    account: Account | None = None
    token: Token | None = None
    app: App | None = None
    remote: str = ""
    permissions: dict[str, str] = field(default_factory=dict)

    @property
    def owner_label(self) -> str | None:
        """Name the caller for the request log (`coder[bot]` for installation tokens)."""
        if self.kind == "app" and self.app is not None:
            return f"app/{self.app.slug}"
        return self.account.login if self.account is not None else None

    @property
    def rate_key(self) -> str:
        """Key the caller's rate-limit bucket: per installation, per account, or per address."""
        if self.kind == "installation" and self.token and self.token.installation:
            return f"installation:{self.token.installation.id}"
        if self.kind == "app" and self.app is not None:
            return f"app:{self.app.id}"
        if self.account is not None:
            return f"user:{self.account.id}"
        return f"ip:{self.remote}"

    @property
    def rate_limit(self) -> int:
        """Return the caller's hourly budget."""
        if self.kind == "anonymous":
            return ANONYMOUS_LIMIT
        return INSTALLATION_LIMIT if self.kind == "installation" else USER_LIMIT

    def rate_limit_message(self) -> str:
        """Return GitHub's message for an exhausted primary rate limit."""
        if self.kind == "installation" and self.token and self.token.installation:
            return f"API rate limit exceeded for installation ID {self.token.installation.id}."
        if self.account is not None:
            return f"API rate limit exceeded for user ID {self.account.id}."
        return (
            f"API rate limit exceeded for {self.remote}. (But here's the good news: Authenticated "
            "requests get a higher rate limit. Check out the documentation for more details.)"
        )

    def can_reach(self, state: State, repo: Repo) -> bool:
        """Tell whether an installation token may see a repository (installation + narrowing)."""
        if self.token is None or self.token.installation is None:
            return False
        installation = state.installations.get(self.token.installation.id)
        if installation is None or not state.installation_covers(installation, repo):
            return False
        return self.token.repository_ids is None or repo.id in self.token.repository_ids


ANONYMOUS = Principal("anonymous")


def authenticate(
    state: State, app: App, admin: Account, admin_token: str, request: web.Request
) -> tuple[Principal, str | None]:
    """Resolve the caller; return an anonymous principal and a 401 message when auth fails."""
    remote = request.remote or ""
    anonymous = Principal("anonymous", remote=remote)
    credential = credential_from_header(request.headers.get("Authorization"))
    if credential is None:
        return anonymous, None
    if not credential:
        return anonymous, BAD_CREDENTIALS
    if hmac.compare_digest(credential, admin_token):
        return Principal("admin", account=admin, remote=remote), None
    if credential.count(".") == 2 and credential.startswith("eyJ"):
        problem = verify_app_jwt(app, credential)
        if problem is not None:
            return anonymous, problem
        return Principal("app", app=app, remote=remote), None
    token = state.tokens.get(credential)
    if token is None or (token.expires_at is not None and token.expires_at <= utcnow()):
        return anonymous, BAD_CREDENTIALS
    if token.kind == "installation":
        return (
            Principal(
                "installation",
                account=token.account,
                token=token,
                app=app,
                remote=remote,
                permissions=dict(token.permissions),
            ),
            None,
        )
    return Principal("user", account=token.account, token=token, remote=remote), None


def credential_from_header(header: str | None) -> str | None:
    """Extract the secret from an Authorization header ('' when it is malformed)."""
    if header is None:
        return None
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() in {"token", "bearer"}:
        return value
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return ""
        username, _, password = decoded.partition(":")
        # git sends `x-access-token:<token>`; GitHub also takes the token as the username.
        return password or username
    return ""


def verify_app_jwt(app: App, token: str) -> str | None:
    """Check an app JWT; return GitHub's error message, or None when it is valid."""
    try:
        claims = jwt.decode(
            token,
            app.public_key_pem,
            algorithms=["RS256"],
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
        )
    except jwt.PyJWTError:
        return JWT_UNDECODABLE
    now = time.time()
    iat, exp, iss = claims.get("iat"), claims.get("exp"), claims.get("iss")
    if not isinstance(iat, int) or isinstance(iat, bool) or iat > now + CLOCK_SKEW:
        return JWT_BAD_IAT
    if not isinstance(exp, int | float) or isinstance(exp, bool) or exp <= now:
        return JWT_EXPIRED
    if exp - iat > JWT_MAX_LIFETIME or exp > now + JWT_MAX_LIFETIME + CLOCK_SKEW:
        return JWT_TOO_LONG
    if str(iss) != str(app.id):
        return JWT_UNDECODABLE
    return None
