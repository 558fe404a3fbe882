"""Helpers for driving devhub as people do: the admin API plus REST with a person's token.

Used by the test suite and by `coder demo`. Every helper raises `DevHubError` when devhub does not
answer as expected, with the status and body, so a failing setup step says what went wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Self

import aiohttp
from multidict import CIMultiDictProxy

ADMIN_PREFIX = "/_devhub"


class DevHubError(Exception):
    """devhub answered a helper's request with an unexpected status."""

    def __init__(self, method: str, path: str, status: int, body: object) -> None:
        super().__init__(f"{method} {path} -> {status}: {body}")
        self.status = status
        self.body = body


@dataclass(frozen=True)
class User:
    """An account created through the admin API (`token` is None for organizations)."""

    login: str
    id: int
    token: str | None


Answer = tuple[int, CIMultiDictProxy[str], Any]


async def _decode(response: aiohttp.ClientResponse) -> Any:
    text = await response.text()
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


class RestClient:
    """A tiny REST client for one token: each call returns (status, headers, json)."""

    def __init__(self, session: aiohttp.ClientSession, api_url: str, token: str | None) -> None:
        self._session = session
        self._api_url = api_url
        self._token = token

    async def request(
        self,
        method: str,
        path: str,
        body: object | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        """Send one request; `path` is relative to /api/v3 unless it is a full URL."""
        url = path if path.startswith("http") else self._api_url + path
        sent = {"Accept": "application/vnd.github+json"} | (headers or {})
        if self._token is not None:
            sent.setdefault("Authorization", f"token {self._token}")
        data = None if body is None else json.dumps(body)
        if data is not None:
            sent["Content-Type"] = "application/json"
        async with self._session.request(method, url, data=data, headers=sent) as response:
            return response.status, response.headers, await _decode(response)

    async def get(self, path: str, *, headers: dict[str, str] | None = None) -> Answer:
        """GET a path."""
        return await self.request("GET", path, headers=headers)

    async def post(self, path: str, body: object | None = None, **kwargs: Any) -> Answer:
        """POST JSON to a path."""
        return await self.request("POST", path, body, **kwargs)

    async def patch(self, path: str, body: object | None = None, **kwargs: Any) -> Answer:
        """PATCH JSON to a path."""
        return await self.request("PATCH", path, body, **kwargs)

    async def put(self, path: str, body: object | None = None, **kwargs: Any) -> Answer:
        """PUT JSON to a path."""
        return await self.request("PUT", path, body, **kwargs)

    async def delete(self, path: str, body: object | None = None, **kwargs: Any) -> Answer:
        """DELETE a path."""
        return await self.request("DELETE", path, body, **kwargs)


class AdminClient:
    """The admin API and REST, as a person setting up GitHub would use them."""

    def __init__(self, url: str, admin_token: str) -> None:
        self.url = url.rstrip("/")
        self.api_url = self.url + "/api/v3"
        self.admin_token = admin_token
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """Return the shared HTTP session (created on first use)."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    def rest(self, token: str | None) -> RestClient:
        """Return a REST client acting with `token` (None: anonymous)."""
        return RestClient(self.session, self.api_url, token)

    async def _admin(
        self,
        method: str,
        path: str,
        body: object | None = None,
        *,
        ok: tuple[int, ...] = (200, 201, 204),
    ) -> Any:
        headers = {"Authorization": f"token {self.admin_token}"}
        data = None if body is None else json.dumps(body)
        url = f"{self.url}{ADMIN_PREFIX}{path}"
        async with self.session.request(method, url, data=data, headers=headers) as response:
            answer = await _decode(response)
            if response.status not in ok:
                raise DevHubError(method, ADMIN_PREFIX + path, response.status, answer)
            return answer

    async def _rest(
        self, token: str | None, method: str, path: str, body: object | None, ok: tuple[int, ...]
    ) -> Any:
        status, _headers, answer = await self.rest(token).request(method, path, body)
        if status not in ok:
            raise DevHubError(method, path, status, answer)
        return answer

    async def create_user(self, login: str, type: str = "User") -> User:  # noqa: A002 - GitHub's field name
        """Create a user (or bot, or organization) and return its personal token."""
        answer = await self._admin("POST", "/users", {"login": login, "type": type})
        return User(answer["login"], answer["id"], answer["token"])

    async def create_org(self, login: str, owner_login: str) -> User:
        """Create an organization and make `owner_login` its owner."""
        org = await self.create_user(login, "Organization")
        path = f"/orgs/{login}/memberships/{owner_login}"
        await self._rest(self.admin_token, "PUT", path, {"role": "admin"}, (200,))
        return org

    async def create_repo(
        self,
        owner: str,
        name: str,
        token: str | None,
        *,
        auto_init: bool = True,
        private: bool = False,
    ) -> dict[str, Any]:
        """Create a repository as the token's user (in `owner`'s org when owner is an org)."""
        account = await self._rest(token, "GET", f"/users/{owner}", None, (200,))
        path = f"/orgs/{owner}/repos" if account["type"] == "Organization" else "/user/repos"
        body = {"name": name, "auto_init": auto_init, "private": private}
        repo: dict[str, Any] = await self._rest(token, "POST", path, body, (201,))
        return repo

    async def fork(
        self,
        full_name: str,
        token: str | None,
        *,
        organization: str | None = None,
        name: str | None = None,
        default_branch_only: bool | None = None,
    ) -> dict[str, Any]:
        """Fork `owner/name` as the token's user (into `organization` if given); return the fork."""
        options = {
            "organization": organization,
            "name": name,
            "default_branch_only": default_branch_only,
        }
        body = {key: value for key, value in options.items() if value is not None}
        fork: dict[str, Any] = await self._rest(
            token, "POST", f"/repos/{full_name}/forks", body or None, (202,)
        )
        return fork

    async def add_collaborator(self, full_name: str, login: str, permission: str) -> int:
        """Give `login` a permission on a repository (as a site admin); return the status."""
        path = f"/repos/{full_name}/collaborators/{login}"
        status, _headers, answer = await self.rest(self.admin_token).put(
            path, {"permission": permission}
        )
        if status not in {201, 204}:
            raise DevHubError("PUT", path, status, answer)
        return status

    async def install(self, account: str, repositories: str | list[str] = "all") -> int:
        """Install the app on an account and return the installation id."""
        answer = await self._admin(
            "POST", "/installations", {"account": account, "repositories": repositories}
        )
        return int(answer["id"])

    async def deliveries(self) -> list[dict[str, Any]]:
        """List webhook deliveries, oldest first."""
        answer: list[dict[str, Any]] = await self._admin("GET", "/deliveries")
        return answer

    async def delivery(self, delivery_id: int) -> dict[str, Any]:
        """Show one delivery with its request headers and payload."""
        answer: dict[str, Any] = await self._admin("GET", f"/deliveries/{delivery_id}")
        return answer

    async def redeliver(self, delivery_id: int) -> dict[str, Any]:
        """Redeliver a delivery and return the new attempt once it completed."""
        answer: dict[str, Any] = await self._admin("POST", f"/deliveries/{delivery_id}/redeliver")
        return answer

    async def requests(self) -> list[dict[str, Any]]:
        """List the API requests devhub answered."""
        answer: list[dict[str, Any]] = await self._admin("GET", "/requests")
        return answer

    async def add_fault(self, **spec: Any) -> int:
        """Inject a fault (see docs/devhub.md) and return its id."""
        answer = await self._admin("POST", "/faults", spec)
        return int(answer["id"])

    async def clear_faults(self) -> None:
        """Remove every injected fault."""
        await self._admin("DELETE", "/faults")

    async def set_secret(self, full_name: str, name: str, value: str) -> None:
        """Set an Actions secret on a repository (`owner/name`)."""
        await self._admin("PUT", f"/repos/{full_name}/secrets/{name}", {"value": value})

    async def set_org_secret(self, org: str, name: str, value: str) -> None:
        """Set an Actions secret on an organization."""
        await self._admin("PUT", f"/orgs/{org}/secrets/{name}", {"value": value})

    async def runs(self) -> list[dict[str, Any]]:
        """List every workflow run with what devhub's runner did."""
        answer: list[dict[str, Any]] = await self._admin("GET", "/runs")
        return answer

    async def report_ci(
        self,
        full_name: str,
        head_sha: str,
        name: str,
        conclusion: str,
        *,
        summary: str | None = None,
        text: str | None = None,
        log: str | None = None,
        details_url: str | None = None,
        workflow: str | None = None,
    ) -> dict[str, Any]:
        """Report a finished CI job on a commit, as GitHub Actions would (see docs/devhub.md).

        Returns the workflow run as `runs()` lists it, plus `check_run_id` (the job's id).
        """
        body: dict[str, Any] = {"head_sha": head_sha, "name": name, "conclusion": conclusion}
        optional = {
            "summary": summary,
            "text": text,
            "log": log,
            "details_url": details_url,
            "workflow": workflow,
        }
        body |= {key: value for key, value in optional.items() if value is not None}
        answer: dict[str, Any] = await self._admin("POST", f"/repos/{full_name}/ci", body)
        return answer

    async def click_check_run_action(
        self, full_name: str, check_run_id: int, identifier: str, login: str
    ) -> None:
        """Press a check run's button as `login` (emits `check_run.requested_action`)."""
        path = f"/repos/{full_name}/check-runs/{check_run_id}/requested-action"
        await self._admin("POST", path, {"identifier": identifier, "login": login})
