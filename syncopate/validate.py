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
