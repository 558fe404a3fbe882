"""Workflow files: finding them in `.github/workflows/`, reading their triggers, inputs and jobs.

GitHub lists the workflows of a repository from its default branch and runs a dispatched one
from the file as it is on the ref the dispatch names. `on:` may be a string, a list or a mapping;
`workflow_dispatch` inputs have a type (string, number, boolean, choice, environment), an optional
default and `required`:
https://docs.github.com/actions/writing-workflows/workflow-syntax-for-github-actions
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from devhub.git import GitError
from devhub.state import iso, node_id

if TYPE_CHECKING:
    from datetime import datetime

    from devhub.http import Context
    from devhub.rest_json import JSON, Urls
    from devhub.state import Repo

WORKFLOWS_DIR = ".github/workflows"
SUFFIXES = (".yml", ".yaml")
# The agent step devhub runs: `uses:` of coder's agent action, from any repository or a local
# path, at any ref (`coder-bot/coder/actions/agent@<sha>`, `./actions/agent`).
AGENT_ACTION_SUFFIX = "actions/agent"


@dataclass
class WorkflowFile:
    """One workflow file as read from git."""

    path: str
    id: int
    source: dict[str, Any]
    created_at: datetime
    problem: str | None = None  # set when the YAML cannot be read

    @property
    def name(self) -> str:
        """Return `name:`, or the path when the file has none (as GitHub shows it)."""
        name = self.source.get("name")
        return str(name) if name else self.path

    @property
    def triggers(self) -> dict[str, Any]:
        """Return `on:` as a mapping of event name to its configuration."""
        on = self.source.get("on")
        if isinstance(on, str):
            return {on: None}
        if isinstance(on, list):
            return {str(event): None for event in on}
        return dict(on) if isinstance(on, dict) else {}

    @property
    def dispatch_inputs(self) -> dict[str, dict[str, Any]]:
        """Return the `workflow_dispatch` inputs by name."""
        dispatch = self.triggers.get("workflow_dispatch") or {}
        inputs = dispatch.get("inputs") if isinstance(dispatch, dict) else None
        return {str(k): dict(v or {}) for k, v in (inputs or {}).items()}

    @property
    def jobs(self) -> dict[str, dict[str, Any]]:
        """Return the jobs by id."""
        jobs = self.source.get("jobs")
        return {str(k): dict(v or {}) for k, v in jobs.items()} if isinstance(jobs, dict) else {}


@dataclass
class DispatchProblem:
    """Why GitHub refuses a dispatch (a 422 with this message)."""

    message: str


@dataclass
class Inputs:
    """Dispatch inputs: as strings (the event payload) and typed (the `inputs` context)."""

    event: dict[str, str] = field(default_factory=dict)
    typed: dict[str, Any] = field(default_factory=dict)


def parse_yaml(text: str) -> tuple[dict[str, Any], str | None]:
    """Parse a workflow file; return ({}, problem) when it is not a YAML mapping."""
    try:
        data = YAML(typ="safe").load(text)
    except YAMLError as error:
        return {}, f"Invalid workflow file: {error}"
    if not isinstance(data, dict):
        return {}, "Invalid workflow file: a workflow is a mapping"
    # A YAML 1.1 reader would turn the `on` key into True; keep GitHub's reading either way.
    return {"on" if k is True else str(k): v for k, v in data.items()}, None


def workflow_id(ctx: Context, repo: Repo, path: str) -> int:
    """Return the stable id of a workflow path in a repository (allocated on first sight)."""
    if path not in repo.workflow_ids:
        repo.workflow_ids[path] = ctx.state.next_id()
    return repo.workflow_ids[path]


async def read_workflow(ctx: Context, repo: Repo, ref: str, path: str) -> WorkflowFile | None:
    """Read one workflow file at a ref; None when it is not there."""
    try:
        kind, content, _sha = await ctx.git.read_path(repo.owner.login, repo.name, ref, path)
    except GitError:
        return None
    if kind != "file" or not isinstance(content, bytes):
        return None
    source, problem = parse_yaml(content.decode(errors="replace"))
    return WorkflowFile(path, workflow_id(ctx, repo, path), source, repo.created_at, problem)


async def list_workflows(ctx: Context, repo: Repo) -> list[WorkflowFile]:
    """List the workflow files on the default branch."""
    try:
        kind, entries, _sha = await ctx.git.read_path(
            repo.owner.login, repo.name, repo.default_branch, WORKFLOWS_DIR
        )
    except GitError:
        return []
    if kind != "dir" or not isinstance(entries, list):
        return []
    found = []
    for entry in entries:
        if entry.type == "blob" and entry.path.endswith(SUFFIXES):
            workflow = await read_workflow(ctx, repo, repo.default_branch, entry.path)
            if workflow is not None:
                found.append(workflow)
    return found


async def find_workflow(ctx: Context, repo: Repo, key: str) -> WorkflowFile | None:
    """Find a workflow on the default branch by numeric id or file name (`coder.yml`)."""
    for workflow in await list_workflows(ctx, repo):
        if key == str(workflow.id) or key == workflow.path.rsplit("/", 1)[-1]:
            return workflow
    return None


def check_inputs(workflow: WorkflowFile, given: dict[str, Any]) -> Inputs | DispatchProblem:
    """Validate dispatch inputs with GitHub's messages; fill defaults; type them."""
    if "workflow_dispatch" not in workflow.triggers:
        return DispatchProblem("Workflow does not have 'workflow_dispatch' trigger")
    declared = workflow.dispatch_inputs
    unexpected = [name for name in given if name not in declared]
    if unexpected:
        names = ", ".join(f'"{name}"' for name in unexpected)
        return DispatchProblem(f"Unexpected inputs provided: [{names}]")
    inputs = Inputs()
    for name, spec in declared.items():
        kind = str(spec.get("type", "string"))
        value = given.get(name, spec.get("default"))
        if value is None or value == "":
            if spec.get("required") and name not in given:
                return DispatchProblem(f"Required input '{name}' not provided")
            value = "" if kind != "boolean" else "false"
        text = _input_text(value)
        options = [str(o) for o in spec.get("options") or []]
        if kind == "choice" and options and text not in options:
            return DispatchProblem(
                f"Provided value '{text}' for input '{name}' not in the list of allowed values"
            )
        inputs.event[name] = text
        inputs.typed[name] = _typed(kind, text)
    return inputs


