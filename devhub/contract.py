"""Check requests, responses and webhook payloads against GitHub's published descriptions.

The data is the slice in tests/fixtures/github (see docs/contract-tests.md): `openapi.json` from
`@octokit/openapi` (OpenAPI 3.0) and `webhooks.json` from `@octokit/openapi-webhooks` (OpenAPI
3.1). Both are translated to JSON Schema 2020-12 once, in memory, when loaded; the fixture data is
never edited. Every check returns a list of precise messages; an empty list means "as GitHub".
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry
from referencing.jsonschema import DRAFT202012

OPENAPI_FIXTURE = "openapi.json"
WEBHOOKS_FIXTURE = "webhooks.json"
FIXTURES_HINT = "add it to scripts/github-contract.toml and run `make fixtures`"
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options", "trace"})
JSON_MEDIA_TYPE = "application/json"
# Keywords that never change whether an instance is valid; dropped from the in-memory copy so
# the validator has less to walk.
ANNOTATIONS = frozenset(
    {"description", "example", "examples", "title", "default", "readOnly", "writeOnly"}
    | {"deprecated", "discriminator", "externalDocs", "xml", "$comment"}
)
SCHEMA_MAP_KEYWORDS = ("properties", "patternProperties", "$defs", "dependentSchemas")
SCHEMA_LIST_KEYWORDS = ("allOf", "anyOf", "oneOf", "prefixItems")
SCHEMA_KEYWORDS = ("items", "additionalProperties", "not", "if", "then", "else", "contains")
SCHEMA_KEYWORDS_MORE = ("propertyNames", "unevaluatedProperties", "unevaluatedItems")
NULL_SCHEMA = {"type": "null"}
# Only `date-time` is checked: the other formats need extra packages (see _format_checker).
CHECKED_FORMATS = frozenset({"date-time"})
NO_BODY_STATUSES = frozenset({204, 304})
# GitHub answers any GET with 304 when If-None-Match/If-Modified-Since matches, whether or not
# the operation lists it: https://docs.github.com/en/rest/using-the-rest-api/best-practices-for-using-the-rest-api#use-conditional-requests-if-appropriate
CONDITIONAL_METHODS = frozenset({"GET", "HEAD"})
# repository_dispatch's `action` is the `event_type` the client sent, so GitHub documents one
# sample key for it: https://docs.github.com/en/webhooks/webhook-events-and-payloads#repository_dispatch
FREE_FORM_ACTION_EVENTS = frozenset({"repository_dispatch"})
VALIDATION_FAILED_STATUS = 422
BASIC_ERROR = "/components/schemas/basic-error"
VALIDATION_ERROR = "/components/schemas/validation-error"
COERCIBLE_INTEGER = re.compile(r"-?[0-9]+")
COERCIBLE_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")
MAX_VALUE_CHARS = 60
MAX_MESSAGE_CHARS = 240


# --- OpenAPI 3.0/3.1 -> JSON Schema 2020-12 -------------------------------------------------


def _is_nullable(schema: object) -> bool:
    return isinstance(schema, dict) and schema.get("nullable") is True


def to_json_schema(schema: Any, base_uri: str = "") -> Any:
    """Translate one OpenAPI schema object (3.0 or 3.1) to JSON Schema 2020-12.

    Local `$ref`s ("#/components/...") are prefixed with `base_uri`, so any subschema can be
    validated on its own against a registry that holds the whole document under that URI.
    """
    if not isinstance(schema, dict):
        return schema
    branches = schema.get("oneOf")
    hoist_null = isinstance(branches, list) and sum(map(_is_nullable, branches)) > 1
    translated: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ANNOTATIONS or key == "nullable" or key.startswith("x-"):
            continue
        if key == "format" and value not in CHECKED_FORMATS:
            continue
        if key in SCHEMA_MAP_KEYWORDS:
            translated[key] = {name: to_json_schema(sub, base_uri) for name, sub in value.items()}
        elif key in SCHEMA_LIST_KEYWORDS:
            subschemas = value
            if hoist_null and key == "oneOf":
                # `oneOf: [{nullable}, {nullable}]`: null would match several branches and so
                # fail oneOf; GitHub means "one of these, or null".
                subschemas = [{k: v for k, v in s.items() if k != "nullable"} for s in value]
            translated[key] = [to_json_schema(sub, base_uri) for sub in subschemas]
        elif key in SCHEMA_KEYWORDS or key in SCHEMA_KEYWORDS_MORE:
            translated[key] = to_json_schema(value, base_uri)
        elif key == "$ref" and isinstance(value, str) and value.startswith("#"):
            translated[key] = base_uri + value
        else:
            translated[key] = value
    types = translated.get("type")
    enum = translated.get("enum")
    if isinstance(types, list) and "null" in types and enum is not None and None not in enum:
        translated["enum"] = [*enum, None]
    if _is_nullable(schema) or hoist_null:
        # OpenAPI 3.0 `nullable: true` also admits null where an `enum` omits it (GitHub's
        # description has ~71 such enums), so wrap instead of editing `type`.
        return {"anyOf": [translated, NULL_SCHEMA]} if translated else {}
    return translated


def _translate_document(node: Any, base_uri: str, parent_key: str | None = None) -> Any:
    """Translate every schema position of an OpenAPI document; leave the rest as is."""
    if isinstance(node, dict):
        translated: dict[str, Any] = {}
        for key, value in node.items():
            if key == "schema":
                translated[key] = to_json_schema(value, base_uri)
            elif key == "schemas" and parent_key == "components":
                translated[key] = {n: to_json_schema(sub, base_uri) for n, sub in value.items()}
            else:
                translated[key] = _translate_document(value, base_uri, key)
        return translated
    if isinstance(node, list):
        return [_translate_document(item, base_uri, parent_key) for item in node]
    return node


def _check_date_time(instance: object) -> bool:
    if isinstance(instance, str):
        dt.datetime.fromisoformat(instance)
    return True


def _format_checker() -> FormatChecker:
    """Return a checker for `date-time` only: the other formats need extra packages."""
    checker = FormatChecker(formats=())
    checker.checks("date-time", raises=ValueError)(_check_date_time)
    return checker


FORMAT_CHECKER = _format_checker()


# --- pointers and messages ------------------------------------------------------------------


def pointer_to(*tokens: str | int) -> str:
    """Build a JSON pointer (RFC 6901) from path tokens."""
    return "".join("/" + str(t).replace("~", "~0").replace("/", "~1") for t in tokens)


def _short(value: object) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def _is_null_wrapper(schemas: object) -> bool:
    return isinstance(schemas, list) and len(schemas) == 2 and schemas[1] == NULL_SCHEMA


def _leaf_errors(error: ValidationError) -> Iterator[tuple[ValidationError, bool]]:
    """Yield the errors worth reporting, and whether each sits under a nullable wrapper."""
    if error.validator == "anyOf" and _is_null_wrapper(error.validator_value):
        inner = [e for e in error.context or () if e.relative_schema_path[0] == 0]
        for sub in inner:
            for leaf, _ in _leaf_errors(sub):
                yield leaf, leaf.absolute_path == error.absolute_path
        if inner:
            return
    yield error, False


def _where(error: ValidationError) -> str:
    pointer = pointer_to(*error.absolute_path)
    return f" at {pointer}" if pointer else ""


def _describe(error: ValidationError, *, nullable: bool) -> str:
    """Say what is wrong, with values shortened so a whole payload never lands in a message."""
    keyword_value = error.validator_value
    null: list[object] = [None] if nullable else []
    if error.validator == "type" and isinstance(keyword_value, str | list):
        expected = [keyword_value] if isinstance(keyword_value, str) else list(keyword_value)
        expected += ["null"] if nullable else []
        return f"{_short(error.instance)} is not of type {' or '.join(map(repr, expected))}"
    if error.validator == "enum" and isinstance(keyword_value, list):
        return f"{_short(error.instance)} is not one of {_short(keyword_value + null)}"
    if error.validator in ("anyOf", "oneOf") and isinstance(keyword_value, list) and error.context:
        closest = best_match(error.context)
        return (
            f"{_short(error.instance)} matches none of the {len(keyword_value)} allowed schemas"
            f" (closest{_where(closest)}: {_describe(closest, nullable=False)})"
        )
    return error.message


def _message(error: ValidationError, nullable: bool) -> str:
    """Render one problem as ` at <JSON pointer>: <what>`, bounded in length."""
    text = f"{_where(error)}: {_describe(error, nullable=nullable)}"
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"


class _SchemaSet:
    """One translated document in a registry, with validators built lazily and cached."""

    def __init__(self, document: dict[str, Any], base_uri: str) -> None:
        self.document: dict[str, Any] = _translate_document(document, base_uri)
        self._registry: Registry[Any] = Registry().with_resource(
            base_uri, DRAFT202012.create_resource(self.document)
        )
        self._validators: dict[str, Draft202012Validator] = {}

    def resolve(self, pointer: str) -> Any:
        """Return the node at a JSON pointer in the translated document."""
        node: Any = self.document
        for token in pointer.split("/")[1:]:
            key = token.replace("~1", "/").replace("~0", "~")
            node = node[int(key)] if isinstance(node, list) else node[key]
        return node

    def follow(self, pointer: str) -> tuple[str, Any]:
        """Follow local `$ref`s from a pointer to the pointer and node they land on."""
        node = self.resolve(pointer)
        while isinstance(node, dict) and isinstance(node.get("$ref"), str):
            pointer = node["$ref"].partition("#")[2]
            node = self.resolve(pointer)
        return pointer, node

    def errors(self, pointer: str, instance: object) -> list[str]:
        """Validate an instance against the schema at `pointer`; return one line per problem."""
        validator = self._validators.get(pointer)
        if validator is None:
            validator = Draft202012Validator(
                self.resolve(pointer), registry=self._registry, format_checker=FORMAT_CHECKER
            )
            self._validators[pointer] = validator
        messages: list[str] = []
        for error in validator.iter_errors(instance):
            for leaf, nullable in _leaf_errors(error):
                message = _message(leaf, nullable)
                if message not in messages:
                    messages.append(message)
        return messages


# --- REST -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Parameter:
    name: str
    location: str
    required: bool
    schema_pointer: str | None = None
    types: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class _Operation:
    operation_id: str
    method: str
    template: str
    pattern: re.Pattern[str]
    precedence: tuple[int, ...]
    parameters: tuple[_Parameter, ...]
    body_pointer: str | None
    body_required: bool
    responses: Mapping[str, str | None]


def _schema_types(schemas: _SchemaSet, pointer: str) -> frozenset[str]:
    """Return the JSON types a parameter's schema admits, looking through refs and unions."""
    pointer, schema = schemas.follow(pointer)
    if not isinstance(schema, dict):
        return frozenset()
    declared = schema.get("type")
    types = {declared} if isinstance(declared, str) else set(declared or ())
    for key in ("anyOf", "oneOf", "allOf"):
        for index in range(len(schema.get(key, ()))):
            types |= _schema_types(schemas, f"{pointer}/{key}/{index}")
    return frozenset(types)


