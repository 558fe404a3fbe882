"""`coder demo`: the develop journey on devhub, offline, checked step by step.

devhub plays GitHub (REST, git, webhooks, Actions with a local runner, OIDC); the app runs as
`coder serve` would; the Actions job runs the real `coder-agent`. The one stand-in is the agent
itself: the `script` backend, a deterministic program. Every line printed comes from a check made
against devhub or the app; a check that fails prints a cross and the demo exits 1.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import shutil
import tempfile
import time
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from rich.console import Console
from rich.markup import escape

from app.artifacts import load_develop_artifact
from app.briefing import parse_trailers
from app.demo_budget import ApiCalls, api_calls, config_read
from app.demo_iterate import iterate
from app.demo_repo import ISSUE_BODY, ISSUE_TITLE, demo_files
from app.labels import CODER_LABELS, DEVELOP
from app.settings import load_settings

if TYPE_CHECKING:
    from devhub.hub import DevHub
    from devhub.state import Delivery
    from devhub.testing import AdminClient

REPO_ROOT = Path(__file__).resolve().parent.parent
ORG = "acme"
OWNER = "alice"
REPO = "widgets"
FULL_NAME = f"{ORG}/{REPO}"
STEP_TIMEOUT = 30.0
JOURNEY_TIMEOUT = 120.0
API_TARGET = 12
# What one develop run costs today, call by call in docs/develop-run.md ("The API budget").
API_ACCOUNTED = 13

# Built, though this demo shows only develop and a fix: research/design chains with typed
# hand-offs (docs/workflows-as-code.md), every /coder command, check-run buttons, the
# changes-requested loop and human-in-the-loop answers (docs/commands.md). A review run's verdict
# reaches only its check run.
NOT_BUILT_YET = (
    "budgets: approving an overspend, monthly spend (the budget work)",
    "review posted as a pull-request review, and the policy gates (coder/policy, coder/claims)",
    "the merge queue, and scheduling across repositories",
)


@dataclass
class Demo:
    """The demo's console, clock and scorecard."""

    console: Console
    started: float = field(default_factory=time.monotonic)
    failures: list[str] = field(default_factory=list)

    def step(self, title: str) -> None:
        """Print a step heading."""
        self.console.print(f"\n[bold cyan]▸ {title}[/]")

    def check(self, ok: bool, message: str, detail: str = "") -> bool:
        """Print one checked fact; remember failures."""
        mark = "[green]✓[/]" if ok else "[red]✗[/]"
        extra = f" [dim]({escape(detail)})[/]" if detail else ""
        self.console.print(f"  {mark} {escape(message)}{extra}")
        if not ok:
            self.failures.append(message)
        return ok

    def warn(self, message: str, detail: str = "") -> None:
        """Print a measured fact that misses a target; it is not a failed check."""
        extra = f" [dim]({escape(detail)})[/]" if detail else ""
        self.console.print(f"  [yellow]![/] {escape(message)}{extra}")

    def fact(self, message: str, detail: str = "") -> None:
        """Print a fact that holds by construction (the call before it succeeded)."""
        self.check(ok=True, message=message, detail=detail)

    def live(self, message: str) -> None:
        """Print one line of the live run, with the time since the demo started."""
        elapsed = time.monotonic() - self.started
        self.console.print(f"  [dim]{elapsed:6.1f}s[/]  {escape(message)}")

    def note(self, message: str) -> None:
        """Print a plain line of context."""
        self.console.print(f"    [dim]{escape(message)}[/]")


async def run_demo(*, keep: bool = False, console: Console | None = None) -> int:
    """Run the demo; return the process exit status."""
    demo = Demo(console or Console(highlight=False))
    state_dir = Path(tempfile.mkdtemp(prefix="coder-demo-"))
    try:
        async with AsyncExitStack() as stack:
            await _walk(demo, stack, state_dir)
    except TimeoutError:
        demo.check(ok=False, message="the journey did not finish in time")
    finally:
        if keep:
            demo.console.print(f"\n[dim]devhub state kept in {state_dir}[/]")
        else:
            shutil.rmtree(state_dir, ignore_errors=True)
    _print_not_built(demo)
    if demo.failures:
        demo.console.print(f"\n[bold red]{len(demo.failures)} check(s) failed.[/]")
        return 1
    elapsed = time.monotonic() - demo.started
    demo.console.print(f"\n[bold green]Every step above was checked ({elapsed:.1f}s).[/]")
    return 0


