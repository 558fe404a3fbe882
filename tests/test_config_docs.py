"""The config's JSON Schema and reference page: generated from the models, and kept in step."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import typing
from pathlib import Path

import jsonschema
import pytest
from pydantic import BaseModel

from app.config import EXTENDS_KEY, CoderConfig, parse_config
from app.config_docs import (
    BEGIN,
    END,
    REFERENCE_FILE,
    REGENERATE,
    SCHEMA_FILE,
    SCHEMA_ID,
    config_schema,
    key_docs,
    render_schema,
    with_reference,
)
from app.config_yaml import load_mapping
from tests.test_config import DESIGN_EXAMPLE

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = (ROOT / REFERENCE_FILE).read_text()
YAML_BLOCK = re.compile(r"```yaml\n(.*?)```", re.DOTALL)
MODELINE = f"# yaml-language-server: $schema={SCHEMA_ID}"


def config_keys(model: type[BaseModel], prefix: str = ""):
    """Every key a config file can set, nested models and named entries included."""
    for name, field in model.model_fields.items():
        key = prefix + (field.alias or name)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from config_keys(annotation, key + ".")
        elif typing.get_origin(annotation) is dict and issubclass(
            typing.get_args(annotation)[1], BaseModel
        ):
            yield from config_keys(typing.get_args(annotation)[1], key + ".<name>.")
        else:
            yield key


def test_the_committed_schema_matches_the_models():
    committed = (ROOT / SCHEMA_FILE).read_text()
    assert committed == render_schema(), f"{SCHEMA_FILE} is out of date: run {REGENERATE}"


def test_the_committed_reference_matches_the_models():
    assert with_reference(REFERENCE) == REFERENCE, f"{REFERENCE_FILE} is stale: run {REGENERATE}"


def test_the_export_script_finds_nothing_to_do():
    done = subprocess.run(
        [sys.executable, str(ROOT / REGENERATE), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_reference_names_every_key_with_a_default_and_an_example():
    keys = [EXTENDS_KEY, *config_keys(CoderConfig)]
    assert [doc.key for doc in key_docs()] == keys
    for new in (
        "roles.<name>.prompt",
        "workflows.<name>.produces",
        "workflows.<name>.model",
        "workflows.<name>.auto_split",
        "workflows.<name>.title",
        "workflows.<name>.on.label",
        "workflows.<name>.on.command",
        "workflows.<name>.on.pull_request",
        "runner.runs-on",
    ):
        assert new in keys
    generated = REFERENCE[REFERENCE.index(BEGIN) : REFERENCE.index(END)]
    for doc in key_docs():
        row = f"| `{doc.key}` | {doc.default} | "
        assert row in generated, doc.key
        assert doc.description, doc.key
        assert doc.example_value is not None, f"{doc.key} has no example"
        assert f"`{doc.example}` |" in generated, doc.key


def test_every_example_is_a_valid_line_that_sets_its_key():
    for doc in key_docs():
        result = parse_config(doc.example + "\n")
        assert result.errors == (), doc.example
        if doc.key == EXTENDS_KEY:
            continue
        value: typing.Any = result.config.model_dump(by_alias=True)
        for part in doc.example_path:
            value = value[part]
        expected = doc.example_value
        assert value == (tuple(expected) if isinstance(expected, list) else expected), doc.key


def test_the_reference_shows_defaults_the_models_use():
    docs = {doc.key: doc.default for doc in key_docs()}
    assert docs["limits.run_minutes"] == "`45`"
    assert docs["budget.per_run_usd"] == "`5`"
    assert docs["agent.models.ladder"] == "`[haiku, sonnet, opus]`"
    assert docs["policies.allowed_paths"] == '`["**"]`'
    assert docs["tests.command"] == "none"
    assert docs["roles.<name>.prompt"] == "none"


def test_every_yaml_example_on_the_page_is_valid():
    blocks = YAML_BLOCK.findall(REFERENCE)
    assert len(blocks) >= 3
    for block in blocks:
        if block.startswith(MODELINE) and block.strip() == MODELINE:
            continue
        result = parse_config(block)
        assert result.errors == (), block


def test_the_page_documents_the_modeline_and_the_merge_order():
    assert MODELINE in REFERENCE
    assert "built-in defaults < base file < repository file" in REFERENCE


def test_the_schema_is_a_valid_2020_12_schema_that_accepts_real_configs():
    schema = config_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == SCHEMA_ID
    assert schema["title"]
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    design = parse_config(DESIGN_EXAMPLE)
    assert design.ok
    top_example = YAML_BLOCK.findall(REFERENCE)[0]
    for text in (DESIGN_EXAMPLE, top_example):
        values = load_mapping(text, max_bytes=1 << 20, max_nodes=10_000).values
        assert list(validator.iter_errors(values)) == [], text


@pytest.mark.parametrize(
    "values",
    [
        {"agent": {"comand": "x"}},
        {"limits": {"run_minutes": 0}},
        {"_extends": "a/b/c"},
        {"merge_queue": {"method": "octopus"}},
        {"workflows": {"docs": {"produces": "poem"}}},
    ],
)
def test_the_schema_rejects_what_coder_rejects(values):
    validator = jsonschema.Draft202012Validator(config_schema())
    assert list(validator.iter_errors(values)) != []
    text = json.dumps(values)
    assert not parse_config(text).ok
