"""`.github/coder.yml`: the models, and parsing YAML text into them with errors that name lines.

Pure: callers fetch the text (from the default branch, never a pull request's head) and pass it
in, with the base file its `_extends` names. Every field has a default, so a repository with no
config file gets the built-in behaviour (or its org's defaults).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from app.config_yaml import Document, YamlProblemError, holder, load_mapping, position

CONFIG_PATH = ".github/coder.yml"
DEVELOP_LABEL = "coder:develop"
# A config file is a few KB; these bounds reject documents built to exhaust memory
# (e.g. nested aliases that expand exponentially) before pydantic ever sees them.
MAX_CONFIG_BYTES = 256 * 1024
MAX_CONFIG_NODES = 20_000
# A config nests about five levels; 500 nested brackets (1 KB) must not exhaust the stack.
MAX_CONFIG_DEPTH = 32
NOT_UTF8 = "the file is not UTF-8 text"
# Backends DESIGN §5 plans that the runner cannot run yet (docs/runner.md).
PLANNED_BACKENDS = frozenset({"codex", "aider"})
# Whole-config checks start their message with the dotted path they are about.
MESSAGE_PATH = re.compile(r"^([A-Za-z_][\w-]*(?:\.[\w:-]+)+):")

# Probot's convention: `_extends: .github` (a repository of the same owner) or
# `_extends: acme/.github` names the repository whose `.github/coder.yml`, on its default branch,
# this file is merged over. A repository with no config file uses `<owner>/.github`'s.
EXTENDS_KEY = "_extends"
ORG_DEFAULTS_REPO = ".github"
# Plain enough for JSON Schema's ECMA-262 regexes too (docs/coder.schema.json uses it).
EXTENDS_PATTERN = r"^(?:[A-Za-z0-9][A-Za-z0-9-]*/)?[A-Za-z0-9._-]+$"
EXTENDS_VALUE = re.compile(EXTENDS_PATTERN)
BAD_EXTENDS = "_extends: expected a repository such as .github or acme/.github, not {value!r}"
UNREADABLE_BASE = "_extends: cannot read {path}: {reason}"
BASE_NOT_FOUND = "no such file on its default branch, or coder cannot see that repository"
ONE_LEVEL_ONLY = "_extends: a base config cannot extend another one (one level only)"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Models(_Model):
    """Which model runs, and the ladder a retry or fix climbs."""

    default: str = Field("sonnet", description="The model for a first attempt.", examples=["opus"])
    ladder: tuple[str, ...] = Field(
        ("haiku", "sonnet", "opus"),
        description="The tiers a retry or fix climbs, cheapest first; the top tier is the last.",
        examples=[["sonnet", "opus"]],
    )
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="Issue label to model. The first of the issue's labels that names a model "
        "wins; otherwise `default` applies.",
        examples=[{"documentation": "haiku"}],
    )


class Agent(_Model):
    """The agent backend that does the work inside the job."""

    backend: Literal["claude", "command", "script"] = Field(
        "claude",
        description="`claude`, `command` (any program that prints `STATUS:`, `STUCK:` and "
        "`COST:` lines), or `script` (deterministic; for demos and tests). `codex` and `aider` "
        "are not available yet.",
        examples=["command"],
    )
    command: str | None = Field(
        None,
        description="For `backend: command`: the program to run in the workspace.",
        examples=["python3 tools/my_agent.py"],
    )
    script: str | None = Field(
        None,
        description="For `backend: script`: the path of the script file in the repository.",
        examples=[".github/coder-script.json"],
    )
    models: Models = Field(default_factory=Models, description="Model tiers.")
    instructions: tuple[str, ...] = Field(
        ("AGENTS.md", "CLAUDE.md", ".github/coder-instructions.md"),
        description="Files on the default branch whose text joins every briefing. Missing files "
        "are skipped.",
        examples=[["AGENTS.md", "docs/CONTRIBUTING.md"]],
    )

    @field_validator("backend", mode="before")
    @classmethod
    def _not_yet(cls, value: Any) -> Any:
        # DESIGN §5 names them, but no runner speaks them yet. `codex exec --json` reports tokens
        # and no price, so `budget` could not stop a codex run; say so rather than fail later.
        if value in PLANNED_BACKENDS:
            raise ValueError(f"{value!r} is not available yet; use 'claude', 'command' or 'script'")
        return value


def _one_union_error(value: Any, handler: ValidatorFunctionWrapHandler, expected: str) -> Any:
    # pydantic reports a value that fits no member of a union once per member, under locations
    # such as `batch_size.int`; one error at the key, saying what fits, reads better.
    try:
        return handler(value)
    except ValidationError:
        raise ValueError(f"expected {expected}, not {value!r}") from None


class Runner(_Model):
    """Where agent jobs run."""

    runs_on: str | tuple[str, ...] = Field(
        "ubuntu-latest",
        alias="runs-on",
        description="A runner label, or a list of labels such as `[self-hosted, gpu]`. It reaches "
        "the workflow as JSON in the `runs_on` input, read with `fromJSON(inputs.runs_on)`.",
        examples=[["self-hosted", "gpu"]],
    )
    workflow: str = Field(
        "coder.yml",
        description="The workflow file in `.github/workflows/` that coder dispatches. If it does "
        "not exist, the run fails and coder comments with how to add it.",
        examples=["agents.yml"],
    )

    @field_validator("runs_on", mode="wrap")
    @classmethod
    def _one_runs_on_error(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        return _one_union_error(value, handler, "a runner label or a list of labels")


class Limits(_Model):
    """How much runs at once and how long a run may take."""

    max_concurrent: int = Field(
        3, ge=1, description="Runs at once across the whole installation.", examples=[5]
    )
    per_repo: int = Field(2, ge=1, description="Runs at once in one repository.", examples=[1])
    run_minutes: int = Field(
        45,
        ge=1,
        le=360,
        description="A run is stopped after this long; its work so far is pushed and the run "
        "ends `timed_out`.",
        examples=[90],
    )
    idle_minutes: int = Field(
        10,
        ge=1,
        le=360,
        description="A run whose agent prints nothing for this long is stopped.",
        examples=[20],
    )


class Budget(_Model):
    """Money limits, in US dollars, from the cost the agent reports."""

    per_run_usd: float = Field(
        5.0, ge=0, description="A run stops when it has spent this much.", examples=[2.5]
    )
    monthly_usd: float = Field(
        200.0,
        ge=0,
        description="No new runs start once the month has spent this much.",
        examples=[1000],
    )


class Tests(_Model):
    """How the repository's own tests run after the agent has worked."""

    command: str | None = Field(
        None,
        description="A shell command run in the workspace. Without one, no tests run and a run "
        "that pushed work ends `neutral`, not `success`.",
        examples=["make test"],
    )
    timeout_minutes: int = Field(
        20, ge=1, le=360, description="The test command's time limit.", examples=[30]
    )


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
# Where a custom role's prompt is when `roles.<name>.prompt` does not say.
ROLE_PROMPT_PATH = ".github/coder/{name}.md"
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

    label: str | None = Field(
        None,
        description="An issue label that starts the workflow when a writer adds it.",
        examples=["coder:docs"],
    )
    command: str | None = Field(
        None,
        description="The `/coder` verb that starts the workflow from an issue or PR comment.",
        examples=["docs"],
    )
    pull_request: tuple[str, ...] = Field(
        (),
        description="Pull-request actions that start the workflow on the pull request.",
        examples=[["opened", "ready_for_review"]],
    )


