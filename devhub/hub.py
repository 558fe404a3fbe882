"""DevHub: start and stop the local GitHub, seed its GitHub App, write the app's settings.

One `DevHub` is one GitHub Enterprise Server look-alike on loopback: REST at `/api/v3`, GraphQL at
`/api/graphql`, git at `/<owner>/<repo>.git`, and the admin API at `/_devhub`. The app's key,
webhook secret and admin token persist in the state directory so restarts reuse them; issues,
labels, users and tokens live in memory and are forgotten on restart (docs/devhub.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import secrets
import signal
import sys
from typing import TYPE_CHECKING, Any

from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from ruamel.yaml import YAML

from devhub import (
    admin,
    admin_actions,
    admin_ci,
    graphql,
    oidc,
    rest_actions,
    rest_apps,
    rest_checks,
    rest_commits,
    rest_contents,
    rest_forks,
    rest_git,
    rest_githttp,
    rest_issues,
    rest_labels,
    rest_meta,
    rest_pulls,
    rest_reactions,
    rest_repos,
    rest_review_comments,
    rest_reviews,
    rest_search,
    rest_subissues,
    rest_users,
    rest_variables,
)
from devhub.contract import OpenAPIContract, WebhookContract, default_fixture_dir
from devhub.git import GitStore
from devhub.http import CONTEXT, Context, api_middleware
from devhub.oidc import ID_TOKEN_PATH, ISSUER_PATH, OidcIssuer
from devhub.rest_json import Urls
from devhub.runner import LocalRunner
from devhub.state import App, Delivery, State, utcnow
from devhub.webhooks import Webhooks, matcher

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

    from devhub.state_actions import WorkflowRun

LOG = logging.getLogger("devhub")

APP_ID = 1
# GitHub Actions is an app too; 15368 is its id on github.com, where its check runs show it.
ACTIONS_APP_ID = 15368
ACTIONS_APP_SLUG = "github-actions"
DEFAULT_SLUG = "coder"
ADMIN_LOGIN = "devhub-admin"
KEY_FILE = "app-private-key.pem"
CREDENTIALS_FILE = "devhub.json"
APP_ENV_FILE = "app.env"
REPOS_DIR = "repos"
SECRET_FILE_MODE = 0o600
MAX_BODY_BYTES = 100 * 1024 * 1024
SHUTDOWN_TIMEOUT = 2.0
# Without a manifest the app asks for everything, as a newly registered app with every box ticked.
ALL_PERMISSIONS = {
    "actions": "write",
    "administration": "write",
    "checks": "write",
    "contents": "write",
    "deployments": "write",
    "issues": "write",
    "members": "write",
    "metadata": "read",
    "pull_requests": "write",
    "statuses": "write",
    "workflows": "write",
}
ALL_EVENTS = [
    "check_run",
    "check_suite",
    "create",
    "delete",
    "issue_comment",
    "issues",
    "label",
    "member",
    "pull_request",
    "pull_request_review",
    "pull_request_review_comment",
    "push",
    "repository",
    "repository_dispatch",
    "sub_issues",
    "workflow_job",
    "workflow_run",
]


class ManifestError(ValueError):
    """The app manifest (`app.yml`) cannot be read."""


class DevHub:
    """A local GitHub (GHES URL layout) for tests, the demo and `coder devhub`."""

    def __init__(
        self,
        state_dir: Path,
        *,
        webhook_url: str | None = None,
        strict: bool = False,
        manifest: Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.state_dir = state_dir
        self.strict = strict
        self.host = host
        self.port = port
        self.app_id = APP_ID
        self.contract_violations: list[str] = []
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.private_key_path = (state_dir / KEY_FILE).resolve()
        self.webhook_secret, self.admin_token = self._credentials()
        name, permissions, events = _read_manifest(manifest)
        self.app_slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or DEFAULT_SLUG
        self._webhook_url = webhook_url
        self.state = State()
        self._admin = self.state.add_account(ADMIN_LOGIN, "User", name="devhub site admin")
        self._admin.site_admin = True
        self.app = App(
            id=APP_ID,
            slug=self.app_slug,
            name=name,
            owner=self._admin,
            bot=self.state.add_account(f"{self.app_slug}[bot]", "Bot"),
            permissions=permissions,
            events=events,
            created_at=utcnow(),
            public_key_pem=self._public_key_pem(),
        )
        self.actions_app = App(
            id=ACTIONS_APP_ID,
            slug=ACTIONS_APP_SLUG,
            name="GitHub Actions",
            owner=self._admin,
            bot=self.state.add_account(f"{ACTIONS_APP_SLUG}[bot]", "Bot"),
            permissions={"actions": "write", "checks": "write", "contents": "write"},
            events=[],
            created_at=utcnow(),
            public_key_pem=b"",  # it never authenticates to devhub
            external_url="https://help.github.com/en/actions",
        )
        self.oidc = OidcIssuer(self.state_dir)
        self._runner_command: list[str] | None = None
        self._ctx: Context | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.api_url = ""

    # credentials

    def _credentials(self) -> tuple[str, str]:
        path = self.state_dir / CREDENTIALS_FILE
        if not self.private_key_path.is_file():
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,  # GitHub hands out PKCS#1 keys
                serialization.NoEncryption(),
            )
            _write_secret(self.private_key_path, pem)
        if path.is_file():
            saved = json.loads(path.read_text(encoding="utf-8"))
            return str(saved["webhook_secret"]), str(saved["admin_token"])
        secret, token = secrets.token_hex(20), "devhub_" + secrets.token_hex(20)
        credentials = {"webhook_secret": secret, "admin_token": token}
        _write_secret(path, json.dumps(credentials, indent=2).encode())
        return secret, token

    def _public_key_pem(self) -> bytes:
        key = serialization.load_pem_private_key(self.private_key_path.read_bytes(), None)
        return key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    # lifecycle

    async def start(self) -> None:
        """Bind the server and start delivering webhooks."""
        openapi, webhook_contract = _contracts(strict=self.strict)
        urls = Urls(web="http://unbound", api="http://unbound/api/v3")
        webhooks = Webhooks(
            self.state,
            self.app,
            self.webhook_secret,
            urls,
            contract=webhook_contract,
            on_violation=self._violation,
        )
        self._ctx = Context(
            state=self.state,
            app=self.app,
            admin=self._admin,
            git=GitStore(self.state_dir / REPOS_DIR),
            webhooks=webhooks,
            admin_token=self.admin_token,
            urls=urls,
            openapi=openapi,
            violations=self.contract_violations,
            actions_app=self.actions_app,
            oidc=self.oidc,
        )
        self._ctx.runner = LocalRunner(self._ctx, id_token_url=self._id_token_url)
        self._ctx.runner.command = self._runner_command
        application = web.Application(
            middlewares=[api_middleware, admin.admin_middleware], client_max_size=MAX_BODY_BYTES
        )
        application[CONTEXT] = self._ctx
        for module in ROUTE_MODULES:
            application.add_routes(module.ROUTES)
        self._runner = web.AppRunner(
            application, handle_signals=False, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        port = _bound_port(self._runner)
        self.url = f"http://{self.host}:{port}"
        self.api_url = f"{self.url}/api/v3"
        self._ctx.urls = webhooks.urls = Urls(web=self.url, api=self.api_url)
        await webhooks.start()
        webhooks.url = self._webhook_url
        LOG.info("devhub listening on %s", self.url)

    async def stop(self) -> None:
        """Stop serving: end injected delays, stop deliveries, close connections."""
        if self._ctx is not None:
            self._ctx.stopping.set()
            if self._ctx.runner is not None:
                await self._ctx.runner.stop()
            await self._ctx.webhooks.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _violation(self, message: str) -> None:
        if self._ctx is not None:
            self._ctx.violation(message)
        else:
            self.contract_violations.append(message)

    # what the app needs

    @property
    def webhook_url(self) -> str | None:
        """Return where the app's webhooks go."""
        return self._webhook_url

    @webhook_url.setter
    def webhook_url(self, value: str | None) -> None:
        self._webhook_url = value
        if self._ctx is not None:
            self._ctx.webhooks.url = value

    def app_env(self) -> dict[str, str]:
        """Return the settings `coder serve` needs to talk to this devhub as its GitHub."""
        host = self.url.removeprefix("http://")
        return {
            "APP_ID": str(self.app_id),
            "PRIVATE_KEY_PATH": str(self.private_key_path),
            "WEBHOOK_SECRET": self.webhook_secret,
            "GHE_HOST": host,
            "GHE_PROTOCOL": "http",
            "DEVHUB_ADMIN_TOKEN": self.admin_token,
            "DEVHUB_URL": self.url,
        }

    def write_app_env(self) -> Path:
        """Write `app_env()` to `state_dir/app.env` (mode 0600) and return its path."""
        path = self.state_dir / APP_ENV_FILE
        lines = "".join(f"{key}={value}\n" for key, value in self.app_env().items())
        _write_secret(path, lines.encode())
        return path

    async def wait_for_delivery(
        self,
        *,
        event: str,
        action: str | None = None,
        predicate: Callable[[Delivery], bool] | None = None,
        timeout: float = 10,  # noqa: ASYNC109 - part of DevHub's documented interface
    ) -> Delivery:
        """Return the first completed delivery of `event` (and `action`), waiting if needed."""
        if self._ctx is None:
            raise RuntimeError("devhub is not started")
        return await self._ctx.webhooks.wait_for(matcher(event, action, predicate), timeout=timeout)

    def follow_deliveries(self, *, from_now: bool = True) -> AsyncIterator[Delivery]:
        """Yield each webhook delivery as it completes, in order (from now on, or all)."""
        if self._ctx is None:
            raise RuntimeError("devhub is not started")
        start = len(self._ctx.state.deliveries) if from_now else 0
        return self._ctx.webhooks.follow(start)

    # Actions: the local runner and the OIDC issuer

    @property
    def runner_command(self) -> list[str] | None:
        """Return the command the local runner starts for coder's agent step (None: coder-agent)."""
        return self._runner_command

    @runner_command.setter
    def runner_command(self, value: list[str] | None) -> None:
        self._runner_command = list(value) if value is not None else None
        if self._ctx is not None and self._ctx.runner is not None:
            self._ctx.runner.command = self._runner_command

    @property
    def oidc_issuer(self) -> str:
        """Return the `iss` of the ID tokens devhub signs (`<url>/_services/token`)."""
        return self.url + ISSUER_PATH

    def _id_token_url(self) -> str:
        return f"{self.url}{ID_TOKEN_PATH}?api-version=2.0"

    def _local_runner(self) -> LocalRunner:
        if self._ctx is None or self._ctx.runner is None:
            raise RuntimeError("devhub is not started")
        return self._ctx.runner

    async def wait_for_run(
        self,
        run: int | Callable[[WorkflowRun], bool],
        *,
        timeout: float = 30,  # noqa: ASYNC109 - part of DevHub's documented interface
    ) -> WorkflowRun:
        """Wait for a workflow run: by id, until it completes; by predicate, until one matches."""
        if callable(run):
            return await self._local_runner().wait_for(run, timeout=timeout)
        wanted = run
        return await self._local_runner().wait_for(
            lambda r: r.id == wanted and r.status == "completed", timeout=timeout
        )

    async def kill_runner(self, run_id: int, *, timeout: float = 30) -> bool:  # noqa: ASYNC109
        """SIGKILL a run's agent process once it runs (a lost runner: the job ends `failure`)."""
        return await self._local_runner().kill(run_id, timeout=timeout)

    def mint_oidc_token(self, **claims: object) -> str:
        """Sign an Actions ID token with chosen claims (None removes a claim)."""
        if not self.url:
            raise RuntimeError("devhub is not started")
        return self.oidc.mint(self.url, dict(claims))


