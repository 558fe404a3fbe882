"""Preparing a run: its subject and snapshot, the workspace, config, prompts, input artifact.

An issue subject's snapshot is the run branch's first commit (docs/develop-run.md). A pull
request subject (a review) has no branch of its own: the app dispatches it with `issue` = `pull`
and its snapshot is the ```` ```json coder-run ```` block of the run's check run, which only the
app can write (docs/workflows-as-code.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

import gidgethub

from actions.agent.backends import make_backend
from actions.agent.github import get_check_run
from actions.agent.kinds import KindRules, rules_for
from actions.agent.role_prompts import load_role_prompts
from app.artifacts import check_input, parse_artifact_block
from app.briefing import BRANCH_PREFIX, Snapshot, parse_run_request, snapshot_from_commit
from app.config import ACCEPTS, CONFIG_PATH, CoderConfig, Workflow
from app.config_record import config_from_record
from app.repo_config import FileText, base_needed, read_config_file, resolve_config

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping
    from pathlib import Path

    from pydantic import BaseModel

    from actions.agent.backends import Backend
    from actions.agent.env import RunnerEnv
    from actions.agent.github import CheckRun, CheckRunState, PullRequest
    from actions.agent.workspace import Author, Workspace
    from app.github import GitHub

log = logging.getLogger("coder-agent")

RELEASE_KIND = "release"
ARCHITECT = "architect"


class RunnerError(Exception):
    """The run cannot go on; the message is shown on GitHub as the reason."""


class CheckRunEndedError(Exception):
    """The run's check run was completed before this job started (`/coder cancel`, an earlier
    attempt): nothing may run, and the check run is left as it is."""

    def __init__(self, check_run: int, state: CheckRunState) -> None:
        super().__init__(f"check run {check_run} is already {state.status} ({state.conclusion})")
        self.check_run = check_run
        self.state = state


@dataclass(frozen=True)
class Plan:
    """What preparing the run learned: the PR, the config, the snapshot, the backend."""

    pull: PullRequest
    config: CoderConfig
    workflow: Workflow
    snapshot: Snapshot
    author: Author
    start_sha: str
    base_ref: str
    instructions: tuple[tuple[str, str], ...]
    backend: Backend
    role_prompts: Mapping[str, str] = field(default_factory=dict)
    input_artifact: BaseModel | None = None
    on_pull: bool = False  # the subject is a pull request: its body and draft state are not ours
    read_only: bool = False  # a fork's code: nothing is written, the result goes to the app
    check_run: CheckRunState | None = None  # the run's check run as the job found it

    @property
    def kind(self) -> str:
        """Return the kind of artifact the run produces."""
        return self.workflow.produces

    @property
    def steps(self) -> tuple[str, ...]:
        """Return the steps this run takes: all, or a continuation's from the one that asked."""
        steps, at = self.workflow.steps, self.snapshot.resume_at
        return steps[steps.index(at) :] if at in steps else steps

    @property
    def pause_after(self) -> str | None:
        """Return the step after which the run waits for approval (`approve_plan`), if any."""
        steps = self.steps
        if not self.workflow.approve_plan or ARCHITECT not in steps[:-1]:
            return None
        return ARCHITECT

    @property
    def rules(self) -> KindRules:
        """Return how a run of this kind goes (push, tests, specs, ready)."""
        return rules_for(self.kind)


