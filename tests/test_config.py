"""`.github/coder.yml` parsing: defaults, errors with lines, bombs, `_extends` and org defaults."""

from __future__ import annotations

import typing

import pytest
from pydantic import BaseModel

from app.config import (
    BASE_NOT_FOUND,
    CONFIG_PATH,
    DEVELOP_LABEL,
    MAX_CONFIG_BYTES,
    ONE_LEVEL_ONLY,
    BaseConfig,
    CoderConfig,
    Extends,
    Role,
    Trigger,
    Workflow,
    _then_cycle,
    describe,
    extends_of,
    merge_values,
    org_defaults,
    parse_config,
)

DESIGN_EXAMPLE = """\
agent: {backend: claude, models: {default: sonnet, ladder: [haiku, sonnet, opus], labels: {documentation: haiku}}}
runner: {runs-on: ubuntu-latest}
limits: {max_concurrent: 3, per_repo: 2, run_minutes: 45, idle_minutes: 10}
budget: {per_run_usd: 5, monthly_usd: 200}
tests: {command: "make test"}
workflows:
  develop:
    on: {label: "coder:develop", command: develop}
    steps: [architect, implementer, tester]
    then: review
  research: {on: {label: "coder:research"}, steps: [researcher], then: develop}
  review:   {on: {pull_request: [opened, ready_for_review], label: "coder:review"}, steps: [reviewer]}
policies: {allowed_paths: ["src/**", "tests/**"], forbidden_paths: [".github/workflows/**"], required_checks: [test]}
merge_queue: {enabled: true, batch_size: auto, method: fast-forward}
"""  # noqa: E501 - DESIGN §5's example, verbatim


@pytest.mark.parametrize("text", [None, "", "   \n", "# only a comment\n"])
def test_no_config_means_every_default(text):
    result = parse_config(text)
    assert result.ok
    assert result.config == CoderConfig()
    assert result.config.workflow_for_label(DEVELOP_LABEL) is not None