async def _walk(demo: Demo, stack: AsyncExitStack, state_dir: Path) -> None:
    hub, admin, app_url, queue = await _start(demo, stack, state_dir)
    alice_token = await _make_repo(demo, hub, admin, queue)
    rest = admin.rest(alice_token)
    status, _, issue = await rest.post(
        f"/repos/{FULL_NAME}/issues", {"title": ISSUE_TITLE, "body": ISSUE_BODY}
    )
    demo.check(status == 201, f"{OWNER} opened issue #{issue.get('number')}: {ISSUE_TITLE}")

    demo.step(f"{OWNER} labels #{issue['number']} {DEVELOP}; the run, live")
    requests_before = len(await admin.requests())
    follower = hub.follow_deliveries()
    status, _, _ = await rest.post(
        f"/repos/{FULL_NAME}/issues/{issue['number']}/labels", {"labels": [DEVELOP]}
    )
    demo.check(status == 200, f"label {DEVELOP} added")
    async with asyncio.timeout(JOURNEY_TIMEOUT):
        run_conclusion = await _follow(demo, follower)
    demo.check(run_conclusion == "success", "the Actions run succeeded", str(run_conclusion))
    requests = (await admin.requests())[requests_before:]

    pull = await _show_result(demo, rest, issue["number"])
    _show_api_calls(demo, requests)
    requests_before = len(await admin.requests())
    await iterate(
        demo, hub=hub, admin=admin, queue=queue, rest=rest, full_name=FULL_NAME, pull=pull
    )
    _show_config_cached(demo, (await admin.requests())[requests_before:])
    await _redelivery_has_no_effect(demo, hub, admin, rest)
    await _forged_webhook_is_refused(demo, hub, app_url)
    if hub.strict:
        demo.check(
            not hub.contract_violations,
            "every request, response and webhook matched GitHub's published descriptions",
            f"{len(hub.contract_violations)} violation(s)",
        )
        for violation in hub.contract_violations[:5]:
            demo.note(violation)


async def _start(
    demo: Demo, stack: AsyncExitStack, state_dir: Path
) -> tuple[DevHub, AdminClient, str, Any]:
    # Imported here: the app never imports devhub at module level (docs/architecture.md).
    from app.server import make_app, queue_of  # noqa: PLC0415
    from devhub.contract import default_fixture_dir  # noqa: PLC0415
    from devhub.hub import DevHub  # noqa: PLC0415
    from devhub.testing import AdminClient  # noqa: PLC0415

    demo.step("devhub: a local GitHub (REST, git, webhooks, Actions, OIDC) on loopback")
    manifest = REPO_ROOT / "app.yml"
    strict = default_fixture_dir() is not None
    hub = DevHub(state_dir, strict=strict, manifest=manifest if manifest.is_file() else None)
    await hub.start()
    stack.push_async_callback(hub.stop)
    demo.fact(f"devhub is up at {hub.url}", "strict contract checks on" if strict else "")
    env_path = hub.write_app_env()

    demo.step("the app: `coder serve` with the settings devhub wrote")
    settings = load_settings(env_path, {"PORT": "0"})
    runner = web.AppRunner(make_app(settings), handle_signals=False)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    app_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    hub.webhook_url = f"{app_url}{settings.webhook_path}"
    demo.fact(f"app listening on {app_url}", f"webhooks at {settings.webhook_path}")
    async with aiohttp.ClientSession() as session, session.get(f"{app_url}/readyz") as response:
        demo.check(response.status == 200, "GET /readyz: the app's JWT is accepted")
    admin = AdminClient(hub.url, hub.admin_token)
    stack.push_async_callback(admin.close)
    return hub, admin, app_url, queue_of(runner.app)


async def _make_repo(demo: Demo, hub: DevHub, admin: AdminClient, queue: Any) -> str:
    demo.step(f"{OWNER} creates {FULL_NAME} with a bug, a failing test and coder's config")
    alice = await admin.create_user(OWNER)
    assert alice.token is not None
    await admin.create_org(ORG, OWNER)
    await admin.create_repo(ORG, REPO, alice.token, auto_init=True)
    rest = admin.rest(alice.token)
    for path, text in demo_files().items():
        content = base64.b64encode(text.encode()).decode()
        status, _, _ = await rest.put(
            f"/repos/{FULL_NAME}/contents/{path}", {"message": f"Add {path}", "content": content}
        )
        if not demo.check(status == 201, f"committed {path}"):
            raise RuntimeError(f"could not commit {path}")
    demo.note("the agent is the `script` backend: a deterministic stand-in, not an AI")

    demo.step(f"{OWNER} installs coder on {ORG}")
    await admin.install(ORG, "all")
    delivery = await hub.wait_for_delivery(
        event="installation", action="created", timeout=STEP_TIMEOUT
    )
    demo.check(delivery.status_code == 202, "signed installation webhook acknowledged", "202")
    outcome = await queue.wait_for(delivery.guid)
    demo.check(outcome == "ok", f"coder created its {len(CODER_LABELS)} labels", outcome)
    return alice.token


