"""`POST /api/token`: a job's OIDC token in, an installation token for that one repository out.

The runner proves which repository it runs for with the OIDC token GitHub Actions gives the job
(https://docs.github.com/en/actions/security-for-github-actions/security-hardening-your-deployments/about-security-hardening-with-openid-connect).
The app checks the signature against the issuer's published keys, the issuer, the audience and
the times, and that the job is the one coder starts: a `workflow_dispatch` run of the
repository's runner workflow (`runner.workflow`, `.github/workflows/coder.yml` by default) on
its default branch, by the `workflow_ref` and `job_workflow_ref` claims
(https://docs.github.com/en/actions/reference/security/oidc). Every claim is checked before
anything is minted; only then is a token minted, narrowed to that repository and to what a run
needs. Tokens are never logged; a refusal says why in a few words and nothing more.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
import gidgethub
import jwt
from aiohttp import web

from app.dispatched_runs import read_only_title
from app.known_repos import KnownRepositories, KnownRepository
from app.repo_config import fetch_config

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from app.github import GitHubAccess
    from app.settings import Settings

log = logging.getLogger(__name__)

EXCHANGE_PATH = "/api/token"
ALGORITHM = "RS256"
LEEWAY_SECONDS = 60  # clock skew between GitHub's token service and this host
REQUIRED_CLAIMS = (
    "exp",
    "iat",
    "nbf",
    "iss",
    "aud",
    "repository",
    "repository_id",
    "event_name",
    "workflow_ref",
    "job_workflow_ref",
)
# The app starts every run with `workflow_dispatch`; a token from any other event (a
# `pull_request_target` job, a push) is not one of coder's jobs, whatever its workflow says.
RUNNER_EVENT = "workflow_dispatch"
WORKFLOWS_DIR = ".github/workflows"
DISCOVERY_PATH = "/.well-known/openid-configuration"
# An unknown `kid` refetches the keys (GitHub rotates them), but at most this often, so tokens
# with made-up key ids cannot turn the app into a stream of requests to the issuer.
JWKS_MIN_REFRESH_SECONDS = 60.0
FETCH_TIMEOUT = aiohttp.ClientTimeout(total=10)
# What a run's token may do: push the branch, update the pull request, the check run and the
# issue's labels and comments. Nothing else, and only in the job's own repository.
RUNNER_PERMISSIONS: Mapping[str, str] = {
    "contents": "write",
    "pull_requests": "write",
    "checks": "write",
    "issues": "write",
    "metadata": "read",
}
# A run on a fork's pull request (`allow_fork_runs`) runs the fork's code: its token may read
# the repository and the run's own records, and write nothing. Its result comes back to the app
# (`app.fork_results`), which writes the check run and the suggested patch itself.
READ_ONLY_PERMISSIONS: Mapping[str, str] = {
    "contents": "read",
    "pull_requests": "read",
    "checks": "read",
    "metadata": "read",
}
WORKFLOW_RUN_URL = "/repos/{owner}/{repo}/actions/runs/{run_id}"
REPO_INSTALLATION_URL = "/repos/{owner}/{repo}/installation"
REPO_URL = "/repos/{owner}/{repo}"
ACCESS_TOKENS_URL = "/app/installations/{installation_id}/access_tokens"

# Refusal reasons: enough for an operator reading the job log, nothing an attacker can use.
MISSING_BEARER = "a bearer OIDC token is required"
MALFORMED = "the token is malformed"
WRONG_ALGORITHM = f"only {ALGORITHM} tokens are accepted"
UNKNOWN_KEY = "the token is signed with an unknown key"
BAD_SIGNATURE = "the token's signature is invalid"
EXPIRED = "the token has expired"
NOT_YET_VALID = "the token is not valid yet"
WRONG_AUDIENCE = "the token is for another audience"
WRONG_ISSUER = "the token is from another issuer"
MISSING_CLAIM = "the token lacks the {claim} claim"
BAD_REPOSITORY = "the token's repository claims are inconsistent"
NOT_INSTALLED = "the app is not installed on the token's repository"
WRONG_EVENT = f"the token is from a run not started by {RUNNER_EVENT}"
WRONG_WORKFLOW = "the token is from another workflow than the repository's coder workflow"
WRONG_REF = "the token is from a run on another ref than the default branch"
CONFIG_INVALID = "the repository's .github/coder.yml is invalid"
NOT_DISPATCHED = "the token is from a workflow run that is not one coder dispatched"
ISSUER_UNREACHABLE = "the OIDC issuer cannot be reached"
GITHUB_UNREACHABLE = "GitHub cannot be reached"


class TokenRefusedError(Exception):
    """The OIDC token was refused; `reason` is safe to show the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class IssuerUnavailableError(Exception):
    """The issuer's discovery document or keys could not be fetched."""


