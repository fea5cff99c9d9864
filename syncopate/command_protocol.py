"""Wire models of the command channel: programs sent to nodes (`command-*` actions,
/node-command-result) and the hardware_synchronizer seed's /hw_supervisor requests."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, ConfigDict, Field, field_validator, model_validator

from syncopate import validate
from syncopate.protocol import Count, NodeAuth, WireModel, parse_name_list, refuse_bool

MAX_CODE_CHARS = 64 * 1024
MAX_RESPONSE_CHARS = 128 * 1024  # the agent keeps 64 KiB of output; room for a marker and more
MAX_ANALYSIS_CHARS = 64 * 1024
DEFAULT_COMMAND_TIMEOUT = 30.0  # seconds a program may run
MAX_COMMAND_TIMEOUT = 24 * 3600.0
DEFAULT_PICKUP = 60.0  # seconds a command may wait for its node to collect it
MAX_PICKUP = 7 * 24 * 3600.0
COMMAND_PAGE = 50  # commands per `command-list` page unless asked
MAX_COMMAND_PAGE = 1000

Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
CommandId = Annotated[int, BeforeValidator(refuse_bool), Field(ge=1, le=2**62)]


class CommandSend(WireModel):
    """`command-send`: a program for one node, several, or every live agent node (`all`)."""

    nodes: Annotated[list[str], BeforeValidator(parse_name_list)] = Field(
        default_factory=list, max_length=10_000
    )
    all: bool = False
    code: str = Field(min_length=1, max_length=MAX_CODE_CHARS)
    interpreter: Literal["python", "sh"] = "python"
    timeout: Seconds = Field(default=DEFAULT_COMMAND_TIMEOUT, le=MAX_COMMAND_TIMEOUT)
    pickup: Seconds = Field(default=DEFAULT_PICKUP, le=MAX_PICKUP)

    @field_validator("nodes")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            validate.check_name(name, "node")
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _targets(self) -> CommandSend:
        if self.all and self.nodes:
            raise ValueError("give `nodes` or `all`, not both")
        if not self.all and not self.nodes:
            raise ValueError("say where to run it: `nodes` (a list of node names) or `all: true`")
        return self


class CommandQuery(WireModel):
    """`command-list`: newest first, `limit` per page; `before` an id to page back from."""

    node: str | None = Field(default=None, max_length=256)
    state: str | None = Field(default=None, max_length=32)
    user: str | None = Field(default=None, max_length=256)
    limit: Count = Field(default=COMMAND_PAGE, ge=1, le=MAX_COMMAND_PAGE)
    before: CommandId | None = None


class CommandRef(WireModel):
    """`command-show`, `command-cancel`: one command by its id."""

    id: CommandId


class CommandAnalyze(CommandRef):
    analysis: str = Field(max_length=MAX_ANALYSIS_CHARS)


class CommandResultRequest(NodeAuth):
    """POST /node-command-result: a node's response to a command it collected."""

    id: CommandId
    response: str = Field(max_length=MAX_RESPONSE_CHARS)
    exit_code: int | None = Field(default=None, ge=-(2**31), le=2**31)
    duration: float | None = Field(default=None, ge=0, le=1e9, allow_inf_nan=False)


class HwCredentials(WireModel):
    """Who asks on /hw_supervisor: a device's name, and its token or a controller token."""

    model_config = ConfigDict(alias_generator=None, extra="ignore", str_max_length=MAX_CODE_CHARS)

    user: str = Field(max_length=256)
    pword: str = Field(max_length=256)


class HwRequest(HwCredentials):
    """The hardware_synchronizer seed's request: query parameters or a form (snake_case keys)."""

    command: Literal[
        "status_query",
        "hw_command_request",
        "hw_command_retrieval",
        "hw_response_provide",
        "server_analysis_provide",
    ]
    hw_comm: str | None = Field(default=None, max_length=MAX_CODE_CHARS)
    hw_resp: str | None = Field(default=None, max_length=MAX_RESPONSE_CHARS)
    server_anal: str | None = Field(default=None, max_length=MAX_ANALYSIS_CHARS)
