"""What each kind of run (`workflow.produces`) asks of the runner, and the artifact it ends with.

Pure. A kind decides whether the run pushes, whether the repository's tests run, whether specs
are required, whether a success marks the pull request ready, and which artifact fields the
agents write (the runner fills in the rest: ids, times, branch, commit, model, cost, conclusion).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from app.artifacts import (
    DesignArtifact,
    DevelopArtifact,
    PlanArtifact,
    ReleaseArtifact,
    ResearchArtifact,
    ReviewArtifact,
)

SPEC_DIR = ".coder/specs/"
PLAN_KIND = "plan"
PLAN_ROLE = "architect"
TESTS_STEP = "tests"
PUSH_STEP = "push"
# A built-in role writes the fields of its own kind of artifact, whatever workflow it is in
# (docs/workflows-as-code.md); every other role writes fields of the run's kind.
ROLE_KINDS = {
    "researcher": "research",
    "designer": "design",
    "reviewer": "review",
    "release": "release",
}
STEP_MODELS: dict[str, type[BaseModel]] = {
    PLAN_KIND: PlanArtifact,
    "research": ResearchArtifact,
    "design": DesignArtifact,
    "develop": DevelopArtifact,
    "review": ReviewArtifact,
    "release": ReleaseArtifact,
}
# The fields an agent knows; the runner owns every other field of the model.
AGENT_FIELDS: dict[str, tuple[str, ...]] = {
    PLAN_KIND: ("summary", "files", "steps", "split"),
    "research": ("specPath", "problemStatement", "proposedApproach", "decisions"),
    "design": ("specDir", "screens"),
    "develop": (),
    "review": ("verdict", "summary", "comments"),
    "release": ("version", "tag", "changelog"),
}
# Shown in the briefing; tests/test_agent_kinds.py checks each one against its model.
EXAMPLES: dict[str, dict[str, Any]] = {
    PLAN_KIND: {
        "summary": "Add a --verbose flag to the CLI and log each request when it is set.",
        "files": ["src/cli.py", "tests/test_cli.py"],
        "steps": ["Add the option in src/cli.py", "Log requests when it is on", "Test both"],
        "split": [],
    },
    "research": {
        "specPath": ".coder/specs/42-rate-limits.md",
        "problemStatement": "Clients hit the secondary rate limit when ...",
        "proposedApproach": "Queue writes per installation and ...",
        "decisions": [{"decision": "Use one queue per installation", "rationale": "..."}],
    },
    "design": {
        "specDir": ".coder/specs/42-settings-page/",
        "screens": [{"name": "Settings", "path": ".coder/specs/42-settings-page/settings.md"}],
    },
    "develop": {},
    "review": {
        "verdict": "request_changes",
        "summary": "The change works, but the new endpoint skips the permission check ...",
        "comments": [{"path": "src/api.py", "line": 42, "body": "Check the caller's role here."}],
    },
    "release": {
        "version": "1.4.0",
        "tag": "v1.4.0",
        "changelog": "### Added\n- A --verbose flag (#42)\n\n### Fixed\n- ...",
    },
}


@dataclass(frozen=True)
class KindRules:
    """How a run of one kind goes."""

    pushes: bool  # the agents' work is committed and pushed to the run branch
    runs_tests: bool  # `tests.command` runs on that commit, if configured
    needs_spec: bool  # the run must write at least one file under SPEC_DIR
    ready_on_success: bool  # a successful run takes its pull request out of draft


RULES: dict[str, KindRules] = {
    "research": KindRules(pushes=True, runs_tests=False, needs_spec=True, ready_on_success=False),
    "design": KindRules(pushes=True, runs_tests=False, needs_spec=True, ready_on_success=False),
    "develop": KindRules(pushes=True, runs_tests=True, needs_spec=False, ready_on_success=True),
    "review": KindRules(pushes=False, runs_tests=False, needs_spec=False, ready_on_success=False),
    "release": KindRules(pushes=True, runs_tests=True, needs_spec=False, ready_on_success=True),
}


def rules_for(kind: str) -> KindRules:
    """Return the rules of a kind (an unknown kind is treated like develop)."""
    return RULES.get(kind, RULES["develop"])


def after_roles(kind: str) -> tuple[str, ...]:
    """Return the checklist steps that follow the roles: tests and push, as the kind has them."""
    rules = rules_for(kind)
    return (*((TESTS_STEP,) if rules.runs_tests else ()), *((PUSH_STEP,) if rules.pushes else ()))


def step_kind(role: str, run_kind: str) -> str:
    """Return the kind of step artifact a role writes in a run of `run_kind`."""
    if role == PLAN_ROLE:
        return PLAN_KIND
    return ROLE_KINDS.get(role, run_kind)


def spec_files(paths: tuple[str, ...]) -> tuple[str, ...]:
    """Return the paths that are specs (under `.coder/specs/`)."""
    return tuple(path for path in paths if path.startswith(SPEC_DIR))


def validate_fields(kind: str, raw: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Check a step artifact's fields against its kind; return them as JSON values, and problems.

    Each field is checked on its own, so a step may write only the fields it knows; fields the
    runner owns are dropped (the runner's values win), and any other key is a problem.
    """
    model = STEP_MODELS[kind]
    problems: list[str] = []
    fields: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "kind":
            if value != kind:
                problems.append(f"kind: expected {kind!r}, got {value!r}")
            continue
        if key not in AGENT_FIELDS[kind]:
            if key not in model.model_fields:
                known = ", ".join(AGENT_FIELDS[kind]) or "none"
                problems.append(f"{key}: not a field of this step's artifact (fields: {known})")
            continue
        adapter = _adapter(kind, key)
        try:
            fields[key] = adapter.dump_python(adapter.validate_python(value), mode="json")
        except ValidationError as error:
            problems += [_problem((key, *item["loc"]), item["msg"]) for item in error.errors()]
    return fields, tuple(problems)


def assemble(
    kind: str, runner: dict[str, Any], agent: dict[str, Any]
) -> tuple[BaseModel | None, tuple[str, ...]]:
    """Build the run's artifact from the agents' fields and the runner's; name what is wrong."""
    model = STEP_MODELS[kind]
    try:
        return model.model_validate({**agent, **runner}), ()
    except ValidationError as error:
        return None, tuple(_problem(item["loc"], item["msg"]) for item in error.errors())


def field_guide(kind: str) -> list[str]:
    """Return markdown lines naming the fields a step of this kind writes, and an example."""
    names = AGENT_FIELDS[kind]
    if not names:
        return []
    model = STEP_MODELS[kind]
    lines = []
    for name in names:
        info = model.model_fields[name]
        required = "required" if info.is_required() else "optional"
        lines.append(f"- `{name}` ({required}): {info.description or ''}")
    example = json.dumps(EXAMPLES[kind], indent=2)
    return [*lines, "", "For example:", "", f"```json\n{example}\n```"]


@cache
def _adapter(kind: str, key: str) -> TypeAdapter[Any]:
    info = STEP_MODELS[kind].model_fields[key]
    annotation: Any = info.annotation
    if info.metadata:
        annotation = Annotated[annotation, *info.metadata]
    return TypeAdapter(annotation)


def _problem(loc: tuple[int | str, ...], message: str) -> str:
    where = ".".join(str(part) for part in loc)
    return f"{where}: {message}" if where else message
