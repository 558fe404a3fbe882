"""devhub's pull request review comments: placing them in the diff, threads, reviews, reactions."""

from __future__ import annotations

from devhub.diff_anchors import (
    LINE_OUTSIDE,
    PATH_UNRESOLVED,
    START_OUTSIDE_HUNK,
    Placement,
    place,
    to_sentence,
)
from devhub.state_pulls import DiffAnchor
from tests.support.devhub import installation_token
from tests.test_devhub_pulls import branch, commit_file, payloads

NOTES = "a\nb\nc\nd\ne\n"
# The branch turns line 3 into "C" and appends "f": one hunk, positions 1-7 below its header.
CHANGED = "a\nb\nC\nd\ne\nf\n"
HUNK = "@@ -1,5 +1,6 @@\n a\n b\n-c\n+C"


async def pull_with_change(admin, org):
    """Open pull request #1 from `feature`, which edits notes.txt; return (rest, pull)."""
    rest = admin.rest(org.owner.token)
    await commit_file(rest, org.repo, "main", "notes.txt", NOTES)
    await branch(rest, org.repo, "feature", {"notes.txt": CHANGED})
    status, _, pull = await rest.post(
        f"/repos/{org.repo}/pulls", {"title": "Edit notes", "head": "feature", "base": "main"}
    )
    assert status == 201, pull
    return rest, pull


async def test_a_comment_on_a_line_comes_with_its_own_review(devhub, admin, org, receiver):
    devhub.webhook_url = receiver.url
    _, pull = await pull_with_change(admin, org)
    bob = await admin.create_user("bob")  # may read the public repository, so may comment
    comments = f"/repos/{org.repo}/pulls/1/comments"
    head = pull["head"]["sha"]
    status, headers, comment = await admin.rest(bob.token).post(
        comments,
        {"body": "Why upper case?", "commit_id": head, "path": "notes.txt", "line": 3},
    )
    assert status == 201, comment
    assert headers["Location"] == comment["url"]
    assert comment["url"].endswith(f"/repos/{org.repo}/pulls/comments/{comment['id']}")
    assert (comment["path"], comment["line"], comment["side"]) == ("notes.txt", 3, "RIGHT")
    assert (comment["position"], comment["original_position"]) == (4, 4)
    assert (comment["commit_id"], comment["original_commit_id"]) == (head, head)
    assert comment["diff_hunk"] == HUNK
    assert comment["start_line"] is None
    assert comment["user"]["login"] == "bob"
    assert comment["author_association"] == "NONE"
    assert "in_reply_to_id" not in comment
    created = await devhub.wait_for_delivery(event="pull_request_review_comment", action="created")
    assert created.repository_id is not None
    [sent] = payloads(devhub, "pull_request_review_comment", "created")
    assert sent["comment"]["id"] == comment["id"]
    assert sent["pull_request"]["number"] == 1
    [review] = payloads(devhub, "pull_request_review", "submitted")
    assert review["review"]["id"] == comment["pull_request_review_id"]
    assert (review["review"]["state"], review["review"]["body"]) == ("commented", None)
    _, _, reviews = await admin.rest(bob.token).get(f"/repos/{org.repo}/pulls/1/reviews")
    assert [(r["id"], r["state"]) for r in reviews] == [
        (comment["pull_request_review_id"], "COMMENTED")
    ]
    _, _, shown = await admin.rest(None).get(f"/repos/{org.repo}/pulls/comments/{comment['id']}")
    assert shown == comment
    _, _, counted = await admin.rest(bob.token).get(f"/repos/{org.repo}/pulls/1")
    assert counted["review_comments"] == 1


async def test_replies_join_the_thread_of_its_first_comment(devhub, admin, org):
    rest, pull = await pull_with_change(admin, org)
    comments = f"/repos/{org.repo}/pulls/1/comments"
    head = pull["head"]["sha"]
    _, _, first = await rest.post(
        comments,
        {"body": "Old value", "commit_id": head, "path": "notes.txt", "line": 3, "side": "LEFT"},
    )
    assert (first["line"], first["side"], first["position"]) == (3, "LEFT", 3)
    assert first["diff_hunk"] == "@@ -1,5 +1,6 @@\n a\n b\n-c"
    # Everything but `body` is ignored in a reply (GitHub's schema still asks for these two).
    ignored = {"commit_id": pull["base"]["sha"], "path": "elsewhere", "line": 99}
    status, _, reply = await rest.post(
        comments, {"body": "Noted", "in_reply_to": first["id"]} | ignored
    )
    assert status == 201, reply
    assert reply["in_reply_to_id"] == first["id"]
    assert (reply["path"], reply["line"], reply["side"]) == ("notes.txt", 3, "LEFT")
    assert reply["pull_request_review_id"] != first["pull_request_review_id"]
    status, _, nested = await rest.post(
        f"{comments}/{reply['id']}/replies", {"body": "A reply to the reply"}
    )
    assert status == 201, nested
    assert nested["in_reply_to_id"] == first["id"]
    status, _, missing = await rest.post(comments, {"body": "?", "in_reply_to": 999999} | ignored)
    assert status == 404, missing
    _, _, listed = await rest.get(comments)
    assert [c["id"] for c in listed] == [first["id"], reply["id"], nested["id"]]
    _, _, newest = await rest.get(f"{comments}?sort=created&direction=desc&per_page=1")
    assert [c["id"] for c in newest] == [nested["id"]]
    # The legacy `position` counts lines below the first hunk header.
    _, _, legacy = await rest.post(
        comments, {"body": "By position", "commit_id": head, "path": "notes.txt", "position": 7}
    )
    assert (legacy["line"], legacy["side"], legacy["position"]) == (6, "RIGHT", 7)


