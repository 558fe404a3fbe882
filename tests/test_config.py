"""`.github/coder.yml` parsing: defaults, errors with lines, bombs."""

from __future__ import annotations

import pytest

from app.config import (
    CONFIG_PATH,
    DEVELOP_LABEL,
    MAX_CONFIG_BYTES,
    CoderConfig,
    Workflow,
    _then_cycle,
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


def test_every_field_has_a_default_and_a_description():
    def walk(model):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"
            assert not field.is_required(), f"{model.__name__}.{name} has no default"
            annotation = field.annotation
            if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
                walk(annotation)

    walk(CoderConfig)


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
    assert set(workflows) == {"research", "design", "develop", "review", "release"}
    assert {name: w.produces for name, w in workflows.items()} == {
        "research": "research",
        "design": "design",
        "develop": "develop",
        "review": "review",
        "release": "release",
    }


def test_own_workflows_add_to_the_built_in_ones():
    config = parse_config("workflows:\n  docs: {on: {label: 'coder:docs'}}\n").config
    assert set(config.workflows) == {"research", "design", "develop", "review", "release", "docs"}


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
