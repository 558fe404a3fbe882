"""The runner uses the config the app resolved: org defaults and `_extends` bases included.

The runner's token reaches one repository, so it cannot read `<org>/.github`; the app records
the merged config in the run's check run (`app.config_record`) and the runner takes it there.
"""

from __future__ import annotations

import base64

import pytest

from app.artifacts import load_develop_artifact
from app.config import CoderConfig, parse_config
from app.config_record import config_from_record, render_config_record
from app.installation import ensure_labels
from tests.test_agent_journey import AGENT, ROOT, get, put_file

REPO = "acme/widgets"
ORG_REPO = "acme/.github"
# Only the org knows how this repository's agent runs and how its tests run.
ORG_CONFIG = """\
agent: {backend: script, script: tools/agent.py}
tests: {command: "test -f hello.txt"}
workflows:
  hello: {on: {label: "coder:hello"}, steps: [implementer]}
"""


def test_a_record_reads_back_as_the_config_it_records():
    config = parse_config(
        "agent: {backend: command, command: ./fix}\n"
        "runner: {runs-on: [self-hosted, gpu]}\n"
        "workflows:\n"
        "  develop: {on: {label: null, command: null}, then: review}\n"
        "  docs: {on: {label: 'coder:docs'}, steps: [writer]}\n"
        "roles: {writer: {prompt: docs/writer.md}}\n"
    ).config
    assert config is not None
    record = render_config_record(config)
    assert record.startswith("```json coder-config\n")
    assert config_from_record(f"Queued.\n\n{record}\n").config == config
    # A built-in workflow whose trigger was switched off stays off.
    assert config_from_record(record).config.workflows["develop"].on.label is None
    assert config_from_record(render_config_record(CoderConfig())).config == CoderConfig()


def test_a_check_run_without_a_record_has_none_and_a_broken_one_says_so():
    assert config_from_record(None) is None
    assert config_from_record("```json coder-run\n{}\n```") is None
    broken = config_from_record('```json coder-config\n{"limits": {"per_repo": 0}}\n```')
    assert broken is not None
    assert not broken.ok
    assert broken.errors[0].message.startswith("the recorded config is")


async def start(devhub, admin, org, app_server, *, own_config=None, label="coder:develop"):
    await ensure_labels(app_server.access.for_installation(org.installation_id), REPO)
    owner = admin.rest(org.owner.token)
    await admin.create_repo("acme", ".github", org.owner.token, auto_init=True)
    status, _, answer = await owner.put(
        f"/repos/{ORG_REPO}/contents/.github/coder.yml",
        {"message": "org defaults", "content": _b64(ORG_CONFIG)},
    )
    assert status == 201, answer
    workflow = (ROOT / "workflows-templates" / "coder.yml").read_text()
    await put_file(owner, ".github/workflows/coder.yml", workflow)
    await put_file(owner, "tools/agent.py", AGENT)
    if own_config is not None:
        await put_file(owner, ".github/coder.yml", own_config)
    status, _, issue = await owner.post(f"/repos/{REPO}/issues", {"title": "Say hello"})
    assert status == 201, issue
    status, _, _ = await owner.post(
        f"/repos/{REPO}/issues/{issue['number']}/labels", {"labels": [label]}
    )
    assert status == 200
    run = await devhub.wait_for_run(lambda r: r.status == "completed", timeout=90)
    job_log = "\n".join(line for job in run.jobs for line in job.log)
    (pull,) = await get(owner, f"/repos/{REPO}/pulls?state=all")
    (check_run,) = (
        await get(owner, f"/repos/{REPO}/commits/{pull['head']['sha']}/check-runs?filter=all")
    )["check_runs"]
    return run, job_log, check_run


def _b64(text):
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    "own_config",
    [
        None,  # no file: the org's defaults are the config
        "_extends: .github\nlimits: {per_repo: 1}\n",  # a file over the org's base
    ],
)
async def test_a_setting_only_the_org_file_has_reaches_the_runner(
    devhub, admin, org, app_server, own_config
):
    run, job_log, check_run = await start(devhub, admin, org, app_server, own_config=own_config)
    # The script backend and the tests command are the org's: with the built-in defaults the
    # run would have tried `claude` and run no tests.
    assert run.conclusion == "success", job_log
    assert (check_run["name"], check_run["conclusion"]) == ("coder/develop", "success"), job_log
    artifact = load_develop_artifact(check_run["output"]["text"])
    assert artifact is not None
    assert artifact.testsPass is True
    assert "carries no config record" not in job_log


async def test_a_workflow_only_the_org_file_defines_runs(devhub, admin, org, app_server):
    run, job_log, check_run = await start(devhub, admin, org, app_server, label="coder:hello")
    assert run.conclusion == "success", job_log
    assert (check_run["name"], check_run["conclusion"]) == ("coder/hello", "success"), job_log
    assert load_develop_artifact(check_run["output"]["text"]).testsPass is True