ROUTE_MODULES = (
    rest_meta,
    rest_apps,
    rest_users,
    rest_repos,
    rest_forks,
    rest_issues,
    rest_subissues,
    rest_labels,
    rest_reactions,
    rest_git,
    rest_contents,
    rest_pulls,
    rest_reviews,
    rest_review_comments,
    rest_checks,
    rest_commits,  # after rest_checks: `/commits/{ref}` would swallow `.../check-runs`
    rest_search,
    rest_variables,
    rest_actions,
    oidc,
    graphql,
    admin,
    admin_actions,
    admin_ci,
    rest_githttp,
)


def _contracts(*, strict: bool) -> tuple[OpenAPIContract | None, WebhookContract | None]:
    if not strict:
        return None, None
    fixtures = default_fixture_dir()
    if fixtures is None:
        raise RuntimeError("strict mode needs GitHub's descriptions in tests/fixtures/github")
    return (
        OpenAPIContract.load(fixtures / "openapi.json"),
        WebhookContract.load(fixtures / "webhooks.json"),
    )


def _read_manifest(manifest: Path | None) -> tuple[str, dict[str, str], list[str]]:
    """Read the app's name, permissions and events from an `app.yml` manifest."""
    if manifest is None:
        return DEFAULT_SLUG, dict(ALL_PERMISSIONS), list(ALL_EVENTS)
    data: Any = YAML(typ="safe").load(manifest.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ManifestError(f"{manifest}: a GitHub App manifest is a mapping")
    permissions = {str(k): str(v) for k, v in (data.get("default_permissions") or {}).items()}
    permissions.setdefault("metadata", "read")  # GitHub always grants metadata: read
    events = [str(event) for event in data.get("default_events") or []]
    return str(data.get("name") or DEFAULT_SLUG), permissions, events


def _write_secret(path: Path, content: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, SECRET_FILE_MODE)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
    path.chmod(SECRET_FILE_MODE)


def _bound_port(runner: web.AppRunner) -> int:
    for address in runner.addresses:
        return int(address[1])
    raise RuntimeError("devhub is not listening")


async def run(
    state_dir: Path,
    *,
    port: int,
    host: str,
    webhook_url: str | None,
    manifest: Path | None,
    strict: bool,
) -> None:
    """Run devhub for `coder devhub` until SIGINT or SIGTERM, then stop cleanly."""
    hub = DevHub(
        state_dir, webhook_url=webhook_url, strict=strict, manifest=manifest, host=host, port=port
    )
    await hub.start()
    try:
        env_path = hub.write_app_env()
        sys.stdout.write(
            f"devhub is up at {hub.url}\n"
            f"  REST     {hub.api_url}\n"
            f"  GraphQL  {hub.url}/api/graphql\n"
            f"  git      {hub.url}/<owner>/<repo>.git\n"
            f"  admin    {hub.url}/_devhub (token in {env_path})\n"
            f"  app      id {hub.app_id}, slug {hub.app_slug}, webhooks -> {hub.webhook_url}\n"
            f"  settings {env_path}\n"
        )
        sys.stdout.flush()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            await stop.wait()
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(ValueError, RuntimeError):
                    loop.remove_signal_handler(signum)
    finally:
        await hub.stop()
