"""`coder demo`: run what works today on devhub, offline, and say plainly what is not built yet.

Every line the demo prints comes from a check it just made against devhub or the app. A step that
does not hold prints a cross and makes the demo exit non-zero.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import tempfile
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from rich.console import Console

from app.labels import CODER_LABELS
from app.settings import load_settings

REPO_ROOT = Path(__file__).resolve().parent.parent
ORG = "acme"
OWNER = "alice"
REPO = "widgets"
DELIVERY_TIMEOUT = 30.0

NOT_BUILT_YET = (
    "the develop journey: label an issue coder:develop -> branch, draft PR, Actions run, tested PR",
    "workflow-as-code: .github/coder.yml, roles, typed artifacts, model tiers",
    "/coder commands, check-run buttons, fix loops, human-in-the-loop",
    "review, policy gates, the merge queue, and cross-repo scheduling",
)


@dataclass
class Demo:
    """The demo's running state and its scorecard."""

    console: Console
    failures: list[str] = field(default_factory=list)

    def step(self, title: str) -> None:
        """Print a step heading."""
        self.console.print(f"\n[bold cyan]▸ {title}[/]")

    def check(self, ok: bool, message: str, detail: str = "") -> bool:
        """Print one checked fact; remember failures."""
        mark = "[green]✓[/]" if ok else "[red]✗[/]"
        self.console.print(f"  {mark} {message}" + (f" [dim]({detail})[/]" if detail else ""))
        if not ok:
            self.failures.append(message)
        return ok

    def fact(self, message: str, detail: str = "") -> None:
        """Print a fact that holds by construction (the step before it succeeded)."""
        self.check(ok=True, message=message, detail=detail)

    def note(self, message: str) -> None:
        """Print a plain line of context."""
        self.console.print(f"    [dim]{message}[/]")


async def run_demo(*, keep: bool = False, console: Console | None = None) -> int:
    """Run the demo; return the process exit status."""
    demo = Demo(console or Console(highlight=False))
    state_dir = Path(tempfile.mkdtemp(prefix="coder-demo-"))
    try:
        async with AsyncExitStack() as stack:
            await _walk(demo, stack, state_dir)
    finally:
        if keep:
            demo.console.print(f"\n[dim]devhub state kept in {state_dir}[/]")
        else:
            shutil.rmtree(state_dir, ignore_errors=True)
    _print_not_built(demo)
    if demo.failures:
        demo.console.print(f"\n[bold red]{len(demo.failures)} check(s) failed.[/]")
        return 1
    demo.console.print("\n[bold green]Every step above was checked against devhub.[/]")
    return 0