async def test_comments_must_sit_on_the_diff_of_a_commit_of_the_pull(devhub, admin, org):
    rest, pull = await pull_with_change(admin, org)
    comments = f"/repos/{org.repo}/pulls/1/comments"
    head = pull["head"]["sha"]
    where = {"body": "x", "commit_id": head, "path": "notes.txt"}
    status, _, outside = await rest.post(comments, where | {"line": 40})
    assert (status, outside["message"]) == (422, "Validation Failed")
    assert outside["errors"] == [
        {
            "resource": "PullRequestReviewComment",
            "code": "custom",
            "field": "pull_request_review_thread.line",
            "message": "pull_request_review_thread.line must be part of the diff",
        },
        {
            "resource": "PullRequestReviewComment",
            "code": "missing_field",
            "field": "pull_request_review_thread.diff_hunk",
        },
    ]
    status, _, no_file = await rest.post(comments, where | {"path": "README.md", "line": 1})
    assert status == 422
    assert no_file["errors"][0]["field"] == "pull_request_review_thread.path"
    status, _, backwards = await rest.post(comments, where | {"start_line": 5, "line": 3})
    assert status == 422
    assert backwards["errors"][0]["message"] == (
        "pull_request_review_thread.start_line must precede the end line."
    )
    base = pull["base"]["sha"]
    status, _, stale = await rest.post(comments, where | {"commit_id": base, "line": 3})
    assert status == 422
    assert stale["errors"][0] == {
        "resource": "PullRequestReviewComment",
        "code": "custom",
        "field": "commit_id",
        "message": "commit_id is not part of the pull request",
    }
    status, _, ranged = await rest.post(comments, where | {"start_line": 3, "line": 5})
    assert status == 201, ranged
    assert (ranged["start_line"], ranged["start_side"], ranged["line"]) == (3, "RIGHT", 5)
    assert ranged["diff_hunk"].endswith(" e")


async def test_who_may_read_and_write_review_comments(devhub, admin, org):
    rest, pull = await pull_with_change(admin, org)
    comments = f"/repos/{org.repo}/pulls/1/comments"
    where = {"body": "x", "commit_id": pull["head"]["sha"], "path": "notes.txt", "line": 3}
    status, _, anonymous = await admin.rest(None).post(comments, where)
    assert (status, anonymous["message"]) == (401, "Requires authentication")
    read_only = await installation_token(
        admin, devhub, org.installation_id, permissions={"pull_requests": "read"}
    )
    status, _, refused = await admin.rest(read_only).post(comments, where)
    assert (status, refused["message"]) == (403, "Resource not accessible by integration")
    status, _, listed = await admin.rest(read_only).get(comments)
    assert (status, listed) == (200, [])
    bot = admin.rest(await installation_token(admin, devhub, org.installation_id))
    status, _, by_app = await bot.post(comments, where)
    assert status == 201, by_app
    assert by_app["user"]["login"] == "coder[bot]"
    status, _, _ = await rest.get(f"/repos/{org.repo}/pulls/comments/999999")
    assert status == 404


