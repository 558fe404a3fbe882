"""Run ids are deterministic; subject keys group deliveries about the same thing."""

import json
import re
from pathlib import Path

import pytest
from gidgethub.sansio import Event

from app.ids import run_id, subject_key

EXAMPLES = Path(__file__).parent / "fixtures" / "github" / "webhook-examples"


def example(name):
    path = EXAMPLES / f"{name}.json"
    if not path.is_file():
        pytest.skip(f"webhook example {name} not extracted yet")
    return json.loads(path.read_text())


def event(name, data):
    return Event(data, event=name, delivery_id="d-1")


def test_run_id_is_stable_and_short():
    first = run_id("acme/widgets", "develop", 42, "delivery-label-1")
    assert first == run_id("acme/widgets", "develop", 42, "delivery-label-1")
    assert re.fullmatch(r"[a-z2-7]{12}", first)


def test_run_id_ignores_repo_case_because_github_does():
    assert run_id("Acme/Widgets", "develop", 1, "t") == run_id("acme/widgets", "develop", 1, "t")


@pytest.mark.parametrize(
    "other",
    [
        ("acme/gadgets", "develop", 42, "t"),
        ("acme/widgets", "review", 42, "t"),
        ("acme/widgets", "develop", 43, "t"),
        ("acme/widgets", "develop", 42, "u"),
        # Field boundaries matter: shifting text between fields must not collide.
        ("acme/widgetsdevelop", "", 42, "t"),
    ],
)
def test_run_id_changes_with_every_field(other):
    assert run_id("acme/widgets", "develop", 42, "t") != run_id(*other)


def test_issue_events_are_keyed_by_issue():
    payload = example("issues.labeled")
    assert subject_key(event("issues", payload)) == "Codertocat/Hello-World#1"


def test_comments_share_the_issue_subject():
    payload = example("issue_comment.created")
    assert subject_key(event("issue_comment", payload)) == "Codertocat/Hello-World#1"


def test_pull_request_events_are_keyed_by_number():
    payload = example("pull_request.opened")
    assert subject_key(event("pull_request", payload)) == "Codertocat/Hello-World#2"


def test_check_run_with_a_pull_request_is_keyed_by_it():
    payload = example("check_run.requested_action")
    assert subject_key(event("check_run", payload)) == "electron/electron#26764"


def test_check_run_without_pull_request_is_repo_level():
    payload = example("check_run.requested_action")
    payload["check_run"]["pull_requests"] = []
    assert subject_key(event("check_run", payload)) == "electron/electron"


def test_push_is_repo_level():
    payload = example("push")
    assert subject_key(event("push", payload)) == "Codertocat/Hello-World"


def test_installation_events_are_keyed_by_installation():
    created = example("installation.created")
    assert subject_key(event("installation", created)) == "installation:957387"
    added = example("installation_repositories.added")
    assert subject_key(event("installation_repositories", added)) == "installation:957387"


def test_events_with_neither_repository_nor_installation():
    assert subject_key(event("meta", {"hook_id": 1})) == "app"
    assert subject_key(event("meta", ["not", "a", "mapping"])) == "app"
