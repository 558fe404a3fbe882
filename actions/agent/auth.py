"""The runner's token: the job's OIDC token exchanged at the app, or the app's own key.

Either way the result is an installation token limited to the one repository the job works on.
The OIDC flow is GitHub's (https://docs.github.com/en/actions/security-for-github-actions/
security-hardening-your-deployments/about-security-hardening-with-openid-connect): ask
`ACTIONS_ID_TOKEN_REQUEST_URL` for a JWT with our audience, then `POST <CODER_APP_URL>/api/token`.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlencode

import aiohttp
import gidgethub

from actions.agent.github import RunnerGitHub
from app.github import AppAuth
from app.retry import RetryPolicy, decide

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from actions.agent.env import AppKeySource, OidcSource, Reach

OIDC_AUDIENCE = "coder"
TOKEN_PATH = "/api/token"  # noqa: S105 - a URL path, not a secret
RESULT_PATH = "/api/runs/result"
# What the job's work needs, and nothing more (the same narrowing the app applies to OIDC).
RUNNER_PERMISSIONS = {
    "contents": "write",
    "pull_requests": "write",
    "checks": "write",
    "issues": "write",
    "metadata": "read",
}
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=60)


class AuthError(Exception):
    """No token could be obtained; the message says why and never holds a secret."""

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        # The app answered and said no (a 4xx): not a reason to try the app's key instead.
        self.refused = refused


@dataclass(frozen=True)
class RunnerToken:
    """An installation token for the job's repository, and how it was obtained."""

    token: str
    source: Literal["oidc", "app-key"]
    expires_at: str | None = None
    # Other credentials seen on the way (the OIDC JWT): masked in the log like the token.
    also_secret: tuple[str, ...] = ()
    app_calls: int = 0
    # Why OIDC was not used although configured; logged once the token is masked.
    fallback_reason: str | None = None
    # The app minted a read-only token: the run works on a fork's code and writes nothing.
    read_only: bool = False


