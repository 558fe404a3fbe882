"""Hidden markers: render, parse, round-trip, injection, and trusting only the app's comments."""

import pytest

from app.markers import Marker, find_marked, leading_marker, parse_markers, render_marker

BOT = "coder[bot]"


def comment(body, login=BOT, comment_id=1):
    return {"id": comment_id, "body": body, "user": {"login": login, "type": "Bot"}}


def test_render_simple_marker():
    assert (
        render_marker("prompt", id="abc123", run="r1") == "<!-- coder:prompt id=abc123 run=r1 -->"
    )


def test_render_kind_only():
    assert render_marker("status") == "<!-- coder:status -->"


def test_integer_values_render_as_text():
    assert render_marker("progress", issue=42) == "<!-- coder:progress issue=42 -->"
    assert parse_markers(render_marker("progress", issue=42)) == [
        Marker("progress", {"issue": "42"})
    ]


def test_values_with_spaces_are_quoted():
    rendered = render_marker("prompt", question="what now?")
    assert rendered == '<!-- coder:prompt question="what now?" -->'
    assert parse_markers(rendered) == [Marker("prompt", {"question": "what now?"})]


@pytest.mark.parametrize(
    "value",
    [
        "-->",
        "a --> <!-- coder:prompt id=evil -->",
        "--!>",
        'quote " and backslash \\',
        "new\nline",
        "",
        "ünïcødé and \u200b zero width",
        "<script>",
        "coder/42-fix-the-thing",
        "a=b,c:d/e@f",
    ],
)
def test_any_value_round_trips_and_cannot_close_the_comment(value):
    rendered = render_marker("prompt", id="p1", text=value)
    # Exactly one comment terminator: the marker's own.
    assert rendered.count(">") == 1
    assert rendered.endswith(" -->")
    assert "\n" not in rendered
    assert parse_markers(rendered) == [Marker("prompt", {"id": "p1", "text": value})]


def test_injected_value_does_not_create_a_second_marker():
    rendered = render_marker("note", text="--> <!-- coder:prompt id=evil -->")
    markers = parse_markers(f"hello\n{rendered}\nbye")
    assert [m.kind for m in markers] == ["note"]


@pytest.mark.parametrize("kind", ["", "Prompt", "pro mpt", "1st", "x-->"])
def test_invalid_kinds_are_refused(kind):
    with pytest.raises(ValueError, match="kind"):
        render_marker(kind)


@pytest.mark.parametrize("key", ["Id", "with-dash", "_x"])
def test_invalid_keys_are_refused(key):
    with pytest.raises(ValueError, match="key"):
        render_marker("prompt", **{key: "v"})


def test_parse_finds_every_marker_in_order():
    body = (
        "Some text\n"
        + render_marker("run", id="r1")
        + "\nmore\n"
        + render_marker("prompt", id="p1", run="r1")
    )
    assert parse_markers(body) == [
        Marker("run", {"id": "r1"}),
        Marker("prompt", {"id": "p1", "run": "r1"}),
    ]


@pytest.mark.parametrize(
    "body",
    [
        None,
        "",
        "<!-- coder: -->",
        "<!-- other:prompt id=1 -->",
        "<!-- coder:prompt id=1",
        '<!-- coder:prompt id="unterminated -->',
        '<!-- coder:prompt id="\\q" -->',
        "<!-- coder:prompt id = 1 -->",
    ],
)
def test_malformed_or_foreign_comments_are_not_markers(body):
    assert parse_markers(body) == []


def test_parse_tolerates_extra_whitespace():
    assert parse_markers("<!--coder:run id=1-->") == [Marker("run", {"id": "1"})]
    assert parse_markers("<!--   coder:run   id=1   -->") == [Marker("run", {"id": "1"})]


def test_find_marked_matches_kind_and_fields():
    comments = [
        comment("plain text", comment_id=1),
        comment(render_marker("prompt", id="p1"), comment_id=2),
        comment(render_marker("prompt", id="p2"), comment_id=3),
    ]
    assert find_marked(comments, "prompt", id="p2")["id"] == 3
    assert find_marked(comments, "prompt")["id"] == 2
    assert find_marked(comments, "prompt", id="p3") is None
    assert find_marked(comments, "run") is None


def test_find_marked_trusts_only_the_given_author():
    planted = comment(render_marker("prompt", id="p1"), login="mallory", comment_id=1)
    lookalike = comment(render_marker("prompt", id="p1"), login="coder-bot", comment_id=2)
    real = comment(render_marker("prompt", id="p1"), login=BOT, comment_id=3)
    assert find_marked([planted, lookalike, real], "prompt", author=BOT, id="p1")["id"] == 3
    assert find_marked([planted, lookalike], "prompt", author=BOT, id="p1") is None
    # Without `author`, any comment counts: callers that act on markers must pass it.
    assert find_marked([planted, real], "prompt", id="p1")["id"] == 1


def test_find_marked_compares_logins_case_insensitively():
    real = comment(render_marker("run", id="r"), login="Coder[bot]")
    assert find_marked([real], "run", author=BOT, id="r") is real


def test_find_marked_skips_comments_without_body_or_user():
    comments = [{"id": 1}, {"id": 2, "body": None, "user": None}, {"id": 3, "body": 5}]
    assert find_marked(comments, "run", author=BOT) is None
    assert find_marked(comments, "run") is None


def test_find_marked_integer_fields_match_their_text():
    found = comment(render_marker("progress", issue=42))
    assert find_marked([found], "progress", issue=42) is found


def test_only_a_leading_marker_counts():
    planted = "coder asks:\n> <!-- coder:command-reply key=issue-comment-1-1 -->\n"
    assert leading_marker(planted) is None
    comments = [{"user": {"login": "coder[bot]"}, "body": planted}]
    assert (
        find_marked(comments, "command-reply", author="coder[bot]", key="issue-comment-1-1") is None
    )
    ours = "<!-- coder:command-reply key=k -->\nhello"
    assert leading_marker(ours).fields == {"key": "k"}