@dataclass(frozen=True)
class RunnerClaims:
    """The claims of a verified job token that coder uses."""

    repository: str
    repository_id: int
    run_id: str | None
    event_name: str
    workflow_ref: str
    job_workflow_ref: str


class IssuerKeys:
    """The issuer's signing keys: discovered once, cached, refetched on an unknown `kid`."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        issuer: str,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session = session
        self._issuer = issuer
        self._clock = clock
        self._keys: dict[str, Any] = {}
        self._jwks_uri: str | None = None
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def key(self, kid: str) -> Any:
        """Return the public key with id `kid`, fetching the key set if it is not known."""
        if kid in self._keys:
            return self._keys[kid]
        async with self._lock:
            if kid not in self._keys and self._may_refresh():
                await self._refresh()
        if kid not in self._keys:
            raise TokenRefusedError(UNKNOWN_KEY)
        return self._keys[kid]

    def _may_refresh(self) -> bool:
        return (
            self._fetched_at is None or self._clock() - self._fetched_at >= JWKS_MIN_REFRESH_SECONDS
        )

    async def _refresh(self) -> None:
        self._fetched_at = self._clock()
        self.fetches += 1
        if self._jwks_uri is None:
            discovery = await self._get_json(self._issuer + DISCOVERY_PATH)
            jwks_uri = discovery.get("jwks_uri")
            if not isinstance(jwks_uri, str):
                raise IssuerUnavailableError("the discovery document names no jwks_uri")
            self._jwks_uri = jwks_uri
        key_set = await self._get_json(self._jwks_uri)
        try:
            keys = jwt.PyJWKSet.from_dict(key_set).keys
        except jwt.PyJWKSetError as error:
            raise IssuerUnavailableError(f"the key set is unusable: {error}") from None
        self._keys = {key.key_id: key.key for key in keys if key.key_id and key.key_type == "RSA"}

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with self._session.get(url, timeout=FETCH_TIMEOUT) as response:
                if response.status != 200:
                    raise IssuerUnavailableError(f"GET {url}: {response.status}")
                answer = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            raise IssuerUnavailableError(f"GET {url}: {type(error).__name__}") from None
        if not isinstance(answer, dict):
            raise IssuerUnavailableError(f"GET {url}: not a JSON object")
        return answer


class TokenVerifier:
    """Verify a job's OIDC token: RS256, issuer, audience, times, repository claims."""

    def __init__(self, keys: IssuerKeys, *, issuer: str, audience: str) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience

    async def verify(self, token: str) -> RunnerClaims:
        """Return the token's claims, or raise TokenRefusedError saying why not."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise TokenRefusedError(MALFORMED) from None
        # Checked before any key is looked up: `none`, HS256 with the public key as a secret
        # and other algorithm confusions never get near a key.
        if header.get("alg") != ALGORITHM:
            raise TokenRefusedError(WRONG_ALGORITHM)
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenRefusedError(UNKNOWN_KEY)
        key = await self._keys.key(kid)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.PyJWTError as error:
            raise TokenRefusedError(_reason(error)) from None
        return _runner_claims(claims)


def _reason(error: jwt.PyJWTError) -> str:
    reasons: list[tuple[type[jwt.PyJWTError], str]] = [
        (jwt.ExpiredSignatureError, EXPIRED),
        (jwt.ImmatureSignatureError, NOT_YET_VALID),
        (jwt.InvalidAudienceError, WRONG_AUDIENCE),
        (jwt.InvalidIssuerError, WRONG_ISSUER),
        (jwt.InvalidSignatureError, BAD_SIGNATURE),
        (jwt.InvalidAlgorithmError, WRONG_ALGORITHM),
    ]
    if isinstance(error, jwt.MissingRequiredClaimError):
        return MISSING_CLAIM.format(claim=error.claim)
    return next((reason for kind, reason in reasons if isinstance(error, kind)), MALFORMED)


def _runner_claims(claims: Mapping[str, Any]) -> RunnerClaims:
    repository = claims["repository"]
    # GitHub's claims are strings, `repository_id` included ("289910").
    repository_id = str(claims["repository_id"])
    if not isinstance(repository, str) or repository.count("/") != 1 or not repository_id.isdigit():
        raise TokenRefusedError(BAD_REPOSITORY)
    run_id = claims.get("run_id")
    return RunnerClaims(
        repository=repository,
        repository_id=int(repository_id),
        run_id=str(run_id) if run_id is not None else None,
        event_name=str(claims["event_name"]),
        workflow_ref=str(claims["workflow_ref"]),
        job_workflow_ref=str(claims["job_workflow_ref"]),
    )


def workflow_refusal(claims: RunnerClaims, *, workflow_file: str, branch: str) -> str | None:
    """Say why the token is not from `workflow_file` run on `branch` by dispatch, or None."""
    if claims.event_name != RUNNER_EVENT:
        return WRONG_EVENT
    # `owner/repo/.github/workflows/coder.yml@refs/heads/main`; `job_workflow_ref` names a
    # reusable workflow when the job calls one, and coder's job must not.
    for ref in (claims.workflow_ref, claims.job_workflow_ref):
        path, _, at = ref.rpartition("@")
        owner, _, rest = path.partition("/")
        repo, _, file_path = rest.partition("/")
        # Owner and repository names are case-insensitive on GitHub; paths and refs are not.
        if f"{owner}/{repo}".casefold() != claims.repository.casefold():
            return WRONG_WORKFLOW
        if file_path != f"{WORKFLOWS_DIR}/{workflow_file}":
            return WRONG_WORKFLOW
        if at != f"refs/heads/{branch}":
            return WRONG_REF
    return None


class TokenExchange:
    """Turn a verified job token into an installation token for its one repository."""

    def __init__(
        self,
        verifier: TokenVerifier,
        access: GitHubAccess,
        known: KnownRepositories | None = None,
    ) -> None:
        self._verifier = verifier
        self._access = access
        self._known = known if known is not None else KnownRepositories()

    @property
    def access(self) -> GitHubAccess:
        """Return the app's GitHub access (what writes on a read-only run's behalf)."""
        return self._access

    async def exchange(self, token: str) -> dict[str, Any]:
        """Return `{token, expires_at, repository, permissions}` for a valid job token."""
        claims = await self._verifier.verify(token)
        if claims.event_name != RUNNER_EVENT:
            raise TokenRefusedError(WRONG_EVENT)
        # Every claim is settled before anything is minted (a refused token costs no token).
        installation_id = await self.installation(claims)
        read_only = await self.read_only(claims, installation_id)
        permissions = READ_ONLY_PERMISSIONS if read_only else RUNNER_PERMISSIONS
        minted = await self._mint(claims, installation_id, permissions)
        repositories = minted.get("repositories") or []
        names = {(r.get("id"), str(r.get("full_name", "")).casefold()) for r in repositories}
        if names != {(claims.repository_id, claims.repository.casefold())}:
            # Not expected after the checks above (a rename in between): the minted token
            # never leaves this function and expires within the hour.
            raise TokenRefusedError(BAD_REPOSITORY)
        log.info(
            "issued a token for %s to Actions run %s (%s)",
            claims.repository,
            claims.run_id or "-",
            claims.workflow_ref,
        )
        return {
            "token": minted["token"],
            "expires_at": minted["expires_at"],
            "repository": repositories[0]["full_name"],
            "permissions": minted.get("permissions", dict(permissions)),
            "read_only": read_only,
        }

    async def verified(self, token: str) -> tuple[RunnerClaims, int]:
        """Verify a job token as the exchange does; return its claims and installation."""
        claims = await self._verifier.verify(token)
        if claims.event_name != RUNNER_EVENT:
            raise TokenRefusedError(WRONG_EVENT)
        return claims, await self.installation(claims)

    async def installation(self, claims: RunnerClaims) -> int:
        """Return the installation of a verified token's repository, its workflow checked."""
        installation_id = self._known_installation(claims)
        if installation_id is None:
            installation_id = await self._look_up(claims)
        return installation_id

    async def read_only(self, claims: RunnerClaims, installation_id: int) -> bool:
        """Tell whether the job's workflow run was dispatched read-only (a fork's code).

        A signed `workflow_run` webhook usually said so already; otherwise GitHub says, by the
        run's title, which only the app sets (it alone dispatches). A job's token always names
        its own run (GitHub signs `run_id`), so a fork's job cannot borrow another run's answer;
        a run that does not carry coder's title gets nothing, so a changed `run-name` can never
        turn a read-only run into one with a write token.
        """
        run_id = int(claims.run_id) if claims.run_id and claims.run_id.isdigit() else None
        if run_id is None:
            raise TokenRefusedError(MISSING_CLAIM.format(claim="run_id"))
        known = self._known.read_only(run_id)
        if known is not None:
            return known
        owner, repo = claims.repository.split("/")
        gh = self._access.for_installation(installation_id)
        try:
            workflow_run = await gh.getitem(
                WORKFLOW_RUN_URL, {"owner": owner, "repo": repo, "run_id": str(run_id)}
            )
        except gidgethub.BadRequest as error:
            if error.status_code == 404:
                raise TokenRefusedError(NOT_DISPATCHED) from None
            raise
        read_only = read_only_title(workflow_run.get("display_title"))
        if read_only is None:
            raise TokenRefusedError(NOT_DISPATCHED)
        return read_only

    def _known_installation(self, claims: RunnerClaims) -> int | None:
        """Return the installation when signed webhooks and the app's dispatch vouch for all."""
        known = self._known.get(claims.repository_id)
        if known is None or known.full_name.casefold() != claims.repository.casefold():
            return None
        dispatched = self._known.dispatch_in(known.full_name)
        if dispatched is None or dispatched.branch != known.default_branch:
            return None
        refusal = workflow_refusal(
            claims, workflow_file=dispatched.workflow_file, branch=dispatched.branch
        )
        return known.installation_id if refusal is None else None

    async def _look_up(self, claims: RunnerClaims) -> int:
        """Ask GitHub what the memo could not vouch for; return the installation or refuse."""
        owner, repo = claims.repository.split("/")
        known = self._known.get(claims.repository_id)
        if known is not None and known.full_name.casefold() == claims.repository.casefold():
            installation_id = known.installation_id
        else:
            installation_id = await self._installation_of(owner, repo)
        gh = self._access.for_installation(installation_id)
        try:
            repository = await gh.getitem(REPO_URL, {"owner": owner, "repo": repo})
        except gidgethub.BadRequest as error:
            if error.status_code in {403, 404}:
                raise TokenRefusedError(NOT_INSTALLED) from None
            raise
        # The name is the repository GitHub has under that name now; its id must be the
        # token's (a rename or a forged pair fails here, before any token exists).
        if int(repository["id"]) != claims.repository_id:
            raise TokenRefusedError(BAD_REPOSITORY)
        full_name, branch = str(repository["full_name"]), str(repository["default_branch"])
        self._known.remember(
            KnownRepository(claims.repository_id, full_name, installation_id, branch)
        )
        config = (await fetch_config(gh, full_name, branch)).config
        if config is None:
            raise TokenRefusedError(CONFIG_INVALID)
        refusal = workflow_refusal(claims, workflow_file=config.runner.workflow, branch=branch)
        if refusal is not None:
            raise TokenRefusedError(refusal)
        return installation_id

    async def _installation_of(self, owner: str, repo: str) -> int:
        try:
            installation = await self._access.app_client().getitem(
                REPO_INSTALLATION_URL, {"owner": owner, "repo": repo}
            )
        except gidgethub.BadRequest as error:
            if error.status_code == 404:
                raise TokenRefusedError(NOT_INSTALLED) from None
            raise
        return int(installation["id"])

    async def _mint(
        self, claims: RunnerClaims, installation_id: int, permissions: Mapping[str, str]
    ) -> Mapping[str, Any]:
        try:
            # Narrowed by id, not name: GitHub then names the repository the id belongs to.
            minted: Mapping[str, Any] = await self._access.app_client().post(
                ACCESS_TOKENS_URL,
                {"installation_id": str(installation_id)},
                data={"repository_ids": [claims.repository_id], "permissions": dict(permissions)},
            )
        except gidgethub.BadRequest as error:
            if error.status_code in {404, 422}:
                raise TokenRefusedError(NOT_INSTALLED) from None
            raise
        return minted