class Role(_Model):
    """A custom role: one agent session with its own prompt."""

    prompt: str | None = Field(
        None,
        description="Path, on the default branch, of the role's prompt file; none: "
        "`.github/coder/<name>.md`.",
        examples=[".github/coder/poet.md"],
    )
    description: str = Field(
        "", description="One line shown in summaries.", examples=["Writes the release notes."]
    )

    def prompt_path(self, name: str) -> str:
        """Return where the prompt of the role called `name` is on the default branch."""
        return self.prompt or ROLE_PROMPT_PATH.format(name=name)


class Workflow(_Model):
    """One agent workflow: a trigger, steps (one agent session each), and what follows."""

    on: Trigger = Field(default_factory=Trigger, description="What starts it.")
    steps: tuple[str, ...] = Field(
        ("implementer",),
        description="Roles run in order, one agent session each: built-in roles or ones defined "
        "under `roles`.",
        examples=[["architect", "implementer"]],
    )
    then: str | None = Field(
        None,
        description="The workflow to start when this one succeeds; it must accept this "
        "workflow's artifact.",
        examples=["review"],
    )
    produces: ArtifactKind = Field(
        "develop",
        description="The artifact it ends with (`research`, `design`, `develop`, `review` or "
        "`release`), which decides what `then` may hand it to.",
        examples=["research"],
    )
    model: str | None = Field(
        None,
        description="The model for this workflow's runs, before any escalation; none: the "
        "`agent.models` choice.",
        examples=["opus"],
    )
    approve_plan: bool = Field(
        default=False,
        description="Post the architect's plan and wait: `/coder approve` goes on, `/coder fix "
        "<changes>` revises the plan. The job ends while it waits, so waiting costs nothing.",
        examples=[True],
    )
    auto_split: bool = Field(
        default=False,
        description="Turn the architect's split proposal into sub-issues of the issue.",
        examples=[True],
    )
    title: str | None = Field(
        None,
        description="Title of the issue opened for a run that starts without one (a scheduled "
        "`repository_dispatch`); none: `<name>: <date>`.",
        examples=["Weekly dependency review"],
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
        "fix": Workflow(
            on=Trigger(command="fix"),
            steps=("implementer", "tester"),
            produces="develop",
        ),
        "release": Workflow(
            on=Trigger(command="release"),
            steps=("release",),
            produces="release",
            title="Release",
        ),
    }


