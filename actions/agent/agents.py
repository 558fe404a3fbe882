"""The agent loop: one backend session per role, events turned into progress, cost and limits."""

from __future__ import annotations

import logging
import re
import shutil
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from actions.agent.backends import AgentSession, Cost, Finished, Output, Status, StopReason, Stuck
from actions.agent.briefing_file import RoleReport, Subject, render_briefing
from actions.agent.step_artifacts import StepArtifact, StepArtifactError, read_step_artifact
from app.briefing import StepState

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

    from pydantic import BaseModel

    from actions.agent.backends import Backend, Limits
    from actions.agent.clock import Clock
    from actions.agent.progress import ProgressReporter
    from actions.agent.workspace import Workspace
    from app.briefing import Snapshot
    from app.config import CoderConfig

log = logging.getLogger("coder-agent")

ARTIFACT_FILE = "artifact.json"
UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass
class AgentOutcome:
    """What the agent sessions did, accumulated across roles."""

    finished: Finished | None = None
    role: str | None = None
    stuck_question: str | None = None
    awaiting_approval: bool = False  # stopped after the architect, for a person to approve
    over_budget: bool = False
    cost_usd: float = 0.0
    tokens: int | None = None
    reports: list[RoleReport] = field(default_factory=list)
    artifacts: list[StepArtifact] = field(default_factory=list)
    artifact_error: str | None = None  # a step artifact was malformed

    @property
    def go_on(self) -> bool:
        """Tell whether the next role (and then the tests) should run."""
        finished_ok = self.finished is None or self.finished.ok
        return (
            finished_ok
            and self.stuck_question is None
            and not self.awaiting_approval
            and not self.over_budget
            and self.artifact_error is None
        )

    @property
    def statuses(self) -> list[str]:
        """Return every STATUS line of every role, in order."""
        return [status for report in self.reports for status in report.statuses]

    def note(self) -> str:
        """Return a few words on why the loop stopped, for the checklist."""
        if self.stuck_question is not None:
            return "stuck"
        if self.awaiting_approval:
            return "waits for approval"
        if self.over_budget:
            return "over budget"
        if self.artifact_error is not None:
            return "invalid step artifact"
        finished = self.finished
        if finished is None:
            return ""
        if finished.stopped is not None:
            return f"stopped ({finished.stopped})"
        return finished.error or f"exit code {finished.exit_code}"


