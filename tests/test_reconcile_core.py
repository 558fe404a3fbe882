"""Reconcile's pure core: mapping workflow runs to coder runs, and when an open run is stale."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.ids import run_id
from app.reconcile import (
    STALE_DISPATCH_SECONDS,
    WorkflowJobCompleted,
    job_ending,
    repo_of_issue,
    run_id_from_title,
    stale_ending,
)

EXAMPLES = Path(__file__).parent / "fixtures" / "github" / "webhook-examples"
NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def test_only_coder_run_titles_map_to_a_run():
    real = run_id("acme/widgets", "develop", 42, "delivery")
    assert run_id_from_title(f"coder run {real}") == real
    assert run_id_from_title("coder run ") is None
    assert run_id_from_title("CI") is None
    assert run_id_from_title(f"coder run {real} extra") is None
    assert run_id_from_title(None) is None


def test_github_job_payloads_parse():
    payload = json.loads((EXAMPLES / "workflow_job.completed.json").read_text())
    job = WorkflowJobCompleted.from_payload(payload).workflow_job
    assert job.conclusion == "failure"
    assert job.run_url.endswith("/actions/runs/1291536064")
    assert job.html_url


def test_a_job_ending_says_what_happened_and_links_the_job():
    ending = job_ending("coder agent", "cancelled", "https://ghe.test/acme/widgets/runs/9")
    assert ending.job_conclusion == "cancelled"
    assert "`coder agent` ended `cancelled`" in ending.what_happened
    assert ending.link == "https://ghe.test/acme/widgets/runs/9"


def check_run(minutes_ago):
    return {"status": "queued", "started_at": (NOW - timedelta(minutes=minutes_ago)).isoformat()}


def test_a_running_workflow_run_is_left_alone():
    assert stale_ending(check_run(600), {"status": "in_progress"}, NOW) is None
    assert stale_ending(check_run(600), {"status": "queued"}, NOW) is None


def test_a_finished_workflow_run_closes_the_open_check_run():
    workflow_run = {"status": "completed", "conclusion": "failure", "html_url": "https://r"}
    ending = stale_ending(check_run(1), workflow_run, NOW)
    assert ending is not None
    assert ending.job_conclusion == "failure"
    assert ending.link == "https://r"


def test_a_dispatch_without_a_workflow_run_goes_stale_after_a_while():
    minutes = STALE_DISPATCH_SECONDS // 60
    assert stale_ending(check_run(minutes - 1), None, NOW) is None
    ending = stale_ending(check_run(minutes + 1), None, NOW)
    assert ending is not None
    assert ending.link is None
    assert "No workflow run started" in ending.what_happened
    assert stale_ending({"status": "queued"}, None, NOW) is None


@pytest.mark.parametrize(
    ("url", "repo"),
    [
        ("https://api.github.com/repos/acme/widgets", "acme/widgets"),
        ("http://127.0.0.1:9/api/v3/repos/acme/widgets", "acme/widgets"),
        ("https://api.github.com/users/acme", None),
    ],
)
def test_the_repository_of_a_search_result(url, repo):
    assert repo_of_issue({"repository_url": url}) == repo
