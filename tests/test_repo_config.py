"""Reading `.github/coder.yml` from devhub: the default branch, `_extends`, org defaults, ETags."""

from __future__ import annotations

import base64

import aiohttp
import pytest

from app.config import BASE_NOT_FOUND, CONFIG_PATH
from app.github import GitHubAccess
from app.repo_config import (
    FORBIDDEN,
    NOT_A_FILE,
    OWN_FILE,
    FileText,
    Source,
    contents_text,
    fetch_config,
    fetch_config_at,
)
from app.settings import load_settings
from tests.support.app import RecordingSleep

REPO = "acme/widgets"
ORG_REPO = "acme/.github"
BASE = "acme/.github:.github/coder.yml"
ORG_CONFIG = """\
agent: {backend: claude, models: {labels: {documentation: haiku}}}
limits:
  per_repo: 1
policies: {forbidden_paths: [".github/**"]}
"""


class Files:
    """Commits files the way a person does, through the contents API."""

    def __init__(self, admin, token):
        self.rest = admin.rest(token)

    async def put(self, repo, text, *, branch=None, path=CONFIG_PATH):
        body = {"message": f"edit {path}", "content": base64.b64encode(text.encode()).decode()}
        if branch is not None:
            body["branch"] = branch
        existing = await self.sha(repo, path, branch)
        if existing is not None:
            body["sha"] = existing
        status, _, answer = await self.rest.put(f"/repos/{repo}/contents/{path}", body)
        assert status in {200, 201}, answer
        return answer["commit"]["sha"]

    async def sha(self, repo, path, branch=None):
        query = f"?ref={branch}" if branch else ""
        status, _, answer = await self.rest.get(f"/repos/{repo}/contents/{path}{query}")
        return answer["sha"] if status == 200 else None

    async def branch(self, repo, name, from_branch="main"):
        status, _, head = await self.rest.get(f"/repos/{repo}/branches/{from_branch}")
        assert status == 200, head
        body = {"ref": f"refs/heads/{name}", "sha": head["commit"]["sha"]}
        status, _, answer = await self.rest.post(f"/repos/{repo}/git/refs", body)
        assert status == 201, answer


@pytest.fixture
async def files(admin, org):
    return Files(admin, org.owner.token)


@pytest.fixture
async def org_repo(admin, org):
    await admin.create_repo("acme", ".github", org.owner.token, auto_init=True)
    return ORG_REPO


@pytest.fixture
async def gh(devhub, org):
    async with aiohttp.ClientSession() as session:
        settings = load_settings(None, devhub.app_env())
        access = GitHubAccess(settings, session, sleep=RecordingSleep())
        yield access.for_installation(org.installation_id)


async def app_reads(admin, since=0):
    """The app's requests after number `since`: (method, path, status)."""
    return [
        (r["method"], r["path"].removeprefix("/api/v3"), r["status"])
        for r in (await admin.requests())[since:]
        if r["token_owner"] == "coder[bot]"
    ]


async def test_no_file_anywhere_means_the_built_in_defaults(gh, admin):
    fetched = await fetch_config_at(gh, REPO, "main")
    assert fetched.source is Source.DEFAULTS
    assert fetched.result.ok
    assert fetched.result.config.limits.per_repo == 2
    # The org's `.github` repository is looked at once; it does not exist.
    assert await app_reads(admin) == [
        ("GET", f"/repos/{REPO}/contents/{CONFIG_PATH}", 404),
        ("GET", f"/repos/{ORG_REPO}/contents/{CONFIG_PATH}", 404),
    ]


async def test_a_repository_without_a_file_takes_the_org_defaults(gh, files, org_repo):
    await files.put(org_repo, ORG_CONFIG)
    fetched = await fetch_config_at(gh, REPO, "main")
    assert fetched.source is Source.ORG
    assert fetched.base.full_name == ORG_REPO
    assert fetched.result.config.limits.per_repo == 1
    assert fetched.result.config.agent.models.labels == {"documentation": "haiku"}


async def test_invalid_org_defaults_are_errors_naming_the_org_file(gh, files, org_repo):
    await files.put(org_repo, "limits:\n  per_repo: 0\n")
    result = await fetch_config(gh, REPO, "main")
    assert [str(error) for error in result.errors] == [
        f"{BASE}:2:3: limits.per_repo: Input should be greater than or equal to 1"
    ]


async def test_extends_merges_the_file_over_its_base(gh, files, org_repo):
    await files.put(org_repo, ORG_CONFIG)
    await files.put(REPO, "_extends: .github\nlimits: {max_concurrent: 5}\n")
    fetched = await fetch_config_at(gh, REPO, "main")
    assert (fetched.source, fetched.base.full_name) == (Source.FILE, ORG_REPO)
    limits = fetched.result.config.limits
    assert (limits.per_repo, limits.max_concurrent) == (1, 5)
    assert fetched.result.config.policies.forbidden_paths == (".github/**",)


async def test_errors_in_the_base_name_the_base_file(gh, files, org_repo):
    await files.put(org_repo, "agent:\n  backend: claude\nworkflows:\n  develop:\n    stepz: []\n")
    await files.put(REPO, "_extends: acme/.github\n")
    (error,) = (await fetch_config(gh, REPO, "main")).errors
    assert str(error) == f"{BASE}:5:5: workflows.develop.stepz: unknown key"


async def test_a_missing_base_is_an_error_at_the_extends_line(gh, files):
    await files.put(REPO, "limits: {per_repo: 1}\n_extends: .github\n")
    (error,) = (await fetch_config(gh, REPO, "main")).errors
    assert (error.path, error.line, error.column) == (CONFIG_PATH, 2, 1)
    assert error.message == f"_extends: cannot read {BASE}: {BASE_NOT_FOUND}"