@dataclass
class Preparer:
    """Everything preparing a run needs from the runner, and the snapshot once it is read."""

    env: RunnerEnv
    gh: GitHub
    workspace: Workspace
    scratch: Callable[[], Path]
    default_author: Author
    read_only: bool = False
    # Set as soon as it is known, so a run that fails later can still answer who asked for it.
    snapshot: Snapshot | None = field(default=None, init=False)

    async def prepare(self, pull: PullRequest) -> Plan:
        """Clone the subject; read config, snapshot, instructions, prompts and input artifact."""
        workspace = self.workspace
        # The app dispatches a pull-request subject with issue = pull (docs/workflows-as-code.md).
        on_pull = self.env.issue == self.env.pull
        request = await self._read_check_run(self.env.check_run, "the run's") if on_pull else None
        # Cancelled while the job was queued (or ended by an earlier attempt): run nothing.
        found = request.state if request is not None else pull.check_run
        if found is not None and found.completed:
            raise CheckRunEndedError(self.env.check_run, found)
        if pull.check_run is None and not on_pull:
            log.info("check run %d is not on the branch's head; going on", self.env.check_run)
        if self.read_only and request is None:
            raise RunnerError("a read-only run works on a pull request, and this one has none")
        if request is None and not pull.head_ref.startswith(BRANCH_PREFIX):
            raise RunnerError(f"the pull request's branch {pull.head_ref!r} is not a coder branch")
        if self.read_only:
            # A fork's branch is in another repository: its head is kept in this one.
            await workspace.clone_pull(pull.number)
        else:
            await workspace.clone(pull.head_ref)
        if request is not None:
            # Review exactly the head the app put the check run on, even if the branch moved.
            await workspace.checkout(request.head_sha)
        start_sha = await workspace.head()
        base_ref = await workspace.fetch_branch(pull.base_ref)
        snapshot, author = await self._snapshot(request, base_ref)
        self.snapshot = snapshot
        config = await self._config(base_ref, pull.base_ref, request)
        if snapshot.read_only and not self.read_only:
            # A fork's code with a token that writes: only a fallback could get here.
            raise RunnerError("this run is read-only (a fork's pull request), and its token is not")
        if snapshot.run_id != self.env.run_id:
            log.warning("the subject belongs to run %s, not %s", snapshot.run_id, self.env.run_id)
        workflow = config.workflows.get(snapshot.workflow)
        if workflow is None:
            raise RunnerError(f"{CONFIG_PATH} has no workflow {snapshot.workflow!r}")
        rules = rules_for(workflow.produces)
        if rules.pushes and not self.read_only and not pull.head_ref.startswith(BRANCH_PREFIX):
            raise RunnerError(
                f"the pull request's branch {pull.head_ref!r} is not a coder branch, and a "
                f"{workflow.produces} run pushes (only a review may run on any branch)"
            )
        if rules.pushes and request is not None and pull.head_sha != request.head_sha:
            # Asked for (or approved) at one commit: someone pushed since, so what was asked
            # may no longer fit. A writer asks again to work on the new head.
            raise RunnerError(
                f"the branch moved from {request.head_sha[:12]} to {pull.head_sha[:12]} after "
                f"this run was asked for; nothing was changed. Ask again to work on "
                f"{pull.head_sha[:12]}."
            )
        if workflow.produces == RELEASE_KIND:
            await workspace.fetch_tags()
        read_base = partial(workspace.read_file, base_ref)
        return Plan(
            pull=pull,
            config=config,
            workflow=workflow,
            snapshot=snapshot,
            author=author,
            start_sha=start_sha,
            base_ref=base_ref,
            instructions=await _instructions(config, read_base),
            backend=make_backend(config.agent, script_file=await self._script(config, read_base)),
            role_prompts=await load_role_prompts(workflow.steps, config, read_base, pull.base_ref),
            input_artifact=await self._input_artifact(snapshot, workflow.produces),
            on_pull=on_pull,
            read_only=self.read_only,
            check_run=found,
        )

    async def _config(
        self, base_ref: str, base_branch: str, request: CheckRun | None
    ) -> CoderConfig:
        # The app's way of reading config (`resolve_config`), with this repository's file from
        # the checkout of its default branch. A file that builds on another repository's
        # (`_extends`, or none: the org's defaults) needs a file this run's token cannot read on
        # github.com; the app recorded what it merged in the run's check run (app.config_record).
        repository = self.env.repository
        own = await self.workspace.read_file(base_ref, CONFIG_PATH)
        base = base_needed(own, repository)
        parsed = None
        if base is not None and base.full_name.lower() != repository.lower():
            if request is None:
                request = await self._read_check_run(self.env.check_run, "the run's")
            parsed = config_from_record(request.text)
            if parsed is None:
                log.warning(
                    "check run %s carries no config record; reading %s with the run's token",
                    request.id,
                    base.full_name,
                )

        async def read(name: str, ref: str | None) -> FileText:
            if name.lower() == repository.lower():
                return FileText(own)
            return await read_config_file(self.gh, name, ref)

        if parsed is None:
            parsed = (await resolve_config(read, repository, base_ref)).result
        if parsed.config is None:
            problems = "; ".join(str(error) for error in parsed.errors[:5])
            raise RunnerError(f"{CONFIG_PATH} on {base_branch} is invalid: {problems}")
        return parsed.config

    async def _snapshot(self, request: CheckRun | None, base_ref: str) -> tuple[Snapshot, Author]:
        if request is not None:
            snapshot = parse_run_request(request.text)
            if snapshot is None:
                raise RunnerError(
                    f"check run {request.id} carries no run request (a ```json coder-run block)"
                )
            return snapshot, self.default_author
        first = await self.workspace.first_commit_after(base_ref)
        message = await self.workspace.message(first) if first else ""
        taken = snapshot_from_commit(self.env.repository, message)
        if first is None or taken is None:
            raise RunnerError("the branch's first commit does not carry coder's issue snapshot")
        author = await self.workspace.author(first)
        # The app's initial commit carries its bot identity; anything else is not used.
        return taken, author if author.name.endswith("[bot]") else self.default_author

    async def _script(
        self, config: CoderConfig, read_base: Callable[[str], Awaitable[str | None]]
    ) -> Path | None:
        # The script comes from the default branch and runs from outside the workspace, so
        # nothing the agent edits on the run branch changes what runs.
        if config.agent.backend != "script" or not config.agent.script:
            return None
        text = await read_base(config.agent.script)
        if text is None:
            raise RunnerError(f"agent.script {config.agent.script!r} is not on the base branch")
        path = self.scratch() / "agent-script.py"
        path.write_text(text, encoding="utf-8")
        return path

    async def _input_artifact(self, snapshot: Snapshot, kind: str) -> BaseModel | None:
        if snapshot.input_check_run is None:
            return None
        check_run = await self._read_check_run(snapshot.input_check_run, "the input artifact's")
        found = check_input(ACCEPTS.get(kind, ()), parse_artifact_block(check_run.text))
        if found.artifact is None:
            raise RunnerError(
                f"the input artifact in check run {check_run.id} cannot start a {kind} run: "
                + "; ".join(found.problems)
            )
        return found.artifact

    async def _read_check_run(self, check_run_id: int, whose: str) -> CheckRun:
        try:
            return await get_check_run(self.gh, self.env.repository, check_run_id)
        except gidgethub.HTTPException as error:
            raise RunnerError(
                f"{whose} check run {check_run_id} could not be read "
                f"(GitHub answered {error.status_code})"
            ) from error


async def _instructions(
    config: CoderConfig, read_base: Callable[[str], Awaitable[str | None]]
) -> tuple[tuple[str, str], ...]:
    found = []
    for path in config.agent.instructions:
        text = await read_base(path)
        if text is not None and text.strip():
            found.append((path, text))
    return tuple(found)