def _coerce(value: str, types: frozenset[str]) -> object:
    """Turn a path or query string into the JSON value its schema expects, when it can."""
    if "integer" in types and COERCIBLE_INTEGER.fullmatch(value):
        return int(value)
    if "number" in types and COERCIBLE_NUMBER.fullmatch(value):
        return float(value)
    if "boolean" in types and value in ("true", "false"):
        return value == "true"
    return value


def _json_schema_pointer(schemas: _SchemaSet, pointer: str) -> str | None:
    """Return the pointer to the application/json schema of a requestBody or response."""
    pointer, node = schemas.follow(pointer)
    content = node.get("content", {}) if isinstance(node, dict) else {}
    if JSON_MEDIA_TYPE in content and "schema" in content[JSON_MEDIA_TYPE]:
        return pointer + pointer_to("content", JSON_MEDIA_TYPE, "schema")
    return None


def _path_pattern(template: str, multi_segment: set[str]) -> re.Pattern[str]:
    """Compile a path template; `x-multi-segment` parameters (refs, file paths) span slashes."""
    parts = re.split(r"\{([^}]+)\}", template)
    regex = "".join(
        re.escape(part)
        if index % 2 == 0
        else f"(?P<p{index // 2}>{'.+' if part in multi_segment else '[^/]+'})"
        for index, part in enumerate(parts)
    )
    return re.compile(regex)