async def _follow(demo: Demo, follower: Any) -> str | None:
    """Print a line per webhook of the run until its workflow run completes."""
    async for delivery in follower:
        line = _describe(delivery)
        if line:
            demo.live(line)
        if delivery.event == "workflow_run" and delivery.action == "completed":
            payload = json.loads(delivery.body)
            conclusion = payload["workflow_run"]["conclusion"]
            return str(conclusion) if conclusion is not None else None
    return None


def _describe(delivery: Delivery) -> str:
    """Say in one line what a webhook tells about the run (empty: nothing worth a line)."""
    payload = json.loads(delivery.body)
    key = f"{delivery.event}.{delivery.action}" if delivery.action else delivery.event
    describe = DESCRIBERS.get(key)
    return describe(payload) if describe is not None else ""


def _check_run(payload: dict[str, Any]) -> str:
    check = payload["check_run"]
    state = check["conclusion"] or check["status"]
    title = (check.get("output") or {}).get("title") or ""
    where = f"on {check['head_sha'][:7]}"
    return f"check run {check['name']} {payload['action']}: {state} {where} {title}".rstrip()


def _progress(payload: dict[str, Any]) -> str:
    body = payload["pull_request"]["body"] or ""
    running = [line for line in body.splitlines() if "(running)" in line]
    done = [line[6:] for line in body.splitlines() if line.startswith("- [x] ")]
    if running:
        return f"progress: {running[0].removeprefix('- [ ] ').replace('**', '')}"
    return f"progress: done: {', '.join(done) or 'nothing yet'}"


def _push(payload: dict[str, Any]) -> str:
    head = payload.get("head_commit") or {}
    title = str(head.get("message", "")).splitlines()[0] if head else ""
    return f"push to {payload['ref'].removeprefix('refs/heads/')}: {payload['after'][:7]} {title}"


DESCRIBERS: dict[str, Any] = {
    "issues.labeled": lambda p: f"#{p['issue']['number']} labelled {p['label']['name']}",
    "issues.unlabeled": lambda p: f"#{p['issue']['number']} unlabelled {p['label']['name']}",
    "pull_request.opened": lambda p: (
        f"{'draft ' if p['pull_request']['draft'] else ''}pull request "
        f"#{p['number']} opened: {p['pull_request']['title']}"
    ),
    "pull_request.edited": _progress,
    "pull_request.ready_for_review": lambda p: f"pull request #{p['number']} ready for review",
    "check_run.created": _check_run,
    "check_run.completed": _check_run,
    "workflow_run.requested": lambda p: f"Actions: {p['workflow_run']['display_title']} queued",
    "workflow_job.in_progress": lambda p: (
        f"Actions: job running on {p['workflow_job']['runner_name']}"
    ),
    "workflow_job.completed": lambda p: f"Actions: job {p['workflow_job']['conclusion']}",
    "workflow_run.completed": lambda p: f"Actions: run {p['workflow_run']['conclusion']}",
    "push": _push,
}


async def _show_result(demo: Demo, rest: Any, issue_number: int) -> dict[str, Any]:
    demo.step("the result")
    _, _, pulls = await rest.get(f"/repos/{FULL_NAME}/pulls?state=all")
    demo.check(len(pulls) == 1, "exactly one pull request", f"{len(pulls)}")
    pull = pulls[0]
    demo.check(not pull["draft"], f"#{pull['number']} is ready for review", pull["html_url"])
    demo.check(f"Closes #{issue_number}" in (pull["body"] or ""), f"it says Closes #{issue_number}")
    _, _, checks = await rest.get(
        f"/repos/{FULL_NAME}/commits/{pull['head']['sha']}/check-runs?check_name=coder/develop"
    )
    (check,) = checks["check_runs"]
    demo.check(
        check["conclusion"] == "success",
        "check run coder/develop is green",
        check["output"]["title"] or "",
    )
    for line in check["output"]["summary"].splitlines():
        if line.strip():
            demo.note(line)
    artifact = load_develop_artifact(check["output"]["text"])
    demo.check(artifact is not None and artifact.testsPass is True, "its artifact: tests pass")
    _, _, commit = await rest.get(f"/repos/{FULL_NAME}/commits/{pull['head']['sha']}")
    message = commit["commit"]["message"]
    trailers = parse_trailers(message)
    demo.check(
        {"Coder-Run", "Coder-Workflow", "Coder-Model"} <= trailers.keys(),
        f"commit {commit['sha'][:7]}: {message.splitlines()[0]}",
        ", ".join(f"{k}: {v}" for k, v in trailers.items()),
    )
    _, _, files = await rest.get(f"/repos/{FULL_NAME}/pulls/{pull['number']}/files")
    changed = [f["filename"] for f in files]
    demo.check(changed == ["calc.py"], "the fix: calc.py", ", ".join(changed))
    _, _, labels = await rest.get(f"/repos/{FULL_NAME}/issues/{issue_number}/labels")
    demo.check("coder:running" not in {label["name"] for label in labels}, "coder:running removed")
    return dict(pull)


