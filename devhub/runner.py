"""devhub's local runner: runs the coder agent step of a dispatched workflow on this machine.

A dispatched workflow whose job uses coder's agent action (`.../actions/agent@<ref>` or
`./actions/agent`) gets that one step run as a subprocess (`coder-agent` from this Python
environment, or `runner_command`) in a fresh directory with the Actions environment contract
(runner_env.py). Every other step is recorded as skipped, and workflows without the agent step are
recorded as `skipped` runs, with a log line saying devhub does not run them. The runner honours
`timeout-minutes` and `concurrency`, cancels like GitHub's runner (SIGINT, then SIGTERM after
7.5 s, then SIGKILL after 2.5 s more) and can be killed outright to play a lost runner:
https://docs.github.com/actions/managing-workflow-runs/canceling-a-workflow
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devhub import actions_runs
from devhub.expressions import ExpressionError
from devhub.runner_env import (
    CommandFiles,
    JobDirs,
    event_payload,
    github_context,
    job_environment,
    log_line,
    read_outputs,
    write_event,
)
from devhub.runner_plan import (
    JobPlan,
    Limits,
    RunPlan,
    fmt,
    minutes,
    plan_run,
    safe,
    step_env,
    step_name,
    wants_id_token,
)
from devhub.state import utcnow
from devhub.state_actions import Step, WorkflowRun

if TYPE_CHECKING:
    from collections.abc import Callable

    from devhub.http import Context
    from devhub.state import Account, Repo
    from devhub.state_actions import Job
    from devhub.workflows import Inputs, WorkflowFile

LOG = logging.getLogger("devhub.runner")

SIGINT_GRACE_SECONDS = 7.5
SIGTERM_GRACE_SECONDS = 2.5
READ_CHUNK = 65536
DRAIN_SECONDS = 5.0
SKIPPED_STEP = "skipped by devhub: only coder's agent step runs locally"
NOT_RUN = (
    "devhub runs only jobs that use coder's agent action (actions/agent); this workflow has "
    "none, so devhub recorded the run without running it"
)
LOST_RUNNER = (
    "The self-hosted runner: devhub lost communication with the server. Verify the machine is "
    "running and has a healthy network connection. Anything in your workflow that terminates "
    "the runner process, starves it for CPU/Memory, or blocks its network access can cause "
    "this error."
)


class LocalRunner:
    """Executes dispatched runs; one task per run, one subprocess per agent job."""

    def __init__(self, ctx: Context, *, id_token_url: Callable[[], str]) -> None:
        self.ctx = ctx
        self.command: list[str] | None = None
        self.events = actions_runs.RunEvents()
        self._id_token_url = id_token_url
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._stops: dict[int, asyncio.Future[str]] = {}  # job id -> "cancel" | "kill"
        self._groups: dict[tuple[int, str], WorkflowRun] = {}
        self._pending: dict[tuple[int, str], WorkflowRun] = {}

    def default_command(self) -> list[str]:
        """Return `coder-agent` from the Python environment devhub runs in."""
        return [str(Path(sys.executable).with_name("coder-agent"))]

    # dispatch

    async def dispatch(
        self,
        repo: Repo,
        workflow: WorkflowFile,
        *,
        branch: str,
        head_sha: str,
        inputs: Inputs,
        actor: Account,
    ) -> WorkflowRun:
        """Record a dispatched run, announce it, and start executing it in the background."""
        ctx = self.ctx
        now = utcnow()
        run = WorkflowRun(
            id=ctx.state.next_id(),
            repo=repo,
            workflow_id=workflow.id,
            workflow_path=workflow.path,
            workflow_name=workflow.name,
            run_number=actions_runs.next_run_number(repo, workflow.id),
            event="workflow_dispatch",
            display_title=workflow.name,
            head_branch=branch,
            head_sha=head_sha,
            actor=actor,
            created_at=now,
            updated_at=now,
            inputs=dict(inputs.typed),
        )
        event = event_payload(ctx, run, inputs.event)
        ctx.webhooks.check_payload("workflow_dispatch", event)
        plan = plan_run(self.ctx, run, workflow, inputs, event)
        run.executes = any(job.agent_step is not None for job in plan.jobs)
        run.note = "" if run.executes else NOT_RUN
        await actions_runs.open_run(ctx, run, [(j.key, j.name, j.labels) for j in plan.jobs])
        self._tasks[run.id] = asyncio.create_task(self._execute(run, plan), name=f"run-{run.id}")
        await self.events.notify()
        return run

    # execution

    async def _execute(self, run: WorkflowRun, plan: RunPlan) -> None:
        ctx = self.ctx
        group = None
        try:
            if plan.concurrency is not None and run.executes:
                group = (run.repo.id, plan.concurrency[0])
                if not await self._acquire(run, group, cancel_in_progress=plan.concurrency[1]):
                    group = None
                    self._cancel_unstarted(run)
                    return
            if not run.executes:
                for job in run.jobs:
                    job.log.append(log_line(NOT_RUN, []))
                    actions_runs.finish_job(ctx, job, "skipped")
                LOG.warning("run %s of %s: %s", run.id, run.workflow_path, NOT_RUN)
                actions_runs.finish_run(ctx, run, "skipped")
                return
            actions_runs.start_run(ctx, run)
            for job, job_plan in zip(run.jobs, plan.jobs, strict=True):
                await self._run_job(run, job, job_plan, plan)
                await self.events.notify()
            actions_runs.finish_run(ctx, run)
        except Exception:
            LOG.exception("run %s failed inside devhub", run.id)
            for job in run.jobs:
                if job.status != "completed":
                    actions_runs.finish_job(ctx, job, "failure")
            if run.status != "completed":
                actions_runs.finish_run(ctx, run, "failure")
        finally:
            if group is not None and self._groups.get(group) is run:
                del self._groups[group]
            self._tasks.pop(run.id, None)
            await self.events.notify()

    async def _acquire(
        self, run: WorkflowRun, group: tuple[int, str], *, cancel_in_progress: bool
    ) -> bool:
        """Wait for the concurrency group; a newer pending run replaces an older one."""
        holder = self._groups.get(group)
        if holder is not None and cancel_in_progress:
            await self.cancel(holder)
        older = self._pending.get(group)
        if older is not None and older is not run:
            await self.cancel(older)
        async with self.events.changed:
            while self._groups.get(group) is not None and not run.cancel_requested:
                run.status = "pending"
                self._pending[group] = run
                await self.events.changed.wait()
            if self._pending.get(group) is run:
                del self._pending[group]
            if run.cancel_requested:
                return False
            self._groups[group] = run
            return True

    def _cancel_unstarted(self, run: WorkflowRun) -> None:
        for job in run.jobs:
            job.log.append(log_line("The run was canceled before it started.", []))
            actions_runs.finish_job(self.ctx, job, "cancelled")
        actions_runs.finish_run(self.ctx, run, "cancelled")

    async def _run_job(self, run: WorkflowRun, job: Job, plan: JobPlan, run_plan: RunPlan) -> None:
        ctx = self.ctx
        steps = [s for s in plan.source.get("steps") or [] if isinstance(s, dict)]
        job.steps = [Step(1, "Set up job")]
        job.steps += [Step(i + 2, step_name(s)) for i, s in enumerate(steps)]
        job.steps.append(Step(len(steps) + 2, "Complete job"))
        if run.cancel_requested or plan.agent_step is None:
            reason = "The run was canceled." if run.cancel_requested else NOT_RUN
            job.log.append(log_line(reason, []))
            conclusion = "cancelled" if run.cancel_requested else "skipped"
            actions_runs.finish_job(ctx, job, conclusion)
            return
        actions_runs.start_job(ctx, job)
        now = utcnow()
        job.steps[0].status, job.steps[0].conclusion = "completed", "success"
        job.steps[0].started_at = job.steps[0].completed_at = now
        job.log.append(log_line(f"Runner name: 'devhub', labels {job.labels}", []))
        for index, step in enumerate(steps):
            if index != plan.agent_step:
                job.log.append(log_line(f"{SKIPPED_STEP}: {step_name(step)}", []))
                job.steps[index + 1].conclusion = "skipped"
        agent = job.steps[plan.agent_step + 1]
        agent.status, agent.started_at = "in_progress", utcnow()
        conclusion = await self._run_agent(run, job, plan, steps[plan.agent_step], run_plan)
        agent.status, agent.completed_at = "completed", utcnow()
        agent.conclusion = conclusion
        closing = job.steps[-1]
        closing.started_at = closing.completed_at = utcnow()
        closing.status, closing.conclusion = "completed", "success"
        actions_runs.finish_job(ctx, job, conclusion)

    async def _run_agent(
        self,
        run: WorkflowRun,
        job: Job,
        plan: JobPlan,
        step: dict[str, Any],
        run_plan: RunPlan,
    ) -> str:
        """Run the agent step as a subprocess; return the step's conclusion."""
        ctx = self.ctx
        dirs = JobDirs(Path(tempfile.mkdtemp(prefix=f"devhub-job-{job.id}-")))
        masks = list(run_plan.contexts["secrets"].values())
        try:
            dirs.create()
            write_event(dirs, run_plan.event)
            files = CommandFiles.make(dirs)
            contexts = run_plan.contexts | {
                "github": github_context(ctx, run, run_plan.event, job.key),
                "runner": run_plan.contexts["runner"] | {"temp": str(dirs.temp)},
            }
            variables = step_env(plan, step, contexts)
            if wants_id_token(run_plan.workflow.source, plan.source):
                job.id_token_request_token = secrets.token_urlsafe(32)
                masks.append(job.id_token_request_token)
            env = job_environment(
                ctx, job, dirs, files, variables, id_token_url=self._id_token_url()
            )
            limits = Limits(
                job_minutes=plan.timeout_minutes,
                step_minutes=minutes(safe(step.get("timeout-minutes"), contexts)),
                step_name=step_name(step),
            )
            job.log.append(log_line(f"Run {step.get('uses')}", masks))
            conclusion = await self._spawn(job, env, dirs, masks, limits)
            job.outputs = read_outputs(files.output)
            job.summary = files.summary.read_text(encoding="utf-8", errors="replace")
            return conclusion
        except (ExpressionError, OSError) as error:
            job.log.append(log_line(f"##[error]{error}", masks))
            return "failure"
        finally:
            job.id_token_request_token = None
            await asyncio.to_thread(shutil.rmtree, dirs.root, ignore_errors=True)

    async def _spawn(
        self, job: Job, env: dict[str, str], dirs: JobDirs, masks: list[str], limits: Limits
    ) -> str:
        command = self.command or self.default_command()
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=dirs.workspace,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # its own process group, so cancel reaches its children
        )
        stop: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._stops[job.id] = stop
        job.pid = process.pid
        await self.events.notify()
        reader = asyncio.create_task(self._pump(process, job, masks))
        waiter = asyncio.create_task(process.wait())
        job_minutes, step_minutes = limits.job_minutes, limits.step_minutes
        limit = min(job_minutes, step_minutes) if step_minutes is not None else job_minutes
        watched: set[asyncio.Future[Any]] = {waiter, stop}
        try:
            done, _ = await asyncio.wait(
                watched, timeout=limit * 60, return_when=asyncio.FIRST_COMPLETED
            )
            if waiter in done:
                job.log.append(
                    log_line(f"Process completed with exit code {process.returncode}.", [])
                )
                return "success" if process.returncode == 0 else "failure"
            if stop in done and stop.result() == "kill":
                _signal_group(process.pid, signal.SIGKILL)
                await waiter
                job.log.append(log_line(f"##[error]{LOST_RUNNER}", []))
                return "failure"
            await self._terminate(process, waiter)
            if stop in done:
                job.log.append(log_line("##[error]The operation was canceled.", []))
                return "cancelled"
            if step_minutes is not None and step_minutes <= job_minutes:
                name = limits.step_name
                message = f"The action '{name}' has timed out after {fmt(step_minutes)} minutes."
                job.log.append(log_line(f"##[error]{message}", []))
                return "failure"
            message = (
                f"The job running on runner devhub has exceeded the maximum execution time of "
                f"{fmt(job_minutes)} minutes."
            )
            job.log.append(log_line(f"##[error]{message}", []))
            return "cancelled"
        finally:
            _signal_group(process.pid, signal.SIGKILL)  # what the step left behind goes too
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(reader), DRAIN_SECONDS)
            reader.cancel()
            waiter.cancel()
            self._stops.pop(job.id, None)
            job.pid = None

    async def _terminate(
        self, process: asyncio.subprocess.Process, waiter: asyncio.Task[int]
    ) -> None:
        """Stop a step as GitHub's runner does: SIGINT, SIGTERM, then SIGKILL."""
        for signum, grace in (
            (signal.SIGINT, SIGINT_GRACE_SECONDS),
            (signal.SIGTERM, SIGTERM_GRACE_SECONDS),
        ):
            _signal_group(process.pid, signum)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(waiter), grace)
                return
        _signal_group(process.pid, signal.SIGKILL)
        await waiter

    async def _pump(self, process: asyncio.subprocess.Process, job: Job, masks: list[str]) -> None:
        """Copy the step's output into the job log, line by line."""
        assert process.stdout is not None
        pending = b""
        while chunk := await process.stdout.read(READ_CHUNK):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                job.log.append(log_line(line.decode(errors="replace").rstrip("\r"), masks))
        if pending:
            job.log.append(log_line(pending.decode(errors="replace"), masks))

    # control

    async def cancel(self, run: WorkflowRun, *, by: str | None = None) -> None:
        """Ask a run to stop; a running step gets SIGINT (see `_terminate`)."""
        if not run.cancel_requested:
            run.cancelled_by = by
        run.cancel_requested = True
        for job in run.jobs:
            stop = self._stops.get(job.id)
            if stop is not None and not stop.done():
                stop.set_result("cancel")
        await self.events.notify()

    async def kill(self, run_id: int, *, timeout: float = 30) -> bool:  # noqa: ASYNC109 - a deadline
        """SIGKILL a run's agent process once it runs, as if the runner machine died."""

        def running(run: WorkflowRun) -> bool:
            return run.status == "completed" or any(job.id in self._stops for job in run.jobs)

        run = await self.wait_for(lambda r: r.id == run_id and running(r), timeout=timeout)
        for job in run.jobs:
            stop = self._stops.get(job.id)
            if stop is not None and not stop.done():
                stop.set_result("kill")
                return True
        return False

    def job_for_id_token(self, token: str) -> Job | None:
        """Return the running job whose ID-token request token this is."""
        for repo in self.ctx.state.repos.values():
            for run in repo.workflow_runs.values():
                for job in run.jobs:
                    if job.id_token_request_token == token and job.status == "in_progress":
                        return job
        return None

    async def wait_for(
        self,
        match: Callable[[WorkflowRun], bool],
        *,
        timeout: float,  # noqa: ASYNC109 - callers pass a deadline
    ) -> WorkflowRun:
        """Return the first run that matches, waiting for changes if none does yet."""
        async with asyncio.timeout(timeout), self.events.changed:
            while True:
                for repo in list(self.ctx.state.repos.values()):
                    for run in list(repo.workflow_runs.values()):
                        if match(run):
                            return run
                await self.events.changed.wait()

    async def stop(self) -> None:
        """Kill every running step and end the run tasks (devhub is stopping)."""
        for stop in list(self._stops.values()):
            if not stop.done():
                stop.set_result("kill")
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


# helpers


def _signal_group(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)
