"""Settings for `coder serve`: Probot's environment names, read once into a typed, frozen object."""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import BaseModel, ConfigDict, Field, SecretStr

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

DEFAULT_WEBHOOK_PATH = "/api/github/webhooks"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 3000
GITHUB_API_URL = "https://api.github.com"
GITHUB_GRAPHQL_URL = "https://api.github.com/graphql"
# Where GitHub Actions' OIDC tokens come from: github.com's issuer, or GHES's `/_services/token`
# (https://docs.github.com/en/enterprise-server@latest/actions/reference/openid-connect-reference).
GITHUB_OIDC_ISSUER = "https://token.actions.githubusercontent.com"
GHES_OIDC_ISSUER_PATH = "/_services/token"
DEFAULT_OIDC_AUDIENCE = "coder"
DEFAULT_RECONCILE_SECONDS = 300.0
MAX_BODY_BYTES = 25 * 1024 * 1024  # GitHub caps webhook payloads at 25 MB and drops larger ones
MAX_PORT = 65535

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LogFormat = Literal["text", "json"]

# Probot (pino) level names map onto Python's; `trace` and `fatal` have no exact match.
LOG_LEVELS: dict[str, LogLevel] = {
    "trace": "DEBUG",
    "debug": "DEBUG",
    "info": "INFO",
    "warn": "WARNING",
    "warning": "WARNING",
    "error": "ERROR",
    "fatal": "CRITICAL",
    "critical": "CRITICAL",
}

ENV_LINE = re.compile(r"^\s*(?:export\s+)?(?P<key>[A-Za-z_][A-Za-z0-9_.]*)\s*=\s*(?P<rest>.*)$")
GHE_HOST_PATTERN = re.compile(r"^[A-Za-z0-9.-]+(?::\d{1,5})?$")
ISSUER_PATTERN = re.compile(r"^https?://[^\s/?#]+(?:/[^\s?#]*)?$")
AUDIENCE_PATTERN = re.compile(r"^[^\s]{1,200}$")
PEM_HEADER = "-----BEGIN"

T = TypeVar("T")


class SettingsError(Exception):
    """A missing or invalid setting; `str()` is one line that names the setting."""


