"""Wire models shared by the manager, the node, the CLI and the TUI (the command channel's are
in command_protocol.py).

Field names are the seed's (kebab-case, plus `initial_variables` inside `project`); fields added
by Syncopate are optional, so a client written from the seed README works unchanged. Unknown
fields are ignored, so newer clients can talk to older managers.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from syncopate import constraints, literal, validate, variables

MAX_BODY_BYTES = 1024 * 1024
MAX_WAIT_SECONDS = 60.0
MAX_LOG_TAIL_LINES = 50
MAX_LOG_LINE_CHARS = 500
MAX_LOG_LINES_PER_REPORT = 1000
MAX_POLL_REPORTS = 1000  # project reports on one /node-status poll
LOG_LINES_KEPT = 1000  # per project, on the manager; the most a `logs` request can ask for
DEFAULT_LOG_LINES = 200
# The command channel.


def _kebab(name: str) -> str:
    return name.replace("_", "-")


def _parse_variables(value: Any) -> Any:
    # Forms carry dictionaries as JSON or Python-literal strings (the seed's format).
    if isinstance(value, str):
        return variables.parse(value)
    return value


def check_variables_size(value: dict[str, Any]) -> dict[str, Any]:
    variables.check_size(value)
    return value


def form_literal(value: Any) -> Any:
    """A dictionary or list sent as a string in a form: JSON first, then a Python literal.

    Text that is neither is passed on as it is (the field's type then says what is wrong);
    a value nested too deep is refused here.
    """
    if not isinstance(value, str) or not value.strip():
        return value
    try:
        return literal.parse_literal(value)
    except literal.TooDeep:
        raise
    except literal.LiteralError:
        return value


def refuse_bool(value: Any) -> Any:
    # JSON true would otherwise pass for the number 1.
    if isinstance(value, bool):
        raise ValueError("must be a whole number, not true or false")
    return value


def parse_name_list(value: Any) -> Any:
    if isinstance(value, str):
        parsed = form_literal(value)
        if isinstance(parsed, list | tuple):
            return list(parsed)
        # A single bare name in a form field.
        return [value] if value.strip() else []
    return value


Variables = Annotated[dict[str, Any], BeforeValidator(_parse_variables)]
ProjectName = Annotated[str, BeforeValidator(lambda v: validate.check_name(v, "project"))]
GitUrl = Annotated[str, BeforeValidator(validate.check_git_url)]
Megabytes = Annotated[float, Field(ge=0, le=1e12, allow_inf_nan=False)]
Count = Annotated[int, BeforeValidator(refuse_bool)]
LogLines = Annotated[list[str], BeforeValidator(form_literal)]
LogTimes = Annotated[list[float], BeforeValidator(form_literal)]
# A node's labels (DESIGN section 12): keys and values as constraints.check_labels allows.
Labels = Annotated[
    dict[str, str], BeforeValidator(form_literal), AfterValidator(constraints.check_labels)
]


class WireModel(BaseModel):
    """Base of the request models: kebab-case aliases, unknown fields ignored."""

    model_config = ConfigDict(
        alias_generator=_kebab, populate_by_name=True, extra="ignore", str_max_length=65536
    )


class InitializeRequest(WireModel):
    preferred_name: str = Field(default="", max_length=256)
    syncopate_password: str = Field(max_length=1024)
    storage: Megabytes = 0.0
    ram: Megabytes = 0.0
    labels: Labels = Field(default_factory=dict)
    agent_version: str | None = Field(default=None, max_length=64)
    # "lite": a device too small for the agent, taking part through /hw_supervisor only; it is
    # never given projects.
    kind: Literal["agent", "lite"] = "agent"


class NodeAuth(WireModel):
    name: str = Field(max_length=256)
    access_token: str = Field(max_length=256)


def _number_not_bool(value: Any) -> Any:
    # JSON true would otherwise pass for the number 1.
    if isinstance(value, bool):
        raise ValueError("must be a number, not true or false")
    return value


# A node's metrics: finite numbers in a range (not true or false), or None: not known. The
# bounds go on the number inside the optional (on the optional, a null would reach them).
_NOT_BOOL = BeforeValidator(_number_not_bool)
Percent = Annotated[Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)] | None, _NOT_BOOL]
Load = Annotated[Annotated[float, Field(ge=0, le=1e6, allow_inf_nan=False)] | None, _NOT_BOOL]
Celsius = Annotated[
    Annotated[float, Field(ge=-273.15, le=1000, allow_inf_nan=False)] | None, _NOT_BOOL
]
Seconds = Annotated[Annotated[float, Field(ge=0, le=1e10, allow_inf_nan=False)] | None, _NOT_BOOL]


class NodeMetrics(WireModel):
    """What a node measures of itself at each poll (DESIGN §3); the manager keeps the latest
    in memory only (they change at every poll)."""

    cpu: Percent = None  # of all cores together, since the node's previous poll
    load: Load = None  # the one-minute load average
    temperature: Celsius = None  # the hottest sensor; None on a machine without one
    uptime: Seconds = None  # since the node booted


class StatusRequest(NodeAuth):
    wait: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    # A form carries it as a JSON or Python-literal string; the seed's client sends none.
    metrics: Annotated[NodeMetrics, BeforeValidator(form_literal)] | None = None
    # Reports on the node's projects, riding on the poll (issue 18): each a ProjectReport's
    # fields. Checked one by one when applied (manager/routes/nodes.py), so one bad report is
    # refused alone (in the answer's `refused`) instead of failing the node's poll.
    reports: Annotated[list[dict[str, Any]], BeforeValidator(form_literal)] | None = Field(
        default=None, max_length=MAX_POLL_REPORTS
    )


class ProjectReport(WireModel):
    """What a node says of one of its projects: /node-update's fields besides the node's name
    and token, and one item of a /node-status poll's `reports`."""

    project_name: str = Field(max_length=256)
    project_url: str = Field(max_length=validate.MAX_URL_LENGTH)
    status: str = Field(max_length=64)
    disk_usage: Megabytes = 0.0
    ram_usage: Megabytes = 0.0
    persistent_variables: Variables | None = None
    epoch: int | None = Field(default=None, ge=0)
    commit: str | None = Field(default=None, max_length=64)
    pid: int | None = Field(default=None, ge=0)
    restarts: int | None = Field(default=None, ge=0)
    exit_code: int | None = None
    log_tail: LogLines | None = Field(default=None, max_length=10_000)
    # New output since the last acknowledged report: lines `log_seq`, `log_seq + 1`, ... of the
    # node's stream `log_stream` (its numbering starts again with each new stream).
    log_stream: str | None = Field(default=None, min_length=1, max_length=64)
    log_seq: Count | None = Field(default=None, ge=0)
    log_lines: LogLines | None = Field(default=None, max_length=MAX_LOG_LINES_PER_REPORT)
    # When the node took each of `log_lines` (seconds since the epoch, one per line); an older
    # node sends none, and the manager uses the time it received them (logbook.stamp).
    log_times: LogTimes | None = Field(default=None, max_length=MAX_LOG_LINES_PER_REPORT)
    reason: str | None = Field(default=None, max_length=2000)
    # The rollout (DESIGN section 12): the last commit that ran well for its grace, and the one
    # rolled back from (not run again until a newer one or `rollout --retry`) with why.
    good_commit: str | None = Field(default=None, max_length=64)
    bad_commit: str | None = Field(default=None, max_length=64)
    bad_reason: str | None = Field(default=None, max_length=2000)
    # What the seed's own node client sends instead of ram-usage and disk-usage (DESIGN §10).
    project_ram: Megabytes | None = None
    project_storage: Megabytes | None = None  # in KB

    @field_validator("persistent_variables")
    @classmethod
    def _size(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else check_variables_size(value)

    @field_validator("log_tail")
    @classmethod
    def _bound_tail(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        return [line[:MAX_LOG_LINE_CHARS] for line in value[-MAX_LOG_TAIL_LINES:]]

    @field_validator("log_lines")
    @classmethod
    def _bound_lines(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        # A NUL a project printed is shown as U+FFFD: PostgreSQL's text cannot hold NUL, and
        # both stores keep the same line.
        return [line[:MAX_LOG_LINE_CHARS].replace("\x00", "\ufffd") for line in value]

    @model_validator(mode="after")
    def _seed_usage(self) -> ProjectReport:
        """The seed's node client reports usage as `project-ram` (MB), `project-storage` (KB)."""
        if self.project_ram is not None and "ram_usage" not in self.model_fields_set:
            self.ram_usage = self.project_ram
        if self.project_storage is not None and "disk_usage" not in self.model_fields_set:
            self.disk_usage = self.project_storage / 1024
        return self

    @model_validator(mode="after")
    def _log_fields_together(self) -> ProjectReport:
        given = [self.log_stream is not None, self.log_seq is not None, self.log_lines is not None]
        if any(given) and not all(given):
            raise ValueError("log-stream, log-seq and log-lines must be sent together")
        return self


class UpdateRequest(ProjectReport, NodeAuth):
    """A /node-update: one project's report, with the node's name and token."""


class LeaveRequest(NodeAuth):
    pass


Action = Literal[
    "add",
    "set",
    "set-variables",
    "remove",
    "start",
    "stop",
    "restart",
    "reset",
    "status",
    "nodes",
    "node-drain",
    "node-undrain",
    "node-forget",
    "node-label",
    "logs",
    "rollout",
    "command-send",
    "command-list",
    "command-show",
    "command-analyze",
    "command-cancel",
    "tokens",
    "token-make",
    "token-revoke",
]
ACTIONS: tuple[str, ...] = get_args(Action)


class ControllerRequest(WireModel):
    access_token: str | None = Field(default=None, max_length=256)
    action: str = Field(max_length=64)
    projects: Annotated[list[str], BeforeValidator(parse_name_list)] = Field(
        default_factory=list, max_length=100_000
    )
    project: Annotated[dict[str, Any], BeforeValidator(form_literal)] | None = None
    node: str | None = Field(default=None, max_length=256)
    lines: Count | None = Field(default=None, ge=1, le=LOG_LINES_KEPT)

    @field_validator("projects")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            # PROJECT@NODE: one copy of an every-node project (manager/every_node.py).
            validate.check_project_ref(name)
        return value


class NodeLabel(WireModel):
    """`node-label`'s fields besides `node`: labels to set (or change) and keys to remove."""

    labels: Labels = Field(default_factory=dict)
    remove: Annotated[
        list[str],
        BeforeValidator(parse_name_list),
        AfterValidator(lambda keys: [constraints.check_label_key(k) for k in keys]),
    ] = Field(default_factory=list, max_length=constraints.MAX_LABELS)

    @model_validator(mode="after")
    def _something(self) -> NodeLabel:
        if not self.labels and not self.remove:
            raise ValueError("node-label needs `labels` to set or `remove` (keys), or both")
        return self


class TokenRef(WireModel):
    """`token-revoke`'s field: whose controller token (its name)."""

    name: Annotated[str, AfterValidator(lambda n: validate.check_name(n, "token"))]


class TokenMake(TokenRef):
    """`token-make`'s fields: a person's name and the role of their new token."""

    # None: the role of the token it replaces, else operator.
    role: Literal["viewer", "operator", "admin"] | None = None


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming each bad field and what is wrong with it, for a 400 answer."""
    parts = []
    for error in exc.errors(include_url=False)[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "body"
        message = error["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        if error["type"] == "missing":
            message = "is required"
        parts.append(f"{where}: {message}")
    more = len(exc.errors()) - 5
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)