def _input_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _typed(kind: str, text: str) -> Any:
    if kind == "boolean":
        return text.lower() == "true"
    if kind == "number":
        try:
            number = float(text)
        except ValueError:
            return text
        return int(number) if number.is_integer() else number
    return text


def is_agent_step(step: dict[str, Any]) -> bool:
    """Tell whether a step runs coder's agent action (the one step devhub runs locally)."""
    uses = step.get("uses")
    if not isinstance(uses, str):
        return False
    return uses.split("@", 1)[0].rstrip("/").endswith(AGENT_ACTION_SUFFIX)


def workflow_json(urls: Urls, repo: Repo, workflow: WorkflowFile) -> JSON:
    """Render a `workflow`."""
    html = f"{urls.web}/{repo.full_name}/blob/{repo.default_branch}/{workflow.path}"
    return {
        "id": workflow.id,
        "node_id": node_id("W", workflow.id),
        "name": workflow.name,
        "path": workflow.path,
        "state": "active",
        "created_at": iso(workflow.created_at),
        "updated_at": iso(workflow.created_at),
        "url": f"{urls.api}/repos/{repo.full_name}/actions/workflows/{workflow.id}",
        "html_url": html,
        "badge_url": f"{urls.web}/{repo.full_name}/workflows/{workflow.name}/badge.svg",
    }
