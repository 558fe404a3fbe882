"""The `coder/config` check run: what it says (pure), and pushes to devhub that get one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.config import CONFIG_PATH, ConfigError, ConfigResult, Extends, parse_config
from app.config_check import (
    NO_CONFIG,
    PUSH_COMMITS_SHOWN,
    Push,
    Verdict,
    annotation,
    changes_config,
    check_run_updates,
    report,
    verdict,
)
from app.repo_config import FetchedConfig, Source, fetch_config_at
from tests.test_repo_config import Files

EXAMPLES = Path(__file__).parent / "fixtures" / "github" / "webhook-examples"
REPO = "acme/widgets"
CHECK = "coder/config"
SHA = "0123456789abcdef0123456789abcdef01234567"
MANY_ERRORS = "".join(f"key{i}: 1\n" for i in range(60))


def push_payload(*, ref="refs/heads/main", commits=None, deleted=False):
    payload = json.loads((EXAMPLES / "push.json").read_text())
    payload |= {"ref": ref, "after": SHA, "deleted": deleted}
    payload["commits"] = commits if commits is not None else []
    return payload


def commit(added=(), modified=(), removed=()):
    return {"added": list(added), "modified": list(modified), "removed": list(removed)}


def test_githubs_example_push_is_a_tag_and_checks_nothing():
    push = Push.from_payload(json.loads((EXAMPLES / "push.json").read_text()))
    assert push.branch is None
    assert not changes_config(push)


@pytest.mark.parametrize(
    ("commits", "expected"),
    [
        ([commit(added=[CONFIG_PATH])], True),
        ([commit(modified=["README.md"]), commit(modified=[CONFIG_PATH])], True),
        ([commit(removed=[CONFIG_PATH])], True),
        ([commit(modified=["README.md", ".github/coder.yaml", "x/.github/coder.yml"])], False),
        ([], False),
        # The payload may list only the first 20 commits: past that, check anyway.
        ([commit(modified=["README.md"])] * PUSH_COMMITS_SHOWN, True),
    ],
)
def test_a_push_matters_when_it_touches_the_config(commits, expected):
    assert changes_config(Push.from_payload(push_payload(commits=commits))) is expected


def test_tags_and_deleted_branches_are_not_checked():
    touched = [commit(modified=[CONFIG_PATH])]
    assert not changes_config(Push.from_payload(push_payload(ref="refs/tags/v1", commits=touched)))
    deleted = push_payload(commits=touched, deleted=True)
    assert not changes_config(Push.from_payload(deleted))


def fetched(text, source=Source.FILE, base=None):
    return FetchedConfig(parse_config(text), source, base)


def test_a_valid_file_names_its_workflows():
    result = verdict(
        fetched("workflows:\n  docs: {on: {label: 'coder:docs'}}\n"),
        sha=SHA,
        branch="main",
        default_branch="main",
    )
    assert result.conclusion == "success"
    assert (
        result.title == "valid; 7 workflows: research, design, develop, review, fix, release, docs"
    )
    assert "This is the config coder uses" in result.summary
    assert check_run_updates(result) == [
        {
            "status": "completed",
            "conclusion": "success",
            "output": {"title": result.title, "summary": result.summary},
        }
    ]


def test_a_file_with_a_base_says_so():
    with_base = FetchedConfig(
        parse_config("_extends: .github\n"), Source.FILE, Extends("acme", ".github")
    )
    result = verdict(with_base, sha=SHA, branch="main", default_branch="main")
    assert "It extends `acme/.github:.github/coder.yml`." in result.summary


def test_no_file_means_defaults_or_the_org():
    none = verdict(fetched(None, Source.DEFAULTS), sha=SHA, branch="main", default_branch="main")
    assert (none.conclusion, none.title) == ("success", NO_CONFIG)
    org = verdict(
        fetched(None, Source.ORG, Extends("acme", ".github")),
        sha=SHA,
        branch="main",
        default_branch="main",
    )
    assert org.title == "no config; the defaults in acme/.github apply"


def test_on_another_branch_the_check_says_only_the_default_branch_counts():
    result = verdict(fetched("x: 1\n"), sha=SHA, branch="feature", default_branch="main")
    assert "coder reads its config from `main` only" in result.summary
    assert "No run starts here" not in result.summary


def test_a_failure_lists_every_error_in_the_clis_words():
    result = verdict(
        fetched("agent:\n  comand: x\nlimits: {per_repo: 0}\n"),
        sha=SHA,
        branch="main",
        default_branch="main",
    )
    assert (result.conclusion, result.title) == ("failure", "invalid: 2 errors")
    for error in result.errors:
        assert f"\n{error}\n" in result.summary
    assert "No run starts here until the file is fixed." in result.summary
    (update,) = check_run_updates(result)
    assert update["conclusion"] == "failure"
    assert [a["start_line"] for a in update["output"]["annotations"]] == [2, 3]


def test_an_annotation_sits_at_the_errors_line_and_column():
    error = ConfigError(CONFIG_PATH, 3, 5, "workflows.docs.stepz: unknown key")
    assert annotation(error) == {
        "path": CONFIG_PATH,
        "start_line": 3,
        "end_line": 3,
        "start_column": 5,
        "end_column": 5,
        "annotation_level": "failure",
        "title": "coder config",
        "message": "workflows.docs.stepz: unknown key",
    }


def test_annotations_go_fifty_per_request_and_the_last_request_completes():
    errors = tuple(ConfigError(CONFIG_PATH, i + 1, 1, f"e{i}") for i in range(120))
    result = Verdict("failure", "invalid: 120 errors", "...", errors)
    updates = check_run_updates(result)
    assert [len(u["output"]["annotations"]) for u in updates] == [50, 50, 20]
    assert [u["status"] for u in updates] == ["in_progress", "in_progress", "completed"]
    assert "conclusion" not in updates[0]
    assert updates[-1]["conclusion"] == "failure"
    # A redelivery after 50 landed sends only the rest.
    resumed = check_run_updates(result, annotated=50)
    assert [u["output"]["annotations"][0]["message"] for u in resumed] == ["e50", "e100"]
    done = check_run_updates(result, annotated=120)
    assert len(done) == 1
    assert "annotations" not in done[0]["output"]


def test_a_huge_summary_is_clipped_to_githubs_limit():
    errors = tuple(ConfigError(CONFIG_PATH, 1, 1, "x" * 1000) for _ in range(100))
    result = verdict(
        FetchedConfig(ConfigResult(None, errors), Source.FILE),
        sha=SHA,
        branch="main",
        default_branch="main",
    )
    summary = check_run_updates(result)[0]["output"]["summary"]
    assert len(summary) == 65_535
    assert summary.endswith("(truncated)")


# Against devhub, through the app.


class Pushes:
    """Commit config changes as alice, and wait until the app has handled each push."""

    def __init__(self, devhub, admin, org, app_server):
        self.devhub = devhub
        self.app_server = app_server
        self.files = Files(admin, org.owner.token)
        self.rest = admin.rest(org.owner.token)

    async def put(self, text, branch=None, path=CONFIG_PATH):
        sha = await self.files.put(REPO, text, branch=branch, path=path)
        await self.handled(sha)
        return sha

    async def delete(self):
        body = {"message": "no config", "sha": await self.files.sha(REPO, CONFIG_PATH)}
        status, _, answer = await self.rest.delete(f"/repos/{REPO}/contents/{CONFIG_PATH}", body)
        assert status == 200, answer
        sha = answer["commit"]["sha"]
        await self.handled(sha)
        return sha

    async def delivery(self, sha):
        return await self.devhub.wait_for_delivery(
            event="push", predicate=lambda d: json.loads(d.body)["after"] == sha
        )

    async def handled(self, sha):
        delivery = await self.delivery(sha)
        assert await self.app_server.queue.wait_for(delivery.guid) == "ok"
        return delivery

    async def check_runs(self, sha):
        status, _, answer = await self.rest.get(
            f"/repos/{REPO}/commits/{sha}/check-runs?check_name={CHECK}&filter=all"
        )
        assert status == 200, answer
        return answer["check_runs"]

    async def annotations(self, check_run):
        status, _, answer = await self.rest.get(
            f"/repos/{REPO}/check-runs/{check_run['id']}/annotations?per_page=100"
        )
        assert status == 200, answer
        return answer


@pytest.fixture
async def pushes(devhub, admin, org, app_server):
    return Pushes(devhub, admin, org, app_server)


async def test_a_valid_config_gets_a_green_check_naming_its_workflows(pushes):
    sha = await pushes.put("workflows:\n  docs: {on: {label: 'coder:docs'}}\n")
    [check_run] = await pushes.check_runs(sha)
    assert (check_run["status"], check_run["conclusion"]) == ("completed", "success")
    assert check_run["app"]["slug"] == "coder"
    assert check_run["output"]["title"] == (
        "valid; 7 workflows: research, design, develop, review, fix, release, docs"
    )


async def test_an_invalid_config_on_a_branch_is_annotated_at_its_lines(pushes):
    await pushes.files.branch(REPO, "feature")
    sha = await pushes.put(
        "agent:\n  backend: claude\n  comand: x\nlimits: {per_repo: 0}\n", "feature"
    )
    [check_run] = await pushes.check_runs(sha)
    assert (check_run["conclusion"], check_run["output"]["title"]) == (
        "failure",
        "invalid: 2 errors",
    )
    assert "reads its config from `main` only" in check_run["output"]["summary"]
    annotations = await pushes.annotations(check_run)
    assert [(a["path"], a["start_line"], a["start_column"]) for a in annotations] == [
        (CONFIG_PATH, 3, 3),
        (CONFIG_PATH, 4, 10),
    ]
    assert annotations[0]["message"] == "agent.comand: unknown key"
    assert annotations[0]["annotation_level"] == "failure"


async def test_errors_in_the_base_name_the_base(pushes, admin, org):
    await admin.create_repo("acme", ".github", org.owner.token, auto_init=True)
    await pushes.files.put("acme/.github", "limits:\n  per_repo: 0\n")
    sha = await pushes.put("_extends: .github\n")
    [check_run] = await pushes.check_runs(sha)
    # That file is not in this repository: the summary names it, no annotation points at it.
    assert await pushes.annotations(check_run) == []
    assert check_run["output"]["annotations_count"] == 0
    summary = check_run["output"]["summary"]
    assert "acme/.github:.github/coder.yml:2:3: limits.per_repo" in summary
    assert "Errors in `acme/.github:.github/coder.yml` are listed here only" in summary


def test_only_errors_in_the_repositorys_own_file_are_annotated():
    errors = (
        ConfigError("acme/.github:.github/coder.yml", 2, 3, "limits.per_repo: too small"),
        ConfigError(CONFIG_PATH, 1, 1, "_extends: cannot read it"),
    )
    result = verdict(
        FetchedConfig(ConfigResult(None, errors), Source.FILE),
        sha=SHA,
        branch="main",
        default_branch="main",
    )
    [update] = check_run_updates(result)
    assert [a["path"] for a in update["output"]["annotations"]] == [CONFIG_PATH]
    assert "acme/.github:.github/coder.yml:2:3" in update["output"]["summary"]


async def test_a_deeply_nested_config_is_a_red_check_at_its_line(pushes):
    sha = await pushes.put("agent: {}\nlimits: " + "[" * 500 + "]" * 500 + "\n")
    [check_run] = await pushes.check_runs(sha)
    assert (check_run["conclusion"], check_run["output"]["title"]) == (
        "failure",
        "invalid: 1 error",
    )
    [note] = await pushes.annotations(check_run)
    assert (note["path"], note["start_line"], note["start_column"]) == (CONFIG_PATH, 2, 40)
    assert note["message"] == "the document nests more than 32 levels deep"


async def test_a_push_that_leaves_the_config_alone_gets_no_check(pushes):
    sha = await pushes.put("# readme\n", path="README.md")
    assert await pushes.check_runs(sha) == []


async def test_removing_the_file_means_the_built_in_defaults(pushes):
    await pushes.put("limits: {per_repo: 1}\n")
    sha = await pushes.delete()
    [check_run] = await pushes.check_runs(sha)
    assert (check_run["conclusion"], check_run["output"]["title"]) == ("success", NO_CONFIG)


async def test_more_than_fifty_errors_are_all_annotated(pushes, admin):
    before = len(await admin.requests())
    sha = await pushes.put(MANY_ERRORS)
    [check_run] = await pushes.check_runs(sha)
    assert check_run["output"]["annotations_count"] == 60
    assert len(await pushes.annotations(check_run)) == 60
    writes = [
        (r["method"], r["path"].rsplit("/", 1)[-1].isdigit())
        for r in (await admin.requests())[before:]
        if r["token_owner"] == "coder[bot]" and r["method"] in {"POST", "PATCH"}
    ]
    assert writes == [("POST", False), ("PATCH", True)]


async def test_a_redelivered_push_adds_nothing(pushes, admin, app_server):
    sha = await pushes.put("agent: {backend: gpt}\n")
    delivery = await pushes.delivery(sha)
    before = len(await admin.requests())
    # A new delivery id, as a second replica (or a redelivery after a restart) would see it.
    status, _ = await app_server.deliver("push", json.loads(delivery.body), delivery_id="again")
    assert status == 202
    assert await app_server.queue.wait_for("again") == "ok"
    assert len(await pushes.check_runs(sha)) == 1
    calls = [r for r in (await admin.requests())[before:] if r["token_owner"] == "coder[bot]"]
    assert [(r["method"], "check-runs" in r["path"]) for r in calls] == [("GET", True)]


async def test_a_report_cut_short_is_finished_by_the_next_delivery(
    pushes, devhub, app_server, receiver, org
):
    # The app misses the push (it goes elsewhere), starts the check run, and dies after the
    # first page of annotations; the redelivery finds its check run and sends the rest.
    devhub.webhook_url = receiver.url
    sha = await pushes.files.put(REPO, MANY_ERRORS)
    delivery = await pushes.delivery(sha)
    gh = app_server.access.for_installation(org.installation_id)
    found = await fetch_config_at(gh, REPO, sha)
    updates = check_run_updates(verdict(found, sha=sha, branch="main", default_branch="main"))
    await report(gh, REPO, sha, updates[:1], None)
    [check_run] = await pushes.check_runs(sha)
    assert (check_run["status"], check_run["output"]["annotations_count"]) == ("in_progress", 50)
    devhub.webhook_url = app_server.webhook_url
    await app_server.deliver("push", json.loads(delivery.body), delivery_id=delivery.guid)
    assert await app_server.queue.wait_for(delivery.guid) == "ok"
    [check_run] = await pushes.check_runs(sha)
    assert (check_run["status"], check_run["conclusion"]) == ("completed", "failure")
    assert check_run["output"]["annotations_count"] == 60
    messages = [a["message"] for a in await pushes.annotations(check_run)]
    assert len(set(messages)) == 60