def models_in(annotation):
    """Yield the models an annotation holds: itself, or inside dict, tuple, list and unions."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for argument in typing.get_args(annotation):
        yield from models_in(argument)


def test_every_field_has_a_default_and_a_description():
    seen = []

    def walk(model):
        if model in seen:
            return
        seen.append(model)
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"
            assert not field.is_required(), f"{model.__name__}.{name} has no default"
            for inner in models_in(field.annotation):
                walk(inner)

    walk(CoderConfig)
    # The models inside `workflows`, `roles` (dict values) and a workflow's `on` are walked too.
    assert {Workflow, Trigger, Role} <= set(seen)


def test_models_in_looks_inside_containers():
    assert list(models_in(dict[str, Role])) == [Role]
    assert list(models_in(tuple[Trigger, ...] | None)) == [Trigger]
    assert list(models_in(str)) == []


def test_a_role_without_a_prompt_reads_its_named_file():
    config = parse_config("roles:\n  poet: {description: Writes poems.}\n").config
    assert config is not None
    assert config.roles["poet"].prompt_path("poet") == ".github/coder/poet.md"
    config = parse_config("roles:\n  poet: {prompt: docs/poet.md}\n").config
    assert config.roles["poet"].prompt_path("poet") == "docs/poet.md"


def test_the_design_example_parses():
    result = parse_config(DESIGN_EXAMPLE)
    assert result.errors == ()
    config = result.config
    assert config.agent.models.labels == {"documentation": "haiku"}
    assert config.tests.command == "make test"
    assert config.workflow_for_label("coder:research")[0] == "research"
    assert config.workflows["review"].on.pull_request == ("opened", "ready_for_review")
    assert config.merge_queue.enabled


def test_runs_on_takes_a_label_or_a_list():
    assert parse_config("runner: {runs-on: [self-hosted, gpu]}").config.runner.runs_on == (
        "self-hosted",
        "gpu",
    )
    assert parse_config("runner:\n  runs-on: big\n").config.runner.runs_on == "big"


def test_built_in_workflows_work_with_no_config():
    workflows = CoderConfig().workflows
    assert set(workflows) == {"research", "design", "develop", "review", "fix", "release"}
    assert {name: w.produces for name, w in workflows.items()} == {
        "research": "research",
        "design": "design",
        "develop": "develop",
        "review": "review",
        "fix": "develop",
        "release": "release",
    }


def test_own_workflows_add_to_the_built_in_ones():
    config = parse_config("workflows:\n  docs: {on: {label: 'coder:docs'}}\n").config
    assert set(config.workflows) == {
        "research",
        "design",
        "develop",
        "review",
        "fix",
        "release",
        "docs",
    }


def test_a_workflow_named_like_a_built_in_starts_from_it():
    config = parse_config("workflows:\n  research:\n    then: develop\n").config
    research = config.workflows["research"]
    assert (research.produces, research.steps, research.then) == (
        "research",
        ("researcher",),
        "develop",
    )
    assert research.on.label == "coder:research"


def test_then_must_name_a_workflow_that_takes_the_artifact():
    (error,) = parse_config("workflows:\n  review:\n    then: develop\n").errors
    assert (error.line, error.column) == (3, 5)
    assert error.message == (
        "workflows.review.then: develop takes issue or research or design, not a review artifact"
    )
    (error,) = parse_config("workflows:\n  research:\n    then: nope\n").errors
    assert error.message == "workflows.research.then: no workflow named 'nope'"


def test_a_trigger_starts_one_workflow_only():
    (error,) = parse_config("workflows:\n  docs:\n    on: {label: coder:develop}\n").errors
    assert error.line == 3
    assert "already starts workflow develop" in error.message


def test_steps_name_known_roles():
    (error,) = parse_config("workflows:\n  docs:\n    steps: [architect, poet]\n").errors
    assert error.line == 3
    assert "unknown role 'poet'" in error.message
    config = parse_config(
        "roles:\n  poet: {prompt: .github/poet.md}\nworkflows:\n  docs: {steps: [poet]}\n"
    ).config
    assert config.workflows["docs"].steps == ("poet",)


def test_then_cycles_are_found():
    looping = {
        "a": Workflow(produces="research", then="b"),
        "b": Workflow(produces="research", then="a"),
        "c": Workflow(then=None),
    }
    assert _then_cycle(looping) == ["a", "b", "a"]
    assert _then_cycle({"c": Workflow()}) == []


def test_workflows_are_found_by_label_command_and_pull_request_action():
    config = parse_config(
        "workflows:\n  review:\n    on: {pull_request: [opened, ready_for_review]}\n"
    ).config
    assert config.workflow_for_command("research")[0] == "research"
    assert config.workflow_for_command("nope") is None
    assert [name for name, _ in config.workflows_for_pull_request("opened")] == ["review"]


def test_unknown_keys_are_errors_at_their_line():
    result = parse_config("agent:\n  backend: command\n  comand: make fix\n")
    assert not result.ok
    (error,) = result.errors
    assert (error.path, error.line, error.column) == (CONFIG_PATH, 3, 3)
    assert error.message == "agent.comand: unknown key"
    assert str(error) == ".github/coder.yml:3:3: agent.comand: unknown key"


def test_bad_values_name_their_line():
    result = parse_config("limits:\n  per_repo: 2\n  run_minutes: 0\n")
    (error,) = result.errors
    assert error.line == 3
    assert "limits.run_minutes" in error.message
    assert "greater than or equal to 1" in error.message


def test_a_bad_backend_names_the_choices():
    (error,) = parse_config("agent: {backend: gpt}\n").errors
    assert error.line == 1
    assert "'claude'" in error.message
    assert "'script'" in error.message


def test_errors_in_lists_point_at_the_item():
    (error,) = parse_config("policies:\n  allowed_paths:\n    - src/**\n    - [nested]\n").errors
    assert error.line == 4


def test_invalid_yaml_names_its_line():
    (error,) = parse_config("agent:\n  backend: command\n   bad indent: x\n").errors
    assert error.line == 3
    assert error.message.startswith("invalid YAML:")


def test_a_document_that_is_not_a_mapping():
    (error,) = parse_config("- just\n- a list\n").errors
    assert "mapping" in error.message


def test_alias_bombs_are_refused_before_they_expand():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    (error,) = parse_config("\n".join(lines) + "\n").errors
    assert "expands to more than" in error.message


def test_huge_documents_are_refused():
    (error,) = parse_config("# " + "x" * MAX_CONFIG_BYTES + "\n").errors
    assert "larger than" in error.message


def test_yaml_tags_cannot_build_objects():
    result = parse_config("agent: !!python/object:os.system {}\n")
    assert not result.ok


def test_every_error_type_names_its_line():
    cases = {
        "agent:\n  backend: gpt\n": (2, "agent.backend: Input should be"),
        "limits:\n  per_repo: two\n": (2, "limits.per_repo: Input should be a valid integer"),
        "tests:\n  command: [make, test]\n": (2, "tests.command: Input should be a valid string"),
        "workflows:\n  docs:\n    stepz: []\n": (3, "workflows.docs.stepz: unknown key"),
        "roles:\n  poet: {prompt: [x]}\n": (2, "roles.poet.prompt: Input should be a valid string"),
        "merge_queue:\n  batch_size: some\n": (
            2,
            "merge_queue.batch_size: expected a number or 'auto', not 'some'",
        ),
        "runner:\n  runs-on: {x: 1}\n": (2, "runner.runs-on: expected a runner label or a list"),
        "agent: [claude]\n": (1, "agent: Input should be a valid dictionary"),
        "\n\nagent: {backend: claude\n": (4, "invalid YAML:"),
    }
    for text, (line, message) in cases.items():
        errors = parse_config(text).errors
        assert errors, text
        assert (errors[0].line, errors[0].message[: len(message)]) == (line, message), text


def test_every_error_is_reported_not_just_the_first():
    result = parse_config("limits:\n  per_repo: 0\n  run_minutes: 0\nagent:\n  backend: gpt\n")
    assert [(error.line, error.message.split(":")[0]) for error in result.errors] == [
        (5, "agent.backend"),
        (2, "limits.per_repo"),
        (3, "limits.run_minutes"),
    ]


def test_describe_names_the_workflows():
    config = parse_config("workflows:\n  docs: {on: {label: 'coder:docs'}}\n").config
    assert (
        describe(config)
        == "valid; 7 workflows: research, design, develop, review, fix, release, docs"
    )


# `_extends` and org defaults: built-in defaults < base file < repository file.

BASE_PATH = "acme/.github:.github/coder.yml"
ORG_BASE = """\
agent: {backend: claude, models: {default: sonnet, labels: {documentation: haiku}}}
policies: {forbidden_paths: [".github/**"]}
workflows:
  develop: {then: review}
