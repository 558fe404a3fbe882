"""Planning a dispatched run for devhub's local runner: evaluating the workflow file.

`run-name` becomes the run's title, each job gets its name, `runs-on` labels, `timeout-minutes`
and the index of coder's agent step (if any), and `concurrency` its group. A value devhub cannot
evaluate is logged and treated as unset rather than failing the dispatch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from devhub.expressions import ExpressionError, render, render_text
from devhub.runner_env import evaluate_env, run_contexts
from devhub.workflows import is_agent_step

if TYPE_CHECKING:
    from devhub.http import Context
    from devhub.state_actions import WorkflowRun
    from devhub.workflows import Inputs, WorkflowFile

LOG = logging.getLogger("devhub.runner")

DEFAULT_JOB_TIMEOUT_MINUTES = 360


@dataclass
class JobPlan:
    """One job of a dispatched workflow, evaluated."""

    key: str
    name: str
    labels: list[str]
    source: dict[str, Any]
    timeout_minutes: float
    agent_step: int | None


@dataclass(frozen=True)
class Limits:
    """How long a step may run: the job's `timeout-minutes` and the step's own, if any."""

    job_minutes: float
    step_minutes: float | None
    step_name: str


@dataclass
class RunPlan:
    """What a dispatched run will do."""

    workflow: WorkflowFile
    inputs: Inputs
    event: dict[str, Any]
    contexts: dict[str, Any]
    jobs: list[JobPlan]
    concurrency: tuple[str, bool] | None


def plan_run(
    ctx: Context, run: WorkflowRun, workflow: WorkflowFile, inputs: Inputs, event: dict[str, Any]
) -> RunPlan:
    """Evaluate what a dispatched run will do: its title, jobs, limits and concurrency group."""
    contexts = run_contexts(ctx, run, inputs, event)
    contexts["env"] = evaluate_env(workflow.source.get("env"), contexts)
    run.display_title = safe_text(workflow.source.get("run-name"), contexts) or run.display_title
    jobs = []
    for key, source in workflow.jobs.items():
        steps = [s for s in source.get("steps") or [] if isinstance(s, dict)]
        agent = next((i for i, step in enumerate(steps) if is_agent_step(step)), None)
        runs_on = safe(source.get("runs-on"), contexts)
        labels = [str(x) for x in runs_on] if isinstance(runs_on, list) else [str(runs_on or "")]
        timeout = safe(source.get("timeout-minutes"), contexts)
        jobs.append(
            JobPlan(
                key=key,
                name=safe_text(source.get("name"), contexts) or key,
                labels=[label for label in labels if label],
                source=source,
                timeout_minutes=minutes(timeout) or DEFAULT_JOB_TIMEOUT_MINUTES,
                agent_step=agent,
            )
        )
    return RunPlan(workflow, inputs, event, contexts, jobs, concurrency(workflow, contexts))


def step_env(plan: JobPlan, step: dict[str, Any], contexts: dict[str, Any]) -> dict[str, str]:
    """Evaluate a step's environment: the workflow's, the job's, its own, and `with:`."""
    env = dict(contexts.get("env") or {})
    env |= evaluate_env(plan.source.get("env"), contexts | {"env": env})
    env |= evaluate_env(step.get("env"), contexts | {"env": env})
    with_inputs = step.get("with")
    if isinstance(with_inputs, dict):
        # JavaScript and Docker actions read `with:` as INPUT_<NAME>.
        for key, value in with_inputs.items():
            name = "INPUT_" + str(key).replace(" ", "_").upper()
            env[name] = render_text(value, contexts | {"env": env})
    return env


def safe(value: object, contexts: dict[str, Any]) -> Any:
    """Evaluate a workflow value; log and return None when devhub cannot."""
    try:
        return render(value, contexts)
    except ExpressionError as error:
        LOG.warning("cannot evaluate %r: %s", value, error)
        return None


def safe_text(value: object, contexts: dict[str, Any]) -> str:
    """Evaluate a workflow value to text ("" when it cannot be evaluated)."""
    evaluated = safe(value, contexts)
    return "" if evaluated is None else render_text(evaluated, {})


def minutes(value: object) -> float | None:
    """Read `timeout-minutes` (a positive number, maybe as text); None when unset or invalid."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value) if isinstance(value, int | float) else float(str(value))
    except ValueError:
        return None
    return number if number > 0 else None


def fmt(minutes: float) -> str:
    """Print minutes as GitHub's messages do (no `.0`)."""
    return str(int(minutes)) if float(minutes).is_integer() else str(minutes)


def step_name(step: dict[str, Any]) -> str:
    """Name a step as GitHub lists it: `name:`, else `Run <uses or command>`."""
    if step.get("name"):
        return str(step["name"])
    if step.get("uses"):
        return f"Run {step['uses']}"
    first = str(step.get("run", "")).strip().splitlines()
    return f"Run {first[0]}" if first else "Run"


def concurrency(workflow: WorkflowFile, contexts: dict[str, Any]) -> tuple[str, bool] | None:
    """Return the run's concurrency group and `cancel-in-progress`, or None."""
    raw = workflow.source.get("concurrency")
    if isinstance(raw, str):
        return safe_text(raw, contexts), False
    if isinstance(raw, dict) and raw.get("group") is not None:
        cancel = safe(raw.get("cancel-in-progress", False), contexts)
        return safe_text(raw["group"], contexts), cancel is True or cancel == "true"
    return None


def wants_id_token(workflow: dict[str, Any], job: dict[str, Any]) -> bool:
    """Tell whether the job may request an OIDC token (`id-token: write`).

    GitHub sets ACTIONS_ID_TOKEN_REQUEST_* only then; with no `permissions` anywhere, devhub
    treats the job as permitted (the permissive default of a new repository).
    """
    for permissions in (job.get("permissions"), workflow.get("permissions")):
        if permissions is None:
            continue
        if permissions == "write-all":
            return True
        return isinstance(permissions, dict) and permissions.get("id-token") == "write"
    return True
