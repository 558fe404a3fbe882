"""The Actions environment contract a job sees, as devhub's local runner builds it.

Contexts for expressions (`github`, `inputs`, `vars`, `secrets`, `env`, `runner`), the
`workflow_dispatch` event file, the job's directories and file commands (`GITHUB_OUTPUT`,
`GITHUB_STEP_SUMMARY`, `GITHUB_ENV`, `GITHUB_PATH`), and the environment variables of the step:
https://docs.github.com/actions/writing-workflows/choosing-what-your-workflow-does/store-information-in-variables#default-environment-variables
The child gets only PATH, LANG and a HOME inside the job's directory from devhub's own
environment, never devhub's secrets.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from devhub.expressions import render_text
from devhub.rest_json import org_json, repo_json, user_json
from devhub.rest_variables import variables_for
from devhub.state import node_id

if TYPE_CHECKING:
    from pathlib import Path

    from devhub.http import Context
    from devhub.state_actions import Job, WorkflowRun
    from devhub.workflows import Inputs

RUNNER_OS = "Linux"
RUNNER_ARCH = "X64"
RUNNER_NAME = "devhub"
DEFAULT_LANG = "C.UTF-8"
MASK = "***"
MIN_MASKED_LENGTH = 3  # GitHub does not mask one- or two-character secrets
APP_URL_VARIABLE = "CODER_APP_URL"


@dataclass(frozen=True)
class JobDirs:
    """The directories and files of one job on devhub's runner."""

    root: Path

    @property
    def workspace(self) -> Path:
        """Return GITHUB_WORKSPACE."""
        return self.root / "work"

    @property
    def temp(self) -> Path:
        """Return RUNNER_TEMP."""
        return self.root / "temp"

    @property
    def home(self) -> Path:
        """Return the job's HOME."""
        return self.root / "home"

    @property
    def event_path(self) -> Path:
        """Return GITHUB_EVENT_PATH."""
        return self.temp / "_github_workflow" / "event.json"

    def command_file(self, name: str) -> Path:
        """Return the path of one file command (set_output, step_summary, set_env, add_path)."""
        return self.temp / "_runner_file_commands" / f"{name}_{uuid.uuid4()}"

    def create(self) -> None:
        """Make the directories."""
        for path in (self.workspace, self.temp, self.home, self.event_path.parent):
            path.mkdir(parents=True, exist_ok=True)
        (self.temp / "_runner_file_commands").mkdir(exist_ok=True)


def secrets_for(ctx: Context, run: WorkflowRun) -> dict[str, str]:
    """Return the `secrets` context: organization secrets overridden by repository ones."""
    repo = run.repo
    found = dict(ctx.state.org_secrets.get(repo.owner.id, {}))
    found.update(repo.secrets)
    return found


def vars_for(ctx: Context, run: WorkflowRun) -> dict[str, str]:
    """Return the `vars` context, with devhub's CODER_APP_URL fallback.

    On devhub, when CODER_APP_URL is unset the runner uses the origin of the app's webhook URL,
    so a local `coder serve` is found without configuring anything.
    """
    found = variables_for(ctx.state, run.repo)
    webhook_url = ctx.webhooks.url
    if APP_URL_VARIABLE not in found and webhook_url:
        parts = urlsplit(webhook_url)
        found[APP_URL_VARIABLE] = f"{parts.scheme}://{parts.netloc}"
    return found


def event_payload(ctx: Context, run: WorkflowRun, event_inputs: dict[str, str]) -> dict[str, Any]:
    """Build the `workflow_dispatch` payload a job reads from GITHUB_EVENT_PATH."""
    repo = run.repo
    payload: dict[str, Any] = {
        "inputs": event_inputs or None,
        "ref": run.ref,
        "repository": repo_json(ctx.urls, repo),
        "sender": user_json(ctx.urls, run.actor),
        "workflow": run.workflow_path,
    }
    if repo.owner.type == "Organization":
        payload["organization"] = org_json(ctx.urls, repo.owner)
    installation = ctx.state.installation_for(repo.owner)
    if installation is not None and ctx.state.installation_covers(installation, repo):
        payload["installation"] = {
            "id": installation.id,
            "node_id": node_id("MDIz", installation.id),
        }
    return payload


def github_context(
    ctx: Context, run: WorkflowRun, event: dict[str, Any], job_key: str | None
) -> dict[str, Any]:
    """Build the `github` context."""
    repo = run.repo
    workflow_ref = f"{repo.full_name}/{run.workflow_path}@{run.ref}"
    return {
        "repository": repo.full_name,
        "repository_id": str(repo.id),
        "repository_owner": repo.owner.login,
        "repository_owner_id": str(repo.owner.id),
        "run_id": str(run.id),
        "run_number": str(run.run_number),
        "run_attempt": str(run.run_attempt),
        "server_url": ctx.urls.web,
        "api_url": ctx.urls.api,
        "graphql_url": f"{ctx.urls.web}/api/graphql",
        "event_name": run.event,
        "event": event,
        "ref": run.ref,
        "ref_name": run.head_branch,
        "ref_type": "branch",
        "sha": run.head_sha,
        "actor": run.actor.login,
        "actor_id": str(run.actor.id),
        "triggering_actor": run.actor.login,
        "workflow": run.workflow_name,
        "workflow_ref": workflow_ref,
        "workflow_sha": run.head_sha,
        "job": job_key or "",
        "head_ref": "",
        "base_ref": "",
        "token": "",
    }