class Loops(_Model):
    """Fix runs coder starts on its own pull requests, without a person asking."""

    ci_failure: bool = Field(
        default=True,
        description="A failing required check (any check but coder's own when "
        "`policies.required_checks` is empty) starts a fix run with the check's log tail.",
        examples=[False],
    )
    changes_requested: bool = Field(
        default=True,
        description="A review that requests changes, from someone with write access, starts a "
        "fix run with the review's threads.",
        examples=[False],
    )
    max_fix_attempts: int = Field(
        3,
        ge=0,
        le=20,
        description="Fix runs these loops start per pull request; each climbs one model tier. "
        "At the cap coder stops and says so on the pull request.",
        examples=[5],
    )


class Policies(_Model):
    """Rules checked before a pull request can merge."""

    allowed_paths: tuple[str, ...] = Field(
        ("**",), description="Globs the agent may change.", examples=[["src/**", "tests/**"]]
    )
    forbidden_paths: tuple[str, ...] = Field(
        (".github/workflows/**",),
        description="Globs the agent may never change.",
        examples=[[".github/**", "secrets/**"]],
    )
    required_checks: tuple[str, ...] = Field(
        (), description="Checks that must pass before a merge.", examples=[["test"]]
    )


class MergeQueue(_Model):
    """The merge queue."""

    enabled: bool = Field(
        default=False, description="Queue pull requests labelled `coder:merge`.", examples=[True]
    )
    batch_size: int | Literal["auto"] = Field(
        "auto",
        description="How many pull requests are tested together: a number, or `auto`.",
        examples=[4],
    )
    method: Literal["fast-forward", "merge", "squash", "rebase"] = Field(
        "fast-forward",
        description="How the tested commit lands: `fast-forward`, `merge`, `squash` or `rebase`.",
        examples=["squash"],
    )

    @field_validator("batch_size", mode="wrap")
    @classmethod
    def _one_batch_size_error(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        return _one_union_error(value, handler, "a number or 'auto'")


class CoderConfig(_Model):
    """The whole `.github/coder.yml`."""

    agent: Agent = Field(default_factory=Agent, description="The agent backend.")
    runner: Runner = Field(default_factory=Runner, description="Where jobs run.")
    limits: Limits = Field(default_factory=Limits, description="Concurrency and time limits.")
    budget: Budget = Field(default_factory=Budget, description="Money limits.")
    tests: Tests = Field(default_factory=Tests, description="The repository's tests.")
    workflows: dict[str, Workflow] = Field(
        default_factory=_default_workflows,
        description="Agent workflows by name. The built-in ones are always there; an entry named "
        "like a built-in starts from it, and other names add workflows.",
    )
    policies: Policies = Field(default_factory=Policies, description="Merge policies.")
    merge_queue: MergeQueue = Field(default_factory=MergeQueue, description="The merge queue.")
    loops: Loops = Field(default_factory=Loops, description="Automatic fix runs.")
    allow_fork_runs: bool = Field(
        default=False,
        description="Let `/coder fix` work on pull requests from forks, with a read-only token; "
        "the result is posted as a suggested patch instead of pushed. The fork's code runs beside "
        "the agent's API key.",
        examples=[True],
    )
    allowed_bots: tuple[str, ...] = Field(
        (),
        description="Bot logins whose labels and commands may start runs. Other bots are "
        "refused with a comment; people need write access, checked live every time.",
        examples=[["renovate[bot]"]],
    )
    roles: dict[str, Role] = Field(
        default_factory=dict,
        description="Custom roles by name, each with its prompt file; workflow steps may name "
        "them.",
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

    @property
    def in_repository(self) -> bool:
        """Whether the error is in the repository's own file, not in the base `_extends` names."""
        return self.path == CONFIG_PATH


@dataclass(frozen=True)
class ConfigResult:
    """A parsed config, or the errors that stop it from being used."""

    config: CoderConfig | None
    errors: tuple[ConfigError, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether the config can be used."""
        return self.config is not None


@dataclass(frozen=True)
class Extends:
    """Where `_extends` points: the repository whose `.github/coder.yml` is the base."""

    owner: str
    repo: str

    @property
    def full_name(self) -> str:
        """Return `owner/repo`."""
        return f"{self.owner}/{self.repo}"

    @property
    def path(self) -> str:
        """Return the name errors in the base file carry."""
        return base_path(self.full_name)


@dataclass(frozen=True)
class BaseConfig:
    """The base a config is merged over: the text of the file `_extends` names, or why not."""

    path: str
    text: str | None
    unreadable: str = BASE_NOT_FOUND


def base_path(full_name: str) -> str:
    """Return how errors name another repository's config: `acme/.github:.github/coder.yml`."""
    return f"{full_name}:{CONFIG_PATH}"


def org_defaults(owner: str) -> Extends:
    """Return the repository whose config holds the org's defaults: `<owner>/.github`."""
    return Extends(owner, ORG_DEFAULTS_REPO)


def extends_of(text: str | None, owner: str) -> Extends | None:
    """Return where a config's `_extends` points (the same owner unless it names one), if valid."""
    layer = _load(text, CONFIG_PATH)
    if isinstance(layer, ConfigResult) or not layer.extends_given:
        return None
    return _extends_target(layer.extends, owner)


def merge_values(earlier: Mapping[str, Any], later: Mapping[str, Any]) -> dict[str, Any]:
    """Merge config values: mappings merge key by key; lists and scalars from `later` replace."""
    merged = dict(earlier)
    for key, value in later.items():
        before = merged.get(key)
        if isinstance(before, Mapping) and isinstance(value, Mapping):
            merged[key] = merge_values(before, value)
        else:
            merged[key] = value
    return merged


def describe(config: CoderConfig) -> str:
    """Return the one-line verdict on a valid config: `valid; N workflows: a, b, ...`."""
    names = list(config.workflows)
    noun = "workflow" if len(names) == 1 else "workflows"
    return f"valid; {len(names)} {noun}: {', '.join(names)}"


def parse_config(
    text: str | None, path: str = CONFIG_PATH, *, base: BaseConfig | None = None
) -> ConfigResult:
    """Parse config text (None: no file) over its base into a model, or errors naming lines.

    Merge order: built-in defaults < `base` < this file. `base` is the file `_extends` names,
    fetched by the caller; when there is no file at all (`text` is None) it is the org's
    defaults. Without a `base`, an `_extends` line is checked but not followed.
    """
    layers: list[_Layer] = []
    if text is not None:
        own = _load(text, path)
        if isinstance(own, ConfigResult):
            return own
        if own.extends_given and _extends_target(own.extends, "") is None:
            return own.fail(EXTENDS_KEY, BAD_EXTENDS.format(value=own.extends))
        if own.extends_given and base is not None and base.text is None:
            reason = UNREADABLE_BASE.format(path=base.path, reason=base.unreadable)
            return own.fail(EXTENDS_KEY, reason)
        layers.append(own)
    # A base applies where the file asks for one, or in place of a file that does not exist.
    followed = base if text is None or (layers and layers[0].extends_given) else None
    if followed is not None and followed.text is not None:
        under = _load(followed.text, followed.path)
        if isinstance(under, ConfigResult):
            return under
        if under.extends_given:
            return under.fail(EXTENDS_KEY, ONE_LEVEL_ONLY)
        layers.insert(0, under)
    values: dict[str, Any] = {}
    for layer in layers:
        values = merge_values(values, layer.document.values)
    try:
        return ConfigResult(CoderConfig.model_validate(values))
    except ValidationError as error:
        return ConfigResult(None, tuple(_located(layers, error)))


@dataclass(frozen=True)
class _Layer:
    """One loaded file and the name its errors carry."""

    path: str
    document: Document
    extends_given: bool = False
    extends: Any = None

    def fail(self, key: str, message: str) -> ConfigResult:
        return _fail(self.path, *position(self.document.tree, (key,)), message)


def _load(text: str | None, path: str) -> _Layer | ConfigResult:
    try:
        document = load_mapping(
            text,
            max_bytes=MAX_CONFIG_BYTES,
            max_nodes=MAX_CONFIG_NODES,
            max_depth=MAX_CONFIG_DEPTH,
        )
    except YamlProblemError as problem:
        return _fail(path, problem.line, problem.column, problem.message)
    # `_extends` is about where the values come from, not one of them.
    given = EXTENDS_KEY in document.values
    extends = document.values.pop(EXTENDS_KEY, None)
    return _Layer(path, document, given, extends)


def _extends_target(value: Any, owner: str) -> Extends | None:
    if not isinstance(value, str) or not EXTENDS_VALUE.match(value):
        return None
    named_owner, _, repo = value.rpartition("/")
    if repo in {".", ".."}:
        return None
    return Extends(named_owner or owner, repo)


def _fail(path: str, line: int, column: int, message: str) -> ConfigResult:
    return ConfigResult(None, (ConfigError(path, line, column, message),))


def _located(layers: list[_Layer], error: ValidationError) -> list[ConfigError]:
    trees = [layer.document.tree for layer in layers]
    errors = []
    for problem in error.errors():
        location = _where(problem)
        layer = layers[holder(trees, location)]
        line, column = position(layer.document.tree, location)
        message = _message(problem)
        if problem["loc"]:
            message = f"{'.'.join(str(part) for part in location)}: {message}"
        errors.append(ConfigError(layer.path, line, column, message))
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
