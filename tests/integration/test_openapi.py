"""GET /openapi.json describes every route; the suite fuzzes every route from it (DESIGN §14).

The fuzz runs schemathesis' generated requests against a real manager on 127.0.0.1 (in a
thread of its own, so schemathesis' synchronous client can call it), without credentials, with
a node's token and with the controller token, and asserts: no 5xx, no traceback in the
manager's log, and no change of the `status` and `nodes` answers when a request is refused.
Derandomized, so CI sees the same requests each run.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.errors import InvalidSchema
from schemathesis.core.result import Err, Ok

from syncopate.client import ManagerClient
from syncopate.manager.openapi import document
from tests.helpers import PASSWORD, RunningManager, SimNode, running_manager

T = TypeVar("T")


def _ok(result: Ok[T] | Err[InvalidSchema]) -> T:
    """The parsed operation; a route schemathesis cannot parse fails the module with its error."""
    if isinstance(result, Err):
        raise result.err()
    return result.ok()


LOGGERS = ("syncopate", "aiohttp")
EXAMPLES = 25  # per operation, credential and mode: about 1,700 requests, within a minute
SCHEMA = schemathesis.openapi.from_dict(document())
OPERATIONS = [_ok(result) for result in SCHEMA.get_all_operations()]
# /events answers a WebSocket handshake; requests cannot speak one, so only refusals are fuzzed.
CREDENTIALS = ("none", "node", "controller")
# What a schema-driven generator does not think of, seen from fuzzers in the wild (issue 12):
# values nested past any parser's stack, undecodable text, bodies aiohttp cannot parse.
NASTY_VALUES = ["[" * 50_000, '{"a": ' * 10_000, "(" * 50_000, "\x00", "-" * 5000]
NASTY_BODIES = [
    ("multipart/form-data", b"a=b"),
    (
        "multipart/form-data; boundary=x",
        b"--x\r\nContent-Transfer-Encoding: rot13\r\n\r\nv\r\n--x--",
    ),
    ("application/x-www-form-urlencoded; charset=no-such", b"a=b"),
    ("application/x-www-form-urlencoded; charset=utf-8", b"a=%ff&b=\xfe"),
    ("application/json", b"[" * 50_000),
]
NASTY_HEADERS = [{"Authorization": "Bearer \xff"}, {"Authorization": "Bearer " + "x" * 9000}]


async def test_every_route_is_in_the_document(manager: RunningManager) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(manager.url + "/openapi.json") as response,
    ):
        assert response.status == 200
        served = await response.json()
    assert served == document()
    assert served["openapi"].startswith("3.")
    registered = {
        (route.method.lower(), route.resource.canonical)
        for route in manager.runner.app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    described = {(method, path) for path, item in served["paths"].items() for method in item}
    assert registered - described == set(), "routes missing from /openapi.json"
    assert described - registered == set(), "/openapi.json describes routes that do not exist"
    # Every controller action is described, each with the fields it takes.
    variants = served["paths"]["/controller"]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ]["oneOf"]
    actions = {v["properties"]["action"]["const"] for v in variants}
    assert actions == set(
        served["components"]["schemas"]["ControllerRequest"]["properties"]["action"]["enum"]
    )
    send = next(v for v in variants if v["properties"]["action"]["const"] == "command-send")
    assert {"code", "nodes", "interpreter", "timeout"} <= set(send["properties"])


# the fuzz -------------------------------------------------------------------------------------
class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class Live:
    """A manager serving in a thread, with a node, a device, a project and a command."""

    url: str
    token: str
    node: str
    node_token: str
    log: Captured
    session: requests.Session = field(default_factory=requests.Session)
    counts: dict[str, int] = field(default_factory=lambda: {"requests": 0, "5xx": 0})

    def view(self) -> Any:
        """The controller's `status` and `nodes` answers, without the moving `last-contact`."""
        auth = {"Authorization": f"Bearer {self.token}"}
        answers = []
        for action in ("status", "nodes"):
            got = self.session.post(
                self.url + "/controller", json={"action": action}, headers=auth, timeout=10
            )
            assert got.status_code == 200, got.text
            body = got.json()
            for node in body.get("nodes", {}).values():
                node.pop("last-contact", None)
            answers.append(body)
        return answers


