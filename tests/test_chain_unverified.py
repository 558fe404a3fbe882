"""Follow-ups that cannot happen are said, never skipped: an unverified run, an invalid config.

A run that pushed work nothing tested ends `neutral`; `then:` and `auto_split` follow only a
run that succeeded, so the next workflow's check run and the issue say why nothing followed.
These runs are the real coder-agent on devhub's runner (the `script` backend), not a stand-in.
A run that succeeds while the config is invalid gets a red check run (or a comment) that links
`coder/config`.
"""

from __future__ import annotations

import json

import pytest

from app.installation import ensure_labels
from tests.test_agent_journey import ROOT
from tests.test_chain import RESEARCH, completed_check_run, stand_in
from tests.test_develop import CONFIG_PATH, REPO, install_workflow, workflow_runs
from tests.test_triggers import Triggers

CONFIG = """\
agent: {backend: script, script: tools/agent.py}
workflows:
  develop: {then: review, auto_split: true}
"""
AGENT = """\
import json, os, pathlib
role = os.environ["CODER_ROLE"]
print(f"STATUS: {role} at work")
if role == "architect":
    plan = {"kind": "plan", "summary": "Two parts.", "files": ["hello.txt"],
            "split": [{"title": "Part one"}, {"title": "Part two"}]}
    pathlib.Path(os.environ["CODER_ARTIFACT_FILE"]).write_text(json.dumps(plan))
if role == "implementer":
    pathlib.Path("hello.txt").write_text("hello\\n")
    print("COST: 0.05")
"""
BROKEN = "limits:\n  per_repo: 0\n"


@pytest.fixture
async def journey(devhub, admin, org, app_server):
    await ensure_labels(app_server.access.for_installation(org.installation_id), REPO)
    return Triggers(devhub, admin, org, app_server)


def run_end(delivery):
    """Match the `check_run.completed` that ends a run: it carries the run's artifact."""
    check_run = json.loads(delivery.body)["check_run"]
    return check_run["name"] == "coder/develop" and "coder-artifact" in (
        check_run["output"]["text"] or ""
    )


async def test_an_untested_run_says_its_then_and_split_did_not_happen(journey, devhub):
    await journey.put_file(
        ".github/workflows/coder.yml", (ROOT / "workflows-templates" / "coder.yml").read_text()
    )
    await journey.put_file(CONFIG_PATH, CONFIG)
    await journey.put_file("tools/agent.py", AGENT)
    number = await journey.issue()
    seen = await journey.seen()
    await journey.label(number)
    run = await devhub.wait_for_run(lambda r: r.status == "completed", timeout=90)
    job_log = "\n".join(line for job in run.jobs for line in job.log)
    delivery = await journey.handled("check_run", "completed", seen, predicate=run_end)
    finished = json.loads(delivery.body)["check_run"]
    # No tests are configured: the work was pushed, and nothing checked it.
    assert finished["conclusion"] == "neutral", job_log
    run_id = finished["external_id"]
    [review] = [
        r for r in await journey.check_runs(finished["head_sha"]) if r["name"] == "coder/review"
    ]
    assert review["conclusion"] == "neutral"
    assert review["output"]["title"] == f"not started: run {run_id} ended neutral"
    assert "`then:` follows only a run that succeeded" in review["output"]["summary"]
    assert "tests.command" in review["output"]["summary"]
    [(_, fields)] = [m for m in await journey.markers(number) if m[0] == "split-held"]
    assert fields == {"run": run_id}
    # Nothing else started: one job, and no sub-issues.
    assert len(await workflow_runs(journey)) == 1
    issues = await journey.get(f"/repos/{REPO}/issues?state=all&per_page=100")
    assert [issue["title"] for issue in issues if "Part" in issue["title"]] == []


def research_artifact(report, branch):
    text = json.dumps(RESEARCH)
    for key, value in {
        "RUN_ID": report["run_id"],
        "REPO": REPO,
        "BRANCH": branch,
        "ISSUE": report["issue"],
    }.items():
        text = text.replace("$" + key, value)
    return "```json coder-artifact\n" + text + "\n```"


async def finish_while_the_config_is_broken(journey, devhub, tmp_path, ask):
    """Start a research run, break the config, then complete its check run as the runner would."""
    # The stand-in leaves the check run open (no artifact planned for research).
    runner = await stand_in(devhub, tmp_path, {})
    try:
        await install_workflow(journey)
        number = await journey.issue()
        await ask(number)
        report = await runner.next("research")
    finally:
        await runner.close()
    [branch] = await journey.branch_names(number)
    await journey.put_file(CONFIG_PATH, BROKEN)
    gh = journey.app_server.access.for_installation(journey.org.installation_id)
    seen = await journey.seen()
    owner, name = REPO.split("/")
    check_run = await gh.patch(
        "/repos/{owner}/{repo}/check-runs/{check_run_id}",
        {"owner": owner, "repo": name, "check_run_id": str(report["check_run"])},
        data={
            "status": "completed",
            "conclusion": "success",
            "output": {
                "title": "done",
                "summary": "done",
                "text": research_artifact(report, branch),
            },
        },
    )
    await journey.handled(
        "check_run", "completed", seen, predicate=completed_check_run("coder/research")
    )
    main = await journey.get(f"/repos/{REPO}/branches/main")
    [config_run] = [
        r for r in await journey.check_runs(main["commit"]["sha"]) if r["name"] == "coder/config"
    ]
    assert config_run["conclusion"] == "failure"
    return number, report, check_run, config_run


async def test_a_chain_under_an_invalid_config_fails_the_next_check_run(journey, devhub, tmp_path):
    async def ask(number):
        await journey.comment(number, "/coder research --then develop")

    _, _, check_run, config_run = await finish_while_the_config_is_broken(
        journey, devhub, tmp_path, ask
    )
    [stopped] = [
        r for r in await journey.check_runs(check_run["head_sha"]) if r["name"] == "coder/develop"
    ]
    assert stopped["conclusion"] == "failure"
    assert stopped["output"]["title"] == "chain stopped: the config on main is invalid"
    summary = stopped["output"]["summary"]
    assert f"`{CONFIG_PATH}:2:3` limits.per_repo" in summary
    assert config_run["html_url"] in summary
    assert len(await workflow_runs(journey)) == 1


async def test_without_a_named_next_workflow_the_issue_is_told(journey, devhub, tmp_path):
    async def ask(number):
        await journey.label(number, "coder:research")

    number, report, _, config_run = await finish_while_the_config_is_broken(
        journey, devhub, tmp_path, ask
    )
    [comment] = [c for c in await journey.comments(number) if "follow-ups-held" in c["body"]]
    assert f"Run `{report['run_id']}` finished" in comment["body"]
    assert f"`{CONFIG_PATH}:2`: limits.per_repo" in comment["body"]
    assert config_run["html_url"] in comment["body"]
    assert len(await workflow_runs(journey)) == 1