async def obtain_token(
    session: aiohttp.ClientSession,
    reach: Reach,
    *,
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> RunnerToken:
    """Return a token for `reach.repository`: OIDC first, then the app key if configured."""
    policy = policy or RetryPolicy()
    fallback_reason = None
    if reach.oidc is not None:
        try:
            return await exchange_oidc(session, reach.oidc, policy=policy, sleep=sleep)
        except AuthError as error:
            # The key is for an app the job cannot reach, never a way around its refusal
            # (a read-only run, a job coder did not dispatch).
            if reach.app_key is None or error.refused:
                raise
            fallback_reason = str(error)
    if reach.app_key is None:
        raise AuthError("neither OIDC nor an app key is configured")
    token = await mint_with_app_key(session, reach, reach.app_key, policy=policy, sleep=sleep)
    return replace(token, fallback_reason=fallback_reason)


async def exchange_oidc(
    session: aiohttp.ClientSession,
    oidc: OidcSource,
    *,
    policy: RetryPolicy,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> RunnerToken:
    """Get the job's OIDC token and exchange it at the app for an installation token."""
    jwt = await job_token(session, oidc, policy=policy, sleep=sleep)
    status, answer = await _send(
        session,
        "POST",
        oidc.app_url + TOKEN_PATH,
        {"Authorization": f"Bearer {jwt}"},
        policy=policy,
        sleep=sleep,
    )
    token = answer.get("token") if isinstance(answer, dict) else None
    if status != 200 or not isinstance(token, str):
        message = answer.get("message") if isinstance(answer, dict) else None
        why = f": {message}" if isinstance(message, str) else ""
        refused = 400 <= status < 500
        raise AuthError(f"the app refused the token exchange ({status}){why}", refused=refused)
    expires_at = answer.get("expires_at")
    return RunnerToken(
        token=token,
        source="oidc",
        expires_at=expires_at if isinstance(expires_at, str) else None,
        also_secret=(jwt,),
        read_only=answer.get("read_only") is True,
    )


async def job_token(
    session: aiohttp.ClientSession,
    oidc: OidcSource,
    *,
    policy: RetryPolicy,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> str:
    """Ask the job's OIDC provider for a token with coder's audience (a JWT, a secret)."""
    separator = "&" if "?" in oidc.request_url else "?"
    url = f"{oidc.request_url}{separator}{urlencode({'audience': OIDC_AUDIENCE})}"
    status, answer = await _send(
        session,
        "GET",
        url,
        {"Authorization": f"bearer {oidc.request_token}"},
        policy=policy,
        sleep=sleep,
    )
    jwt = answer.get("value") if isinstance(answer, dict) else None
    if status != 200 or not isinstance(jwt, str):
        raise AuthError(f"the OIDC token request answered {status}")
    return jwt


async def send_result(
    session: aiohttp.ClientSession,
    oidc: OidcSource,
    result: Mapping[str, Any],
    *,
    policy: RetryPolicy,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> str:
    """Hand a read-only run's result to the app (`POST /api/runs/result`); return the JWT used.

    A read-only token cannot complete the check run; the app writes it for the run, once it
    has checked the job's token as the exchange does.
    """
    jwt = await job_token(session, oidc, policy=policy, sleep=sleep)
    status, answer = await _send(
        session,
        "POST",
        oidc.app_url + RESULT_PATH,
        {"Authorization": f"Bearer {jwt}"},
        policy=policy,
        sleep=sleep,
        body=result,
    )
    if status != 200:
        message = answer.get("message") if isinstance(answer, dict) else None
        raise AuthError(f"the app refused the run's result ({status}): {message or ''}".rstrip())
    return jwt


async def mint_with_app_key(
    session: aiohttp.ClientSession,
    reach: Reach,
    app_key: AppKeySource,
    *,
    policy: RetryPolicy,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> RunnerToken:
    """Mint an installation token with the app's JWT, narrowed to the one repository."""
    try:
        auth = AppAuth(app_key.app_id, app_key.private_key)
    except (ValueError, TypeError) as error:
        raise AuthError(
            f"{app_key.private_key_name} is not a usable RSA key ({type(error).__name__})"
        ) from None
    jwt = auth.jwt()
    gh = RunnerGitHub(
        session,
        authorization=f"Bearer {jwt}",
        api_url=reach.api_url,
        graphql_url=reach.graphql_url,
        policy=policy,
        sleep=sleep,
    )
    owner, name = reach.repository.split("/", 1)
    try:
        installation = await gh.getitem(
            "/repos/{owner}/{repo}/installation", {"owner": owner, "repo": name}
        )
        created = await gh.post(
            "/app/installations/{installation_id}/access_tokens",
            {"installation_id": installation["id"]},
            data={"repositories": [name], "permissions": RUNNER_PERMISSIONS},
        )
    except gidgethub.HTTPException as error:
        raise AuthError(f"minting a token with the app key failed ({error.status_code})") from None
    return RunnerToken(
        token=str(created["token"]),
        source="app-key",
        expires_at=created.get("expires_at"),
        also_secret=(jwt,),
        app_calls=gh.calls.rest,
    )


async def _send(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    headers: Mapping[str, str],
    *,
    policy: RetryPolicy,
    sleep: Callable[[float], Awaitable[None]],
    body: Mapping[str, Any] | None = None,
) -> tuple[int, Any]:
    """Send one request with the shared retry policy; every call here is safe to repeat."""
    attempt = 0
    data = None if body is None else json.dumps(body)
    sent = {"Accept": "application/json", **headers}
    if data is not None:
        sent["Content-Type"] = "application/json"
    while True:
        attempt += 1
        try:
            async with session.request(
                method, url, headers=sent, data=data, timeout=HTTP_TIMEOUT
            ) as response:
                status = response.status
                text = await response.text()
                lowered = {key.lower(): value for key, value in response.headers.items()}
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            decision = decide(
                attempt=attempt,
                method=method,
                status=None,
                headers={},
                error=type(error),
                now=time.time(),
                since_event=None,
                policy=policy,
                idempotent=True,
            )
            if not decision.retry:
                raise AuthError(f"{method} {_where(url)} failed: {type(error).__name__}") from None
            await sleep(decision.delay)
            continue
        answer = _json(text)
        if status < 400:
            return status, answer
        message = answer.get("message", "") if isinstance(answer, dict) else ""
        decision = decide(
            attempt=attempt,
            method=method,
            status=status,
            headers=lowered,
            error=None,
            now=time.time(),
            since_event=None,
            policy=policy,
            message=message if isinstance(message, str) else "",
            idempotent=True,
        )
        if not decision.retry:
            return status, answer
        if decision.park_until is not None:
            await sleep(max(decision.park_until - time.time(), 0.0))
        else:
            await sleep(decision.delay)


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _where(url: str) -> str:
    # Never log a query string: the OIDC request URL's parameters are not ours to show.
    return url.split("?", 1)[0]