async def _known_state(manager: RunningManager) -> tuple[str, str]:
    pi1 = await SimNode.join(manager.url, "pi-1")
    try:
        async with manager.client() as ctl:
            await ctl.add("alpha", "https://example.com/alpha.git", {"count": 0})
            await pi1.poll()
            await pi1.report("alpha", "running", {"count": 3})
            await ctl.add("beta", "https://example.com/beta.git", start=False)
            await ctl.command_send(["pi-1"], "print('one')")
        async with ManagerClient(manager.url) as device:
            await device.initialize(PASSWORD, "dev-1")
    finally:
        await pi1.close()
    return pi1.name, pi1.token


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    data_dir: Path = tmp_path_factory.mktemp("fuzz") / "manager"
    ready = threading.Event()
    started: list[Live] = []
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    captured = Captured()
    loggers = [logging.getLogger(name) for name in LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(captured)
        logger.setLevel(logging.DEBUG)

    async def serve() -> None:
        # A long node timeout: liveness must not change on its own while the fuzz runs. No
        # lockout: the fuzz sends wrong credentials by the thousand from 127.0.0.1, and a
        # locked address would answer 429 before any deeper handler ran.
        async with running_manager(
            data_dir, node_timeout=3600.0, credential_max_failures=10**9
        ) as manager:
            name, token = await _known_state(manager)
            started.append(Live(manager.url, manager.token, name, token, captured))
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=lambda: loop.run_until_complete(serve()), daemon=True)
    thread.start()
    try:
        assert ready.wait(30), "the manager did not start"
        yield started[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(captured)
            logger.setLevel(level)
        started[0].session.close() if started else None


def _with_credential(case: Any, live: Live, credential: str) -> None:
    """Give the generated request a valid credential (so the deeper handlers run)."""
    if isinstance(case.body, dict) and "wait" in case.body:
        case.body["wait"] = 0  # a long poll would hold the request until the node timeout
    if credential == "controller":
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {live.token}"}
        if case.path == "/hw_supervisor":
            _set_fields(case, user="dev-1", pword=live.token)
    elif credential == "node":
        _set_fields(
            case,
            **{"name": live.node, "access-token": live.node_token, "syncopate-password": PASSWORD},
        )
        if case.path == "/hw_supervisor":
            _set_fields(case, user=live.node, pword=live.node_token)


def _set_fields(case: Any, **fields: str) -> None:
    if case.path == "/hw_supervisor" and case.method.upper() == "GET":
        case.query = {
            **(case.query or {}),
            **{k: fields[k] for k in ("user", "pword") if k in fields},
        }
        return
    if isinstance(case.body, dict):
        for key, value in fields.items():
            if key in case.body or key in ("name", "access-token", "user", "pword"):
                case.body[key] = value


def _mutate(case: Any, data: st.DataObject) -> None:
    """Sometimes make the request nastier than the schema's negative mode would."""
    choice = data.draw(st.sampled_from(["none", "value", "body", "header"]))
    if choice == "value" and isinstance(case.body, dict) and case.body:
        key = data.draw(st.sampled_from(sorted(case.body)))
        case.body[key] = data.draw(st.sampled_from(NASTY_VALUES))
    elif choice == "body" and case.method.upper() == "POST":
        case.media_type, case.body = data.draw(st.sampled_from(NASTY_BODIES))
        case.headers = {**(case.headers or {}), "Content-Type": case.media_type}
    elif choice == "header":
        case.headers = {**(case.headers or {}), **data.draw(st.sampled_from(NASTY_HEADERS))}


def _fuzz_cases() -> list[Any]:
    """Every route, with every credential, in both modes, except the combinations that cannot
    say anything: negative mode where there is no parameter or body to make invalid, and
    /node-leave with the node's token (a node that left has no token: the rest would be 401s)."""
    nothing_to_break = {"/health", "/metrics", "/openapi.json"}
    return [
        pytest.param(op, credential, mode, id=f"{op.method} {op.path}-{credential}-{mode.value}")
        for op in OPERATIONS
        for credential in CREDENTIALS
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        if not (mode is GenerationMode.NEGATIVE and op.path in nothing_to_break)
        and not (op.path == "/node-leave" and credential == "node")
    ]


@pytest.mark.parametrize(("operation", "credential", "mode"), _fuzz_cases())
def test_fuzz_every_route(live: Live, operation: Any, credential: str, mode: Any) -> None:

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def fuzz(data: st.DataObject) -> None:
        case = data.draw(operation.as_strategy(generation_mode=mode))
        _with_credential(case, live, credential)
        _mutate(case, data)
        before = live.view()
        response = case.call(base_url=live.url, session=live.session, timeout=10)
        live.counts["requests"] += 1
        if response.status_code >= 500:
            live.counts["5xx"] += 1
        assert response.status_code < 500, (
            f"{response.status_code} for {case.as_curl_command()}: {response.text[:500]}"
        )
        if 400 <= response.status_code < 500:
            assert live.view() == before, f"state changed on a refusal: {case.as_curl_command()}"

    fuzz()
    tracebacks = [
        f"{r.name} {r.levelname}: {r.getMessage()}"
        for r in live.log.records
        if r.exc_info or r.exc_text or r.stack_info or r.levelno >= logging.ERROR
    ]
    assert not tracebacks, "the manager logged a traceback:\n" + "\n".join(tracebacks[:20])
    print(f"fuzzed {live.counts['requests']} requests so far; 5xx: {live.counts['5xx']}")