async def _walk(demo: Demo, stack: AsyncExitStack, state_dir: Path) -> None:
    # Imported here: the app never imports devhub at module level (docs/architecture.md).
    from app.server import make_app, queue_of  # noqa: PLC0415
    from devhub.contract import default_fixture_dir  # noqa: PLC0415
    from devhub.hub import DevHub  # noqa: PLC0415
    from devhub.testing import AdminClient  # noqa: PLC0415

    demo.step("devhub: a local GitHub (REST, git, apps, webhooks) on loopback")
    manifest = REPO_ROOT / "app.yml"
    strict = default_fixture_dir() is not None
    hub = DevHub(state_dir, strict=strict, manifest=manifest if manifest.is_file() else None)
    await hub.start()
    stack.push_async_callback(hub.stop)
    demo.fact(f"devhub is up at {hub.url}", "strict contract checks on" if strict else "")
    env_path = hub.write_app_env()
    demo.check(
        env_path.is_file(), f"wrote {env_path.name}: the app's credentials, like `coder setup`"
    )

    demo.step("the app: `coder serve` with the settings devhub wrote")
    settings = load_settings(env_path, {"PORT": "0"})
    runner = web.AppRunner(make_app(settings), handle_signals=False)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    app_port = _bound_port(runner)
    app_url = f"http://127.0.0.1:{app_port}"
    hub.webhook_url = f"{app_url}{settings.webhook_path}"
    queue = queue_of(runner.app)
    demo.fact(f"app listening on {app_url}; webhooks -> {settings.webhook_path}")

    session = aiohttp.ClientSession()
    stack.push_async_callback(session.close)
    async with session.get(f"{app_url}/healthz") as response:
        demo.check(response.status == 200, "GET /healthz answers 200")
    async with session.get(f"{app_url}/readyz") as response:
        body = await response.text()
        demo.check(
            response.status == 200, "GET /readyz answers 200: app JWT accepted by GitHub", body
        )

    demo.step(f"a person on GitHub: {OWNER} creates org {ORG} and repo {ORG}/{REPO}")
    admin = AdminClient(hub.url, hub.admin_token)
    stack.push_async_callback(admin.close)
    alice = await admin.create_user(OWNER)
    await admin.create_org(ORG, OWNER)
    repo = await admin.create_repo(ORG, REPO, alice.token, auto_init=True)
    demo.check(
        repo.get("full_name") == f"{ORG}/{REPO}", f"{ORG}/{REPO} exists with a real git repo"
    )

    demo.step(f"{OWNER} installs coder on {ORG}: GitHub sends a signed `installation` webhook")
    installation_id = await admin.install(ORG, "all")
    delivery = await hub.wait_for_delivery(
        event="installation", action="created", timeout=DELIVERY_TIMEOUT
    )
    demo.check(
        delivery.status_code == 202,
        "the app verified X-Hub-Signature-256 and acknowledged at once",
        f"HTTP {delivery.status_code}, installation {installation_id}",
    )
    outcome = await queue.wait_for(delivery.guid)
    demo.check(outcome == "ok", "the app handled it in the background", f"outcome: {outcome}")

    assert alice.token is not None
    await _show_labels(demo, admin, alice.token)

    demo.step("GitHub redelivers the same webhook (same X-GitHub-Delivery)")
    writes_before = await _count_label_writes(admin)
    redelivered = await admin.redeliver(delivery.id)
    demo.check(
        redelivered.get("status_code") == 200,
        "the app recognised the delivery id and did nothing twice",
        f"HTTP {redelivered.get('status_code')}",
    )
    writes_after = await _count_label_writes(admin)
    demo.check(writes_after == writes_before, "no label was written again")

    demo.step("someone forges a webhook without the secret")
    status = await _post_forged(session, hub.webhook_url)
    demo.check(status == 401, "rejected before the body was parsed", f"HTTP {status}")

    demo.step("API economy")
    calls = await _app_calls(admin)
    demo.check(calls > 0, f"the app made {calls} REST call(s) to set up {len(CODER_LABELS)} labels")
    if strict:
        demo.check(
            not hub.contract_violations,
            "every request and webhook matched GitHub's published OpenAPI and webhook schemas",
            f"{len(hub.contract_violations)} violation(s)",
        )
        for violation in hub.contract_violations[:5]:
            demo.note(violation)


async def _show_labels(demo: Demo, admin: Any, token: str) -> None:
    status, _, labels = await admin.rest(token).get(f"/repos/{ORG}/{REPO}/labels?per_page=100")
    names = {label["name"] for label in labels} if status == 200 else set()
    wanted = {label.name for label in CODER_LABELS}
    demo.check(
        wanted <= names,
        f"{ORG}/{REPO} now has coder's {len(wanted)} labels",
        ", ".join(sorted(wanted)),
    )


async def _count_label_writes(admin: Any) -> int:
    requests = await admin.requests()
    return sum(1 for r in requests if r["method"] in {"POST", "PATCH"} and "/labels" in r["path"])


async def _app_calls(admin: Any) -> int:
    requests = await admin.requests()
    return sum(1 for r in requests if str(r.get("token_owner", "")).endswith("[bot]"))


async def _post_forged(session: aiohttp.ClientSession, url: str | None) -> int:
    assert url is not None
    body = json.dumps({"zen": "forged"}).encode()
    signature = hmac.new(b"not-the-secret", body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "ping",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": f"sha256={signature}",
    }
    async with session.post(url, data=body, headers=headers) as response:
        return response.status


def _bound_port(runner: web.AppRunner) -> int:
    for address in runner.addresses:
        return int(address[1])
    raise RuntimeError("the app is not listening")


def _print_not_built(demo: Demo) -> None:
    demo.console.print("\n[bold]Not built yet[/] (open issues; the demo will grow with them):")
    for item in NOT_BUILT_YET:
        demo.console.print(f"  [yellow]·[/] {item}")
