"""The Actions OIDC issuer, in GitHub Enterprise Server's layout (`<url>/_services/token`).

A job with `id-token: write` gets ACTIONS_ID_TOKEN_REQUEST_URL and ..._TOKEN; it asks for a JWT
with `Authorization: bearer <request token>` and `&audience=...`, and gets `{"value": <jwt>}`
signed RS256 with devhub's own key (kept in the state directory, published through JWKS with its
`kid`). The claims are GitHub's; the request token works only while the job runs:
https://docs.github.com/actions/security-for-github-actions/security-hardening-your-deployments/about-security-hardening-with-openid-connect
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
import uuid
from typing import TYPE_CHECKING, Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from devhub.http import context, json_response
from devhub.rest_auth import credential_from_header

if TYPE_CHECKING:
    from pathlib import Path

    from devhub.http import Context
    from devhub.state_actions import Job

ROUTES = web.RouteTableDef()

ISSUER_PATH = "/_services/token"
DISCOVERY_PATH = ISSUER_PATH + "/.well-known/openid-configuration"
JWKS_PATH = ISSUER_PATH + "/.well-known/jwks"
ID_TOKEN_PATH = ISSUER_PATH + "/idtoken"
KEY_FILE = "oidc-signing-key.pem"
KEY_FILE_MODE = 0o600
# The workflow `mint` names when a test does not: the one devhub's local runner runs for coder.
MINTED_WORKFLOW_PATH = ".github/workflows/coder.yml"
# GitHub's tokens: `nbf` ten minutes before `iat` (clock skew), `exp` five minutes after it.
LIFETIME_SECONDS = 300
NOT_BEFORE_SECONDS = 600
CLAIMS_SUPPORTED = [
    "sub",
    "aud",
    "exp",
    "iat",
    "iss",
    "jti",
    "nbf",
    "ref",
    "sha",
    "repository",
    "repository_id",
    "repository_owner",
    "repository_owner_id",
    "run_id",
    "run_number",
    "run_attempt",
    "actor",
    "actor_id",
    "workflow",
    "workflow_ref",
    "workflow_sha",
    "head_ref",
    "base_ref",
    "event_name",
    "ref_type",
    "ref_protected",
    "job_workflow_ref",
    "job_workflow_sha",
    "repository_visibility",
    "runner_environment",
]


def _b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class OidcIssuer:
    """devhub's OIDC signing key and the tokens it signs."""

    def __init__(self, state_dir: Path) -> None:
        path = state_dir / KEY_FILE
        if not path.is_file():
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, KEY_FILE_MODE)
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
        loaded = serialization.load_pem_private_key(path.read_bytes(), None)
        assert isinstance(loaded, rsa.RSAPrivateKey)
        self._key = loaded
        numbers = loaded.public_key().public_numbers()
        self._public = {"kty": "RSA", "n": _b64(numbers.n), "e": _b64(numbers.e)}
        # RFC 7638 thumbprint: stable across restarts because the key is.
        canonical = json.dumps(
            {"e": self._public["e"], "kty": "RSA", "n": self._public["n"]}, separators=(",", ":")
        )
        digest = hashlib.sha256(canonical.encode()).digest()
        self.kid = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def issuer(self, base_url: str) -> str:
        """Return the `iss` of devhub's tokens."""
        return base_url + ISSUER_PATH

    def discovery(self, base_url: str) -> dict[str, Any]:
        """Return the OpenID Provider configuration."""
        return {
            "issuer": self.issuer(base_url),
            "jwks_uri": base_url + JWKS_PATH,
            "subject_types_supported": ["public", "pairwise"],
            "response_types_supported": ["id_token"],
            "claims_supported": CLAIMS_SUPPORTED,
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid"],
        }

    def jwks(self) -> dict[str, Any]:
        """Return the JSON Web Key Set with devhub's one signing key."""
        return {"keys": [self._public | {"kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def sign(self, claims: dict[str, Any]) -> str:
        """Sign claims as an RS256 JWT with devhub's key id."""
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.kid})

    def base_claims(self, base_url: str, audience: str) -> dict[str, Any]:
        """Return the time and identity claims every token has."""
        now = int(time.time())
        return {
            "jti": str(uuid.uuid4()),
            "iss": self.issuer(base_url),
            "aud": audience,
            "iat": now,
            "nbf": now - NOT_BEFORE_SECONDS,
            "exp": now + LIFETIME_SECONDS,
            "runner_environment": "self-hosted",
        }

    def job_claims(self, ctx: Context, job: Job, audience: str | None) -> dict[str, Any]:
        """Return GitHub's claims for a running job.

        As on GitHub, `workflow_ref` is `owner/repo/<workflow path>@<ref>` and `event_name` the
        run's event; `job_workflow_ref` is the same as `workflow_ref` because devhub runs no
        reusable workflows (on GitHub it names the called workflow when there is one).
        """
        run = job.run
        repo = run.repo
        workflow_ref = f"{repo.full_name}/{run.workflow_path}@{run.ref}"
        default_audience = f"{ctx.urls.web}/{repo.owner.login}"  # GitHub: the owner's URL
        return self.base_claims(ctx.urls.web, audience or default_audience) | {
            "sub": f"repo:{repo.full_name}:ref:{run.ref}",
            "ref": run.ref,
            "ref_type": "branch",
            "ref_protected": "false",
            "sha": run.head_sha,
            "repository": repo.full_name,
            "repository_id": str(repo.id),
            "repository_owner": repo.owner.login,
            "repository_owner_id": str(repo.owner.id),
            "repository_visibility": "private" if repo.private else "public",
            "run_id": str(run.id),
            "run_number": str(run.run_number),
            "run_attempt": str(run.run_attempt),
            "actor": run.actor.login,
            "actor_id": str(run.actor.id),
            "workflow": run.workflow_name,
            "workflow_ref": workflow_ref,
            "workflow_sha": run.head_sha,
            "job_workflow_ref": workflow_ref,
            "job_workflow_sha": run.head_sha,
            "event_name": run.event,
            "head_ref": "",
            "base_ref": "",
        }

    def mint(self, base_url: str, claims: dict[str, Any]) -> str:
        """Sign a token with chosen claims (tests: wrong repository, audience, expired, ...).

        Claims not given get GitHub-like defaults; a claim given as None is left out. A
        `repository` with no `sub` gets `sub` = `repo:<repository>:ref:<ref>`, and
        `workflow_ref` = `job_workflow_ref` = `<repository>/.github/workflows/coder.yml@<ref>`
        (a `workflow_dispatch` of coder's workflow, as devhub's runner would give it).
        """
        repository = str(claims.get("repository") or "")
        owner = repository.split("/", 1)[0]
        ref = str(claims.get("ref") or "refs/heads/main")
        merged = self.base_claims(base_url, f"{base_url}/{owner}") | {
            "ref": ref,
            "ref_type": "branch",
            "event_name": "workflow_dispatch",
        }
        if repository:
            merged["sub"] = f"repo:{repository}:ref:{ref}"
            merged["repository_owner"] = owner
            workflow_ref = f"{repository}/{MINTED_WORKFLOW_PATH}@{ref}"
            merged["workflow_ref"] = merged["job_workflow_ref"] = workflow_ref
        merged |= claims
        return self.sign({k: v for k, v in merged.items() if v is not None})


# routes


def _issuer(request: web.Request) -> OidcIssuer:
    found = context(request).oidc
    assert found is not None
    return found


@ROUTES.get(DISCOVERY_PATH)
async def openid_configuration(request: web.Request) -> web.Response:
    """Serve the OpenID Provider configuration."""
    return json_response(_issuer(request).discovery(context(request).urls.web))


@ROUTES.get(JWKS_PATH)
async def jwks(request: web.Request) -> web.Response:
    """Serve the public signing keys."""
    return json_response(_issuer(request).jwks())


@ROUTES.get(ID_TOKEN_PATH)
async def id_token(request: web.Request) -> web.Response:
    """Give a running job its ID token; the request token is the job's, valid while it runs."""
    ctx = context(request)
    token = credential_from_header(request.headers.get("Authorization"))
    job = ctx.runner.job_for_id_token(token) if ctx.runner is not None and token else None
    if job is None:
        return json_response({"message": "Bad credentials"}, status=401)
    audience = request.query.get("audience") or None
    claims = _issuer(request).job_claims(ctx, job, audience)
    return json_response({"count": 1, "value": _issuer(request).sign(claims)})