class Settings(BaseModel):
    """Everything `coder serve` needs, validated once at startup."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    app_id: int = Field(gt=0)
    private_key: SecretStr
    webhook_secret: SecretStr = Field(min_length=1)
    webhook_path: str = DEFAULT_WEBHOOK_PATH
    host: str = DEFAULT_HOST
    port: int = Field(default=DEFAULT_PORT, ge=0, le=MAX_PORT)
    ghe_host: str | None = None
    ghe_protocol: Literal["http", "https"] = "https"
    log_level: LogLevel = "INFO"
    log_format: LogFormat = "text"
    # coder's own settings (CODER_* in the environment)
    max_concurrency: int = Field(default=32, gt=0)
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    delivery_ttl_seconds: float = Field(default=3600.0, gt=0)
    max_body_bytes: int = Field(default=MAX_BODY_BYTES, gt=0)
    reconcile_seconds: float = Field(default=DEFAULT_RECONCILE_SECONDS, ge=0)  # 0: no loop
    oidc_issuer: str | None = None  # None: derived from GHE_HOST (see `token_issuer`)
    oidc_audience: str = Field(default=DEFAULT_OIDC_AUDIENCE, min_length=1)

    @property
    def api_url(self) -> str:
        """Return the REST API root: github.com's, or GitHub Enterprise Server's `/api/v3`."""
        if self.ghe_host is None:
            return GITHUB_API_URL
        return f"{self.ghe_protocol}://{self.ghe_host}/api/v3"

    @property
    def graphql_url(self) -> str:
        """Return the GraphQL endpoint (GHES serves it at `/api/graphql`, not under `/api/v3`)."""
        if self.ghe_host is None:
            return GITHUB_GRAPHQL_URL
        return f"{self.ghe_protocol}://{self.ghe_host}/api/graphql"

    @property
    def token_issuer(self) -> str:
        """Return the OIDC issuer whose tokens `POST /api/token` accepts (no trailing slash)."""
        if self.oidc_issuer is not None:
            return self.oidc_issuer
        if self.ghe_host is None:
            return GITHUB_OIDC_ISSUER
        return f"{self.ghe_protocol}://{self.ghe_host}{GHES_OIDC_ISSUER_PATH}"

    def secret_values(self) -> tuple[str, ...]:
        """Return the configured secrets so logging can redact them."""
        return (self.webhook_secret.get_secret_value(), self.private_key.get_secret_value())


def load_settings(env_file: Path | None, environ: Mapping[str, str]) -> Settings:
    """Read settings from an optional `.env` file and the environment (the environment wins)."""
    values: dict[str, str] = {}
    if env_file is not None:
        values.update(parse_env_file(env_file))
    values.update(environ)
    # An empty variable (`PORT=`) means "not set", as in Probot's dotenv.
    env = {key: value for key, value in values.items() if value != ""}

    return Settings(
        app_id=_required_int(env, "APP_ID", "the GitHub App's numeric id, from its settings page"),
        private_key=SecretStr(_private_key(env)),
        webhook_secret=SecretStr(_webhook_secret(env)),
        webhook_path=_webhook_path(env),
        host=env.get("HOST", DEFAULT_HOST),
        port=_int_in_range(env, "PORT", DEFAULT_PORT, 0, MAX_PORT),
        ghe_host=_ghe_host(env),
        ghe_protocol=_choice(env, "GHE_PROTOCOL", "https", {"http": "http", "https": "https"}),
        log_level=_choice(env, "LOG_LEVEL", "INFO", LOG_LEVELS),
        log_format=_choice(env, "LOG_FORMAT", "text", {"text": "text", "json": "json"}),
        max_concurrency=_int_in_range(env, "CODER_MAX_CONCURRENCY", 32, 1, 10_000),
        shutdown_grace_seconds=_float_at_least(env, "CODER_SHUTDOWN_GRACE_SECONDS", 10.0, 0.0),
        delivery_ttl_seconds=_float_at_least(env, "CODER_DELIVERY_TTL_SECONDS", 3600.0, 1.0),
        max_body_bytes=_int_in_range(env, "CODER_MAX_BODY_BYTES", MAX_BODY_BYTES, 1, 2**31),
        reconcile_seconds=_float_at_least(
            env, "CODER_RECONCILE_SECONDS", DEFAULT_RECONCILE_SECONDS, 0.0
        ),
        oidc_issuer=_oidc_issuer(env),
        oidc_audience=_oidc_audience(env),
    )


def parse_env_file(path: Path) -> dict[str, str]:
    """Parse a `.env` file: KEY=value, quotes, comments, `export `, `\\n` in double quotes."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SettingsError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise SettingsError(f"{path}: cannot read: {type(error).__name__}") from None
    lines = text.splitlines()
    values: dict[str, str] = {}
    index = 0
    while index < len(lines):
        line_number = index + 1
        line = lines[index]
        index += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = ENV_LINE.match(line)
        if match is None:
            raise SettingsError(f"{path}:{line_number}: expected KEY=value")
        key, rest = match["key"], match["rest"].strip()
        if rest[:1] in {'"', "'"}:
            quote = rest[0]
            body = rest[1:]
            # A quoted value may span lines (a PEM pasted as is); read until the closing quote.
            while _closing_quote(body, quote) is None and index < len(lines):
                body += "\n" + lines[index]
                index += 1
            end = _closing_quote(body, quote)
            if end is None:
                raise SettingsError(
                    f"{path}:{line_number}: {key} has an unterminated {quote} quote"
                )
            value = body[:end]
            if quote == '"':
                value = _unescape_double_quoted(value)
        else:
            value = re.split(r"\s+#", rest, maxsplit=1)[0].strip()
        values[key] = value
    return values


def _closing_quote(body: str, quote: str) -> int | None:
    escaped = False
    for position, char in enumerate(body):
        if quote == '"' and char == "\\" and not escaped:
            escaped = True
            continue
        if char == quote and not escaped:
            return position
        escaped = False
    return None


def _unescape_double_quoted(value: str) -> str:
    replacements = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}
    return re.sub(r"\\(.)", lambda m: replacements.get(m[1], m[0]), value)


def _required_int(env: Mapping[str, str], name: str, meaning: str) -> int:
    raw = env.get(name)
    if raw is None:
        raise SettingsError(f"{name} is required: {meaning}")
    value = _parse(raw, int)
    if value is None or value <= 0:
        raise SettingsError(f"{name} must be a positive integer (got {raw!r})")
    return value


