"""A small evaluator for GitHub Actions expressions (`${{ ... }}`), enough for workflow files.

Supports literals (`'text'`, numbers, `true`, `false`, `null`), context access (`inputs.run_id`,
`github['sha']`, `vars.X`), `!`, `==`, `!=`, `<`, `<=`, `>`, `>=`, `&&`, `||` (which return an
operand, not a boolean, as on GitHub), parentheses and the functions `fromJSON`, `toJSON`,
`format`, `contains`, `startsWith`, `endsWith` and `join`:
https://docs.github.com/actions/learn-github-actions/expressions
A missing property evaluates to null, and null interpolates as the empty string.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

TEMPLATE = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)
TOKEN = re.compile(
    r"\s*(?:(?P<number>-?(?:0x[0-9a-fA-F]+|[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?))"
    r"|(?P<string>'(?:[^']|'')*')"
    r"|(?P<op>==|!=|<=|>=|&&|\|\||[!<>()\[\].,])"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_-]*|\*))"
)


class ExpressionError(ValueError):
    """An expression that devhub cannot parse or evaluate."""


def truthy(value: object) -> bool:
    """Apply GitHub's truthiness: false, 0, -0, '', null and NaN are falsy."""
    if value is None or value is False or value == "":
        return False
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value != 0 and not math.isnan(value)
    return True


