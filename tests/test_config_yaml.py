"""The config loader's bounds and safety: depth, nodes, tags, aliases, each at its own line."""

from __future__ import annotations

import datetime as dt

import pytest

from app.config import CONFIG_PATH, MAX_CONFIG_DEPTH, MAX_CONFIG_NODES, parse_config
from app.config_yaml import YamlProblemError, load_mapping, position

DEEP = "a: " + "[" * 500 + "]" * 500 + "\n"  # about 1 KB


def load(text):
    return load_mapping(text, max_bytes=1 << 20, max_nodes=10_000, max_depth=8)


@pytest.mark.parametrize(
    "text",
    [
        DEEP,
        "a: " + "{b: " * 500 + "1" + "}" * 500 + "\n",
        "workflows:\n  x:\n" + "".join("  " * (depth + 2) + "- \n" for depth in range(500)),
    ],
)
def test_deep_nesting_is_an_error_at_its_line_not_a_crash(text):
    (error,) = parse_config(text).errors
    assert error.message == f"the document nests more than {MAX_CONFIG_DEPTH} levels deep"
    assert error.path == CONFIG_PATH
    assert error.line >= 1


def test_the_depth_error_is_where_the_limit_is_passed():
    text = "limits:\n  per_repo: 1\nagent:\n  models: [[[[[[[[[[x]]]]]]]]]]\n"
    with pytest.raises(YamlProblemError) as raised:
        load(text)
    assert (raised.value.line, raised.value.column) == (4, 17)
    assert raised.value.message == "the document nests more than 8 levels deep"


def test_aliases_count_towards_the_depth():
    text = "a: &a [[[[x]]]]\nb: &b [[*a]]\nc: [[*b]]\n"
    with pytest.raises(YamlProblemError) as raised:
        load(text)
    assert raised.value.line == 3
    assert "levels deep" in raised.value.message


def test_an_alias_inside_what_it_names_is_refused():
    (error,) = parse_config("a: &a [x, *a]\n").errors
    assert (error.line, error.column) == (1, 11)
    assert error.message == "invalid YAML: the alias *a is inside the value it names"
    (error,) = parse_config("a: [*nope]\n").errors
    assert error.message == "invalid YAML: the alias *nope names no anchor before it"


@pytest.mark.parametrize(
    ("text", "line", "column", "tag"),
    [
        (
            "limits:\n  max_concurrent: 3\n  run_minutes: 5\n  per_repo: !custom 2\n",
            4,
            13,
            "!custom",
        ),
        ("limits:\n  per_repo: !!int 2\n", 2, 13, "!!int"),
        ("tests:\n  command: !!str make\n", 2, 12, "!!str"),
        ("agent: !!map {backend: claude}\n", 1, 8, "!!map"),
        ("policies:\n  allowed_paths: !!seq [a]\n", 2, 18, "!!seq"),
        ("agent:\n  backend: !!python/object:os.system x\n", 2, 12, "!!python/object:os.system"),
        ("agent: {backend: ! claude}\n", 1, 18, "!"),
        ("agent: {backend: !<tag:example.com,2024:x> claude}\n", 1, 18, "tag:example.com,2024:x"),
        ("!!str agent: {}\n", 1, 1, "!!str"),
    ],
)
def test_every_explicit_tag_is_refused_at_its_line(text, line, column, tag):
    (error,) = parse_config(text).errors
    assert (error.line, error.column) == (line, column), error
    assert error.message == f"YAML tags are not allowed (found {tag}); write the plain value"


def test_an_alias_bomb_is_refused_at_the_alias_that_passes_the_limit():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    (error,) = parse_config("\n".join(lines) + "\n").errors
    assert error.message == f"the document expands to more than {MAX_CONFIG_NODES} nodes"
    # a3 stands for 11,111 nodes: its first alias on line 5 passes the limit.
    assert (error.line, error.column) == (5, 10)


def test_plain_values_keep_their_yaml_types():
    document = load("n: 3\nhex: 0x1f\nf: 1.5\nyes: true\nno: ~\ns: '3'\non: off\nday: 2024-01-02\n")
    assert document.values == {
        "n": 3,
        "hex": 31,
        "f": 1.5,
        "yes": True,
        "no": None,
        "s": "3",
        # YAML 1.2: `on` and `off` are text, so `on:` in a workflow is the key it looks like.
        "on": "off",
        "day": dt.date(2024, 1, 2),
    }


def test_anchors_aliases_and_merge_keys_still_work():
    text = (
        "base: &base {steps: [implementer], model: haiku}\n"
        "workflows:\n"
        "  docs:\n"
        "    <<: *base\n"
        "    model: opus\n"
        "  more: {<<: [*base, {title: T}], title: X}\n"
    )
    values = load(text).values
    assert values["workflows"]["docs"] == {"steps": ["implementer"], "model": "opus"}
    assert values["workflows"]["more"] == {"steps": ["implementer"], "model": "haiku", "title": "X"}
    tree = load(text).tree
    assert position(tree, ("workflows", "docs", "model")) == (5, 5)
    # A merged key is found where it was written: in the anchored mapping.
    assert position(tree, ("workflows", "docs", "steps")) == (1, 14)


def test_duplicate_keys_and_odd_documents_are_errors_at_their_line():
    (error,) = parse_config("agent: {}\nlimits: {}\nagent: {}\n").errors
    assert (error.line, error.message) == (
        3,
        "invalid YAML: duplicate key 'agent' (first at line 1)",
    )
    (error,) = parse_config("agent: {}\n---\nlimits: {}\n").errors
    assert (error.line, error.message) == (
        2,
        "invalid YAML: expected a single document in the stream",
    )
    (error,) = parse_config("? [a, b]\n: c\n").errors
    assert error.message == "invalid YAML: a key must be plain text, not a list or mapping"
    (error,) = parse_config("\n\n- a\n").errors
    assert (error.line, error.message) == (
        3,
        "the file must be a mapping of keys (agent:, limits:, ...)",
    )
    (error,) = parse_config("a: {<<: [x]}\n").errors
    assert error.message == "invalid YAML: `<<` must merge a mapping or a list of mappings"
    assert parse_config("---\n").ok
    assert parse_config("~\n").ok
