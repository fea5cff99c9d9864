"""Controller roles (DESIGN §15): viewer < operator < admin, and the role each action needs.

A viewer reads; an operator also acts on projects and commands; an admin also manages nodes
and tokens. Shared by the manager (which enforces it), the CLI and the wire models (which name
the roles); it imports nothing of either.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """A controller token's role; each allows what the ones below it allow."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return ROLE_NAMES.index(self.value)

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


ROLE_NAMES: tuple[str, ...] = ("viewer", "operator", "admin")
DEFAULT_ROLE = Role.OPERATOR  # of a person's token made without --role

# Every action of protocol.ACTIONS, in its order, and the role it needs (a unit test holds the
# keys equal to ACTIONS). `rollout` reads; `rollout --retry` needs the operator role (its handler).
ACTION_ROLES: dict[str, Role] = {
    "add": Role.OPERATOR,
    "set": Role.OPERATOR,
    "set-variables": Role.OPERATOR,
    "remove": Role.OPERATOR,
    "start": Role.OPERATOR,
    "stop": Role.OPERATOR,
    "restart": Role.OPERATOR,
    "reset": Role.OPERATOR,
    "status": Role.VIEWER,
    "nodes": Role.VIEWER,
    "node-drain": Role.ADMIN,
    "node-undrain": Role.ADMIN,
    "node-forget": Role.ADMIN,
    "node-label": Role.ADMIN,
    "logs": Role.VIEWER,
    "rollout": Role.VIEWER,
    "command-send": Role.OPERATOR,
    "command-list": Role.VIEWER,
    "command-show": Role.VIEWER,
    "command-analyze": Role.OPERATOR,
    "command-cancel": Role.OPERATOR,
    "tokens": Role.ADMIN,
    "token-make": Role.ADMIN,
    "token-revoke": Role.ADMIN,
}

# /hw_supervisor operations on a controller's side: reading a device's status is a viewer's,
# asking it to run a program or analysing its answer an operator's.
HW_ROLES: dict[str, Role] = {
    "status_query": Role.VIEWER,
    "hw_command_request": Role.OPERATOR,
    "server_analysis_provide": Role.OPERATOR,
}