async def test_a_base_in_another_org_the_app_cannot_see_is_an_error(gh, files, admin):
    bob = await admin.create_user("bob")
    await admin.create_org("other", "bob")
    # Private: the app's installation token reads public repositories of any org, as on GitHub.
    await admin.create_repo("other", ".github", bob.token, auto_init=True, private=True)
    await Files(admin, bob.token).put("other/.github", "limits: {per_repo: 1}\n")
    await files.put(REPO, "_extends: other/.github\n")
    (error,) = (await fetch_config(gh, REPO, "main")).errors
    assert error.message.startswith("_extends: cannot read other/.github:.github/coder.yml")


async def test_a_file_cannot_extend_itself(gh, files):
    await files.put(REPO, "_extends: widgets\n")
    (error,) = (await fetch_config(gh, REPO, "main")).errors
    assert error.message == f"_extends: cannot read {REPO}:{CONFIG_PATH}: {OWN_FILE}"


async def test_a_base_that_extends_again_is_an_error_at_its_line(gh, files, org_repo):
    await files.put(org_repo, "limits: {per_repo: 1}\n_extends: other/.github\n")
    await files.put(REPO, "_extends: .github\n")
    (error,) = (await fetch_config(gh, REPO, "main")).errors
    assert (error.path, error.line) == (BASE, 2)
    assert "one level only" in error.message


async def test_the_base_comes_from_its_default_branch_whatever_ref_is_read(gh, files, org_repo):
    await files.put(org_repo, "limits: {per_repo: 1}\n")
    await files.branch(org_repo, "feature")
    await files.put(org_repo, "limits: {per_repo: 4}\n", branch="feature")
    await files.branch(REPO, "feature")
    await files.put(REPO, "_extends: .github\n", branch="feature")
    fetched = await fetch_config_at(gh, REPO, "feature")
    assert fetched.result.config.limits.per_repo == 1


async def test_a_pull_requests_head_cannot_change_the_config(gh, files, org, admin):
    await files.put(REPO, "limits: {per_repo: 3}\n")
    await files.branch(REPO, "sneaky")
    await files.put(REPO, "limits: {per_repo: 9}\nallowed_bots: [evil[bot]]\n", branch="sneaky")
    status, _, pull = await admin.rest(org.owner.token).post(
        f"/repos/{REPO}/pulls", {"title": "Raise limits", "head": "sneaky", "base": "main"}
    )
    assert status == 201, pull
    # What a pull request's handler reads: the config of the branch it targets.
    config = (await fetch_config(gh, REPO, pull["base"]["ref"])).config
    assert config.limits.per_repo == 3
    assert config.allowed_bots == ()


async def test_reading_again_is_a_free_304(gh, files, org_repo, admin):
    await files.put(org_repo, ORG_CONFIG)
    await files.put(REPO, "_extends: .github\n")
    first = await fetch_config(gh, REPO, "main")
    before = len(await admin.requests())
    again = await fetch_config(gh, REPO, "main")
    assert again == first
    assert await app_reads(admin, before) == [
        ("GET", f"/repos/{REPO}/contents/{CONFIG_PATH}", 304),
        ("GET", f"/repos/{ORG_REPO}/contents/{CONFIG_PATH}", 304),
    ]


async def test_a_directory_where_the_file_should_be_is_an_error(gh, files):
    await files.put(REPO, "x: 1\n", path=f"{CONFIG_PATH}/oops.yml")
    (error,) = (await fetch_config(gh, REPO, "main")).errors
    assert (error.path, error.message) == (CONFIG_PATH, NOT_A_FILE)


def test_contents_answers_become_text_or_a_reason():
    def answer(text, **fields):
        return (
            {"type": "file", "encoding": "base64", "size": len(text)}
            | {"content": base64.b64encode(text.encode()).decode()}
            | fields
        )

    assert contents_text(answer("a: 1\n")) == FileText("a: 1\n")
    assert contents_text([{"type": "file"}]).problem == NOT_A_FILE
    assert contents_text(answer("", encoding="none", size=2_000_000)).problem.startswith(
        "the file is larger"
    )
    not_utf8 = {"type": "file", "encoding": "base64", "content": base64.b64encode(b"\xff").decode()}
    assert contents_text(not_utf8).problem == "the file is not UTF-8 text"
    assert FileText().missing
    assert not FileText(problem=FORBIDDEN).missing


async def test_a_label_runs_by_the_default_branchs_config_not_a_pull_requests(
    devhub, admin, org, files, app_server
):
    # The head of an open pull request turns `coder:develop` off; the label still starts a run,
    # because only the default branch's config counts.
    await files.branch(REPO, "sneaky")
    await files.put(REPO, "workflows:\n  develop: {on: {label: nothing}}\n", branch="sneaky")
    rest = admin.rest(org.owner.token)
    status, _, pull = await rest.post(
        f"/repos/{REPO}/pulls", {"title": "Turn it off", "head": "sneaky", "base": "main"}
    )
    assert status == 201, pull
    status, _, issue = await rest.post(f"/repos/{REPO}/issues", {"title": "Fix the frobnicator"})
    assert status == 201, issue
    status, _, _ = await rest.post(
        f"/repos/{REPO}/issues/{issue['number']}/labels", {"labels": ["coder:develop"]}
    )
    assert status == 200
    delivery = await devhub.wait_for_delivery(event="issues", action="labeled")
    assert await app_server.queue.wait_for(delivery.guid) == "ok"
    status, _, branches = await rest.get(
        f"/repos/{REPO}/git/matching-refs/heads/coder/{issue['number']}-"
    )
    assert status == 200
    assert [b["ref"] for b in branches] == [
        f"refs/heads/coder/{issue['number']}-fix-the-frobnicator"
    ]
