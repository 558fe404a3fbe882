"""A design run end to end on devhub: `coder:design`, the app, a dispatched job, coder-agent.

The designer (the deterministic `script` backend) writes its spec files under `.coder/specs/`
and its step artifact; the run pushes them to the run branch, and its check run's text carries
the DesignArtifact. A design run that writes no spec fails, saying so.
"""

from __future__ import annotations

import base64

from app.artifacts import DesignArtifact, load_artifact
from app.installation import ensure_labels
from tests.test_agent_journey import ROOT, get, put_file

REPO = "acme/widgets"
CONFIG = "agent: {backend: script, script: tools/agent.py}\n"
DESIGNER = """\
import json, os, pathlib
assert os.environ["CODER_ROLE"] == "designer", os.environ["CODER_ROLE"]
spec = pathlib.Path(".coder/specs/settings")
spec.mkdir(parents=True)
(spec / "README.md").write_text("# Settings page\\n\\nOne screen.\\n")
(spec / "settings.md").write_text("## Settings\\n\\nA toggle for e-mail.\\n")
artifact = {"specDir": ".coder/specs/settings/",
            "screens": [{"name": "Settings", "path": ".coder/specs/settings/settings.md"}]}
pathlib.Path(os.environ["CODER_ARTIFACT_FILE"]).write_text(json.dumps(artifact))
print("STATUS: designed the settings page")
print("COST: 0.02")
"""
LAZY_DESIGNER = """\
import pathlib
pathlib.Path("notes.md").write_text("thoughts, not a spec\\n")
print("STATUS: wrote notes")
"""


async def design_run(devhub, admin, org, app_server, agent):
    await ensure_labels(app_server.access.for_installation(org.installation_id), REPO)
    owner = admin.rest(org.owner.token)
    workflow = (ROOT / "workflows-templates" / "coder.yml").read_text()
    await put_file(owner, ".github/workflows/coder.yml", workflow)
    await put_file(owner, ".github/coder.yml", CONFIG)
    await put_file(owner, "tools/agent.py", agent)
    status, _, issue = await owner.post(
        f"/repos/{REPO}/issues", {"title": "Design the settings page", "body": "E-mail toggle."}
    )
    assert status == 201, issue
    status, _, _ = await owner.post(
        f"/repos/{REPO}/issues/{issue['number']}/labels", {"labels": ["coder:design"]}
    )
    assert status == 200
    run = await devhub.wait_for_run(lambda r: r.status == "completed", timeout=90)
    job_log = "\n".join(line for job in run.jobs for line in job.log)
    (pull,) = await get(owner, f"/repos/{REPO}/pulls?state=all")
    (check_run,) = (
        await get(owner, f"/repos/{REPO}/commits/{pull['head']['sha']}/check-runs?filter=all")
    )["check_runs"]
    return owner, issue, pull, check_run, job_log


async def test_a_design_run_pushes_its_spec_files_and_hands_on_a_design_artifact(
    devhub, admin, org, app_server
):
    owner, issue, pull, check_run, job_log = await design_run(
        devhub, admin, org, app_server, DESIGNER
    )
    assert (check_run["name"], check_run["conclusion"]) == ("coder/design", "success"), job_log
    branch = pull["head"]["ref"]
    assert branch.startswith(f"coder/{issue['number']}-design-")
    # A design is a spec, not code: the pull request stays a draft.
    assert pull["draft"] is True
    artifact = load_artifact(check_run["output"]["text"])
    assert isinstance(artifact, DesignArtifact), check_run["output"]["text"]
    assert artifact.specDir == ".coder/specs/settings/"
    assert [(s.name, s.path) for s in artifact.screens] == [
        ("Settings", ".coder/specs/settings/settings.md")
    ]
    assert artifact.branchName == branch
    assert artifact.commitSha == pull["head"]["sha"]
    assert artifact.repo == REPO
    files = await get(owner, f"/repos/{REPO}/pulls/{pull['number']}/files")
    assert sorted(f["filename"] for f in files) == [
        ".coder/specs/settings/README.md",
        ".coder/specs/settings/settings.md",
    ]
    screen = await get(
        owner, f"/repos/{REPO}/contents/.coder/specs/settings/settings.md?ref={branch}"
    )
    assert "A toggle for e-mail." in base64.b64decode(screen["content"]).decode()


async def test_a_design_run_that_writes_no_spec_fails(devhub, admin, org, app_server):
    _, _, pull, check_run, job_log = await design_run(devhub, admin, org, app_server, LAZY_DESIGNER)
    assert (check_run["name"], check_run["conclusion"]) == ("coder/design", "failure"), job_log
    assert ".coder/specs/" in check_run["output"]["summary"]
    assert pull["draft"] is True
