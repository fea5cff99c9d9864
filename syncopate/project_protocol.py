"""The controller's project requests: add, set, set-variables and remove (DESIGN sections 3,
11 and 12). Field names are kebab-case on the wire, as in protocol.py, whose base model and
field types they share.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AliasChoices,
    BeforeValidator,
    Field,
    field_validator,
    model_validator,
)

from syncopate import constraints, validate
from syncopate.protocol import (
    GitUrl,
    Megabytes,
    ProjectName,
    Variables,
    WireModel,
    check_variables_size,
    form_literal,
    parse_name_list,
    refuse_bool,
)

# A project's environment variables (DESIGN section 11): checked in validate.check_env.
Env = Annotated[dict[str, str], BeforeValidator(form_literal), AfterValidator(validate.check_env)]
EnvNames = Annotated[
    list[str], BeforeValidator(parse_name_list), AfterValidator(validate.check_env_names)
]
# `--on` (DESIGN section 12): K=V, K!=V or K, stored as constraints.normalize writes them.
Constraints = Annotated[
    list[str], BeforeValidator(parse_name_list), AfterValidator(constraints.normalize)
]
Seconds = Annotated[float, Field(gt=0, le=86400, allow_inf_nan=False)]
GraceSeconds = Annotated[float, Field(ge=0, le=86400, allow_inf_nan=False)]
Retries = Annotated[int, BeforeValidator(refuse_bool), Field(ge=1, le=100)]


class AddProject(WireModel):
    name: ProjectName
    url: GitUrl
    initial_variables: Variables = Field(
        default_factory=dict,
        validation_alias=AliasChoices("initial_variables", "initial-variables"),
    )
    command: str | None = Field(default=None, max_length=4096)
    ref: str | None = Field(default=None, max_length=256)
    ram: Megabytes = 0.0
    disk: Megabytes = 0.0
    exclusive: bool = False
    start: bool = True
    env: Env = Field(default_factory=dict)
    secrets: Env = Field(default_factory=dict)  # like env, write-only (DESIGN section 11)
    # DESIGN section 12: where it may run, health, rollout and memory.
    on: Constraints = Field(default_factory=list)
    every_node: bool = False
    stay: bool = False
    health_cmd: str | None = Field(default=None, max_length=4096)
    health_http: str | None = Field(default=None, max_length=validate.MAX_URL_LENGTH)
    health_interval: Seconds = 10.0
    health_timeout: Seconds = 5.0
    health_retries: Retries = 3
    grace: GraceSeconds = 60.0
    max_ram: Megabytes = 0.0

    @model_validator(mode="after")
    def _env_or_secret(self) -> AddProject:
        _check_env_and_secrets(self.env, self.secrets)
        return self

    @field_validator("health_cmd")
    @classmethod
    def _health_cmd(cls, value: str | None) -> str | None:
        return _check_command(value) or None

    @field_validator("health_http")
    @classmethod
    def _health_http(cls, value: str | None) -> str | None:
        return _check_health_url(value) or None

    @field_validator("initial_variables")
    @classmethod
    def _size(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_variables_size(value)

    @field_validator("ref")
    @classmethod
    def _ref(cls, value: str | None) -> str | None:
        return _check_ref(value) or None

    @field_validator("command")
    @classmethod
    def _command(cls, value: str | None) -> str | None:
        return _check_command(value) or None


def _check_env_and_secrets(env: dict[str, str], secrets: dict[str, str]) -> None:
    """A name may be an environment variable or a secret, not both."""
    both = sorted(set(env) & set(secrets))
    if both:
        raise ValueError(f"{', '.join(both)}: a name may be env or a secret, not both")
    validate.check_env({**env, **secrets})  # their sum goes to the process


def _check_ref(value: str | None) -> str | None:
    if value is not None and (value.startswith("-") or any(c.isspace() for c in value)):
        raise ValueError("ref may not start with '-' or contain whitespace")
    return value


def _check_health_url(value: str | None) -> str | None:
    """An http:// or https:// URL the node asks (empty: no HTTP check)."""
    if value and not (value.startswith(("http://", "https://"))):
        raise ValueError("health-http must be an http:// or https:// URL")
    if value and any(c.isspace() for c in value):
        raise ValueError("health-http may not contain whitespace")
    return value


def _check_command(value: str | None) -> str | None:
    if value is not None and "\x00" in value:
        raise ValueError("command may not contain NUL")
    return value


class SetProject(WireModel):
    """`set`: change a project in place (DESIGN section 11). A field left out stays as it is;
    `command` or `ref` given empty go back to the default (the repository's run command, the
    remote's default branch); `env` adds or replaces variables, `unset-env` removes them;
    `secrets` and `unset-secrets` do the same for the write-only secrets."""

    name: ProjectName
    url: GitUrl | None = None
    command: str | None = Field(default=None, max_length=4096)
    ref: str | None = Field(default=None, max_length=256)
    ram: Megabytes | None = None
    disk: Megabytes | None = None
    exclusive: bool | None = None
    env: Env = Field(default_factory=dict)
    unset_env: EnvNames = Field(
        default_factory=list, validation_alias=AliasChoices("unset-env", "unset_env")
    )
    secrets: Env = Field(default_factory=dict)
    unset_secrets: EnvNames = Field(
        default_factory=list, validation_alias=AliasChoices("unset-secrets", "unset_secrets")
    )
    # DESIGN section 12; `on` given empty removes every constraint, `health-cmd` or
    # `health-http` given empty removes that check. `every-node` cannot change in place.
    on: Constraints | None = None
    every_node: bool | None = None
    stay: bool | None = None
    health_cmd: str | None = Field(default=None, max_length=4096)
    health_http: str | None = Field(default=None, max_length=validate.MAX_URL_LENGTH)
    health_interval: Seconds | None = None
    health_timeout: Seconds | None = None
    health_retries: Retries | None = None
    grace: GraceSeconds | None = None
    max_ram: Megabytes | None = None

    @field_validator("health_cmd")
    @classmethod
    def _health_cmd(cls, value: str | None) -> str | None:
        return _check_command(value)

    @field_validator("health_http")
    @classmethod
    def _health_http(cls, value: str | None) -> str | None:
        return _check_health_url(value)

    @field_validator("ref")
    @classmethod
    def _ref(cls, value: str | None) -> str | None:
        return _check_ref(value)

    @field_validator("command")
    @classmethod
    def _command(cls, value: str | None) -> str | None:
        return _check_command(value)

    @model_validator(mode="after")
    def _not_both(self) -> SetProject:
        both = sorted(set(self.env) & set(self.unset_env))
        if both:
            raise ValueError(f"env and unset-env both name {', '.join(both)}")
        both = sorted(set(self.secrets) & set(self.unset_secrets))
        if both:
            raise ValueError(f"secrets and unset-secrets both name {', '.join(both)}")
        _check_env_and_secrets(self.env, self.secrets)
        return self


class SetVariables(WireModel):
    """`set-variables`: write persistent variables into the named projects (or `all`); each
    starts again under a new epoch with them (DESIGN section 11)."""

    variables: Variables = Field(min_length=1)
    all: bool = False

    @field_validator("variables")
    @classmethod
    def _size(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_variables_size(value)


class Rollout(WireModel):
    """`rollout`: show one project's rollout, or (`retry`) let its node try the bad commit it
    rolled back from again (DESIGN section 12)."""

    retry: bool = False


class RemoveProject(WireModel):
    name: ProjectName
    url: str = Field(max_length=validate.MAX_URL_LENGTH)
