"""What every route shares: the manager's state, reading a request, and answering it.

`STATE` finds the one `ManagerState` of an application. `read_body` is the one reader of
request bodies (JSON or a form, whatever the client sends) and `parse` turns the dict into a
wire model; `success` and `failure` answer with the seed's result fields for the route (its
`initialization-result`, `update-result` or `request-status`), so every handler and the error
middleware answer in the same shape.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from syncopate import errors, fast_json, literal
from syncopate.errors import InvalidRequest, TooLarge
from syncopate.manager.auth import hash_secret
from syncopate.manager.cluster import Cluster
from syncopate.manager.commands import CommandBook
from syncopate.manager.events import EventHub
from syncopate.manager.forward import forwarded_for
from syncopate.manager.gc_pauses import GcPauses
from syncopate.manager.join import JOIN_PASSWORD_KEY
from syncopate.manager.leadership import Leadership
from syncopate.manager.metrics import Metrics
from syncopate.manager.sql_store import SqlStore
from syncopate.manager.throttle import LOCKOUT, MAX_FAILURES, WINDOW, CredentialThrottle
from syncopate.protocol import describe_validation_error
from syncopate.variables import VariablesTooLarge

# The seed's result fields, by route: (result key, information key).
RESULT_FIELDS: dict[str, tuple[str, str]] = {
    "/node-initialize": ("initialization-result", "failure-reasoning"),
    "/node-update": ("update-result", "update-info"),
}
DEFAULT_RESULT_FIELDS = ("request-status", "request-information")


@dataclass(frozen=True)
class ManagerSettings:
    """What the manager runs with: its data dir, the join password, and its timings."""

    data_dir: Path
    password: str
    node_timeout: float = 15.0
    # The credential throttle (manager/throttle.py): this many wrong credentials of one scope
    # (join, controller, node:<name>) from one address within the window lock that address out
    # of that scope for the lockout.
    credential_max_failures: int = MAX_FAILURES
    credential_window: float = WINDOW
    credential_lockout: float = LOCKOUT
    events_interval: float = 0.1
    # Node reports are committed together (group_commit.py): 0 once the loop has run what was
    # ready (the reports that came together), else this many seconds after the first of a batch.
    group_commit_window: float = 0.0
    # Freeze the loaded heap and make the collector's pauses rare (gc_pauses.py): `manager
    # serve` does; tests that start many managers in one process do not (a frozen heap is
    # never freed).
    settle_heap: bool = False
    # Extra seconds a collected command gets beyond its run timeout before it is timed out:
    # the node ends the program at the timeout, then needs a moment to send the response.
    command_margin: float = 10.0
    balance: bool = True  # move projects to even the load (`manager serve --no-balance`: not)
    tls: bool = False  # serving HTTPS (/health says so)
    insecure: bool = False  # plain HTTP beyond loopback (`manager serve --insecure`)
    store: str | None = None  # postgresql://... (make_app opens it); None: SQLite, data dir


@dataclass
class ManagerState:
    """What the handlers share; one per application."""

    settings: ManagerSettings
    store: SqlStore
    cluster: Cluster
    hub: EventHub
    commands: CommandBook
    metrics: Metrics = field(default_factory=Metrics)
    gc_pauses: GcPauses = field(default_factory=GcPauses)
    throttle: CredentialThrottle = field(init=False)  # from the settings: see below
    started: float = field(default_factory=time.monotonic)
    # The open /events streams, each with its controller token's hash (closed on a revoke).
    sockets: dict[web.WebSocketResponse, str] = field(default_factory=dict)
    # /node-status answers carry (run, sequence) so that an agent can drop an answer older
    # than one it applied already (one held through a partition and delivered late).
    run: str = field(default_factory=lambda: secrets.token_hex(8))
    answers: Iterator[int] = field(default_factory=itertools.count)
    # What a standby manager forwarding to this one proves itself with (forward.py); None
    # when no other manager shares the database.
    forward_proof: str | None = None
    # On a shared database: this manager's leadership (it serves only while it leads).
    leadership: Leadership | None = None

    def __post_init__(self) -> None:
        settings = self.settings
        self.throttle = CredentialThrottle(
            max_failures=settings.credential_max_failures,
            window=settings.credential_window,
            lockout=settings.credential_lockout,
        )
        # The password is kept only hashed, in the store, where `manager rotate-join` (another
        # process) changes it; every join reads it there. A database other managers share keeps
        # the one it has: this manager's file may be older than a rotation made through another.
        if not self.store.shared or self.store.get_meta(JOIN_PASSWORD_KEY) is None:
            self.store.set_meta(JOIN_PASSWORD_KEY, hash_secret(settings.password), durable=True)

    @property
    def password_hash(self) -> str:
        """The hash of the join password in force now."""
        return self.store.get_meta(JOIN_PASSWORD_KEY) or ""


STATE = web.AppKey("state", ManagerState)


# The node routes of the seed: a seed-dialect client gets their errors as HTTP 200 (DESIGN §10).
SEED_NODE_ROUTES = frozenset({"/node-initialize", "/node-status", "/node-update"})


def failure(
    route: str,
    message: str,
    status: int,
    *,
    code: int | None = None,
    seed: bool = False,
    **extra: Any,
) -> web.Response:
    """An error answer carrying the seed's result fields for `route` and its numeric `code`.

    Without a `code`: 1 (join refused) on /node-initialize, else the HTTP status. `seed` (a
    seed-dialect request, see `seed_dialect`) answers a 4xx as HTTP 200 with the same body.
    """
    result_key, info_key = RESULT_FIELDS.get(route, DEFAULT_RESULT_FIELDS)
    if code is None:
        code = errors.JOIN_REFUSED if route == "/node-initialize" else status
    body = {
        result_key: "failure",
        info_key: message,
        "failure-reasoning": message,
        "error": message,
        "code": code,
        **extra,
    }
    return json_answer(body, status=200 if seed and status < 500 else status)


def seed_dialect(request: web.Request) -> bool:
    """True for a request on a seed node route from a client that is not ours (DESIGN §10):
    its errors are answered with HTTP 200, because the seed's client reads any HTTP error as
    "server down" and would never see the `code` that tells it to join again."""
    return request.path in SEED_NODE_ROUTES and errors.AGENT_HEADER not in request.headers


def json_answer(body: Any, status: int = 200) -> web.Response:
    """A JSON answer (fast_json: the same JSON as aiohttp's json_response, made faster)."""
    return web.Response(
        body=fast_json.dumps(body), status=status, content_type="application/json", charset="utf-8"
    )


def success(route: str, **data: Any) -> web.Response:
    result_key, info_key = RESULT_FIELDS.get(route, DEFAULT_RESULT_FIELDS)
    info = data.pop("information", "")
    body: dict[str, Any] = {result_key: "success", "code": errors.OK}
    if info_key != "failure-reasoning":
        body[info_key] = info
    body.update(data)
    return json_answer(body)


FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def read_body(request: web.Request) -> dict[str, Any]:
    """The request body as a dict: JSON, or a form whose repeated keys become lists.

    The one reader of request bodies: whatever the bytes, it returns a dict or raises a
    RequestError (413 over the size limit, 400 otherwise), never anything that becomes a 500.
    """
    if request.content_type in FORM_TYPES:
        return await _read_form(request)
    raw = await request.read()
    if not raw.strip():
        raise InvalidRequest("request body is empty; send a JSON object")
    try:
        data = literal.loads_json(raw)
    except literal.LiteralError as exc:
        raise InvalidRequest(f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRequest(f"request body must be a JSON object, not {type(data).__name__}")
    return data


async def _read_form(request: web.Request) -> dict[str, Any]:
    try:
        form = await request.post()
    except (web.HTTPException, ConnectionError):
        raise  # 413 over the limit; a client gone (the middleware says so in one line)
    except Exception as exc:
        # Anything else aiohttp's form parsers raise is about the bytes the client sent: a bad
        # multipart structure or part header line (ValueError, AssertionError), an unknown
        # charset (LookupError), undecodable text, an unknown transfer encoding (RuntimeError).
        detail = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise InvalidRequest(f"malformed {request.content_type} form body: {detail}") from None
    body: dict[str, Any] = {}
    for key in form:
        values = form.getall(key)
        if any(not isinstance(v, str) for v in values):
            raise InvalidRequest(f"form field {key!r} is a file or a non-text part; send text")
        body[key] = values if len(values) > 1 else values[0]
    return body


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], data: Any) -> M:
    """Validate wire data into a model, or raise InvalidRequest naming the bad fields."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        message = describe_validation_error(exc)
        if any(isinstance(e.get("ctx", {}).get("error"), VariablesTooLarge) for e in exc.errors()):
            raise TooLarge(message) from None
        raise InvalidRequest(message) from None


def client_address(request: web.Request) -> str:
    """Who sent the request: its peer, or the client a fellow manager forwarded it for."""
    forwarded = forwarded_for(request, request.app[STATE].forward_proof)
    return forwarded or request.remote or "unknown"


def transport_open(request: web.Request) -> bool:
    return request.transport is not None and not request.transport.is_closing()