def _precedence(template: str, multi_segment: set[str]) -> tuple[int, ...]:
    """Rank a template for matching: lower wins.

    A multi-segment parameter (a ref such as `coder/42-x`) can swallow a literal suffix, so
    `/commits/{ref}/check-runs` must beat `/commits/{ref}` for `.../commits/a/b/check-runs`:
    fewer multi-segment parameters first, then more literal segments, then literal segments
    beat `{param}` segments left to right, as in GitHub's router.
    """
    segments = template.split("/")
    names = re.findall(r"\{([^}]+)\}", template)
    spans = sum(1 for name in names if name in multi_segment)
    literals = sum(1 for s in segments if "{" not in s)
    return (spans, -literals, *(int("{" in s) for s in segments))


class OpenAPIContract:
    """GitHub's REST contract: which operation a request is, and whether it is well-formed."""

    def __init__(self, document: dict[str, Any]) -> None:
        self._schemas = _SchemaSet(document, "urn:coder:github-openapi")
        self._operations: dict[str, list[_Operation]] = {}
        for template, path_item in self._schemas.document.get("paths", {}).items():
            for method, operation in path_item.items():
                if method in HTTP_METHODS:
                    parsed = self._operation(template, method, operation, path_item)
                    self._operations.setdefault(parsed.method, []).append(parsed)

    @classmethod
    def load(cls, path: Path) -> OpenAPIContract:
        """Load the OpenAPI slice (cached per file version, so many hubs share one copy)."""
        stat = path.stat()
        return _load_openapi(str(path.resolve()), stat.st_mtime_ns, stat.st_size)

    def _operation(
        self, template: str, method: str, operation: dict[str, Any], path_item: dict[str, Any]
    ) -> _Operation:
        base = pointer_to("paths", template)
        declared: dict[tuple[str, str], _Parameter] = {}
        multi_segment: set[str] = set()
        sources = [(f"{base}/parameters", path_item.get("parameters", []))]
        sources.append((f"{base}/{method}/parameters", operation.get("parameters", [])))
        for list_pointer, parameters in sources:
            for index in range(len(parameters)):
                pointer, parameter = self._schemas.follow(f"{list_pointer}/{index}")
                schema_pointer = f"{pointer}/schema" if "schema" in parameter else None
                types = _schema_types(self._schemas, schema_pointer) if schema_pointer else None
                name, location = parameter["name"], parameter["in"]
                declared[name, location] = _Parameter(
                    name,
                    location,
                    required=bool(parameter.get("required")) or location == "path",
                    schema_pointer=schema_pointer,
                    types=types or frozenset(),
                )
                if parameter.get("x-multi-segment") and location == "path":
                    multi_segment.add(name)
        names = re.findall(r"\{([^}]+)\}", template)
        path_params = tuple(
            declared.get((n, "path"), _Parameter(n, "path", required=True)) for n in names
        )
        others = tuple(p for p in declared.values() if p.location != "path")
        body = f"{base}/{method}/requestBody"
        has_body = "requestBody" in operation
        responses = {
            status: _json_schema_pointer(self._schemas, f"{base}/{method}/responses/{status}")
            for status in operation.get("responses", {})
        }
        return _Operation(
            operation_id=operation["operationId"],
            method=method.upper(),
            template=template,
            pattern=_path_pattern(template, multi_segment),
            precedence=_precedence(template, multi_segment),
            parameters=path_params + others,
            body_pointer=_json_schema_pointer(self._schemas, body) if has_body else None,
            body_required=has_body and bool(self._schemas.follow(body)[1].get("required")),
            responses=responses,
        )

    def _match(self, method: str, path: str) -> tuple[_Operation, list[str]] | None:
        path = path.partition("?")[0]
        method = method.upper()
        best: tuple[_Operation, list[str]] | None = None
        # GitHub answers HEAD wherever it answers GET, with the same status and headers.
        for operation in self._operations.get("GET" if method == "HEAD" else method, ()):
            found = operation.pattern.fullmatch(path)
            if found and (best is None or operation.precedence < best[0].precedence):
                best = (operation, [unquote(v) for v in found.groups()])
        return best

    def operation_for(self, method: str, path: str) -> str | None:
        """Return the operationId for a request path relative to /api/v3, or None."""
        matched = self._match(method, path)
        return matched[0].operation_id if matched else None

    def validate_request(
        self, method: str, path: str, query: Mapping[str, str], body: object | None
    ) -> list[str]:
        """Check a request's path, query and JSON body against its operation."""
        matched = self._match(method, path)
        if matched is None:
            return [_unknown_operation(method, path)]
        operation, path_values = matched
        prefix = f"{method.upper()} {path} ({operation.operation_id})"
        problems: list[str] = []
        values = dict(zip((p.name for p in operation.parameters), path_values, strict=False))
        for parameter in operation.parameters:
            if parameter.location not in ("path", "query"):
                continue
            raw = values.get(parameter.name) if parameter.location == "path" else None
            raw = query.get(parameter.name) if parameter.location == "query" else raw
            label = f"{parameter.location} parameter {parameter.name!r}"
            if raw is None:
                if parameter.required:
                    problems.append(f"{prefix}: {label} is required")
                continue
            if parameter.schema_pointer is not None:
                value = _coerce(raw, parameter.types)
                problems += [
                    f"{prefix}: {label}{m}"
                    for m in self._schemas.errors(parameter.schema_pointer, value)
                ]
        if body is None:
            if operation.body_required:
                problems.append(f"{prefix}: request body is required")
        elif operation.body_pointer is not None:
            problems += [
                f"{prefix}: request body{m}"
                for m in self._schemas.errors(operation.body_pointer, body)
            ]
        return problems

    def validate_response(
        self, method: str, path: str, status: int, body: object | None
    ) -> list[str]:
        """Check a response's status and JSON body against the request's operation."""
        matched = self._match(method, path)
        if matched is None:
            return [_unknown_operation(method, path)]
        operation, method = matched[0], method.upper()
        prefix = f"{method} {path} ({operation.operation_id}): response {status}"
        if status in NO_BODY_STATUSES and body is not None:
            return [f"{prefix}: carries a body; GitHub sends none with {status}"]
        responses = operation.responses
        for key in (str(status), f"{status // 100}XX", "default"):
            if key in responses:
                schema_pointer = responses[key]
                break
        else:
            if status == 304 and method in CONDITIONAL_METHODS:
                return []
            if not 400 <= status < 600:
                documented = ", ".join(responses)
                return [f"{prefix}: status not documented for this operation ({documented})"]
            schema_pointer = VALIDATION_ERROR if status == VALIDATION_FAILED_STATUS else BASIC_ERROR
            if not isinstance(body, Mapping) or not isinstance(body.get("message"), str):
                return [f"{prefix}: GitHub's error bodies are objects with a string 'message'"]
        if schema_pointer is None:
            return []
        if body is None:
            if status in NO_BODY_STATUSES or method == "HEAD":
                return []
            return [f"{prefix}: no body; GitHub sends {JSON_MEDIA_TYPE}"]
        return [f"{prefix}: body{m}" for m in self._schemas.errors(schema_pointer, body)]