@dataclass(frozen=True)
class AgentLoop:
    """Everything the agent sessions of one run share."""

    backend: Backend
    snapshot: Snapshot
    config: CoderConfig
    workspace: Workspace
    scratch: Path
    instructions: tuple[tuple[str, str], ...]
    reporter: ProgressReporter
    clock: Clock
    limits: Limits
    environ: Mapping[str, str]
    redact: Callable[[str], str]
    run_kind: str = "develop"
    role_prompts: Mapping[str, str] = field(default_factory=dict)
    subject: Subject = field(default_factory=Subject)
    input_artifact: BaseModel | None = None
    pause_after: str | None = None  # stop after this role for a person's approval

    async def run(self, roles: tuple[str, ...]) -> AgentOutcome:
        """Run each role in turn; stop at the first that does not finish well."""
        outcome = AgentOutcome()
        self.workspace.seal()
        for index, role in enumerate(roles):
            self.reporter.step(role, StepState.RUNNING)
            artifact_file = self._fresh_artifact_file(role, index + 1)
            session = AgentSession(
                role=role,
                model=self.snapshot.model,
                run_id=self.snapshot.run_id,
                workspace=self.workspace.path,
                briefing_file=self._write_briefing(role, outcome, index + 1, artifact_file),
                clock=self.clock,
                limits=self.limits,
                runner_environ=self.environ,
                artifact_file=artifact_file,
            )
            try:
                outcome.reports.append(await self._session(session, outcome))
            finally:
                self.workspace.unseal()
            if outcome.go_on:
                self._take_artifact(role, artifact_file, outcome)
            if outcome.go_on and role == self.pause_after and index + 1 < len(roles):
                self.reporter.step(role, StepState.DONE)
                outcome.awaiting_approval = True
                for waiting in roles[index + 1 :]:
                    self.reporter.step(waiting, StepState.SKIPPED, outcome.note())
                log.info("[%s] done; the plan waits for approval", role)
                break
            if not outcome.go_on:
                self.reporter.step(role, StepState.FAILED, outcome.note())
                for skipped in roles[index + 1 :]:
                    self.reporter.step(skipped, StepState.SKIPPED)
                break
            self.reporter.step(role, StepState.DONE)
        return outcome

    def _fresh_artifact_file(self, role: str, number: int) -> Path:
        # One directory per session, outside the workspace, so nothing of the step artifact is
        # committed and no session finds another's file (a claude session is given this one
        # directory, nothing else outside the workspace).
        directory = self.scratch / f"step-{number}-{_safe(role)}"
        if directory.exists():
            shutil.rmtree(directory)
        directory.mkdir(parents=True)
        return directory / ARTIFACT_FILE

    def _take_artifact(self, role: str, path: Path, outcome: AgentOutcome) -> None:
        try:
            artifact = read_step_artifact(path, role, self.run_kind)
        except StepArtifactError as error:
            outcome.artifact_error = self.redact(str(error))
            log.warning("[%s] %s", role, outcome.artifact_error)
            return
        if artifact is not None:
            outcome.artifacts.append(artifact)
            log.info("[%s] left a %s step artifact", role, artifact.kind)

    def _write_briefing(
        self, role: str, outcome: AgentOutcome, number: int, artifact_file: Path
    ) -> Path:
        text = render_briefing(
            role=role,
            snapshot=self.snapshot,
            workspace=self.workspace.path,
            tests_command=self.config.tests.command,
            instructions=self.instructions,
            earlier=tuple(outcome.reports),
            role_prompt=self.role_prompts.get(role),
            run_kind=self.run_kind,
            subject=self.subject,
            artifact_file=artifact_file,
            step_artifacts=tuple(outcome.artifacts),
            input_artifact=self.input_artifact,
        )
        path = self.scratch / f"briefing-{number}-{_safe(role)}.md"
        path.write_text(text, encoding="utf-8")
        return path

    async def _session(self, session: AgentSession, outcome: AgentOutcome) -> RoleReport:
        role = session.role
        statuses: list[str] = []
        spent_before, tokens_before = outcome.cost_usd, outcome.tokens
        budget = self.config.budget.per_run_usd
        outcome.role = role
        async for event in self.backend.run(session):
            if isinstance(event, Output):
                # Prefixed, so no agent line can act as a workflow command (`::...`).
                log.info("[%s] %s", role, self.redact(event.line))
            elif isinstance(event, Status):
                # Redacted here, once: statuses reach the check run, the PR body, later roles'
                # briefings and the commit message.
                status = self.redact(event.text)
                statuses.append(status)
                log.info("[%s] STATUS %s", role, status)
                self.reporter.say(f"{role}: {status}")
            elif isinstance(event, Stuck):
                outcome.stuck_question = self.redact(event.question)
                log.info("[%s] STUCK %s", role, outcome.stuck_question)
                session.request_stop()
            elif isinstance(event, Cost):
                outcome.cost_usd = spent_before + event.usd
                if event.tokens is not None:
                    outcome.tokens = (tokens_before or 0) + event.tokens
                if outcome.cost_usd > budget and not outcome.over_budget:
                    outcome.over_budget = True
                    log.warning("over budget: $%.2f > $%.2f; stopping", outcome.cost_usd, budget)
                    session.request_stop()
            elif isinstance(event, Finished):
                outcome.finished = _settled(event, outcome)
                log.info("[%s] finished: exit code %s%s", role, event.exit_code, _why(event))
        return RoleReport(role, tuple(statuses))


def _settled(event: Finished, outcome: AgentOutcome) -> Finished:
    # A session the runner stopped because the agent is stuck or over budget did not fail by
    # itself: the outcome's own fields say why the run ends, not the signal that ended it.
    asked = outcome.stuck_question is not None or outcome.over_budget
    if event.stopped is StopReason.REQUESTED and asked:
        return Finished(0)
    return event


def _why(event: Finished) -> str:
    parts = [f"stopped: {event.stopped}"] if event.stopped else []
    parts += [event.error] if event.error else []
    return f" ({'; '.join(parts)})" if parts else ""


def _safe(name: str) -> str:
    # Role names come from config keys; only a plain word goes into a file name.
    return UNSAFE_IN_NAME.sub("-", name).strip("-") or "role"
