"""Checks on names and git URLs, shared by the manager (at the door) and the node (before git)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
_NAME_RE = re.compile(NAME_PATTERN)
RESERVED_NODE_NAMES = frozenset({"-1"})
MAX_URL_LENGTH = 2048

_URL_SCHEMES = frozenset({"https", "http", "ssh", "git", "file"})
# user@host:path (scp-like); the host part may not contain a slash or a colon.
_SCP_RE = re.compile(r"^(?:[A-Za-z0-9._~-]+@)?[A-Za-z0-9.-]+:(?!//)[^\s]+$")


def check_name(name: str, what: str = "project") -> str:
    """Return `name` when it is a valid project or node name; raise ValueError otherwise."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or name in (".", ".."):
        raise ValueError(
            f"{what} name {name!r} is not valid: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_project_ref(name: str) -> str:
    """Return `name` when it names a project, or one copy of an every-node project as
    `PROJECT@NODE`; raise ValueError otherwise."""
    if isinstance(name, str) and "@" in name:
        project, _, node = name.partition("@")
        try:
            check_name(project, "project")
            check_name(node, "node")
        except ValueError as exc:
            raise ValueError(f"{name!r}: {exc} (PROJECT@NODE names one copy)") from None
        return name
    return check_name(name, "project")


ENV_NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_]{0,127}"
_ENV_NAME_RE = re.compile(ENV_NAME_PATTERN)
# The agent sets these for every project; a project's env may not hide them.
RESERVED_ENV_PREFIX = "SYNCOPATE_"
MAX_ENV_ENTRIES = 256
MAX_ENV_VALUE = 8192
MAX_ENV_BYTES = 64 * 1024


def check_env_name(name: str) -> str:
    """Return `name` when it may name a project's environment variable; ValueError otherwise."""
    if not isinstance(name, str) or not _ENV_NAME_RE.fullmatch(name):
        raise ValueError(
            f"environment variable name {name!r} is not valid: use 1-128 letters, digits or "
            "'_', not starting with a digit"
        )
    if name.upper().startswith(RESERVED_ENV_PREFIX):
        raise ValueError(
            f"environment variable {name!r} is reserved: the agent sets the "
            f"{RESERVED_ENV_PREFIX}* variables itself"
        )
    return name


def check_env_names(names: list[str]) -> list[str]:
    for name in names:
        check_env_name(name)
    return list(dict.fromkeys(names))


def check_env(env: dict[str, str]) -> dict[str, str]:
    """Return `env` when it may be a project's environment; raise ValueError with the reason.

    Names are shell-safe identifiers outside SYNCOPATE_*; values strings without NUL (the OS
    cannot pass one); sizes bounded so a node's /node-status answer stays small.
    """
    if len(env) > MAX_ENV_ENTRIES:
        raise ValueError(f"at most {MAX_ENV_ENTRIES} environment variables")
    total = 0
    for name, value in env.items():
        check_env_name(name)
        if "\x00" in value:
            raise ValueError(f"environment variable {name!r}: value may not contain NUL")
        if len(value) > MAX_ENV_VALUE:
            raise ValueError(
                f"environment variable {name!r}: value longer than {MAX_ENV_VALUE} characters"
            )
        total += len(name) + len(value.encode())
    if total > MAX_ENV_BYTES:
        raise ValueError(f"environment variables larger than {MAX_ENV_BYTES // 1024} KiB in all")
    return env


def check_git_url(url: str) -> str:
    """Return `url` when git may fetch it safely; raise ValueError with the reason otherwise.

    Allowed: https, http, ssh, git and file URLs, scp-like user@host:path, absolute paths.
    Refused: the ext:: transport (it runs commands), any other transport:: form, anything that
    starts with '-' (git would read it as an option), whitespace and control characters.
    """
    if not isinstance(url, str) or not url:
        raise ValueError("git URL is empty")
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"git URL is longer than {MAX_URL_LENGTH} characters")
    if url.startswith("-"):
        raise ValueError("git URL may not start with '-' (git would read it as an option)")
    if "::" in url.split("/", 1)[0] or url.lower().startswith("ext:"):
        raise ValueError(
            "git URL uses a transport helper ('<transport>::'); ext:: and others are refused"
        )
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise ValueError("git URL may not contain whitespace or control characters")
    if url.startswith("/"):
        return url
    if "://" in url:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _URL_SCHEMES:
            raise ValueError(
                f"git URL scheme {scheme!r} is not allowed; use https, http, ssh, git or file"
            )
        if scheme != "file" and not parts.hostname:
            raise ValueError(f"git URL {url!r} has no host")
        if scheme == "file" and (parts.netloc not in ("", "localhost") or not parts.path):
            raise ValueError("file:// URL needs an absolute path")
        return url
    if _SCP_RE.match(url):
        return url
    raise ValueError(
        f"git URL {url!r} is not one of: https://, http://, ssh://, git://, file://, "
        "user@host:path or an absolute path"
    )