async def test_a_review_with_inline_comments(devhub, admin, org, receiver):
    devhub.webhook_url = receiver.url
    await pull_with_change(admin, org)
    bob = await admin.create_user("bob")
    reviewer = admin.rest(bob.token)
    reviews = f"/repos/{org.repo}/pulls/1/reviews"
    status, _, refused = await reviewer.post(
        reviews,
        {
            "event": "REQUEST_CHANGES",
            "body": "See inline.",
            "comments": [{"path": "notes.txt", "line": 40, "body": "?"}],
        },
    )
    assert (status, refused["message"]) == (422, "Unprocessable Entity")
    assert refused["errors"] == [
        (
            "Pull request review thread line must be part of the diff and "
            "Pull request review thread diff hunk can't be blank"
        )
    ]
    status, _, review = await reviewer.post(
        reviews,
        {
            "event": "REQUEST_CHANGES",
            "body": "See inline.",
            "comments": [
                {"path": "notes.txt", "line": 6, "body": "Is f needed?"},
                {"path": "notes.txt", "start_line": 4, "line": 5, "body": "Sort these."},
            ],
        },
    )
    assert status == 200, review
    status, _, shown = await reviewer.get(f"{reviews}/{review['id']}")
    assert (status, shown["state"]) == (200, "CHANGES_REQUESTED")
    _, _, inline = await reviewer.get(f"{reviews}/{review['id']}/comments")
    assert [(c["line"], c["start_line"]) for c in inline] == [(6, None), (5, 4)]
    assert {c["pull_request_review_id"] for c in inline} == {review["id"]}
    await devhub.wait_for_delivery(event="pull_request_review", action="submitted")
    sent = payloads(devhub, "pull_request_review_comment", "created")
    assert [c["comment"]["id"] for c in sent] == [c["id"] for c in inline]
    [submitted] = payloads(devhub, "pull_request_review", "submitted")
    assert submitted["review"]["state"] == "changes_requested"
    # A COMMENT review may be inline comments alone; a pending one keeps its comments a draft.
    only_inline = {"event": "COMMENT", "comments": [{"path": "notes.txt", "line": 1, "body": "a"}]}
    status, _, commented = await reviewer.post(reviews, only_inline)
    assert (status, commented["state"]) == (200, "COMMENTED")
    status, _, pending = await reviewer.post(reviews, {"comments": only_inline["comments"]})
    assert (status, pending["state"]) == (200, "PENDING")
    _, _, listed = await reviewer.get(f"/repos/{org.repo}/pulls/1/comments")
    assert len(listed) == 3
    assert len(payloads(devhub, "pull_request_review_comment", "created")) == 3


async def test_reactions_on_review_comments(devhub, admin, org):
    rest, pull = await pull_with_change(admin, org)
    where = {"body": "x", "commit_id": pull["head"]["sha"], "path": "notes.txt", "line": 3}
    _, _, comment = await rest.post(f"/repos/{org.repo}/pulls/1/comments", where)
    reactions = f"/repos/{org.repo}/pulls/comments/{comment['id']}/reactions"
    status, _, reaction = await rest.post(reactions, {"content": "eyes"})
    assert (status, reaction["content"]) == (201, "eyes")
    status, _, again = await rest.post(reactions, {"content": "eyes"})
    assert (status, again["id"]) == (200, reaction["id"])
    _, _, listed = await admin.rest(None).get(reactions)
    assert [r["id"] for r in listed] == [reaction["id"]]
    _, _, shown = await rest.get(f"/repos/{org.repo}/pulls/comments/{comment['id']}")
    assert shown["reactions"]["eyes"] == 1
    status, _, _ = await rest.delete(f"{reactions}/{reaction['id']}")
    assert status == 204
    status, _, _ = await rest.post(
        f"/repos/{org.repo}/pulls/comments/999999/reactions", {"content": "eyes"}
    )
    assert status == 404


TWO_HUNKS = "@@ -1,2 +1,2 @@\n-a\n+A\n b\n@@ -10,2 +10,3 @@\n j\n+J\n k"


def test_positions_run_on_through_later_hunk_headers():
    # The second `@@` header takes a position too (GitHub: "continues to increase through
    # additional hunks").
    anchor = place(Placement("f", line=11, side="RIGHT"), TWO_HUNKS)
    assert isinstance(anchor, DiffAnchor)
    assert (anchor.position, anchor.diff_hunk) == (6, "@@ -10,2 +10,3 @@\n j\n+J")
    by_position = place(Placement("f", line=None, side="RIGHT", position=1), TWO_HUNKS)
    assert isinstance(by_position, DiffAnchor)
    assert (by_position.line, by_position.side) == (1, "LEFT")
    assert place(Placement("f", line=None, side="RIGHT", position=4), TWO_HUNKS) == LINE_OUTSIDE


def test_ranges_stay_in_one_hunk_and_problems_read_as_githubs_sentences():
    across = place(Placement("f", line=11, side="RIGHT", start_line=1), TWO_HUNKS)
    assert across == START_OUTSIDE_HUNK
    assert place(Placement("f", line=2, side="RIGHT"), None) == PATH_UNRESOLVED
    assert to_sentence(["a"]) == "a"
    assert to_sentence(["a", "b"]) == "a and b"
    assert to_sentence(["a", "b", "c"]) == "a, b, and c"