"""


def base(text, path=BASE_PATH):
    return BaseConfig(path, text)


def test_extends_names_a_repository_of_the_same_owner_or_another():
    assert extends_of("_extends: .github\n", "acme") == Extends("acme", ".github")
    assert extends_of("_extends: other/.github\n", "acme") == Extends("other", ".github")
    assert extends_of("_extends: .github\n", "acme").path == BASE_PATH
    assert extends_of("agent: {backend: claude}\n", "acme") is None
    assert extends_of("_extends: [a]\n", "acme") is None
    assert extends_of("_extends: a/b/c\n", "acme") is None
    assert extends_of("- not a mapping\n", "acme") is None
    assert org_defaults("acme") == Extends("acme", ".github")


def test_the_repository_file_merges_over_its_base():
    text = (
        "_extends: .github\n"
        "agent: {models: {default: opus}}\n"
        'policies: {forbidden_paths: ["migrations/**"]}\n'
    )
    config = parse_config(text, base=base(ORG_BASE)).config
    # Mappings merge key by key...
    assert config.agent.models.default == "opus"
    assert config.agent.models.labels == {"documentation": "haiku"}
    # ...lists and scalars from the later file replace.
    assert config.policies.forbidden_paths == ("migrations/**",)
    # A workflow named in the base merges over the built-in one of that name.
    develop = config.workflows["develop"]
    assert (develop.then, develop.steps) == ("review", ("architect", "implementer", "tester"))


def test_a_workflow_merges_across_base_and_file():
    text = "_extends: .github\nworkflows:\n  develop: {steps: [implementer]}\n"
    develop = parse_config(text, base=base(ORG_BASE)).config.workflows["develop"]
    assert (develop.then, develop.steps, develop.on.label) == (
        "review",
        ("implementer",),
        "coder:develop",
    )


def test_merge_values_replaces_lists_and_scalars():
    earlier = {"a": {"b": 1, "c": [1, 2]}, "d": "x", "e": {"f": 1}}
    later = {"a": {"c": [3]}, "d": {"now": "a mapping"}, "e": None}
    assert merge_values(earlier, later) == {
        "a": {"b": 1, "c": [3]},
        "d": {"now": "a mapping"},
        "e": None,
    }
    assert earlier["a"] == {"b": 1, "c": [1, 2]}


def test_without_a_base_extends_is_checked_but_not_followed():
    result = parse_config("_extends: .github\nlimits: {per_repo: 4}\n")
    assert result.config.limits.per_repo == 4
    (error,) = parse_config("agent: {backend: claude}\n_extends: [acme, .github]\n").errors
    assert (error.path, error.line, error.column) == (CONFIG_PATH, 2, 1)
    assert error.message.startswith("_extends: expected a repository such as .github")


def test_a_missing_base_is_an_error_at_the_extends_line():
    missing = BaseConfig(BASE_PATH, None)
    (error,) = parse_config("limits: {per_repo: 4}\n_extends: .github\n", base=missing).errors
    assert (error.path, error.line, error.column) == (CONFIG_PATH, 2, 1)
    assert error.message == f"_extends: cannot read {BASE_PATH}: {BASE_NOT_FOUND}"


def test_errors_in_the_base_name_the_base_file():
    org = "agent:\n  backend: claude\nworkflows:\n  develop:\n    stepz: []\n"
    (error,) = parse_config("_extends: .github\n", base=base(org)).errors
    assert str(error) == f"{BASE_PATH}:5:5: workflows.develop.stepz: unknown key"
    (error,) = parse_config("_extends: .github\n", base=base("limits: [1]\n")).errors
    assert (error.path, error.line) == (BASE_PATH, 1)
    (error,) = parse_config("_extends: .github\n", base=base("a: b: c\n")).errors
    assert error.path == BASE_PATH
    assert error.message.startswith("invalid YAML")


def test_an_error_points_at_the_file_whose_value_is_used():
    org = "limits:\n  per_repo: 0\n  run_minutes: 0\n"
    result = parse_config("_extends: .github\nlimits:\n  per_repo: 1\n", base=base(org))
    # per_repo is the file's (valid); run_minutes comes from the base, so the base is named.
    (error,) = result.errors
    assert str(error).startswith(f"{BASE_PATH}:3:3: limits.run_minutes")
    result = parse_config("_extends: .github\nlimits:\n  per_repo: 0\n", base=base(org))
    assert [(error.path, error.line) for error in result.errors] == [
        (CONFIG_PATH, 3),
        (BASE_PATH, 3),
    ]


def test_a_rule_across_files_is_reported_where_the_value_is():
    org = "workflows:\n  docs:\n    steps: [poet]\n"
    (error,) = parse_config("_extends: .github\n", base=base(org)).errors
    assert (error.path, error.line) == (BASE_PATH, 3)
    assert "unknown role 'poet'" in error.message
    # Defining the role in the repository's file satisfies the base's workflow.
    text = "_extends: .github\nroles:\n  poet: {prompt: .github/poet.md}\n"
    assert parse_config(text, base=base(org)).ok


def test_extends_is_one_level_only():
    org = "agent: {backend: claude}\n_extends: other/.github\n"
    (error,) = parse_config("_extends: .github\n", base=base(org)).errors
    assert (error.path, error.line, error.column) == (BASE_PATH, 2, 1)
    assert error.message == ONE_LEVEL_ONLY


def test_with_no_file_the_org_defaults_apply():
    result = parse_config(None, base=base(ORG_BASE))
    assert result.config.agent.models.labels == {"documentation": "haiku"}
    assert parse_config(None, base=BaseConfig(BASE_PATH, None)).config == CoderConfig()
    (error,) = parse_config(None, base=base("limits:\n  per_repo: 0\n")).errors
    assert (error.path, error.line) == (BASE_PATH, 2)
    (error,) = parse_config(None, base=base("_extends: other/.github\n")).errors
    assert error.message == ONE_LEVEL_ONLY


def test_a_file_without_extends_ignores_a_base():
    assert parse_config("limits: {per_repo: 4}\n", base=base("limits: {per_repo: 0}\n")).ok
    # An empty file is a file: it does not fall back to the org's defaults.
    assert parse_config("", base=base("limits: {per_repo: 0}\n")).config == CoderConfig()


def test_bombs_in_a_base_are_refused_too():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    (error,) = parse_config("_extends: .github\n", base=base("\n".join(lines))).errors
    assert error.path == BASE_PATH
    assert "expands to more than" in error.message
    (error,) = parse_config(
        "_extends: .github\n", base=base("a: !!python/name:os.system x\n")
    ).errors
    assert (error.path, error.line, error.column, error.message) == (
        BASE_PATH,
        1,
        4,
        "YAML tags are not allowed (found !!python/name:os.system); write the plain value",
    )


@pytest.mark.parametrize("backend", ["codex", "aider"])
def test_backends_the_runner_cannot_run_are_refused_at_their_line(backend):
    (error,) = parse_config(f"limits: {{per_repo: 1}}\nagent:\n  backend: {backend}\n").errors
    assert (error.line, error.column) == (3, 3)
    assert error.message == (
        f"agent.backend: {backend!r} is not available yet; use 'claude', 'command' or 'script'"
    )
