"""`.github/coder.yml`: the models, and parsing YAML text into them with errors that name lines.

Pure: callers fetch the text (from the default branch, never a pull request's head) and pass it
in. Every field has a default, so a repository with no config file gets the built-in behaviour.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.error import MarkedYAMLError, YAMLError

CONFIG_PATH = ".github/coder.yml"
DEVELOP_LABEL = "coder:develop"
# A config file is a few KB; these bounds reject documents built to exhaust memory
# (e.g. nested aliases that expand exponentially) before pydantic ever sees them.
MAX_CONFIG_BYTES = 256 * 1024
MAX_CONFIG_NODES = 20_000
# Whole-config checks start their message with the dotted path they are about.
MESSAGE_PATH = re.compile(r"^([A-Za-z_][\w-]*(?:\.[\w:-]+)+):")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Models(_Model):
    """Which model runs, and the ladder a retry or fix climbs."""

    default: str = Field("sonnet", description="Model for a first attempt.")
    ladder: tuple[str, ...] = Field(
        ("haiku", "sonnet", "opus"), description="Tiers a retry or fix climbs, cheapest first."
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="Issue label -> model, e.g. documentation: haiku."
    )


class Agent(_Model):
    """The agent backend that does the work inside the job."""

    backend: Literal["claude", "codex", "aider", "command", "script"] = Field(
        "claude",
        description="claude, codex, aider, command (any program speaking STATUS:/STUCK:/COST:), "
        "or script (deterministic; for demos and tests).",
    )
    command: str | None = Field(
        None, description="For backend: command, the program to run in the workspace."
    )
    script: str | None = Field(
        None, description="For backend: script, the path of the script file in the repo."
    )
    models: Models = Field(default_factory=Models, description="Model tiers.")
    instructions: tuple[str, ...] = Field(
        ("AGENTS.md", "CLAUDE.md", ".github/coder-instructions.md"),
        description="Files on the default branch whose text joins every briefing.",
    )


class Runner(_Model):
    """Where agent jobs run."""

    runs_on: str | tuple[str, ...] = Field(
        "ubuntu-latest",
        alias="runs-on",
        description="A runner label or a list of labels (e.g. [self-hosted, gpu]).",
    )
    workflow: str = Field(
        "coder.yml", description="The workflow file in .github/workflows that runs coder-agent."
    )


class Limits(_Model):
    """How much runs at once and how long a run may take."""

    max_concurrent: int = Field(3, ge=1, description="Runs at once across the installation.")
    per_repo: int = Field(2, ge=1, description="Runs at once in one repository.")
    run_minutes: int = Field(45, ge=1, le=360, description="A run is stopped after this long.")
    idle_minutes: int = Field(
        10, ge=1, le=360, description="A run whose agent prints nothing this long is stopped."
    )


class Budget(_Model):
    """Money limits."""

    per_run_usd: float = Field(5.0, ge=0, description="A run stops when it has spent this much.")
    monthly_usd: float = Field(200.0, ge=0, description="No new runs once the month spent this.")


class Tests(_Model):
    """How the repository's tests run."""

    command: str | None = Field(
        None, description="Shell command run in the workspace after the agent; none: no tests."
    )
    timeout_minutes: int = Field(20, ge=1, le=360, description="The test command's time limit.")


ArtifactKind = Literal["research", "design", "develop", "review", "release"]
BUILT_IN_ROLES = (
    "architect",
    "implementer",
    "tester",
    "reviewer",
    "release",
    "researcher",
    "designer",
)
# Which artifacts each kind of workflow accepts as its input (an issue is always accepted,
# except by review, which needs a pull request to read). See app/artifacts.py.
ACCEPTS: dict[str, tuple[str, ...]] = {
    "research": ("issue",),
    "design": ("issue", "research"),
    "develop": ("issue", "research", "design"),
    "review": ("develop",),
    "release": ("issue", "develop"),
}


class Trigger(_Model):
    """What starts a workflow (a `repository_dispatch` of type `coder.<name>` always does)."""

    label: str | None = Field(None, description="An issue label that starts the workflow.")
    command: str | None = Field(None, description="The /coder verb that starts the workflow.")
    pull_request: tuple[str, ...] = Field(
        (), description="Pull-request actions that start the workflow (e.g. opened)."
    )


class Role(_Model):
    """A custom role: one agent session with its own prompt."""

    prompt: str = Field(description="Path, on the default branch, of the role's prompt file.")
    description: str = Field("", description="One line shown in summaries.")


class Workflow(_Model):
    """One agent workflow: a trigger, steps (one agent session each), and what follows."""

    on: Trigger = Field(default_factory=Trigger, description="What starts it.")
    steps: tuple[str, ...] = Field(
        ("implementer",), description="Roles run in order, one agent session each."
    )
    then: str | None = Field(None, description="Workflow to start when this one succeeds.")
    produces: ArtifactKind = Field(
        "develop", description="The artifact it ends with, which decides what it may hand on."
    )
    model: str | None = Field(None, description="Model for this workflow (default: agent's).")
    auto_split: bool = Field(
        default=False, description="Turn the architect's split proposal into sub-issues."
    )
    title: str | None = Field(
        None, description="Title of the issue opened for a run that starts without one."
    )