def to_text(value: object) -> str:
    """Interpolate a value the way GitHub does."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        return json.dumps(value, indent=2)
    return str(value)


def _coerce_number(value: object) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return 0.0
        try:
            return float(int(text, 16)) if text.lower().startswith("0x") else float(text)
        except ValueError:
            return math.nan
    return math.nan


def _equal(left: object, right: object) -> bool:
    if isinstance(left, str) and isinstance(right, str):
        return left.casefold() == right.casefold()
    if type(left) is type(right) and not isinstance(left, int | float):
        return left == right
    return _coerce_number(left) == _coerce_number(right)


def _contains(haystack: object, needle: object) -> bool:
    if isinstance(haystack, list):
        return any(_equal(item, needle) for item in haystack)
    return to_text(needle).casefold() in to_text(haystack).casefold()


def _format(template: object, *args: object) -> str:
    text = to_text(template)
    for index, arg in enumerate(args):
        text = text.replace("{" + str(index) + "}", to_text(arg))
    return text.replace("{{", "{").replace("}}", "}")


def _from_json(value: object) -> Any:
    try:
        return json.loads(to_text(value))
    except ValueError as error:
        raise ExpressionError(f"fromJSON: {error}") from None


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "fromjson": _from_json,
    "tojson": lambda value: json.dumps(value, indent=2),
    "format": _format,
    "contains": _contains,
    "startswith": lambda a, b: to_text(a).casefold().startswith(to_text(b).casefold()),
    "endswith": lambda a, b: to_text(a).casefold().endswith(to_text(b).casefold()),
    "join": lambda items, sep=",": (
        to_text(sep).join(to_text(i) for i in items) if isinstance(items, list) else to_text(items)
    ),
}


class _Parser:
    """Recursive descent over the token list, evaluating as it goes."""

    def __init__(self, text: str, contexts: Mapping[str, Any]) -> None:
        self.tokens = self._tokenize(text)
        self.position = 0
        self.contexts = {key.casefold(): value for key, value in contexts.items()}

    @staticmethod
    def _tokenize(text: str) -> list[tuple[str, str]]:
        tokens = []
        position = 0
        while position < len(text):
            if text[position:].strip() == "":
                break
            match = TOKEN.match(text, position)
            if match is None or match.end() == position:
                raise ExpressionError(f"unexpected character at {position}: {text[position:]!r}")
            kind = match.lastgroup
            assert kind is not None
            tokens.append((kind, match[kind]))
            position = match.end()
        return tokens

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (value is not None and token[1] != value):
            raise ExpressionError(f"expected {value or 'a value'}, found {token}")
        self.position += 1
        return token

    def parse(self) -> Any:
        value = self.or_expr()
        if self.peek() is not None:
            raise ExpressionError(f"unexpected {self.peek()}")
        return value

    def or_expr(self) -> Any:
        value = self.and_expr()
        while self.peek() == ("op", "||"):
            self.take()
            right = self.and_expr()
            value = value if truthy(value) else right
        return value

    def and_expr(self) -> Any:
        value = self.comparison()
        while self.peek() == ("op", "&&"):
            self.take()
            right = self.comparison()
            value = right if truthy(value) else value
        return value

    def comparison(self) -> Any:
        value = self.unary()
        token = self.peek()
        while token is not None and token[1] in {"==", "!=", "<", "<=", ">", ">="}:
            self.take()
            right = self.unary()
            value = self._compare(token[1], value, right)
            token = self.peek()
        return value

    @staticmethod
    def _compare(op: str, left: object, right: object) -> bool:
        if op == "==":
            return _equal(left, right)
        if op == "!=":
            return not _equal(left, right)
        a, b = _coerce_number(left), _coerce_number(right)
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]

    def unary(self) -> Any:
        if self.peek() == ("op", "!"):
            self.take()
            return not truthy(self.unary())
        return self.postfix()

    def postfix(self) -> Any:
        value = self.primary()
        while True:
            token = self.peek()
            if token == ("op", "."):
                self.take()
                name = self.take()[1]
                value = self._member(value, name)
            elif token == ("op", "["):
                self.take()
                key = self.or_expr()
                self.take("]")
                value = self._member(value, key)
            else:
                return value

    @staticmethod
    def _member(value: object, key: object) -> Any:
        if isinstance(value, Mapping):
            wanted = to_text(key).casefold()
            return next((v for k, v in value.items() if str(k).casefold() == wanted), None)
        if isinstance(value, list) and isinstance(key, int | float) and not isinstance(key, bool):
            index = int(key)
            return value[index] if 0 <= index < len(value) else None
        return None

    def primary(self) -> Any:
        kind, text = self.take()
        if kind == "number":
            number = float(int(text, 16)) if text.lower().startswith(("0x", "-0x")) else float(text)
            return int(number) if number.is_integer() else number
        if kind == "string":
            return text[1:-1].replace("''", "'")
        if text == "(":
            value = self.or_expr()
            self.take(")")
            return value
        if kind != "name":
            raise ExpressionError(f"unexpected {text!r}")
        lowered = text.casefold()
        if lowered in {"true", "false"}:
            return lowered == "true"
        if lowered == "null":
            return None
        if self.peek() == ("op", "("):
            return self._call(lowered)
        if lowered not in self.contexts:
            raise ExpressionError(f"Unrecognized named-value: '{text}'")
        return self.contexts[lowered]

    def _call(self, name: str) -> Any:
        function = FUNCTIONS.get(name)
        if function is None:
            raise ExpressionError(f"Unrecognized function: '{name}'")
        self.take("(")
        args = []
        if self.peek() != ("op", ")"):
            args.append(self.or_expr())
            while self.peek() == ("op", ","):
                self.take()
                args.append(self.or_expr())
        self.take(")")
        return function(*args)


def evaluate(expression: str, contexts: Mapping[str, Any]) -> Any:
    """Evaluate one expression (the text between `${{` and `}}`)."""
    return _Parser(expression, contexts).parse()


def render(value: Any, contexts: Mapping[str, Any]) -> Any:
    """Evaluate a workflow value: a lone `${{ }}` keeps its type, templates become text."""
    if not isinstance(value, str):
        return value
    whole = TEMPLATE.fullmatch(value.strip())
    if whole is not None:
        return evaluate(whole[1], contexts)
    return TEMPLATE.sub(lambda m: to_text(evaluate(m[1], contexts)), value)


def render_text(value: Any, contexts: Mapping[str, Any]) -> str:
    """Evaluate a workflow value to the string a step sees (env values, names)."""
    return to_text(render(value, contexts))
