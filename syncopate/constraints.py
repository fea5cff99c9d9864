"""Node labels and project constraints (`--on`, DESIGN section 12): parsing and matching.

A constraint is `K=V` (the node has label K with value V), `K!=V` (it has no label K with
value V, which a node without K meets) or `K` (it has label K, whatever its value). A project
may run only on a node that meets all of its constraints. Pure and stdlib only: the manager's
scheduler, the CLI and the TUI all use it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

LABEL_KEY_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._/-]{0,62}"
LABEL_VALUE_PATTERN = r"[A-Za-z0-9._/:-]{0,128}"
_KEY_RE = re.compile(LABEL_KEY_PATTERN)
_VALUE_RE = re.compile(LABEL_VALUE_PATTERN)
MAX_LABELS = 64
MAX_CONSTRAINTS = 32


@dataclass(frozen=True, slots=True)
class Constraint:
    """One condition on a node's labels."""

    key: str
    op: str  # "=", "!=" or "has"
    value: str = ""

    def met_by(self, labels: Mapping[str, str]) -> bool:
        """Whether a node with `labels` meets this constraint."""
        if self.op == "has":
            return self.key in labels
        if self.op == "=":
            return labels.get(self.key) == self.value
        return labels.get(self.key) != self.value

    def __str__(self) -> str:
        return self.key if self.op == "has" else f"{self.key}{self.op}{self.value}"


def check_label_key(key: str) -> str:
    """Return `key` when it may be a label's key; raise ValueError with the rule otherwise."""
    if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
        raise ValueError(
            f"label key {key!r} is not valid: use 1-63 letters, digits, '.', '_', '/' or '-', "
            "starting with a letter or digit"
        )
    return key


def check_label_value(key: str, value: str) -> str:
    """Return `value` when it may be label `key`'s value; raise ValueError otherwise."""
    if not isinstance(value, str) or not _VALUE_RE.fullmatch(value):
        raise ValueError(
            f"label {key}: value {value!r} is not valid: use up to 128 letters, digits, "
            "'.', '_', '/', ':' or '-'"
        )
    return value


def check_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """Return `labels` as a dict when every key and value is valid; ValueError otherwise."""
    if len(labels) > MAX_LABELS:
        raise ValueError(f"a node has at most {MAX_LABELS} labels, not {len(labels)}")
    for key, value in labels.items():
        check_label_key(key)
        check_label_value(key, value)
    return dict(labels)


def label_text(labels: Mapping[str, str], separator: str = ", ") -> str:
    """Labels as people write them: `K=V`, or `K` for a label with no value."""
    return separator.join(k if v == "" else f"{k}={v}" for k, v in sorted(labels.items()))


def parse(text: str) -> Constraint:
    """`K=V`, `K!=V` or `K` as a Constraint; ValueError says what is wrong."""
    if not isinstance(text, str):
        raise ValueError(f"constraint {text!r} is not text")
    text = text.strip()
    if "!=" in text:
        key, _, value = text.partition("!=")
        op = "!="
    elif "=" in text:
        key, _, value = text.partition("=")
        op = "="
    else:
        key, value, op = text, "", "has"
    try:
        check_label_key(key.strip())
        check_label_value(key.strip(), value.strip())
    except ValueError as exc:
        raise ValueError(f"constraint {text!r}: {exc}; write K=V, K!=V or K") from None
    return Constraint(key.strip(), op, value.strip())


def parse_all(texts: Iterable[str]) -> list[Constraint]:
    """Every constraint of a project, parsed; ValueError names the first bad one."""
    items = list(texts)
    if len(items) > MAX_CONSTRAINTS:
        raise ValueError(f"a project has at most {MAX_CONSTRAINTS} constraints, not {len(items)}")
    return [parse(item) for item in items]


def normalize(texts: Iterable[str]) -> list[str]:
    """Constraints as the manager stores them: parsed, written back, duplicates dropped."""
    return list(dict.fromkeys(str(c) for c in parse_all(texts)))


def unmet(constraints: Iterable[Constraint], labels: Mapping[str, str]) -> list[Constraint]:
    """The constraints a node with `labels` does not meet (empty: it may run the project)."""
    return [c for c in constraints if not c.met_by(labels)]


def matches(constraints: Iterable[Constraint], labels: Mapping[str, str]) -> bool:
    """Whether a node with `labels` meets every constraint."""
    return all(c.met_by(labels) for c in constraints)