def _show_api_calls(demo: Demo, requests: list[dict[str, Any]]) -> None:
    demo.step("API economy (from devhub's request log)")
    calls = api_calls(requests)
    essential = calls.app + calls.runner + calls.jwt
    total = len(essential)
    over = total - API_TARGET
    message = f"{total} rate-limited REST calls for the whole run (DESIGN §8: ≤ {API_TARGET})"
    detail = (
        f"app {len(calls.app)}, runner {len(calls.runner)}, app JWT {len(calls.jwt)}; "
        f"plus {_plural(len(calls.progress), 'progress edit')} and {len(calls.graphql)} GraphQL"
    )
    if over > 0:
        demo.warn(f"{message}: {over} over the target", detail)
        demo.note("docs/develop-run.md, 'The API budget', says what costs what and why")
    else:
        demo.check(ok=True, message=message, detail=detail)
    demo.check(
        total <= API_ACCOUNTED,
        f"no more calls than the {API_ACCOUNTED} docs/develop-run.md accounts for",
        f"{total}",
    )
    # The app's first read of the config pays; later ones are conditional and come back 304.
    cold = [r for r in calls.app if config_read(r) and r["status"] == HTTPStatus.OK]
    if cold:
        steady = total - len(cold)
        demo.check(
            steady <= API_TARGET,
            f"{steady} in steady state: the config read is a free 304 once the app has read it",
            "this run was the app's first read of .github/coder.yml; see the steady state below",
        )
    _list_calls(demo, calls, first_reads={id(r) for r in cold})


def _list_calls(demo: Demo, calls: ApiCalls, *, first_reads: set[int]) -> None:
    progress = {id(r) for r in calls.progress}
    kinds = (
        [("app", r) for r in calls.app]
        + [("app JWT", r) for r in calls.jwt]
        + [("progress" if id(r) in progress else "runner", r) for r in calls.by_runner]
    )
    for kind, r in kinds:
        why = "  (the first read: a free 304 once cached)" if id(r) in first_reads else ""
        demo.note(f"{kind:8} {r['method']:6} {r['path'].removeprefix('/api/v3')}{why}")


def _show_config_cached(demo: Demo, requests: list[dict[str, Any]]) -> None:
    demo.step("API economy, steady state (from devhub's request log)")
    reads = [r for r in requests if config_read(r) and not r["token_repository_ids"]]
    statuses = sorted({int(r["status"]) for r in reads})
    demo.check(
        bool(reads) and statuses == [HTTPStatus.NOT_MODIFIED],
        "the app's later reads of .github/coder.yml were free 304s (ETag cache)",
        f"{len(reads)} read(s): HTTP {', '.join(map(str, statuses)) or 'none'}",
    )


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


async def _redelivery_has_no_effect(demo: Demo, hub: DevHub, admin: AdminClient, rest: Any) -> None:
    demo.step("GitHub redelivers the label webhook (same X-GitHub-Delivery)")
    labeled = await hub.wait_for_delivery(
        event="issues",
        action="labeled",
        predicate=lambda d: json.loads(d.body)["label"]["name"] == DEVELOP,
    )
    again = await admin.redeliver(labeled.id)
    demo.check(again.get("status_code") == 200, "answered as a duplicate", "HTTP 200")
    _, _, pulls = await rest.get(f"/repos/{FULL_NAME}/pulls?state=all")
    _, _, branches = await rest.get(f"/repos/{FULL_NAME}/branches")
    coder_branches = [b["name"] for b in branches if b["name"].startswith("coder/")]
    demo.check(
        len(pulls) == 1 and len(coder_branches) == 1,
        "still one branch and one pull request",
        ", ".join(coder_branches),
    )


async def _forged_webhook_is_refused(demo: Demo, hub: DevHub, app_url: str) -> None:
    demo.step("someone forges a webhook without the secret")
    body = json.dumps({"zen": "forged"}).encode()
    signature = hmac.new(b"not-the-secret", body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "ping",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": f"sha256={signature}",
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(hub.webhook_url or app_url, data=body, headers=headers) as response,
    ):
        demo.check(response.status == 401, "rejected before the body was parsed", "HTTP 401")


def _print_not_built(demo: Demo) -> None:
    demo.console.print("\n[bold]Not built yet[/] (open issues; the demo grows with them):")
    for item in NOT_BUILT_YET:
        demo.console.print(f"  [yellow]·[/] {item}")
