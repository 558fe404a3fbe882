"""One run of `coder-agent`: token, workspace, agent roles, tests, commit, push, finish.

The steps follow docs/develop-run.md ("The runner"). Every failure after the token is obtained
still ends the check run with a conclusion and a reason, so no run is left `in_progress`.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit

import aiohttp
import gidgethub

from actions.agent import finish
from actions.agent.agents import AgentLoop, AgentOutcome
from actions.agent.auth import AuthError, obtain_token, send_result
from actions.agent.backends import BackendError, Limits, agent_secrets
from actions.agent.backends.base import DEFAULT_GRACE_SECONDS, AgentSession
from actions.agent.briefing_file import Subject
from actions.agent.clock import Clock, RealClock
from actions.agent.github import (
    RunEnd,
    RunnerGitHub,
    check_run_state,
    end_run,
    for_token,
    get_pull,
    mark_ready_for_review,
    post_comment,
    post_marked_once,
    remove_label,
    update_check_run,
    update_pull_body,
)
from actions.agent.kinds import PUSH_STEP, TESTS_STEP, after_roles
from actions.agent.logs import SECRETS
from actions.agent.prepare import ARCHITECT, CheckRunEndedError, Plan, Preparer, RunnerError
from actions.agent.progress import INTERVAL_SECONDS, CheckRunOutput, ProgressReporter
from actions.agent.report import (
    CheckRunEnd,
    best_effort,
    complete_check_run,
    completed_check_run,
    iso,
    mask,
    write_job_files,
)
from actions.agent.role_prompts import RolePromptError
from actions.agent.step_artifacts import plan_of
from actions.agent.tests import TestResult, run_tests
from actions.agent.workspace import Author, GitError, PushRefusedError, Workspace
from app.briefing import BRANCH_PREFIX, TRAILER_MODEL, TRAILER_RUN, TRAILER_WORKFLOW, StepState
from app.conversation import Reaction, Source, react
from app.labels import QUEUED, RUNNING
from app.logs import Redactor
from app.prompt_text import PLAN, PROMPT, QUESTION, Prompt, plan_markdown, render_prompt
from app.retry import RetryPolicy

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

    from actions.agent.env import RunnerEnv
    from actions.agent.github import CheckRunState, PullRequest
    from actions.agent.step_artifacts import StepArtifact
    from app.briefing import Snapshot
    from app.config import CoderConfig

log = logging.getLogger("coder-agent")

# The app's initial commit carries its bot identity; this is used only if it does not.
DEFAULT_BOT = "coder[bot]"
COMMIT_STATUS_LINES = 10


@dataclass(frozen=True)
class Deps:
    """What a run takes from the outside world; tests swap the clocks and the timings."""

    environ: Mapping[str, str]
    clock: Clock = field(default_factory=RealClock)
    wall_clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    policy: RetryPolicy | None = None
    grace_seconds: float = DEFAULT_GRACE_SECONDS
    progress_interval: float = INTERVAL_SECONDS
    out: TextIO = field(default_factory=lambda: sys.stdout)


@dataclass
class Work:
    """What the run produced, filled in as it goes."""

    outcome: AgentOutcome = field(default_factory=AgentOutcome)
    changed: tuple[str, ...] = ()
    tests: TestResult | None = None
    pushed_sha: str | None = None
    error: str | None = None
    patch: str = ""  # a read-only run's change, handed to the app instead of pushed


class Runner:
    """Carry one run from its token to its finished check run."""

    def __init__(self, env: RunnerEnv, deps: Deps) -> None:
        self.env = env
        self.deps = deps
        self.started = deps.clock.now()
        self.started_at = deps.wall_clock()
        self.redact = Redactor()
        self.reporter: ProgressReporter | None = None
        self.read_only = False  # the app minted a read-only token: a fork's code
        self.session: aiohttp.ClientSession | None = None
        self.preparer: Preparer | None = None

    async def execute(self) -> finish.Conclusion:
        """Run everything; return the conclusion the check run ended with."""
        # The agent's own credentials (its model key) are masked before anything could print
        # them, and redacted from everything the run writes to GitHub (DESIGN §7).
        handed_to_agents = agent_secrets(self.deps.environ)
        mask(self.deps.out, handed_to_agents)
        SECRETS.remember(handed_to_agents)
        async with aiohttp.ClientSession() as session:
            token = await obtain_token(session, self.env.reach, policy=self.deps.policy)
            secrets = (token.token, *token.also_secret, *handed_to_agents)
            mask(self.deps.out, (token.token, *token.also_secret))
            SECRETS.remember(secrets)
            self.redact = Redactor(secrets)
            if token.fallback_reason:
                log.warning("OIDC failed (%s); used the app key", token.fallback_reason)
            self.read_only, self.session = token.read_only, session
            kind = "read-only, " if self.read_only else ""
            log.info("token for %s (%s%s)", self.env.repository, kind, token.source)
            gh = for_token(
                session,
                token.token,
                api_url=self.env.reach.api_url,
                graphql_url=self.env.reach.graphql_url,
                policy=self.deps.policy,
            )
            workspace = Workspace(
                self.env.runner_temp / f"coder-{self.env.run_id}",
                server_url=self.env.server_url,
                remote_url=self.env.clone_url,
                token=token.token,
                environ=self.deps.environ,
            )
            return await self.run(gh, workspace)

    async def run(self, gh: RunnerGitHub, workspace: Workspace) -> finish.Conclusion:
        """Prepare, start, work, and finish; failures end the check run, never escape."""
        try:
            pull = await get_pull(
                gh,
                self.env.repository,
                self.env.pull,
                issue=self.env.issue,
                check_run=self.env.check_run,
            )
            plan = await self.prepare(gh, workspace, pull)
            await self.start(gh, plan)
        except CheckRunEndedError as ended:
            return self.stand_down(ended)
        except Exception as error:  # any failure must still end the check run
            return await self.fail_early(gh, self._reason(error, "preparing the run"))
        work = Work()
        try:
            await self.work(plan, workspace, work)
        except Exception as error:  # any failure must still end the check run
            work.error = self._reason(error, "running the agent")
            self._steps_left(StepState.FAILED)
        return await self.end(gh, plan, work)

    async def prepare(self, gh: RunnerGitHub, workspace: Workspace, pull: PullRequest) -> Plan:
        """Clone the subject; read config, snapshot, prompts and the input artifact."""
        self.preparer = Preparer(
            env=self.env,
            gh=gh,
            workspace=workspace,
            scratch=self.scratch,
            default_author=self._default_author(),
            read_only=self.read_only,
        )
        return await self.preparer.prepare(pull)

    def stand_down(self, ended: CheckRunEndedError) -> finish.Conclusion:
        """Run nothing: the check run was completed before this job started (a cancel)."""
        state = ended.state
        log.warning(
            "check run %d is already %s (%s): someone ended this run before its job started; "
            "nothing runs and the check run is left as it is",
            ended.check_run,
            state.status,
            state.conclusion,
        )
        write_job_files(
            output_path=self.env.output_path,
            step_summary_path=self.env.step_summary_path,
            outputs=finish.job_outputs(finish.Conclusion.CANCELLED, None, self.env.pull),
            summary=f"Nothing ran: check run {ended.check_run} was already {state.conclusion}.",
        )
        return finish.Conclusion.CANCELLED

    def _default_author(self) -> Author:
        host = urlsplit(self.env.server_url).hostname or "github.com"
        return Author(DEFAULT_BOT, f"{DEFAULT_BOT}@users.noreply.{host}")

    def scratch(self) -> Path:
        """Return the run's scratch directory, outside the workspace (briefings, the script)."""
        path = self.env.runner_temp / f"coder-{self.env.run_id}.scratch"
        path.mkdir(parents=True, exist_ok=True)
        return path

    async def start(self, gh: RunnerGitHub, plan: Plan) -> None:
        """Mark the check run in progress and start publishing progress."""
        repository, check_run = self.env.repository, self.env.check_run

        async def publish_check_run(output: CheckRunOutput) -> None:
            title, summary = self.redact(output.title), self.redact(output.summary)
            fields = {"output": {"title": title, "summary": summary}}
            await update_check_run(gh, repository, check_run, fields)

        async def publish_pull_body(body: str) -> None:
            await update_pull_body(gh, repository, plan.pull.number, self.redact(body))

        async def publish_nothing(output: CheckRunOutput) -> None:
            del output  # a read-only token cannot edit the check run; the app writes its end

        self.reporter = ProgressReporter(
            plan.snapshot,
            plan.steps,
            # A pull-request subject's body belongs to its author (or to the run that opened it).
            publish_pull_body=None if plan.on_pull else publish_pull_body,
            publish_check_run=publish_nothing if plan.read_only else publish_check_run,
            clock=self.deps.clock,
            interval=self.deps.progress_interval,
            after_roles=after_roles(plan.kind),
        )
        output = self.reporter.check_run_output()
        fields: dict[str, Any] = {
            "status": "in_progress",
            "started_at": iso(self.started_at),
            "output": {"title": output.title, "summary": output.summary},
        }
        if self.env.actions_run_url:
            fields["details_url"] = self.env.actions_run_url
        if plan.read_only:
            log.info("read-only: the app writes the check run when the run hands its result in")
        else:
            await update_check_run(gh, repository, check_run, fields)
        # That was the check run's edit for this window (DESIGN §4: one per 15 s).
        self.reporter.check_run_started()
        await self._close_prompt(gh, plan)
        log.info(
            "run %s (%s, %s) on %s with %s",
            self.env.run_id,
            plan.snapshot.workflow,
            plan.kind,
            plan.pull.head_ref,
            plan.backend.name,
        )

    async def work(self, plan: Plan, workspace: Workspace, work: Work) -> None:
        """Run the agents, commit, test, push; `work` holds whatever got done."""
        assert self.reporter is not None
        loop = AgentLoop(
            backend=plan.backend,
            snapshot=plan.snapshot,
            config=plan.config,
            workspace=workspace,
            scratch=self.scratch(),
            instructions=plan.instructions,
            reporter=self.reporter,
            clock=self.deps.clock,
            limits=self._limits(plan.config),
            environ=self.deps.environ,
            redact=self.redact,
            run_kind=plan.kind,
            role_prompts=plan.role_prompts,
            subject=Subject(plan.pull.base_ref if plan.on_pull else None),
            input_artifact=plan.input_artifact,
            pause_after=plan.pause_after,
        )
        work.outcome = await loop.run(plan.steps)
        if not plan.rules.pushes:
            # A review reads the code and hands in a verdict; nothing it touched is kept.
            log.info("a %s run commits and pushes nothing", plan.kind)
            return
        if await workspace.commit_all(plan.start_sha, self._message(plan, work), plan.author):
            work.changed = await workspace.changed_files(plan.start_sha)
            # Tests run on the committed tree; whatever they leave behind is never pushed.
            if plan.rules.runs_tests:
                work.tests = await self.test(plan, workspace, work.outcome)
            if plan.read_only:
                work.patch = await workspace.patch(plan.start_sha)
                self.reporter.step(PUSH_STEP, StepState.SKIPPED, "read-only: a suggested patch")
                log.info(
                    "read-only: %d file(s) changed; the patch goes to the app", len(work.changed)
                )
                return
            self.reporter.step(PUSH_STEP, StepState.RUNNING)
            await workspace.push(plan.pull.head_ref)
            work.pushed_sha = await workspace.head()
            self.reporter.step(PUSH_STEP, StepState.DONE, work.pushed_sha[:12])
            log.info("pushed %s to %s", work.pushed_sha, plan.pull.head_ref)
        else:
            log.info("nothing changed; nothing to commit")
            self._steps_left(StepState.SKIPPED)

    def _message(self, plan: Plan, work: Work) -> str:
        statuses = work.outcome.statuses[-COMMIT_STATUS_LINES:]
        body = "\n".join(f"- {line}" for line in statuses) or "(the agent reported no status)"
        trailers = (
            f"{TRAILER_RUN}: {self.env.run_id}\n"
            f"{TRAILER_WORKFLOW}: {plan.snapshot.workflow}\n"
            f"{TRAILER_MODEL}: {plan.snapshot.model}\n"
        )
        return f"{plan.snapshot.title}\n\n{body}\n\n{trailers}"

    async def test(
        self, plan: Plan, workspace: Workspace, outcome: AgentOutcome
    ) -> TestResult | None:
        """Run the repository's tests, unless there are none or the agent did not finish."""
        assert self.reporter is not None
        command = plan.config.tests.command
        if command is None or not outcome.go_on:
            self.reporter.step(TESTS_STEP, StepState.SKIPPED)
            return None
        self.reporter.step(TESTS_STEP, StepState.RUNNING)
        # The same clean environment the agent had: no token, nothing inherited but the basics.
        env = AgentSession(
            role=TESTS_STEP,
            model=plan.snapshot.model,
            run_id=self.env.run_id,
            workspace=workspace.path,
            briefing_file=self.scratch() / "no-briefing",
            clock=self.deps.clock,
            limits=Limits(),
            runner_environ=self.deps.environ,
        ).agent_env()
        result = await run_tests(
            command,
            workspace=workspace.path,
            env=env,
            clock=self.deps.clock,
            timeout_seconds=plan.config.tests.timeout_minutes * 60,
            run_deadline=self._limits(plan.config).deadline,
            grace_seconds=self.deps.grace_seconds,
        )
        verdict = "passed" if result.passed else "failed"
        self.reporter.step(
            TESTS_STEP, StepState.DONE if result.passed else StepState.FAILED, verdict
        )
        log.info("tests %s (exit code %s)", verdict, result.exit_code)
        return replace(result, tail=self.redact(result.tail))

    def _limits(self, config: CoderConfig) -> Limits:
        return Limits(
            deadline=self.started + config.limits.run_minutes * 60,
            idle_seconds=config.limits.idle_minutes * 60,
            grace_seconds=self.deps.grace_seconds,
        )

    async def end(self, gh: RunnerGitHub, plan: Plan, work: Work) -> finish.Conclusion:
        """Complete (or carry) the check run, then the PR and the label, then the job's files."""
        assert self.reporter is not None
        # No progress edit may land on the check run after its final state.
        await self.reporter.stop_check_run()
        ended = await self._ended_meanwhile(gh, plan)
        if ended is not None:
            return await self.stand_aside(gh, plan, work, ended)
        result = self._result(gh, plan, work)
        conclusion, reason = finish.conclude(result)
        reason = self.redact(reason)
        # Whatever an agent wrote (statuses, its question, step artifacts) ends up in these.
        summary = self.redact(finish.render_summary(conclusion, reason, result))
        artifact = finish.build_artifact(conclusion, result)
        problems = () if artifact is not None else finish.artifact_problems(result)
        end = CheckRunEnd(
            repository=self.env.repository,
            check_run=self.env.check_run,
            run_id=self.env.run_id,
            workflow=plan.snapshot.workflow,
            conclusion=str(conclusion),
            output={
                "title": self.redact(finish.render_title(conclusion, result)),
                "summary": summary,
                "text": self.redact(finish.render_text(artifact, problems)),
            },
            started_at=self.started_at,
            completed_at=result.completed_at,
            details_url=self.env.actions_run_url,
            pushed_sha=work.pushed_sha,
            fixable=plan.pull.head_ref.startswith(BRANCH_PREFIX),
        )
        if plan.read_only:
            conclusion = await self._hand_in(end, work, plan, conclusion)
            write_job_files(
                output_path=self.env.output_path,
                step_summary_path=self.env.step_summary_path,
                outputs=finish.job_outputs(conclusion, None, self.env.pull),
                summary=summary,
            )
            log.info("%s: %s", conclusion, reason)
            return conclusion
        completed = await completed_check_run(gh, end)
        if completed is None:
            # The job fails, so the app's reconcile loop completes the check run instead.
            conclusion = finish.Conclusion.FAILURE
        elif conclusion is finish.Conclusion.ACTION_REQUIRED:
            await best_effort("ask on the pull request", self._ask(gh, plan, work, completed))
        # A run on its own pull request (develop), or one that works on a coder branch's pull
        # request (a fix), makes it ready; a review of somebody's pull request never does.
        ours = not plan.on_pull or plan.pull.head_ref.startswith(BRANCH_PREFIX)
        ready = plan.rules.ready_on_success and ours
        make_ready = conclusion is finish.Conclusion.SUCCESS and ready and plan.pull.draft
        await self._react(gh, plan, conclusion)
        status = finish.pull_status(conclusion, reason, plan.kind)
        body = await self.reporter.final_pull_body(status)
        await self._write_end(gh, plan, body=body, ready=make_ready)
        write_job_files(
            output_path=self.env.output_path,
            step_summary_path=self.env.step_summary_path,
            outputs=finish.job_outputs(conclusion, work.pushed_sha, self.env.pull),
            summary=summary,
        )
        log.info("%s: %s", conclusion, reason)
        log.info("GitHub API: %d REST calls, %d GraphQL", gh.calls.rest, gh.calls.graphql)
        return conclusion

    async def _ended_meanwhile(self, gh: RunnerGitHub, plan: Plan) -> CheckRunState | None:
        """Return the check run's state if someone completed it while the run worked.

        One GraphQL read by its node id (no REST call, DESIGN §8). Unknown (no id, or GitHub
        did not answer) is not ended: the run writes its end as it always did.
        """
        known = plan.check_run
        if known is None or not known.node_id:
            return None
        now = await check_run_state(gh, known.node_id)
        return now if now is not None and now.completed else None

    async def stand_aside(
        self, gh: RunnerGitHub, plan: Plan, work: Work, ended: CheckRunState
    ) -> finish.Conclusion:
        """End a run whose check run someone else completed: leave that check run as it is."""
        assert self.reporter is not None
        reason = (
            f"The run's check run was completed ({ended.conclusion}) while it worked, so its "
            "result is not written there."
        )
        log.warning("%s", reason)
        if not plan.read_only:
            # The PR body's checklist and the label still say the run is working.
            status = finish.pull_status(finish.Conclusion.CANCELLED, reason, plan.kind)
            body = await self.reporter.final_pull_body(status)
            await self._write_end(gh, plan, body=body, ready=False)
        write_job_files(
            output_path=self.env.output_path,
            step_summary_path=self.env.step_summary_path,
            outputs=finish.job_outputs(finish.Conclusion.CANCELLED, work.pushed_sha, self.env.pull),
            summary=reason,
        )
        return finish.Conclusion.CANCELLED

    def _result(self, gh: RunnerGitHub, plan: Plan, work: Work) -> finish.RunResult:
        assert self.reporter is not None
        outcome = work.outcome
        return finish.RunResult(
            repository=self.env.repository,
            run_id=self.env.run_id,
            issue=self.env.issue,
            pull_url=plan.pull.html_url,
            branch=plan.pull.head_ref,
            model=plan.snapshot.model,
            started_at=self.started_at,
            completed_at=self.deps.wall_clock(),
            seconds=self.deps.clock.now() - self.started,
            progress=self.reporter.progress,
            agent=outcome.finished,
            agent_role=outcome.role,
            stuck_question=outcome.stuck_question,
            awaiting_approval=outcome.awaiting_approval,
            over_budget=outcome.over_budget,
            error=work.error,
            changed_files=work.changed if work.pushed_sha or work.patch else (),
            commit_sha=work.pushed_sha,
            tests_command=plan.config.tests.command,
            tests=work.tests,
            cost_usd=outcome.cost_usd,
            tokens=outcome.tokens,
            budget_usd=plan.config.budget.per_run_usd,
            rest_calls=gh.calls.rest,
            graphql_calls=gh.calls.graphql,
            progress_edits=self.reporter.edits,
            kind=plan.kind,
            on_pull=plan.on_pull,
            pull_number=plan.pull.number,
            model_reason=plan.snapshot.model_reason,
            step_artifacts=tuple(outcome.artifacts),
            artifact_error=outcome.artifact_error,
            auto_split=plan.workflow.auto_split,
            attempt=plan.snapshot.attempt,
            read_only=plan.read_only,
        )

    async def fail_early(self, gh: RunnerGitHub, reason: str) -> finish.Conclusion:
        """End a run that could not start: complete the check run, remove the label, and answer
        the comment that asked for it (when preparing got as far as the snapshot)."""
        log.error("%s", reason)
        now = self.deps.wall_clock()
        snapshot = self.preparer.snapshot if self.preparer is not None else None
        end = CheckRunEnd(
            repository=self.env.repository,
            check_run=self.env.check_run,
            run_id=self.env.run_id,
            workflow=snapshot.workflow if snapshot is not None else "develop",
            conclusion=str(finish.Conclusion.FAILURE),
            output={"title": "coder could not start this run", "summary": f"**{reason}**"},
            started_at=self.started_at,
            completed_at=now,
            details_url=self.env.actions_run_url,
        )
        await complete_check_run(gh, end)
        await self._remove_running(gh)
        # A fix that waited for this run (`coder:queued`) starts once the label comes off.
        dequeue = remove_label(gh, self.env.repository, self.env.pull, QUEUED)
        await best_effort(f"remove {QUEUED}", dequeue)
        await self._react_to(gh, snapshot, finish.Conclusion.FAILURE)
        write_job_files(
            output_path=self.env.output_path,
            step_summary_path=self.env.step_summary_path,
            outputs=finish.job_outputs(finish.Conclusion.FAILURE, None, self.env.pull),
            summary=f"**{reason}**",
        )
        return finish.Conclusion.FAILURE

    async def _close_prompt(self, gh: RunnerGitHub, plan: Plan) -> None:
        """A continuation that got this far (the branch checked) closes the prompt it answers.

        Until then the question stays open: a continuation refused because the branch moved
        leaves it for a writer to answer again (docs/commands.md, "Human in the loop").
        """
        answers = plan.snapshot.answers
        check_run, _, how = (answers or "").partition(":")
        if plan.read_only or not check_run.isdigit() or not how:
            return
        who = plan.snapshot.labeled_by
        fields = {
            "conclusion": "neutral",
            "output": {
                "title": f"{how.capitalize()} by @{who}",
                "summary": (
                    f"@{who} {how} it; run `{self.env.run_id}` goes on from `{plan.steps[0]}`."
                ),
            },
            "actions": [],
        }
        update = update_check_run(gh, self.env.repository, int(check_run), fields)
        await best_effort("close the question it answers", update)

    async def _hand_in(
        self, end: CheckRunEnd, work: Work, plan: Plan, conclusion: finish.Conclusion
    ) -> finish.Conclusion:
        """Give a read-only run's result to the app, which writes the check run and the patch.

        A stuck run's result is `action_required` with the question in its summary, and the
        prompt's fields, for the app to ask on the pull request: this job's token cannot.
        """
        oidc = self.env.reach.oidc
        if oidc is None or self.session is None:
            log.error("a read-only run hands its result in through OIDC, and there is none")
            return finish.Conclusion.FAILURE
        result: dict[str, Any] = {
            "check_run": end.check_run,
            "conclusion": end.conclusion,
            "title": self.redact(end.output["title"]),
            "summary": self.redact(end.output["summary"]),
            "patch": self.redact(work.patch) if work.patch else None,
        }
        if conclusion is finish.Conclusion.ACTION_REQUIRED:
            prompt = self._prompt(plan, work, end.check_run)
            result["prompt"] = {
                "ask": prompt.kind,
                "question": prompt.question,
                "workflow": prompt.workflow,
                "resume_at": prompt.resume_at,
                "sha": prompt.head_sha,
                "model": prompt.model,
            }
        try:
            jwt = await send_result(
                self.session, oidc, result, policy=self.deps.policy or RetryPolicy()
            )
        except AuthError as error:
            # The job fails, so the app's reconcile loop completes the check run instead.
            log.warning("could not hand the result in: %s", error)
            return finish.Conclusion.FAILURE
        mask(self.deps.out, (jwt,))
        SECRETS.remember((jwt,))
        log.info("handed the result to the app; it wrote the check run")
        return conclusion

    async def _ask(self, gh: RunnerGitHub, plan: Plan, work: Work, check_run: int) -> None:
        """Post the run's question (or its plan) on the pull request, once, for a person.

        Found again by its marker (`coder:prompt id=<run>`) from the app's bot, so a second
        attempt of the same job does not ask twice (one listing of the comments, on this path
        only).
        """
        prompt = self._prompt(plan, work, check_run)
        body = render_prompt(prompt)
        bot = plan.check_run.bot_login if plan.check_run is not None else None
        number = plan.pull.number
        if bot is None:
            log.warning("the app's bot is not known; posting the prompt without looking first")
            await post_comment(gh, self.env.repository, number, body)
        else:
            await post_marked_once(
                gh, self.env.repository, number, body, kind=PROMPT, author=bot, id=prompt.prompt_id
            )
        log.info("asked on pull request #%d; the run waits at %s", number, prompt.resume_at)

    def _prompt(self, plan: Plan, work: Work, check_run: int) -> Prompt:
        """Return the question (or the plan) the run asks, as its prompt comment records it."""
        outcome = work.outcome
        if outcome.stuck_question is not None:
            kind, question = QUESTION, outcome.stuck_question
            resume_at = outcome.role or plan.steps[0]
        else:
            kind, question = PLAN, plan_markdown(_plan_fields(outcome.artifacts))
            resume_at = plan.steps[plan.steps.index(ARCHITECT) + 1]
        return Prompt(
            prompt_id=self.env.run_id,
            kind=kind,
            check_run=check_run,
            workflow=plan.snapshot.workflow,
            resume_at=resume_at,
            head_sha=work.pushed_sha or plan.pull.head_sha,
            model=plan.snapshot.model,
            question=self.redact(question),
        )

    async def _react(self, gh: RunnerGitHub, plan: Plan, conclusion: finish.Conclusion) -> None:
        """Answer the comment that asked for the run: 🚀 when it worked, 😕 when not."""
        await self._react_to(gh, plan.snapshot, conclusion)

    async def _react_to(
        self, gh: RunnerGitHub, snapshot: Snapshot | None, conclusion: finish.Conclusion
    ) -> None:
        source = Source.parse(snapshot.asked_in) if snapshot is not None else None
        waits = {finish.Conclusion.ACTION_REQUIRED, finish.Conclusion.CANCELLED}
        if source is None or conclusion in waits:
            return  # nobody asked in a comment (or it is unknown), the run waits, or was stopped
        reaction = Reaction.ROCKET if conclusion.ok else Reaction.CONFUSED
        await best_effort("react", react(gh, self.env.repository, source, reaction))

    async def _write_end(
        self, gh: RunnerGitHub, plan: Plan, *, body: str | None, ready: bool
    ) -> None:
        """Write the final PR body, take it out of draft and `coder:running` off the issue.

        One GraphQL request holds all three (DESIGN §8); whatever it did not land is done the
        old way (REST, and the ready mutation on its own), best effort, so the run still ends.
        """
        pull = plan.pull
        body = self.redact(body) if body is not None else None
        end = RunEnd(
            pull.node_id,
            body,
            ready,
            pull.issue_node_id,
            pull.running_label_id,
            pull.queued_label_id,
        )
        missed = await end_run(gh, end)
        if "body" in missed and body is not None:
            update = update_pull_body(gh, self.env.repository, pull.number, body)
            await best_effort("update the PR body", update)
        if "ready" in missed:
            await best_effort("mark the PR ready", mark_ready_for_review(gh, pull.node_id))
        # Without the issue's id (it could not be read), REST takes the label off by name.
        if "unlabel" in missed or pull.issue_node_id is None:
            await self._remove_running(gh)
        if "dequeue" in missed:
            removal = remove_label(gh, self.env.repository, pull.number, QUEUED)
            await best_effort(f"remove {QUEUED}", removal)

    async def _remove_running(self, gh: RunnerGitHub) -> None:
        removal = remove_label(gh, self.env.repository, self.env.issue, RUNNING)
        await best_effort(f"remove {RUNNING}", removal)

    def _steps_left(self, state: StepState) -> None:
        if self.reporter is None:
            return
        for step in self.reporter.progress.steps:
            if step.state in {StepState.PENDING, StepState.RUNNING}:
                self.reporter.step(step.name, state)

    def _reason(self, error: BaseException, stage: str) -> str:
        if isinstance(error, RunnerError | BackendError | PushRefusedError | RolePromptError):
            text = str(error)
        elif isinstance(error, GitError):
            text = f"git failed while {stage}: {error}"
        elif isinstance(error, gidgethub.HTTPException):
            text = f"GitHub answered {error.status_code} while {stage}"
        else:
            log.error("unexpected error while %s", stage, exc_info=error)
            text = f"coder-agent failed while {stage} ({type(error).__name__})"
        return self.redact(text)


def _plan_fields(artifacts: list[StepArtifact]) -> dict[str, Any] | None:
    plan = plan_of(artifacts)
    return plan.model_dump() if plan is not None else None