def _unknown_operation(method: str, path: str) -> str:
    return f"{method.upper()} {path}: no operation in the OpenAPI slice; {FIXTURES_HINT}"


@functools.cache
def _load_openapi(path: str, mtime_ns: int, size: int) -> OpenAPIContract:
    del mtime_ns, size  # part of the cache key only
    return OpenAPIContract(json.loads(Path(path).read_text(encoding="utf-8")))


# --- webhooks -------------------------------------------------------------------------------


def _normalize(name: str) -> str:
    """Spell an event or action as webhook keys do: `ready_for_review` -> `ready-for-review`."""
    return name.replace("_", "-")


class WebhookContract:
    """GitHub's webhook payload contract, keyed by X-GitHub-Event and the payload's action."""

    def __init__(self, document: dict[str, Any]) -> None:
        self._schemas = _SchemaSet(document, "urn:coder:github-webhooks")
        self._keys: dict[tuple[str, str | None], str] = {}
        self._by_event: dict[str, list[str]] = {}
        for key, webhook in self._schemas.document.get("webhooks", {}).items():
            operation = webhook["post"]
            event = _normalize(operation["x-github"]["subcategory"])
            _, _, action = operation["operationId"].partition("/")
            self._keys[event, _normalize(action) if action else None] = key
            self._by_event.setdefault(event, []).append(key)

    @classmethod
    def load(cls, path: Path) -> WebhookContract:
        """Load the webhook slice (cached per file version, so many hubs share one copy)."""
        stat = path.stat()
        return _load_webhooks(str(path.resolve()), stat.st_mtime_ns, stat.st_size)

    def key_for(self, event: str, action: str | None) -> str | None:
        """Return the webhook key that describes an event and action, or None."""
        normalized = _normalize(event)
        key = self._keys.get((normalized, _normalize(action) if action else None))
        key = key or self._keys.get((normalized, None))
        candidates = self._by_event.get(normalized, [])
        if key is None and event in FREE_FORM_ACTION_EVENTS and len(candidates) == 1:
            key = candidates[0]
        return key

    def validate(self, event: str, payload: Mapping[str, object]) -> list[str]:
        """Check a webhook payload against the schema for its event and action."""
        action = payload.get("action")
        action = action if isinstance(action, str) else None
        name = f"{event}.{action}" if action else event
        key = self.key_for(event, action)
        if key is None:
            return [f"webhook {name}: no schema in the webhook slice; {FIXTURES_HINT}"]
        pointer = pointer_to("webhooks", key, "post", "requestBody")
        schema_pointer = _json_schema_pointer(self._schemas, pointer)
        if schema_pointer is None:
            return [f"webhook {name} ({key}): the slice describes no JSON payload"]
        return [
            f"webhook {name} ({key}): payload{m}"
            for m in self._schemas.errors(schema_pointer, payload)
        ]


@functools.cache
def _load_webhooks(path: str, mtime_ns: int, size: int) -> WebhookContract:
    del mtime_ns, size  # part of the cache key only
    return WebhookContract(json.loads(Path(path).read_text(encoding="utf-8")))


def default_fixture_dir() -> Path | None:
    """Return the checkout's tests/fixtures/github, or None when devhub runs from a wheel."""
    candidate = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "github"
    return candidate if (candidate / OPENAPI_FIXTURE).is_file() else None
