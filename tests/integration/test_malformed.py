"""Input that used to give a 500 or a logged traceback (issue 12, items 4 and 5).

Each case starts from the known state of test_bad_input, sends one malformed request, and checks:
a 400 with the route's result fields and a reason, nothing changed, no traceback in the log.
Then the protocol-level cases: an over-long URL or header answers 400 and logs one line; a
client hanging up during the /events handshake is one quiet line, not an internal error.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from tests.helpers import RunningManager, wait_for
from tests.integration.test_bad_input import (
    ALPHA_URL,
    Known,
    Request,
    _form_report,
    assert_no_tracebacks,
    assert_refused,
    send,
    snapshot,
)

# Fixtures of the bad-input table, shared (the `as` re-exports them to pytest).
from tests.integration.test_bad_input import known as known
from tests.integration.test_bad_input import manager_log as manager_log
from tests.stores import by_store

DEEP = "[" * 50_000
DEEP_DICT = '{"a": ' * 10_000
# Legal JSON, but deeper than anything a manager stores or answers with.
NESTED_500 = json.loads('{"a": ' * 500 + "1" + "}" * 500)
BOUNDARY = "b0undary"
NODE_ROUTES = ("/node-initialize", "/node-status", "/node-update", "/node-command-result")
POST_ROUTES = (*NODE_ROUTES, "/node-leave", "/controller", "/hw_supervisor")
FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Case:
    id: str
    route: str
    says: tuple[str, ...]
    make: Callable[[Known], Request]


def body(content_type: str, data: bytes, **headers: str) -> Callable[[Known], Request]:
    return lambda k: Request(raw=data, headers={"Content-Type": content_type, **headers})


def multipart(*parts: bytes) -> bytes:
    """A multipart body of raw parts (each its headers, a blank line and its content)."""
    out = b"".join(b"--" + BOUNDARY.encode() + b"\r\n" + part + b"\r\n" for part in parts)
    return out + b"--" + BOUNDARY.encode() + b"--\r\n"


MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
BODY_CASES: list[tuple[str, str, bytes, tuple[str, ...]]] = [
    # (id, content type, body, words in the reason)
    ("multipart-no-boundary", "multipart/form-data", b"a=b", ("form",)),
    ("multipart-garbage", MULTIPART, b"not a multipart body at all", ("form",)),
    ("multipart-unclosed", MULTIPART, b"--b0undary\r\nContent-Disposition: form-data", ("form",)),
    ("multipart-long-header-line", MULTIPART, multipart(
        b'Content-Disposition: form-data; name="a"; x="' + b"x" * 20_000 + b'"\r\n\r\nv'
    ), ("form",)),
    ("multipart-unknown-charset", MULTIPART, multipart(
        b'Content-Disposition: form-data; name="a"\r\n'
        b"Content-Type: text/plain; charset=no-such-charset\r\n\r\nv"
    ), ("form",)),
    ("multipart-undecodable", MULTIPART, multipart(
        b'Content-Disposition: form-data; name="a"\r\n'
        b"Content-Type: text/plain; charset=utf-8\r\n\r\n\xff\xfe"
    ), ("form",)),
    ("multipart-bad-transfer-encoding", MULTIPART, multipart(
        b'Content-Disposition: form-data; name="a"\r\n'
        b"Content-Transfer-Encoding: rot13\r\n\r\nv"
    ), ("form",)),
    ("form-unknown-charset", f"{FORM}; charset=no-such-charset", b"a=b", ("form",)),
    ("form-undecodable", f"{FORM}; charset=utf-8", b"a=%ff%fe&b=\xff", ("form",)),
    ("form-utf16-odd", f"{FORM}; charset=utf-16", b"a=b", ("form",)),
]  # fmt: skip


def deep_form(route: str, field: str, value: str = DEEP) -> Callable[[Known], Request]:
    """A form for `route` whose `field` is a string nested far too deep."""

    def make(k: Known) -> Request:
        forms: dict[str, Callable[[], list[tuple[str, str]]]] = {
            "/node-initialize": lambda: [("syncopate-password", "x"), ("preferred-name", "p")],
            "/node-update": lambda: [p for p in _form_report(k) if p[0] != field],
            "/controller": lambda: [("access-token", k.token), ("action", "add")],
        }
        pairs = forms[route]()
        return Request(form=[*pairs, (field, value)])

    return make


def deep_json(field: str, value: Any) -> Callable[[Known], Request]:
    """A JSON report on alpha from pi-1 whose `field` is `value`."""

    def make(k: Known) -> Request:
        report = dict(_form_report(k))
        report[field] = value
        return Request(json=report)

    return make


CASES: list[Case] = [
    *[
        Case(f"{case}{route.replace('/', '-')}", route, says, body(ctype, data))
        for case, ctype, data, says in BODY_CASES
        for route in POST_ROUTES
    ],
    Case("ctl-form-project-deep", "/controller", ("project",), deep_form("/controller", "project")),
    Case("ctl-form-project-deep-dict", "/controller", ("project",), deep_form(
        "/controller", "project", DEEP_DICT
    )),
    Case("ctl-form-projects-deep", "/controller", ("projects",), lambda k: Request(form=[
        ("access-token", k.token), ("action", "status"), ("projects", DEEP),
    ])),
    Case("ctl-form-nodes-deep", "/controller", ("nodes",), lambda k: Request(form=[
        ("access-token", k.token), ("action", "command-send"), ("code", "1"), ("nodes", DEEP),
    ])),
    Case("init-form-labels-deep", "/node-initialize", ("labels",), deep_form(
        "/node-initialize", "labels"
    )),
    Case("update-form-variables-deep", "/node-update", ("persistent-variables",), deep_form(
        "/node-update", "persistent-variables"
    )),
    Case("update-form-variables-deep-dict", "/node-update", ("persistent-variables",), deep_form(
        "/node-update", "persistent-variables", DEEP_DICT
    )),
    Case("update-form-log-lines-deep", "/node-update", ("log-lines",), lambda k: Request(form=[
        *_form_report(k), ("log-stream", "known"), ("log-seq", "1"), ("log-lines", DEEP),
    ])),
    Case("update-json-variables-deep-string", "/node-update", ("persistent-variables",),
         deep_json("persistent-variables", DEEP)),
    Case("update-json-variables-nested-500", "/node-update", ("deep",),
         deep_json("persistent-variables", NESTED_500)),
    Case("ctl-add-variables-nested-500", "/controller", ("deep",), lambda k: Request(json={
        "access-token": k.token, "action": "add",
        "project": {"name": "gamma", "url": ALPHA_URL, "initial_variables": NESTED_500},
    })),
    Case("ctl-bearer-not-ascii", "/controller", ("token",), lambda k: Request(
        json={"action": "status"}, headers={"Authorization": "Bearer \xff"}
    )),
    Case("ctl-token-lone-surrogate", "/controller", ("token",), lambda k: Request(
        raw=b'{"action": "status", "access-token": "\\ud800"}'
    )),
    Case("status-token-lone-surrogate", "/node-status", ("token",), lambda k: Request(
        raw=b'{"name": "pi-1", "access-token": "\\udcff"}'
    )),
    Case("init-password-lone-surrogate", "/node-initialize", ("password",), lambda k: Request(
        raw=b'{"preferred-name": "x", "syncopate-password": "\\ud800"}'
    )),
    Case("ctl-add-url-lone-surrogate", "/controller", ("url",), lambda k: Request(
        raw=json.dumps({
            "access-token": k.token, "action": "add",
            "project": {"name": "gamma", "url": "https://example.com/"},
        }).replace("example.com/", "example.com/\\ud800").encode()
    )),
    Case("hw-pword-not-ascii", "/hw_supervisor", ("pword",), lambda k: Request(
        raw=b"user=pi-1&pword=%ff%fe&command=status_query", headers={"Content-Type": FORM}
    )),
]  # fmt: skip
# A credential that cannot be a token is a wrong token; a string that is not Unicode is refused
# by the field's type (400).
UNAUTHORIZED = {"ctl-bearer-not-ascii", "hw-pword-not-ascii"}


def _unique() -> list[Case]:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    return CASES


@by_store(_unique(), lambda case: case.id, lambda case: (case.route, case.id in UNAUTHORIZED))
async def test_malformed_input_is_refused_and_changes_nothing(
    manager_log: pytest.LogCaptureFixture, known: Known, case: Case
) -> None:
    manager = known.manager
    before = await snapshot(manager)

    request = case.make(known)
    status, _, answer = await send(manager.url, case.route, request)

    expected = 401 if case.id in UNAUTHORIZED else 400
    assert_refused(case.route, expected, status, answer, case.says)
    assert await snapshot(manager) == before
    assert_no_tracebacks(manager_log)


async def test_bearer_not_ascii_on_events_is_refused(
    manager_log: pytest.LogCaptureFixture, known: Known
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            known.manager.url + "/events", headers={"Authorization": "Bearer \xff\xfe"}
        ) as response,
    ):
        assert response.status == 401, await response.text()
    assert_no_tracebacks(manager_log)


# the protocol level ---------------------------------------------------------------------------
def http_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.get_records("call") if r.name.split(".")[0] in ("syncopate", "aiohttp")
    ]


@pytest.mark.parametrize(
    "where",
    ["url", "header", "header-name", "many-headers"],
)
async def test_oversized_request_line_or_header_is_one_log_line(
    manager_log: pytest.LogCaptureFixture, known: Known, where: str
) -> None:
    manager = known.manager
    path, headers = "/health", {}
    if where == "url":
        path = "/health?" + "x" * 9000
    elif where == "header":
        headers = {"X-Big": "x" * 9000}
    elif where == "header-name":
        headers = {"X" * 9000: "1"}
    else:
        headers = {f"X-{i}": "x" * 100 for i in range(200)}
    reader, writer = await asyncio.open_connection(*manager.url[7:].split(":"))
    head = f"GET {path} HTTP/1.1\r\nHost: x\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    writer.write(head.encode() + b"\r\n")
    answer = await reader.read()
    writer.close()
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.split()[1] in (b"400", b"431"), answer[:300]

    async def logged() -> list[logging.LogRecord]:
        return [r for r in http_lines(manager_log) if r.levelno >= logging.INFO]

    lines = await wait_for(logged, what="the line about the refused request")
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert manager.url[7:].split(":")[0] in lines[0].getMessage()
    assert len(lines[0].getMessage()) < 400, lines[0].getMessage()
    assert_no_tracebacks(manager_log)
    # The manager serves on.
    async with manager.client() as ctl:
        assert (await ctl.health())["status"] == "ok"


async def test_hanging_up_during_the_events_handshake_is_quiet(
    manager_log: pytest.LogCaptureFixture, manager: RunningManager
) -> None:
    host, port = manager.url[7:].split(":")
    handshake = (
        "GET /events HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        f"Authorization: Bearer {manager.token}\r\n\r\n"
    ).encode()
    for _ in range(10):
        _, writer = await asyncio.open_connection(host, int(port))
        writer.write(handshake)
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def all_handled() -> bool:
        server = manager.runner.server
        return server is not None and not server.connections

    await wait_for(all_handled, what="the 10 handshakes to be handled")
    async with manager.client() as ctl:
        assert (await ctl.health())["status"] == "ok"
    bad = [
        f"{r.name} {r.levelname}: {r.getMessage()}"
        for r in manager_log.get_records("call")
        if r.levelno >= logging.WARNING or r.exc_info
    ]
    assert not bad, bad
