"""Event models parse GitHub's real example payloads (@octokit/webhooks-examples)."""

import json
from pathlib import Path

import pydantic
import pytest

from app.events import (
    CheckRunRequestedAction,
    InstallationCreated,
    InstallationRepositoriesAdded,
    IssueCommentCreated,
    IssuesLabeled,
    PullRequestOpened,
)

EXAMPLES = Path(__file__).parent / "fixtures" / "github" / "webhook-examples"


def example(name):
    return json.loads((EXAMPLES / f"{name}.json").read_text())


def test_issues_labeled():
    event = IssuesLabeled.from_payload(example("issues.labeled"))
    assert event.issue.number == 1
    assert event.issue.title == "Spelling error in the README file"
    assert event.label.name == "bug"
    assert [label.name for label in event.issue.labels] == ["bug"]
    assert event.repository.full_name == "Codertocat/Hello-World"
    assert event.repository.owner.login == "Codertocat"
    assert event.repository.default_branch == "master"
    assert event.sender.login == "Codertocat"
    assert event.sender.type == "User"
    assert not event.issue.is_pull_request
    # Repository webhooks carry no installation; app webhooks do.
    assert event.installation is None


def test_issue_comment_created():
    event = IssueCommentCreated.from_payload(example("issue_comment.created"))
    assert event.comment.id == 492700400
    assert event.comment.body.startswith("You are totally right!")
    assert event.comment.user.login == "Codertocat"
    assert event.comment.author_association == "OWNER"
    assert event.issue.number == 1


def test_issue_comment_on_a_pull_request_is_recognised():
    payload = example("issue_comment.created")
    payload["issue"]["pull_request"] = {"url": "https://api.github.com/repos/o/r/pulls/1"}
    assert IssueCommentCreated.from_payload(payload).issue.is_pull_request


def test_pull_request_opened():
    event = PullRequestOpened.from_payload(example("pull_request.opened"))
    assert event.number == 2
    pull = event.pull_request
    assert pull.number == 2
    assert pull.head.ref == "changes"
    assert pull.head.sha == "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
    assert pull.base.ref == "master"
    assert pull.head.repo is not None
    assert pull.head.repo.full_name == "Codertocat/Hello-World"
    assert pull.draft is False


def test_check_run_requested_action():
    event = CheckRunRequestedAction.from_payload(example("check_run.requested_action"))
    assert event.requested_action.identifier == "lgtm|26764"
    assert event.check_run.name == "API Review"
    assert event.check_run.external_id == ""
    assert [pull.number for pull in event.check_run.pull_requests] == [26764]
    assert event.installation is not None
    assert event.installation.id == 690857


def test_installation_created():
    event = InstallationCreated.from_payload(example("installation.created"))
    assert event.installation.id == 957387
    assert event.installation.account is not None
    assert event.installation.account.login == "Codertocat"
    assert event.installation.repository_selection == "selected"
    assert [repo.full_name for repo in event.repositories] == ["Codertocat/Hello-World"]


def test_installation_repositories_added():
    event = InstallationRepositoriesAdded.from_payload(example("installation_repositories.added"))
    assert event.installation.id == 957387
    assert event.repository_selection == "selected"
    assert [repo.full_name for repo in event.repositories_added] == ["Codertocat/Space"]


def test_models_are_frozen():
    event = IssuesLabeled.from_payload(example("issues.labeled"))
    with pytest.raises(pydantic.ValidationError):
        event.issue.number = 2


@pytest.mark.parametrize(
    ("model", "name"),
    [
        (IssuesLabeled, "issues.opened"),
        (IssueCommentCreated, "issues.labeled"),
        (InstallationCreated, "installation_repositories.added"),
    ],
)
def test_the_wrong_action_or_shape_is_refused(model, name):
    with pytest.raises(pydantic.ValidationError):
        model.from_payload(example(name))