def run_contexts(
    ctx: Context, run: WorkflowRun, inputs: Inputs, event: dict[str, Any]
) -> dict[str, Any]:
    """Return the contexts run-level keys see (`run-name`, `concurrency`, job names)."""
    return {
        "github": github_context(ctx, run, event, None),
        "inputs": dict(inputs.typed),
        "vars": vars_for(ctx, run),
        "secrets": secrets_for(ctx, run),
        "env": {},
        "runner": {"os": RUNNER_OS, "arch": RUNNER_ARCH, "name": RUNNER_NAME},
        "job": {"status": "success"},
        "steps": {},
        "matrix": {},
        "needs": {},
        "strategy": {},
    }


def evaluate_env(raw: object, contexts: dict[str, Any]) -> dict[str, str]:
    """Evaluate an `env:` mapping; each value sees the ones before it through `env`."""
    if not isinstance(raw, dict):
        return {}
    env = dict(contexts.get("env") or {})
    evaluated = {}
    for key, value in raw.items():
        text = render_text(value, contexts | {"env": env})
        env[str(key)] = text
        evaluated[str(key)] = text
    return evaluated


@dataclass
class CommandFiles:
    """The file-command paths of one step."""

    output: Path
    summary: Path
    env: Path
    path: Path

    @classmethod
    def make(cls, dirs: JobDirs) -> CommandFiles:
        """Create empty files for a step."""
        files = cls(
            dirs.command_file("set_output"),
            dirs.command_file("step_summary"),
            dirs.command_file("set_env"),
            dirs.command_file("add_path"),
        )
        for file in (files.output, files.summary, files.env, files.path):
            file.write_text("", encoding="utf-8")
        return files


def job_environment(
    ctx: Context,
    job: Job,
    dirs: JobDirs,
    files: CommandFiles,
    step_env: dict[str, str],
    *,
    id_token_url: str | None,
) -> dict[str, str]:
    """Build the child's environment: a minimal inherited base, GitHub's variables, `env:`."""
    run = job.run
    repo = run.repo
    base = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(dirs.home),
        "LANG": os.environ.get("LANG", DEFAULT_LANG),
    }
    github = {
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_ACTION": "__coder-agent",
        "GITHUB_EVENT_NAME": run.event,
        "GITHUB_EVENT_PATH": str(dirs.event_path),
        "GITHUB_OUTPUT": str(files.output),
        "GITHUB_STEP_SUMMARY": str(files.summary),
        "GITHUB_ENV": str(files.env),
        "GITHUB_PATH": str(files.path),
        "GITHUB_REPOSITORY": repo.full_name,
        "GITHUB_REPOSITORY_ID": str(repo.id),
        "GITHUB_REPOSITORY_OWNER": repo.owner.login,
        "GITHUB_REPOSITORY_OWNER_ID": str(repo.owner.id),
        "GITHUB_RUN_ID": str(run.id),
        "GITHUB_RUN_NUMBER": str(run.run_number),
        "GITHUB_RUN_ATTEMPT": str(run.run_attempt),
        "GITHUB_JOB": job.key,
        "GITHUB_WORKFLOW": run.workflow_name,
        "GITHUB_WORKFLOW_REF": f"{repo.full_name}/{run.workflow_path}@{run.ref}",
        "GITHUB_WORKFLOW_SHA": run.head_sha,
        "GITHUB_REF": run.ref,
        "GITHUB_REF_NAME": run.head_branch,
        "GITHUB_REF_TYPE": "branch",
        "GITHUB_SHA": run.head_sha,
        "GITHUB_ACTOR": run.actor.login,
        "GITHUB_ACTOR_ID": str(run.actor.id),
        "GITHUB_TRIGGERING_ACTOR": run.actor.login,
        "GITHUB_SERVER_URL": ctx.urls.web,
        "GITHUB_API_URL": ctx.urls.api,
        "GITHUB_GRAPHQL_URL": f"{ctx.urls.web}/api/graphql",
        "GITHUB_WORKSPACE": str(dirs.workspace),
        "RUNNER_TEMP": str(dirs.temp),
        "RUNNER_OS": RUNNER_OS,
        "RUNNER_ARCH": RUNNER_ARCH,
        "RUNNER_NAME": RUNNER_NAME,
        "RUNNER_ENVIRONMENT": "self-hosted",
    }
    if id_token_url is not None and job.id_token_request_token is not None:
        github["ACTIONS_ID_TOKEN_REQUEST_URL"] = id_token_url
        github["ACTIONS_ID_TOKEN_REQUEST_TOKEN"] = job.id_token_request_token
    return base | github | step_env


def read_outputs(path: Path) -> dict[str, str]:
    """Parse a GITHUB_OUTPUT (or GITHUB_ENV) file: `name=value` and `name<<DELIM` heredocs."""
    if not path.is_file():
        return {}
    found: dict[str, str] = {}
    lines = iter(path.read_text(encoding="utf-8", errors="replace").splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, _, delimiter = line.partition("<<")
            body = []
            for inner in lines:
                if inner == delimiter:
                    break
                body.append(inner)
            found[name] = "\n".join(body)
        elif "=" in line:
            name, _, value = line.partition("=")
            found[name] = value
    return found


def write_event(dirs: JobDirs, payload: dict[str, Any]) -> None:
    """Write the event file."""
    dirs.event_path.write_text(json.dumps(payload, indent=2), encoding="utf-8")


def log_line(text: str, secrets: list[str]) -> str:
    """Timestamp a log line as GitHub does and mask secret values in it."""
    for secret in secrets:
        if len(secret) >= MIN_MASKED_LENGTH:
            text = text.replace(secret, MASK)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return f"{stamp}0Z {text}"
