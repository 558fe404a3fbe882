"""actions/agent/action.yml: a composite action that installs coder and runs `coder-agent`."""

from __future__ import annotations

import re
from pathlib import Path

from ruamel.yaml import YAML

from devhub.workflows import is_agent_step

ROOT = Path(__file__).resolve().parent.parent
ACTION = ROOT / "actions" / "agent" / "action.yml"


def action():
    return YAML(typ="safe").load(ACTION.read_text())


def test_it_is_a_composite_action_with_documented_inputs_and_outputs():
    spec = action()
    assert spec["runs"]["using"] == "composite"
    for item in [*spec["inputs"].values(), *spec["outputs"].values()]:
        assert item["description"].strip()
    assert set(spec["outputs"]) == {"conclusion", "commit", "pr"}


def test_no_expression_reaches_a_shell():
    for step in action()["runs"]["steps"]:
        assert "${{" not in step.get("run", ""), step


def test_coder_is_installed_from_the_actions_own_checkout_and_run_by_its_console_script():
    steps = action()["runs"]["steps"]
    scripts = "\n".join(step["run"] for step in steps)
    assert '"$GITHUB_ACTION_PATH/../.."' in scripts
    assert re.search(r"/bin/coder-agent\"?\s*$", scripts)
    assert "python -m actions" not in scripts
    assert " -m actions.agent" not in scripts


def test_the_console_script_is_the_runner():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'coder-agent = "actions.agent.main:main"' in pyproject


def test_the_template_uses_this_action_and_devhub_recognises_it():
    template = YAML(typ="safe").load((ROOT / "workflows-templates" / "coder.yml").read_text())
    (job,) = template["jobs"].values()
    agent_steps = [step for step in job["steps"] if is_agent_step(step)]
    assert len(agent_steps) == 1
    env = agent_steps[0]["env"]
    for name in ("CODER_RUN_ID", "CODER_ISSUE", "CODER_PULL", "CODER_CHECK_RUN", "CODER_APP_URL"):
        assert name in env
