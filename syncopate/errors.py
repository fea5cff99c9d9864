"""One error tree for Syncopate; every error carries a message a person can act on.

SyncopateError
├── RequestError            the manager refused a request (carries the HTTP status)
│   ├── InvalidRequest      400  malformed or invalid input
│   ├── Unauthorized        401  wrong password or token
│   │   └── TokenRefused         the controller token, refused by /controller
│   ├── Forbidden           403  not yours
│   ├── NotFound            404  no such project, node or command
│   ├── NotAllowed          405  a method the route does not take (GET that would change state)
│   ├── Conflict            409  not valid in the current state
│   ├── TooLarge            413  body or variables over the limit
│   ├── TooManyAttempts     429  repeated wrong passwords or tokens: this address waits
│   └── Unavailable         503  the manager cannot do it now (also a ConnectionFailed: retry)
│       └── StoreFailed          its database refused a write; nothing changed
├── ConnectionFailed        the manager could not be reached (or its certificate is wrong)
│   └── Unreachable              no connection at all: nothing answered at the URL
│       └── HungUp                   connected, but it closed before an answer
├── ProtocolError           the manager answered something that is not the protocol
└── ConfigError             local configuration is missing or unreadable
"""

from __future__ import annotations

from typing import Any, ClassVar

# The seed's numeric answer codes (DESIGN §10): every answer of the seed routes carries one.
OK = 0
JOIN_REFUSED = 1  # /node-initialize refused: wrong password, no name left
UNKNOWN_NODE = 100  # the seed client joins again
WRONG_TOKEN = 101
NOT_THIS_NODES = 102  # the project is not assigned to this node
URL_MISMATCH = 103  # the project URL does not match
# Our agent, CLI and TUI send this header (value: the version) on every request; a request on a
# node route without it is the seed dialect, whose errors come as HTTP 200 plus `code`.
AGENT_HEADER = "Syncopate-Agent"
# On an answer a standby forwarded (DESIGN §13): the leader's URL. A client given that URL among
# its managers uses it from then on, so its requests cost one hop, not two.
LEADER_HEADER = "Syncopate-Leader"


class SyncopateError(Exception):
    """Base of every error Syncopate raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class RequestError(SyncopateError):
    """The manager refused a request; `status` is the HTTP status it maps to.

    `details` are extra fields for the answer's body (such as a command's current `state`).
    """

    status: ClassVar[int] = 400

    def __init__(self, message: str, *, code: int | None = None, **details: Any) -> None:
        super().__init__(message)
        self.details: dict[str, Any] = details
        # The seed's numeric `code` for the answer (DESIGN §10); None: the route's default.
        self.code = code


class InvalidRequest(RequestError):
    status = 400


class Unauthorized(RequestError):
    status = 401


class TokenRefused(Unauthorized):
    """The manager refused the controller token of a /controller action."""


class Forbidden(RequestError):
    status = 403


class NotFound(RequestError):
    status = 404


class NotAllowed(RequestError):
    status = 405


class Conflict(RequestError):
    status = 409


class TooLarge(RequestError):
    status = 413


class TooManyAttempts(RequestError):
    status = 429

    def __init__(self, message: str, retry_after: float = 60.0) -> None:
        # The route's code: 1 (join refused) on /node-initialize, else 429.
        super().__init__(message)
        self.retry_after = retry_after  # seconds (the answer's Retry-After)


class ConnectionFailed(SyncopateError):
    """The manager could not be reached."""


class PinMismatch(ConnectionFailed):
    """The manager's certificate is not the pinned one; nothing was sent to it."""


class Unreachable(ConnectionFailed):
    """Nothing answered at the manager's URL (refused, timed out, dropped): is it running?

    Not a certificate problem, a bad URL or a 503, which are ConnectionFailed too.
    """


class HungUp(Unreachable):
    """A connection was made but closed (or timed out) before an answer: a manager stopping,
    or plain HTTP to a port that serves HTTPS (its TLS handshake fails on the request)."""


class Unavailable(RequestError, ConnectionFailed):
    """503: the manager is there but cannot do this now; the same request may work later.

    Also a ConnectionFailed, because a caller should treat it as one: retry with backoff, as
    it does when the manager is unreachable (the agent must not read it as "not yours").
    """

    status = 503


class StoreFailed(Unavailable):
    """The manager's database refused a write; the request changed nothing (DESIGN §14)."""


REQUEST_ERRORS_BY_STATUS: dict[int, type[RequestError]] = {
    cls.status: cls
    for cls in (
        InvalidRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        NotAllowed,
        Conflict,
        TooLarge,
        TooManyAttempts,
        Unavailable,
    )
}


def request_error_for(
    status: int,
    message: str,
    *,
    code: int | None = None,
    retry_after: str | None = None,
    **details: Any,
) -> RequestError:
    """The RequestError subclass for an HTTP status (InvalidRequest for unknown 4xx).

    `retry_after` is a 429's Retry-After header: seconds (anything else counts as a minute).
    """
    cls = REQUEST_ERRORS_BY_STATUS.get(status, InvalidRequest)
    if cls is TooManyAttempts:
        try:
            seconds = float(retry_after or "")
        except ValueError:
            seconds = 60.0  # none, or an HTTP date: the manager's lockout is a minute
        return TooManyAttempts(message, seconds if 0 <= seconds <= 3600 else 60.0)
    return cls(message, code=code, **details)


class ProtocolError(SyncopateError):
    """The manager's answer does not follow the protocol."""


class ConfigError(SyncopateError):
    """Local configuration (data dir, controller.json, node.json) is missing or unusable."""