def _default_workflows() -> dict[str, Workflow]:
    return {
        "research": Workflow(
            on=Trigger(label="coder:research", command="research"),
            steps=("researcher",),
            produces="research",
        ),
        "design": Workflow(
            on=Trigger(label="coder:design", command="design"),
            steps=("designer",),
            produces="design",
        ),
        "develop": Workflow(
            on=Trigger(label=DEVELOP_LABEL, command="develop"),
            steps=("architect", "implementer", "tester"),
            produces="develop",
        ),
        "review": Workflow(
            on=Trigger(label="coder:review", command="review"),
            steps=("reviewer",),
            produces="review",
        ),
        "release": Workflow(
            on=Trigger(command="release"),
            steps=("release",),
            produces="release",
            title="Release",
        ),
    }


class Policies(_Model):
    """Rules checked before a pull request can merge."""

    allowed_paths: tuple[str, ...] = Field(("**",), description="Globs the agent may change.")
    forbidden_paths: tuple[str, ...] = Field(
        (".github/workflows/**",), description="Globs the agent may never change."
    )
    required_checks: tuple[str, ...] = Field((), description="Checks that must pass to merge.")


class MergeQueue(_Model):
    """The merge queue."""

    enabled: bool = Field(default=False, description="Queue pull requests labelled coder:merge.")
    batch_size: int | Literal["auto"] = Field("auto", description="PRs tested together.")
    method: Literal["fast-forward", "merge", "squash", "rebase"] = Field(
        "fast-forward", description="How the tested commit lands."
    )


class CoderConfig(_Model):
    """The whole `.github/coder.yml`."""

    agent: Agent = Field(default_factory=Agent, description="The agent backend.")
    runner: Runner = Field(default_factory=Runner, description="Where jobs run.")
    limits: Limits = Field(default_factory=Limits, description="Concurrency and time limits.")
    budget: Budget = Field(default_factory=Budget, description="Money limits.")
    tests: Tests = Field(default_factory=Tests, description="The repository's tests.")
    workflows: dict[str, Workflow] = Field(
        default_factory=_default_workflows, description="Agent workflows by name."
    )
    policies: Policies = Field(default_factory=Policies, description="Merge policies.")
    merge_queue: MergeQueue = Field(default_factory=MergeQueue, description="The merge queue.")
    allowed_bots: tuple[str, ...] = Field(
        (), description="Bot logins (e.g. dependabot[bot]) allowed to start runs."
    )
    roles: dict[str, Role] = Field(
        default_factory=dict, description="Custom roles by name, each with its prompt file."
    )

    @field_validator("workflows", mode="before")
    @classmethod
    def _keep_built_in_workflows(cls, value: Any) -> Any:
        # A team's own workflows add to the built-in ones. One named like a built-in starts from
        # it: the keys given replace the built-in's, the rest (e.g. `produces`) carry over.
        if not isinstance(value, dict):
            return value
        built_in = _default_workflows()
        merged: dict[str, Any] = dict(built_in)
        for name, given in value.items():
            if name in built_in and isinstance(given, dict):
                merged[name] = {**built_in[name].model_dump(exclude_defaults=True), **given}
            else:
                merged[name] = given
        return merged

    @model_validator(mode="after")
    def _workflows_fit_together(self) -> CoderConfig:
        known_roles = set(BUILT_IN_ROLES) | set(self.roles)
        seen: dict[tuple[str, str], str] = {}
        for name, workflow in self.workflows.items():
            for role in workflow.steps:
                if role not in known_roles:
                    raise ValueError(
                        f"workflows.{name}.steps: unknown role {role!r} "
                        f"(built in: {', '.join(BUILT_IN_ROLES)}; or define it under roles:)"
                    )
            for kind, value in (("label", workflow.on.label), ("command", workflow.on.command)):
                if value is None:
                    continue
                other = seen.setdefault((kind, value), name)
                if other != name:
                    raise ValueError(
                        f"workflows.{name}.on.{kind}: {value!r} already starts workflow {other}"
                    )
            if workflow.then is None:
                continue
            following = self.workflows.get(workflow.then)
            if following is None:
                raise ValueError(f"workflows.{name}.then: no workflow named {workflow.then!r}")
            if workflow.produces not in ACCEPTS[following.produces]:
                takes = " or ".join(ACCEPTS[following.produces])
                raise ValueError(
                    f"workflows.{name}.then: {workflow.then} takes {takes}, "
                    f"not a {workflow.produces} artifact"
                )
        cycle = _then_cycle(self.workflows)
        if cycle:
            where = f"workflows.{cycle[-2]}.then"
            raise ValueError(f"{where}: the workflows form a cycle: {' -> '.join(cycle)}")
        return self

    def workflow_for_command(self, verb: str) -> tuple[str, Workflow] | None:
        """Return the workflow a /coder verb starts, if any."""
        for name, workflow in self.workflows.items():
            if workflow.on.command == verb:
                return name, workflow
        return None

    def workflows_for_pull_request(self, action: str) -> list[tuple[str, Workflow]]:
        """Return the workflows a pull-request action starts."""
        return [(n, w) for n, w in self.workflows.items() if action in w.on.pull_request]

    def workflow_for_label(self, label: str) -> tuple[str, Workflow] | None:
        """Return the workflow an issue label starts, if any."""
        for name, workflow in self.workflows.items():
            if workflow.on.label == label:
                return name, workflow
        return None