def _int_in_range(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None:
        return default
    value = _parse(raw, int)
    if value is None or not low <= value <= high:
        raise SettingsError(f"{name} must be an integer between {low} and {high} (got {raw!r})")
    return value


def _float_at_least(env: Mapping[str, str], name: str, default: float, low: float) -> float:
    raw = env.get(name)
    if raw is None:
        return default
    value = _parse(raw, float)
    if value is None or not value >= low or value == float("inf"):
        raise SettingsError(f"{name} must be a number of seconds >= {low:g} (got {raw!r})")
    return value


def _parse(raw: str, kind: Callable[[str], T]) -> T | None:
    try:
        return kind(raw.strip())
    except ValueError:
        return None


def _choice(env: Mapping[str, str], name: str, default: T, choices: Mapping[str, T]) -> T:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        return choices[raw.strip().lower()]
    except KeyError:
        allowed = ", ".join(dict.fromkeys(str(value).lower() for value in choices.values()))
        raise SettingsError(f"{name} must be one of {allowed} (got {raw!r})") from None


def _webhook_secret(env: Mapping[str, str]) -> str:
    secret = env.get("WEBHOOK_SECRET", "")
    if not secret.strip():
        raise SettingsError("WEBHOOK_SECRET is required: coder refuses to accept unsigned webhooks")
    return secret


def _webhook_path(env: Mapping[str, str]) -> str:
    path = env.get("WEBHOOK_PATH", DEFAULT_WEBHOOK_PATH)
    if not path.startswith("/") or any(char.isspace() for char in path):
        raise SettingsError(f"WEBHOOK_PATH must be a path starting with '/' (got {path!r})")
    return path


def _ghe_host(env: Mapping[str, str]) -> str | None:
    host = env.get("GHE_HOST")
    if host is None:
        return None
    if not GHE_HOST_PATTERN.match(host):
        raise SettingsError(
            "GHE_HOST must be a host name with an optional port, without a scheme "
            f"(got {host!r}; put the scheme in GHE_PROTOCOL)"
        )
    return host


def _oidc_issuer(env: Mapping[str, str]) -> str | None:
    issuer = env.get("CODER_OIDC_ISSUER")
    if issuer is None:
        return None
    # Token `iss` claims carry no trailing slash; compare like with like.
    issuer = issuer.strip().rstrip("/")
    if not ISSUER_PATTERN.match(issuer):
        raise SettingsError(
            f"CODER_OIDC_ISSUER must be an http(s) URL without query or fragment (got {issuer!r})"
        )
    return issuer


def _oidc_audience(env: Mapping[str, str]) -> str:
    audience = env.get("CODER_OIDC_AUDIENCE", DEFAULT_OIDC_AUDIENCE).strip()
    if not AUDIENCE_PATTERN.match(audience):
        raise SettingsError(
            f"CODER_OIDC_AUDIENCE must be one word of at most 200 characters (got {audience!r})"
        )
    return audience


def _private_key(env: Mapping[str, str]) -> str:
    # Probot's order: PRIVATE_KEY (PEM, PEM with literal \n, or base64 of a PEM), then the path.
    if "PRIVATE_KEY" in env:
        pem = _decode_inline_key(env["PRIVATE_KEY"])
        _check_rsa_pem(pem, "PRIVATE_KEY is not a PEM-encoded RSA private key")
        return pem
    if "PRIVATE_KEY_PATH" in env:
        path = Path(env["PRIVATE_KEY_PATH"]).expanduser()
        try:
            pem = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SettingsError(f"PRIVATE_KEY_PATH: no such file: {path}") from None
        except (OSError, UnicodeDecodeError) as error:
            raise SettingsError(
                f"PRIVATE_KEY_PATH: cannot read {path}: {type(error).__name__}"
            ) from None
        _check_rsa_pem(pem, f"PRIVATE_KEY_PATH: {path} is not a PEM-encoded RSA private key")
        return pem
    raise SettingsError(
        "PRIVATE_KEY or PRIVATE_KEY_PATH is required: the GitHub App's private key (.pem)"
    )


def _decode_inline_key(raw: str) -> str:
    if PEM_HEADER in raw:
        # Probot accepts a one-line PEM whose newlines are written as the two characters `\n`.
        return raw.replace("\\n", "\n") if "\n" not in raw.strip() else raw
    try:
        decoded = base64.b64decode(raw, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return raw
    return decoded


def _check_rsa_pem(pem: str, message: str) -> None:
    try:
        key = serialization.load_pem_private_key(pem.strip().encode("utf-8"), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise SettingsError(message) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise SettingsError(message)