TOKEN_EXCHANGE_KEY = web.AppKey("token_exchange", TokenExchange)


def token_exchange(
    settings: Settings,
    session: aiohttp.ClientSession,
    access: GitHubAccess,
    known: KnownRepositories | None = None,
) -> TokenExchange:
    """Build the exchange for the configured issuer and audience."""
    issuer = settings.token_issuer
    keys = IssuerKeys(session, issuer)
    verifier = TokenVerifier(keys, issuer=issuer, audience=settings.oidc_audience)
    return TokenExchange(verifier, access, known)


async def handle_token_request(request: web.Request) -> web.Response:
    """Answer `POST /api/token`: 200 with a repository token, or 401 saying why not."""
    token = bearer_token(request.headers.get("Authorization", ""))
    if token is None:
        return _refuse(MISSING_BEARER)
    try:
        answer = await request.app[TOKEN_EXCHANGE_KEY].exchange(token)
    except TokenRefusedError as refused:
        return _refuse(refused.reason)
    except IssuerUnavailableError as error:
        log.warning("token exchange: %s", error)
        return message_response(503, ISSUER_UNREACHABLE)
    except (gidgethub.GitHubException, aiohttp.ClientError, OSError) as error:
        log.warning("token exchange: GitHub failed: %s", type(error).__name__)
        return message_response(502, GITHUB_UNREACHABLE)
    return web.json_response(answer, headers={"Cache-Control": "no-store"})


def bearer_token(header: str) -> str | None:
    """Return the token of an `Authorization: Bearer <token>` header, or None."""
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


def _refuse(reason: str) -> web.Response:
    log.warning("token exchange refused: %s", reason)
    response = message_response(401, reason)
    response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    return response


def message_response(status: int, message: str) -> web.Response:
    """Return GitHub's error shape, `{message}`, never cached."""
    return web.json_response(
        {"message": message}, status=status, headers={"Cache-Control": "no-store"}
    )