def _then_cycle(workflows: dict[str, Workflow]) -> list[str]:
    """Return a `then:` cycle as a list of names (first repeated at the end), or []."""
    for start, workflow in workflows.items():
        path = [start]
        current = workflow.then
        while current is not None and current in workflows:
            if current in path:
                return [*path[path.index(current) :], current]
            path.append(current)
            current = workflows[current].then
    return []


@dataclass(frozen=True)
class ConfigError:
    """One problem in a config file, with where it is (1-based line and column)."""

    path: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.message}"


@dataclass(frozen=True)
class ConfigResult:
    """A parsed config, or the errors that stop it from being used."""

    config: CoderConfig | None
    errors: tuple[ConfigError, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether the config can be used."""
        return self.config is not None


Node = Annotated[Any, "a ruamel node: CommentedMap, CommentedSeq or a scalar"]


def parse_config(text: str | None, path: str = CONFIG_PATH) -> ConfigResult:
    """Parse config text (None: no file) into a model, or errors naming their lines."""
    if text is None or not text.strip():
        return ConfigResult(CoderConfig())
    if len(text.encode()) > MAX_CONFIG_BYTES:
        return _fail(path, 1, 1, f"the file is larger than {MAX_CONFIG_BYTES // 1024} KB")
    yaml = YAML(typ="rt")
    try:
        document = yaml.load(text)
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        return _fail(path, line, column, f"invalid YAML: {error.problem or error.context}")
    except YAMLError as error:
        return _fail(path, 1, 1, f"invalid YAML: {error}")
    if document is None:
        return ConfigResult(CoderConfig())
    if not isinstance(document, CommentedMap):
        return _fail(path, 1, 1, "the file must be a mapping of keys (agent:, limits:, ...)")
    try:
        plain = _to_plain(document, budget=[MAX_CONFIG_NODES])
    except _TooLargeError:
        return _fail(path, 1, 1, f"the document expands to more than {MAX_CONFIG_NODES} nodes")
    except _TaggedError as error:
        return _fail(path, 1, 1, f"YAML tags are not allowed here (found {error.args[0]})")
    try:
        return ConfigResult(CoderConfig.model_validate(plain))
    except ValidationError as error:
        return ConfigResult(None, tuple(_located(document, path, error)))


def _fail(path: str, line: int, column: int, message: str) -> ConfigResult:
    return ConfigResult(None, (ConfigError(path, line, column, message),))


class _TooLargeError(Exception):
    pass


class _TaggedError(Exception):
    pass


def _explicit_tag(node: Node) -> str | None:
    # Safe loading never builds objects from tags, but a tag in a config file is always a
    # mistake or a probe; say so instead of silently reading the tagged value.
    tag = getattr(getattr(node, "tag", None), "value", None)
    return tag if isinstance(tag, str) else None


def _to_plain(node: Node, budget: list[int]) -> Any:
    """Copy ruamel's tree into plain containers, counting nodes (aliases count every time)."""
    budget[0] -= 1
    if budget[0] < 0:
        raise _TooLargeError
    tag = _explicit_tag(node)
    if tag is not None or isinstance(node, TaggedScalar):
        raise _TaggedError(tag or "a tag")
    if isinstance(node, CommentedMap):
        return {str(key): _to_plain(value, budget) for key, value in node.items()}
    if isinstance(node, CommentedSeq):
        return [_to_plain(item, budget) for item in node]
    return node


def _located(document: CommentedMap, path: str, error: ValidationError) -> list[ConfigError]:
    errors = []
    for problem in error.errors():
        location = _where(problem)
        line, column = _position(document, location)
        message = _message(problem)
        if problem["loc"]:
            message = f"{'.'.join(str(part) for part in location)}: {message}"
        errors.append(ConfigError(path, line, column, message))
    return errors


def _message(problem: Any) -> str:
    if problem["type"] == "extra_forbidden":
        return "unknown key"
    return str(problem["msg"]).removeprefix("Value error, ")


def _where(problem: Any) -> tuple[Any, ...]:
    """Where a problem is: its loc, or for whole-config checks the path its message starts with."""
    location = tuple(problem["loc"])
    if location:
        return location
    match = MESSAGE_PATH.match(_message(problem))
    return tuple(match.group(1).split(".")) if match else ()


def _position(document: CommentedMap, location: tuple[Any, ...]) -> tuple[int, int]:
    """Find the line and column of the deepest part of `location` that exists in the YAML."""
    node: Any = document
    line, column = 1, 1
    for part in location:
        if isinstance(node, CommentedMap) and part in node:
            line, column = node.lc.key(part)
            line, column = line + 1, column + 1
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            item_line, item_column = node.lc.item(part)
            line, column = item_line + 1, item_column + 1
            node = node[part]
        else:
            break
    return line, column
