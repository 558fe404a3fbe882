"""Kinds of run, role prompts and step artifacts: the pure rules behind workflow-as-code."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from actions.agent.kinds import (
    AGENT_FIELDS,
    EXAMPLES,
    STEP_MODELS,
    after_roles,
    field_guide,
    rules_for,
    spec_files,
    step_kind,
    validate_fields,
)
from actions.agent.role_prompts import RolePromptError, built_in_prompt, load_role_prompts
from actions.agent.step_artifacts import (
    MAX_ARTIFACT_BYTES,
    StepArtifact,
    StepArtifactError,
    check_step_artifact,
    fields_of,
    plan_of,
    read_step_artifact,
)
from app.config import BUILT_IN_ROLES, ArtifactKind, parse_config

ROOT = Path(__file__).resolve().parent.parent
KINDS: tuple[ArtifactKind, ...] = ("research", "design", "develop", "review", "release")


@pytest.mark.parametrize("kind", [*KINDS, "plan"])
def test_every_example_is_exactly_the_fields_an_agent_writes(kind):
    fields, problems = validate_fields(kind, EXAMPLES[kind])
    assert problems == ()
    assert set(fields) == set(EXAMPLES[kind]) <= set(AGENT_FIELDS[kind])
    for name in AGENT_FIELDS[kind]:
        assert name in STEP_MODELS[kind].model_fields


@pytest.mark.parametrize(
    ("role", "run_kind", "expected"),
    [
        ("architect", "research", "plan"),
        ("researcher", "develop", "research"),  # a built-in role keeps its own kind
        ("designer", "develop", "design"),
        ("reviewer", "review", "review"),
        ("release", "release", "release"),
        ("implementer", "release", "release"),
        ("auditor", "review", "review"),  # a custom role writes the run's kind
    ],
)
def test_which_artifact_a_role_writes(role, run_kind, expected):
    assert step_kind(role, run_kind) == expected


def test_what_each_kind_of_run_does():
    assert after_roles("develop") == after_roles("release") == ("tests", "push")
    assert after_roles("research") == after_roles("design") == ("push",)
    assert after_roles("review") == ()
    assert rules_for("research").needs_spec
    assert not rules_for("review").pushes
    assert not rules_for("design").ready_on_success
    assert rules_for("no-such-kind") == rules_for("develop")
    assert spec_files(
        ("README.md", ".coder/specs/a.md", ".coder/specsx", ".coder/specs/d/b.md")
    ) == (
        ".coder/specs/a.md",
        ".coder/specs/d/b.md",
    )


def test_fields_are_checked_one_by_one_and_named():
    raw = {
        "kind": "review",
        "verdict": "lgtm",
        "summary": "fine",
        "comments": [{"path": "a.py", "line": 0, "body": "x"}],
        "runId": "the runner's, dropped",
        "mood": "happy",
    }
    fields, problems = validate_fields("review", raw)
    assert fields == {"summary": "fine"}
    assert problems == (
        "verdict: Input should be 'approve', 'request_changes' or 'comment'",
        "comments.0.line: Input should be greater than or equal to 1",
        "mood: not a field of this step's artifact (fields: verdict, summary, comments)",
    )
    _fields, problems = validate_fields("plan", {"kind": "research"})
    assert problems == ("kind: expected 'plan', got 'research'",)
    _fields, problems = validate_fields("develop", {"notes": "x"})
    assert problems == ("notes: not a field of this step's artifact (fields: none)",)


def test_the_field_guide_names_required_fields_and_shows_an_example():
    guide = "\n".join(field_guide("research"))
    assert "- `specPath` (required): The spec file" in guide
    assert "- `decisions` (optional)" in guide
    assert '"problemStatement": "Clients hit' in guide
    assert field_guide("develop") == []


@pytest.mark.parametrize("role", BUILT_IN_ROLES)
def test_every_built_in_role_has_a_prompt_that_says_what_not_to_do(role):
    prompt = built_in_prompt(role)
    assert prompt is not None
    assert "Do not:" in prompt
    # Prompts sit under the briefing's own "## " sections and must not open new ones.
    assert not [line for line in prompt.splitlines() if line.startswith("#")]


def test_role_prompts_ship_as_package_data():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["actions"]
    shipped = {path for pattern in patterns for path in (ROOT / "actions").glob(pattern)}
    for role in BUILT_IN_ROLES:
        assert ROOT / "actions" / "agent" / "roles" / f"{role}.md" in shipped
    assert built_in_prompt("auditor") is None


async def test_a_custom_role_reads_its_prompt_and_a_missing_file_is_named():
    config = parse_config(
        "roles:\n  auditor: {prompt: prompts/audit.md}\n  architect: {prompt: prompts/plan.md}\n"
        "workflows:\n  develop: {steps: [architect, auditor, tester]}\n"
    ).config
    assert config is not None
    files = {"prompts/audit.md": "Audit it.", "prompts/plan.md": "Our own planning rules."}

    async def read(path):
        return files.get(path)

    prompts = await load_role_prompts(("architect", "auditor", "tester"), config, read, "main")
    assert prompts["auditor"] == "Audit it."
    assert prompts["architect"] == "Our own planning rules."  # a team may override a built-in
    assert prompts["tester"] == built_in_prompt("tester")
    del files["prompts/audit.md"]
    with pytest.raises(RolePromptError, match=r"^roles\.auditor\.prompt: prompts/audit\.md is not"):
        await load_role_prompts(("auditor",), config, read, "main")


def test_step_artifact_files(tmp_path):
    path = tmp_path / "artifact.json"
    assert read_step_artifact(path, "architect", "develop") is None
    path.write_text("  \n")
    assert read_step_artifact(path, "architect", "develop") is None
    path.write_text(json.dumps({"summary": "Do it.", "files": ["a.py"]}))
    plan = read_step_artifact(path, "architect", "develop")
    assert plan == StepArtifact("architect", "plan", {"summary": "Do it.", "files": ["a.py"]})
    assert json.loads(plan.to_json()) == {"kind": "plan", "summary": "Do it.", "files": ["a.py"]}


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "not JSON (Expecting property name enclosed in double quotes at line 1)"),
        ("[1, 2]", "expected one JSON object, got list"),
        ('{"files": "a.py"}', "files: Input should be a valid tuple"),
        ("x" * (MAX_ARTIFACT_BYTES + 1), f"larger than {MAX_ARTIFACT_BYTES} bytes"),
    ],
)
def test_a_malformed_step_artifact_names_its_problem(tmp_path, content, problem):
    path = tmp_path / "artifact.json"
    path.write_text(content)
    with pytest.raises(StepArtifactError) as raised:
        read_step_artifact(path, "architect", "develop")
    assert str(raised.value).startswith("The architect's step artifact ($CODER_ARTIFACT_FILE)")
    assert problem in str(raised.value)


def test_plans_and_kind_fields_are_gathered_across_steps():
    artifacts = (
        check_step_artifact("architect", "research", {"summary": "first"}),
        check_step_artifact("researcher", "research", {"specPath": ".coder/specs/a.md"}),
        check_step_artifact("auditor", "research", {"specPath": ".coder/specs/b.md"}),
        check_step_artifact("architect", "research", {"summary": "second"}),
    )
    plan = plan_of(artifacts)
    assert plan is not None
    assert plan.summary == "second"
    assert fields_of(artifacts, "research") == {"specPath": ".coder/specs/b.md"}
    assert plan_of(()) is None
