"""The one shape of every `--json` output (README, "Commands": `--json`).

- Keys are kebab-case at every depth. The manager's wire answers stay as they are (the seed's
  clients read them); this is where the CLI shapes them: `initial_variables` becomes
  `initial-variables`. Keys that are the user's own (variable, env, secret and label names)
  are kept exactly as given.
- One thing (`show`, `add`, an action on one NAME or ID) is one object, `name` (or a command's
  `id`) first; several things (`list`, an action on NAME ... or `--all`) are an array of such
  objects, even for one. Actions add `result`: the line the command prints without `--json`.
- A few wire names read wrong beside their neighbours (issue 16); RENAMES maps them, per kind
  of object, and README's `--json` section lists the same table.
- A failure is `{"error": "...", "code": N}` on standard output (and the usual `error: ...` line
  on standard error); the exit status is non-zero.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any

# Objects whose keys are the user's (names of variables, environment variables, secrets, labels):
# kept as they are, however they are spelt.
USER_KEYED = frozenset(
    {
        "persistent-variables",
        "initial-variables",
        "variables",
        "env",
        "environment-variables",
        "secrets",
        "labels",
    }
)


# The wire's names that --json shows otherwise, per kind of object: wire name -> CLI name, None
# to leave it out. A project's `ram` is what it needs but a node's is what it has; `restart`
# counts the restarts asked of its node (beside `restarts`, how often it restarted);
# `project-name` repeats `name`; a node's `storage` is the total beside `disk-usage`.
RENAMES: dict[str, dict[str, str | None]] = {
    "project": {
        "project-name": None,
        "restart": "restart-requests",
        "ram": "ram-needed",
        "disk": "disk-needed",
    },
    "node": {"ram": "ram-total", "storage": "disk-total"},
}


def renamed(info: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """`info` (a wire answer for one `kind` of object) with RENAMES[kind] applied, in order."""
    names = RENAMES[kind]
    shaped: dict[str, Any] = {}
    for key, value in info.items():
        name = names.get(key, key)
        if name is not None:
            shaped[name] = value
    return shaped


def kebab(data: Any) -> Any:
    """`data` with every key kebab-case (`_` -> `-`), except inside the USER_KEYED objects."""
    if isinstance(data, Mapping):
        shaped: dict[str, Any] = {}
        for key, value in data.items():
            name = str(key).replace("_", "-")
            shaped[name] = value if name in USER_KEYED else kebab(value)
        return shaped
    if isinstance(data, list | tuple):
        return [kebab(item) for item in data]
    return data


def named(
    name: str, info: Mapping[str, Any], kind: str = "project", **extra: Any
) -> dict[str, Any]:
    """One project or node (`kind`) as --json shows it: `name` first, its fields (RENAMES
    applied), then `extra` (`result`).

    An every-node project's `copies` (node -> copy on the wire) become an array of objects with
    `node` first, as every listing is an array.
    """
    shaped = {"name": name, **renamed(info, kind), **extra}
    copies = info.get("copies")
    if isinstance(copies, Mapping):
        shaped["copies"] = [{"node": node, **copies[node]} for node in sorted(copies)]
    return shaped


def named_list(
    answer: Mapping[str, Mapping[str, Any]], kind: str = "project", **extra: Any
) -> list[dict[str, Any]]:
    """An answer of name -> fields (`projects`, `nodes`) as an array of `named` objects, by name."""
    return [named(name, answer[name], kind, **extra) for name in sorted(answer)]


def print_json(data: Any) -> None:
    """Print `data` in the one --json shape (kebab-case keys), indented, on standard output."""
    sys.stdout.write(json.dumps(kebab(data), indent=2) + "\n")


def print_json_line(data: Any) -> None:
    """One compact JSON object on a line of its own (`logs --follow --json`: JSON Lines)."""
    sys.stdout.write(json.dumps(kebab(data)) + "\n")
    sys.stdout.flush()


def print_error(message: str, code: int) -> None:
    """A failure under --json: `{"error": message, "code": code}` on standard output, which a
    script reads, and the usual `error: ...` line on standard error, which a person reads."""
    print_json({"error": message, "code": code})
    sys.stderr.write(f"error: {message}\n")


def wants_json(argv: list[str]) -> bool:
    """Whether the command line asks for --json (before a `--`, which ends the options)."""
    options = argv[: argv.index("--")] if "--" in argv else argv
    return "--json" in options
