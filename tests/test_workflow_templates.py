"""workflows-templates/: GitHub's template format, and the security rules of DESIGN §7."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = sorted((ROOT / "workflows-templates").glob("*.yml"))
WORKFLOWS = [*TEMPLATES, *sorted((ROOT / ".github/workflows").glob("*.yml"))]
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def load(path):
    return YAML(typ="safe").load(path.read_text())


def steps(workflow):
    for job in workflow["jobs"].values():
        yield from job.get("steps", [])


def test_there_is_a_template_for_the_agent():
    assert ROOT / "workflows-templates/coder.yml" in TEMPLATES


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_each_template_has_its_properties_file(path):
    properties = json.loads(path.with_suffix(".properties.json").read_text())
    assert properties["name"]
    assert properties["description"]
    assert isinstance(properties["categories"], list)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_no_permissions_by_default(path):
    assert load(path)["permissions"] == {}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_by_sha(path):
    for step in steps(load(path)):
        if "uses" in step and not step["uses"].startswith("./"):
            assert PINNED.match(step["uses"]), step["uses"]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_no_expression_reaches_a_shell(path):
    for step in steps(load(path)):
        assert "${{" not in step.get("run", ""), step


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_checkouts_do_not_persist_credentials(path):
    for step in steps(load(path)):
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False


def test_the_agent_workflow_takes_ids_only():
    workflow = load(ROOT / "workflows-templates/coder.yml")
    inputs = workflow["on"]["workflow_dispatch"]["inputs"]  # YAML 1.2: `on` stays a string
    assert set(inputs) == {"run_id", "issue", "pull", "check_run", "runs_on", "read_only"}
    assert {inputs[name]["type"] for name in ("issue", "pull", "check_run")} == {"number"}
    assert (inputs["read_only"]["type"], inputs["read_only"]["default"]) == ("boolean", False)


def test_a_read_only_run_never_gets_the_apps_key():
    workflow = load(ROOT / "workflows-templates/coder.yml")
    (job,) = workflow["jobs"].values()
    env = next(step["env"] for step in job["steps"] if "CODER_PRIVATE_KEY" in step.get("env", {}))
    for name in ("CODER_APP_ID", "CODER_PRIVATE_KEY"):
        assert env[name].startswith("${{ !inputs.read_only && ("), name


def test_the_agent_job_asks_only_for_an_oidc_token_and_runs_where_config_says():
    workflow = load(ROOT / "workflows-templates/coder.yml")
    (job,) = workflow["jobs"].values()
    assert job["permissions"] == {"id-token": "write"}
    assert job["runs-on"] == "${{ fromJSON(inputs.runs_on) }}"
    assert workflow["run-name"] == (
        "coder run ${{ inputs.run_id }}${{ inputs.read_only && ' read-only' || '' }}"
    )
    assert "inputs.issue" in workflow["concurrency"]["group"]


SCHEDULED = {
    "coder-dependencies.yml": "coder.dependencies",
    "coder-security.yml": "coder.security",
    "coder-release-train.yml": "coder.release",
}


@pytest.mark.parametrize(("name", "event_type"), SCHEDULED.items())
def test_scheduled_templates_ask_coder_through_repository_dispatch(name, event_type):
    workflow = load(ROOT / "workflows-templates" / name)
    assert workflow["on"]["schedule"][0]["cron"]
    (job,) = workflow["jobs"].values()
    assert job["permissions"] == {"contents": "write"}
    (step,) = job["steps"]
    assert f'"event_type":"{event_type}"' in step["run"]
    assert "$GITHUB_API_URL/repos/$GITHUB_REPOSITORY/dispatches" in step["run"]
    assert step["env"] == {"GH_TOKEN": "${{ github.token }}"}
