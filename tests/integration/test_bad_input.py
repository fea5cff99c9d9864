"""The manager's bad-input table (DESIGN §3).

Every case starts from the same known state on a real manager, sends one bad request, and
checks three things:

1. the HTTP status (400 malformed/invalid, 401 bad password or token, 403 not yours,
   404 unknown, 409 wrong state, 413 too large, 429 too many attempts);
2. the seed's result fields for the route, with a non-empty reason that names the problem;
3. nothing changed: the controller's `status` and `nodes` answers and the SQLite rows.

The manager's log (loggers `syncopate` and `aiohttp`, at DEBUG) must hold no traceback.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlencode

import aiohttp
import pytest

from syncopate.errors import AGENT_HEADER
from tests.helpers import PASSWORD, RunningManager, SimNode
from tests.stores import by_store

MIB = 1024 * 1024
VARIABLES_LIMIT = 64 * 1024
ALPHA_URL = "https://example.com/alpha.git"
BETA_URL = "https://example.com/beta.git"

# The seed's result fields: (result key, information key), by route.
RESULT_FIELDS = {
    "/node-initialize": ("initialization-result", "failure-reasoning"),
    "/node-update": ("update-result", "update-info"),
    "/node-status": ("request-status", "request-information"),
    "/controller": ("request-status", "request-information"),
    "/node-command-result": ("request-status", "request-information"),
    "/node-leave": ("request-status", "request-information"),
    "/hw_supervisor": ("request-status", "request-information"),
}
LOGGERS = ("syncopate", "aiohttp")


# the known state ------------------------------------------------------------------------------
@dataclass
class Known:
    """The state every case starts from.

    - node `pi-1` (alive) runs `alpha` (reported running, epoch 1, variables {"count": 3},
      output line 0 of stream `known`: "alpha says hi");
    - node `pi-2` (alive) runs nothing;
    - `beta` exists, stopped and not placed;
    - node `pi-3` runs the agent (it joined with an agent-version) and nothing else;
    - `pi-1` and `pi-2` joined without an agent-version (seed-dialect nodes);
    - command 1 (`print('one')`) waits for `pi-1` (requested: pi-1 does not run the agent);
      command 2 (`print('two')`) was collected by `pi-3`, which has not answered yet.
    """

    manager: RunningManager
    pi1: SimNode
    pi2: SimNode
    alpha_epoch: int
    pi3_token: str = ""

    @property
    def token(self) -> str:
        return self.manager.token


@pytest.fixture
async def known(manager: RunningManager) -> AsyncIterator[Known]:
    pi1 = await SimNode.join(manager.url, "pi-1", agent_version=None)
    async with manager.client() as ctl:
        added = await ctl.add("alpha", ALPHA_URL, {"count": 0})
        assert added["projects"]["alpha"]["node"] == "pi-1"
        seen = await pi1.poll()
        await pi1.report(
            "alpha",
            "running",
            {"count": 3},
            **cast(
                dict[str, Any],
                {"log-stream": "known", "log-seq": 0, "log-lines": ["alpha says hi"]},
            ),
        )
        await ctl.add("beta", BETA_URL, {"n": 1}, start=False)
    pi2 = await SimNode.join(manager.url, "pi-2", agent_version=None)
    assert await pi2.poll() == {}
    async with manager.client() as ctl:
        pi3_name, pi3_token = await pi2.client.initialize(PASSWORD, "pi-3", agent_version="t")
        assert list(await ctl.command_send(["pi-1"], "print('one')")) == ["1"]
        assert list(await ctl.command_send([pi3_name], "print('two')")) == ["2"]
        handed = await pi2.client.node_status(pi3_name, pi3_token)
        assert [c["id"] for c in handed["commands"]] == [2]
    try:
        yield Known(manager, pi1, pi2, seen["alpha"]["epoch"], pi3_token)
    finally:
        await pi1.close()
        await pi2.close()


async def snapshot(manager: RunningManager) -> dict[str, Any]:
    """What the manager says and what it stored (output lines included).

    A node's `last-contact` is left out of the `nodes` answer: an authenticated request is
    contact from that node, whatever else is wrong with it (it is not written to the store).
    """
    async with manager.client() as ctl:
        projects = await ctl.status()
        nodes = await ctl.nodes()
        logs = {name: await ctl.logs(name, lines=1000) for name in projects}
        commands = await ctl.command_list(limit=1000)
    for node in nodes.values():
        node.pop("last-contact", None)
    return {
        "status": projects,
        "nodes": nodes,
        "logs": logs,
        "commands": commands,
        "db-commands": db_commands(manager),
        "db-projects": manager.db_rows("projects"),
        "db-nodes": manager.db_rows("nodes"),
        "db-log-lines": db_log_lines(manager),
    }


def db_log_lines(manager: RunningManager) -> list[tuple[Any, ...]]:
    return manager.db_query("SELECT project, seq, line FROM log_lines ORDER BY project, seq")


def db_commands(manager: RunningManager) -> list[tuple[Any, ...]]:
    return manager.db_query('SELECT id, node, state, "user", data FROM commands ORDER BY id')


# logs -----------------------------------------------------------------------------------------
@pytest.fixture
def manager_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    yield caplog


def assert_no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    records = [
        r
        for phase in ("setup", "call")
        for r in caplog.get_records(phase)
        if r.name.split(".")[0] in LOGGERS
    ]
    # The capture works: the joins of the known state (set up after the levels) were logged.
    assert any("joined" in r.getMessage() for r in records), "no manager log was captured"
    bad = [
        f"{r.name} {r.levelname}: {r.getMessage()}"
        for r in records
        if r.exc_info or r.exc_text or r.stack_info or "Traceback" in r.getMessage()
    ]
    assert not bad, "the manager logged a traceback:\n" + "\n".join(bad)


# requests -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Request:
    """One raw request: a JSON value, raw bytes, or a form (pairs, so keys may repeat)."""

    json: Any = None
    raw: bytes | None = None
    form: list[tuple[str, str]] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    chunked: bool = False  # send `raw` with Transfer-Encoding: chunked (no Content-Length)
    # Sent as the seed's own client would: without the Syncopate-Agent header (DESIGN §10).
    seed: bool = False


async def send(url: str, route: str, request: Request) -> tuple[int, dict[str, str], Any]:
    """POST a request as it is; return (status, headers, parsed JSON answer or the text)."""
    headers = dict(request.headers)
    if not request.seed:
        headers.setdefault(AGENT_HEADER, "test")
    if request.form is not None:
        payload = urlencode(request.form).encode()
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    elif request.raw is not None:
        payload = request.raw
        headers.setdefault("Content-Type", "application/json")
    else:
        payload = json.dumps(request.json).encode()
        headers.setdefault("Content-Type", "application/json")
    # A file-like body: aiohttp warns about large raw bytes (and warnings are errors here).
    data: Any = _chunks(payload) if request.chunked else io.BytesIO(payload)
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + route, data=data, headers=headers) as response,
    ):
        text = await response.text()
        try:
            body: Any = json.loads(text)
        except ValueError:
            body = text
        return response.status, dict(response.headers), body


async def _chunks(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def assert_refused(route: str, status: int, got: int, body: Any, says: tuple[str, ...]) -> str:
    """The answer has `status`, the seed's failure fields, and a reason naming the problem."""
    assert got == status, f"expected HTTP {status}, got {got}: {body!r}"[:2000]
    assert isinstance(body, dict), f"answer is not a JSON object: {body!r}"[:2000]
    result_key, info_key = RESULT_FIELDS[route]
    assert body.get(result_key) == "failure", body
    reason = body.get(info_key)
    assert isinstance(reason, str) and reason.strip(), f"{info_key} is empty: {body!r}"
    for word in says:
        assert word.lower() in reason.lower(), f"reason {reason!r} does not mention {word!r}"
    return reason


# the table ------------------------------------------------------------------------------------
Make = Callable[[Known], Request]


@dataclass(frozen=True)
class Case:
    id: str
    route: str
    status: int
    says: tuple[str, ...]
    make: Make


def join_body(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "preferred-name": "pi-9",
        "syncopate-password": PASSWORD,
        "storage": 1000,
        "ram": 1000,
    }
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


def join(**fields: Any) -> Make:
    return lambda k: Request(json=join_body(**fields))


def poll(**fields: Any) -> Make:
    def make(k: Known) -> Request:
        body: dict[str, Any] = {"name": "pi-1", "access-token": k.pi1.token, **fields}
        return Request(json={key: v for key, v in body.items() if v is not None})

    return make


def report_body(k: Known, node: str = "pi-1", /, **fields: Any) -> dict[str, Any]:
    sim = k.pi1 if node == "pi-1" else k.pi2
    body: dict[str, Any] = {
        "name": sim.name,
        "access-token": sim.token,
        "project-name": "alpha",
        "project-url": ALPHA_URL,
        "status": "running",
        "disk-usage": 7.0,
        "ram-usage": 8.0,
        "persistent-variables": {"count": 99},
        "epoch": k.alpha_epoch,
    }
    body.update(fields)
    return {key: v for key, v in body.items() if v is not None}


def report(node: str = "pi-1", /, **fields: Any) -> Make:
    return lambda k: Request(json=report_body(k, node, **fields))


def ctl(action: Any, token: str | None = "", **fields: Any) -> Make:
    """A controller request; token "" means the right one, None means none."""

    def make(k: Known) -> Request:
        body: dict[str, Any] = dict(fields)
        if action is not None:
            body["action"] = action
        if token is not None:
            body["access-token"] = token or k.token
        return Request(json=body)

    return make


def add(name: Any = "gamma", url: Any = "https://example.com/gamma.git", **extra: Any) -> Make:
    project: dict[str, Any] = {"name": name, "url": url, "initial_variables": {}, **extra}
    return ctl("add", project={k: v for k, v in project.items() if v is not None})


def set_(name: Any = "alpha", **changes: Any) -> Make:
    return ctl("set", project={"name": name, **changes})


def raw(data: bytes) -> Make:
    return lambda k: Request(raw=data)


def big_json(extra: Callable[[Known], dict[str, Any]]) -> Make:
    """A well-formed JSON body just over 1 MiB: only its size is wrong."""
    return lambda k: Request(json={**extra(k), "padding": "x" * (MIB + 16)})


def form(pairs: Callable[[Known], list[tuple[str, str]]]) -> Make:
    return lambda k: Request(form=pairs(k))


def output(stream: Any = "known", seq: Any = 1, lines: Any = None) -> dict[str, Any]:
    """Log fields for a report on alpha from pi-1: by default, the next line of its stream."""
    return {"log-stream": stream, "log-seq": seq, "log-lines": ["new"] if lines is None else lines}


BAD_NAMES = {
    "dotdot-path": "../../etc",
    "hidden": ".hidden",
    "slash": "a/b",
    "empty": "",
    "65-chars": "a" * 65,
    "option": "-rf",
}
BAD_URLS: dict[str, tuple[str, str]] = {
    "ext-transport": ("ext::sh -c touch% /tmp/pwned", "git URL"),
    "ext-no-space": ("ext::sh%20-c%20touch%20/tmp/pwned", "transport"),
    "option-u": ("-uhttps://x", "'-'"),
    "upload-pack": ("--upload-pack=touch /tmp/x", "'-'"),
    "ftp": ("ftp://host/x", "ftp"),
    "https-no-host": ("https://", "host"),
    "newline": ("https://example.com/x\n.git", "whitespace"),
    "empty": ("", "empty"),
}
BIG_VARIABLES = {"blob": "x" * (VARIABLES_LIMIT + 1)}
BAD_ENVS: dict[str, tuple[Any, tuple[str, ...]]] = {
    "reserved": ({"SYNCOPATE_PROJECT": "x"}, ("reserved",)),
    "reserved-lower": ({"syncopate_node": "x"}, ("reserved",)),
    "name-digit": ({"1A": "x"}, ("not valid",)),
    "name-dash": ({"A-B": "x"}, ("not valid",)),
    "name-space": ({"A B": "x"}, ("not valid",)),
    "value-number": ({"A": 1}, ("string",)),
    "value-nul": ({"A": "a\x00b"}, ("NUL",)),
    "value-too-long": ({"A": "x" * 8193}, ("longer",)),
    "list": (["A=1"], ("dict",)),
    "too-many": ({f"V{i}": "x" for i in range(257)}, ("at most",)),
}

CASES: list[Case] = [
    # /node-initialize ---------------------------------------------------------------------
    Case("init-malformed-json", "/node-initialize", 400, ("malformed JSON",), raw(b'{"ram": ')),
    Case("init-json-array", "/node-initialize", 400, ("JSON object", "list"), raw(b"[1, 2]")),
    Case("init-json-null", "/node-initialize", 400, ("JSON object",), raw(b"null")),
    Case("init-empty-body", "/node-initialize", 400, ("empty",), raw(b"")),
    Case("init-blank-body", "/node-initialize", 400, ("empty",), raw(b"  \n ")),
    Case("init-not-utf8", "/node-initialize", 400, ("malformed JSON",), raw(b'{"a": "\xff\xfe"}')),
    Case("init-deep-nesting", "/node-initialize", 400, ("malformed JSON",), raw(b"[" * 100_000)),
    Case("init-storage-string", "/node-initialize", 400, ("storage",), join(storage="lots")),
    Case("init-ram-negative", "/node-initialize", 400, ("ram",), join(ram=-5)),
    Case("init-storage-infinite", "/node-initialize", 400, ("storage",), raw(
        json.dumps(join_body(storage=0)).replace('"storage": 0', '"storage": 1e400').encode()
    )),
    Case("init-labels-string", "/node-initialize", 400, ("labels",), join(labels="gpu")),
    Case("init-labels-list", "/node-initialize", 400, ("labels",), join(labels=[1])),
    Case("init-label-bad-key", "/node-initialize", 400, ("labels", "'bad key'"), join(
        labels={"bad key": "x"}
    )),
    Case("init-label-bad-value", "/node-initialize", 400, ("labels", "value 'a b'"), join(
        labels={"zone": "a b"}
    )),
    Case("init-name-not-string", "/node-initialize", 400, ("preferred-name",), join(
        **{"preferred-name": {"x": 1}}
    )),
    Case("init-no-password", "/node-initialize", 400, ("syncopate-password", "required"), join(
        **{"syncopate-password": None}
    )),
    Case("init-wrong-password", "/node-initialize", 401, ("password",), join(
        **{"syncopate-password": "not-the-password"}
    )),
    Case("init-too-large", "/node-initialize", 413, ("limit",), big_json(
        lambda k: join_body()
    )),
    Case("init-form-bad-storage", "/node-initialize", 400, ("storage",), form(lambda k: [
        ("preferred-name", "pi-9"), ("syncopate-password", PASSWORD), ("storage", "lots"),
    ])),
    Case("init-form-wrong-password", "/node-initialize", 401, ("password",), form(lambda k: [
        ("preferred-name", "pi-9"), ("syncopate-password", "nope"), ("storage", "10"),
    ])),
    Case("init-form-too-large", "/node-initialize", 413, ("limit",), form(lambda k: [
        ("preferred-name", "pi-9"), ("syncopate-password", PASSWORD), ("pad", "x" * (MIB + 16)),
    ])),
    # /node-status -------------------------------------------------------------------------
    Case("status-malformed-json", "/node-status", 400, ("malformed JSON",), raw(b"{name: pi-1}")),
    Case("status-json-array", "/node-status", 400, ("JSON object",), raw(b'["pi-1"]')),
    Case("status-empty-body", "/node-status", 400, ("empty",), raw(b"")),
    Case("status-no-token", "/node-status", 400, ("access-token", "required"), poll(
        **{"access-token": None}
    )),
    Case("status-no-name", "/node-status", 400, ("name", "required"), poll(name=None)),
    Case("status-wrong-token", "/node-status", 401, ("access token",), poll(
        **{"access-token": "wrong"}
    )),
    Case("status-unknown-node", "/node-status", 401, ("pi-7",), poll(name="pi-7")),
    Case("status-wait-string", "/node-status", 400, ("wait",), poll(wait="soon")),
    Case("status-wait-negative", "/node-status", 400, ("wait",), poll(wait=-1)),
    Case("status-metrics-cpu-over", "/node-status", 400, ("metrics.cpu", "100"), poll(
        metrics={"cpu": 150, "load": 0.5, "uptime": 60}
    )),
    Case("status-metrics-load-negative", "/node-status", 400, ("metrics.load",), poll(
        metrics={"cpu": 5, "load": -1}
    )),
    Case("status-metrics-bool", "/node-status", 400, ("metrics.cpu", "true or false"), poll(
        metrics={"cpu": True}
    )),
    Case("status-metrics-temperature-text", "/node-status", 400, ("metrics.temperature",), poll(
        metrics={"temperature": "hot"}
    )),
    Case("status-metrics-uptime-infinite", "/node-status", 400, ("metrics.uptime",), lambda k: (
        Request(raw=json.dumps(
            {"name": "pi-1", "access-token": k.pi1.token, "metrics": {"uptime": 0}}
        ).replace('"uptime": 0', '"uptime": 1e400').encode())
    )),
    Case("status-metrics-not-object", "/node-status", 400, ("metrics",), poll(metrics="busy")),
    Case("status-metrics-list", "/node-status", 400, ("metrics",), poll(metrics=[12, 0.5])),
    Case("status-form-bad-metrics", "/node-status", 400, ("metrics.cpu",), form(lambda k: [
        ("name", "pi-1"), ("access-token", k.pi1.token), ("metrics", "{'cpu': 500}"),
    ])),
    Case("status-too-large", "/node-status", 413, ("limit",), big_json(
        lambda k: {"name": "pi-1", "access-token": k.pi1.token}
    )),
    # /node-update -------------------------------------------------------------------------
    Case("update-malformed-json", "/node-update", 400, ("malformed JSON",), raw(b'{"name": 1')),
    Case("update-json-array", "/node-update", 400, ("JSON object",), raw(b"[]")),
    Case("update-empty-body", "/node-update", 400, ("empty",), raw(b"")),
    Case("update-no-token", "/node-update", 400, ("access-token",), report(
        **{"access-token": None}
    )),
    Case("update-no-project-name", "/node-update", 400, ("project-name",), report(
        **{"project-name": None}
    )),
    Case("update-wrong-token", "/node-update", 401, ("access token",), report(
        **{"access-token": "wrong"}
    )),
    Case("update-not-assigned", "/node-update", 403, ("alpha", "not assigned"), report("pi-2")),
    Case("update-unknown-project", "/node-update", 404, ("ghost",), report(
        **{"project-name": "ghost"}
    )),
    Case("update-wrong-url", "/node-update", 409, ("project-url",), report(
        **{"project-url": "https://example.com/other.git"}
    )),
    Case("update-stale-epoch", "/node-update", 409, ("epoch",), lambda k: Request(
        json=report_body(k, epoch=k.alpha_epoch - 1)
    )),
    Case("update-unknown-status", "/node-update", 400, ("exploded",), report(status="exploded")),
    Case("update-manager-status", "/node-update", 400, ("pending",), report(status="pending")),
    Case("update-variables-list", "/node-update", 400, ("persistent-variables",), report(
        **{"persistent-variables": [1]}
    )),
    Case("update-disk-string", "/node-update", 400, ("disk-usage",), report(
        **{"disk-usage": "lots"}
    )),
    Case("update-epoch-string", "/node-update", 400, ("epoch",), report(epoch="new")),
    Case("update-variables-too-large", "/node-update", 413, ("64 KiB",), report(
        **{"persistent-variables": BIG_VARIABLES}
    )),
    Case("update-too-large", "/node-update", 413, ("limit",), big_json(report_body)),
    Case("update-form-variables-list", "/node-update", 400, ("persistent-variables",), form(
        lambda k: [*_form_report(k), ("persistent-variables", "[1, 2]")]
    )),
    Case("update-form-variables-code", "/node-update", 400, ("persistent-variables",), form(
        lambda k: [*_form_report(k), ("persistent-variables", "__import__('os').getcwd()")]
    )),
    Case("update-form-bad-ram", "/node-update", 400, ("ram-usage",), form(
        lambda k: [*_form_report(k), ("ram-usage", "lots")]
    )),
    # the seed client's usage fields (DESIGN §10)
    Case("update-form-bad-project-ram", "/node-update", 400, ("project-ram",), form(
        lambda k: [*_form_report(k), ("project-ram", "lots")]
    )),
    Case("update-project-storage-negative", "/node-update", 400, ("project-storage",), report(
        **{"project-storage": -1}
    )),
    Case("update-project-storage-infinite", "/node-update", 400, ("project-storage",), form(
        lambda k: [*_form_report(k), ("project-storage", "inf")]
    )),
    Case("update-form-variables-too-large", "/node-update", 413, ("64 KiB",), form(
        lambda k: [*_form_report(k), ("persistent-variables", json.dumps(BIG_VARIABLES))]
    )),
    # /node-update: output lines (a well-formed report would add "new" after "alpha says hi")
    Case("update-log-lines-string", "/node-update", 400, ("log-lines", "list"), report(
        **output(lines="new")
    )),
    Case("update-log-lines-object", "/node-update", 400, ("log-lines",), report(
        **output(lines={"0": "new"})
    )),
    Case("update-log-lines-number-item", "/node-update", 400, ("log-lines",), report(
        **output(lines=["new", 5])
    )),
    Case("update-log-lines-too-many", "/node-update", 400, ("log-lines", "1000"), report(
        **output(lines=["new"] * 1001)
    )),
    Case("update-log-line-huge", "/node-update", 400, ("log-lines", "65536"), report(
        **output(lines=["new", "x" * 70_000])
    )),
    Case("update-log-seq-negative", "/node-update", 400, ("log-seq",), report(
        **output(seq=-1)
    )),
    Case("update-log-seq-string", "/node-update", 400, ("log-seq",), report(
        **output(seq="next")
    )),
    Case("update-log-seq-true", "/node-update", 400, ("log-seq",), report(**output(seq=True))),
    Case("update-log-stream-too-long", "/node-update", 400, ("log-stream",), report(
        **output(stream="s" * 65)
    )),
    Case("update-log-stream-empty", "/node-update", 400, ("log-stream",), report(
        **output(stream="")
    )),
    Case("update-log-lines-alone", "/node-update", 400, ("log-stream", "together"), report(
        **{"log-lines": ["new"]}
    )),
    Case("update-log-lines-no-seq", "/node-update", 400, ("log-seq", "together"), report(
        **{"log-stream": "known", "log-lines": ["new"]}
    )),
    Case("update-form-log-lines-not-list", "/node-update", 400, ("log-lines",), form(
        lambda k: [*_form_report(k), ("log-stream", "known"), ("log-seq", "1"),
                   ("log-lines", "{'a': 1}")]
    )),
    # /controller: the body ------------------------------------------------------------------
    Case("ctl-malformed-json", "/controller", 400, ("malformed JSON",), raw(b"{'action': 1}")),
    Case("ctl-json-array", "/controller", 400, ("JSON object",), raw(b'["status"]')),
    Case("ctl-json-string", "/controller", 400, ("JSON object",), raw(b'"status"')),
    Case("ctl-empty-body", "/controller", 400, ("empty",), raw(b"")),
    Case("ctl-too-large", "/controller", 413, ("limit",), big_json(
        lambda k: {"action": "status", "access-token": k.token}
    )),
    Case("ctl-chunked-too-large", "/controller", 413, ("limit",), lambda k: Request(
        raw=json.dumps({"action": "status", "pad": "x" * (MIB + 16)}).encode(),
        chunked=True,
    )),
    # /controller: authentication ------------------------------------------------------------
    Case("ctl-wrong-token", "/controller", 401, ("token",), ctl("status", token="wrong")),
    Case("ctl-missing-token", "/controller", 401, ("token",), ctl("status", token=None)),
    Case("ctl-empty-token", "/controller", 401, ("token",), lambda k: Request(
        json={"action": "status", "access-token": ""}
    )),
    Case("ctl-wrong-bearer", "/controller", 401, ("token",), lambda k: Request(
        json={"action": "stop", "projects": ["alpha"]},
        headers={"Authorization": "Bearer wrong"},
    )),
    Case("ctl-wrong-token-add", "/controller", 401, ("token",), ctl(
        "add", token="wrong", project={"name": "gamma", "url": "https://example.com/g.git"}
    )),
    Case("ctl-node-token-as-controller", "/controller", 401, ("token",), lambda k: Request(
        json={"action": "stop", "projects": ["alpha"], "access-token": k.pi1.token}
    )),
    # /controller: the request ---------------------------------------------------------------
    Case("ctl-no-action", "/controller", 400, ("action", "required"), ctl(None)),
    Case("ctl-action-not-string", "/controller", 400, ("action",), ctl(["stop"])),
    Case("ctl-unknown-action", "/controller", 400, ("explode", "unknown action"), ctl("explode")),
    Case("ctl-projects-number", "/controller", 400, ("projects",), ctl("stop", projects=5)),
    Case("ctl-projects-bad-name", "/controller", 400, ("projects",), ctl(
        "stop", projects=["../../etc"]
    )),
    Case("ctl-add-no-project", "/controller", 400, ("project",), ctl("add")),
    Case("ctl-add-project-string", "/controller", 400, ("project",), ctl("add", project="gamma")),
    Case("ctl-add-no-name", "/controller", 400, ("name", "required"), ctl(
        "add", project={"url": "https://example.com/gamma.git"}
    )),
    Case("ctl-add-no-url", "/controller", 400, ("url", "required"), ctl(
        "add", project={"name": "gamma"}
    )),
    Case("ctl-add-variables-list", "/controller", 400, ("initial_variables",), add(
        initial_variables=[1]
    )),
    Case("ctl-add-variables-too-large", "/controller", 413, ("64 KiB",), add(
        initial_variables=BIG_VARIABLES
    )),
    Case("ctl-add-ram-string", "/controller", 400, ("ram",), add(ram="lots")),
    Case("ctl-add-exclusive-string", "/controller", 400, ("exclusive",), add(exclusive="maybe")),
    Case("ctl-add-ref-option", "/controller", 400, ("ref",), add(ref="--upload-pack=x")),
    Case("ctl-add-existing", "/controller", 409, ("alpha", "exists"), add(
        "alpha", "https://example.com/other.git"
    )),
    *[
        Case(f"ctl-add-name-{case}", "/controller", 400, ("name",), add(name=name))
        for case, name in BAD_NAMES.items()
    ],
    Case("ctl-add-name-number", "/controller", 400, ("name",), add(name=5)),
    *[
        Case(f"ctl-add-url-{case}", "/controller", 400, ("url", words), add(url=url))
        for case, (url, words) in BAD_URLS.items()
    ],
    *[
        Case(f"ctl-add-env-{case}", "/controller", 400, ("env", *words), add(env=env))
        for case, (env, words) in BAD_ENVS.items()
    ],
    Case("ctl-set-no-project", "/controller", 400, ("project",), ctl("set")),
    Case("ctl-set-unknown", "/controller", 404, ("ghost",), set_(name="ghost", ram=5)),
    Case("ctl-set-no-name", "/controller", 400, ("name", "required"), ctl(
        "set", project={"ram": 5}
    )),
    Case("ctl-set-bad-name", "/controller", 400, ("name",), set_(name="../../etc")),
    Case("ctl-set-ram-negative", "/controller", 400, ("ram",), set_(ram=-1)),
    Case("ctl-set-disk-string", "/controller", 400, ("disk",), set_(disk="lots")),
    Case("ctl-set-exclusive-string", "/controller", 400, ("exclusive",), set_(exclusive="maybe")),
    Case("ctl-set-ref-option", "/controller", 400, ("ref",), set_(ref="--upload-pack=x")),
    Case("ctl-set-command-nul", "/controller", 400, ("command", "NUL"), set_(command="a\x00b")),
    Case("ctl-set-unset-env-reserved", "/controller", 400, ("unset-env", "reserved"), set_(
        **{"unset-env": ["SYNCOPATE_NODE"]}
    )),
    Case("ctl-set-env-and-unset", "/controller", 400, ("A",), set_(
        env={"A": "1"}, **{"unset-env": ["A"]}
    )),
    *[
        Case(f"ctl-set-url-{case}", "/controller", 400, ("url", words), set_(url=url))
        for case, (url, words) in BAD_URLS.items()
    ],
    *[
        Case(f"ctl-set-env-{case}", "/controller", 400, ("env", *words), set_(env=env))
        for case, (env, words) in BAD_ENVS.items()
    ],
    # Secrets follow env's rules (DESIGN section 11); a name is env or a secret, not both.
    *[
        Case(f"ctl-add-secrets-{case}", "/controller", 400, ("secrets", *words), add(secrets=env))
        for case, (env, words) in BAD_ENVS.items()
    ],
    *[
        Case(f"ctl-set-secrets-{case}", "/controller", 400, ("secrets", *words), set_(secrets=env))
        for case, (env, words) in BAD_ENVS.items()
    ],
    Case("ctl-add-env-and-secret", "/controller", 400, ("A", "not both"), add(
        env={"A": "1"}, secrets={"A": "2"}
    )),
    Case("ctl-set-env-and-secret", "/controller", 400, ("A", "not both"), set_(
        env={"A": "1"}, secrets={"A": "2"}
    )),
    Case("ctl-set-secret-and-unset", "/controller", 400, ("A",), set_(
        secrets={"A": "1"}, **{"unset-secrets": ["A"]}
    )),
    Case("ctl-set-unset-secrets-reserved", "/controller", 400, ("unset-secrets", "reserved"),
        set_(**{"unset-secrets": ["SYNCOPATE_NODE"]})),
    Case("ctl-set-unset-secrets-string", "/controller", 400, ("unset-secrets",), set_(
        **{"unset-secrets": 5}
    )),
    Case("ctl-setvars-no-variables", "/controller", 400, ("variables",), ctl(
        "set-variables", projects=["alpha"]
    )),
    Case("ctl-setvars-empty", "/controller", 400, ("variables",), ctl(
        "set-variables", projects=["alpha"], variables={}
    )),
    Case("ctl-setvars-list", "/controller", 400, ("variables",), ctl(
        "set-variables", projects=["alpha"], variables=[1]
    )),
    Case("ctl-setvars-no-projects", "/controller", 400, ("projects", "all"), ctl(
        "set-variables", variables={"a": 1}
    )),
    Case("ctl-setvars-projects-and-all", "/controller", 400, ("projects", "all"), ctl(
        "set-variables", projects=["alpha"], variables={"a": 1}, all=True
    )),
    Case("ctl-setvars-unknown", "/controller", 404, ("ghost",), ctl(
        "set-variables", projects=["alpha", "ghost"], variables={"a": 1}
    )),
    Case("ctl-setvars-too-large", "/controller", 413, ("64 KiB",), ctl(
        "set-variables", projects=["alpha"], variables=BIG_VARIABLES
    )),
    Case("ctl-setvars-merged-too-large", "/controller", 413, ("alpha", "64 KiB"), ctl(
        "set-variables", all=True, variables={"blob": "x" * (VARIABLES_LIMIT - 20)}
    )),
    Case("ctl-remove-wrong-url", "/controller", 409, ("url", "alpha"), ctl(
        "remove", project={"name": "alpha", "url": "https://example.com/other.git"}
    )),
    Case("ctl-remove-no-url", "/controller", 400, ("url",), ctl(
        "remove", project={"name": "alpha"}
    )),
    Case("ctl-remove-unknown", "/controller", 404, ("ghost",), ctl(
        "remove", project={"name": "ghost", "url": ALPHA_URL}
    )),
    Case("ctl-remove-bad-name", "/controller", 400, ("name",), ctl(
        "remove", project={"name": "../../etc", "url": ALPHA_URL}
    )),
    *[
        Case(f"ctl-{action}-unknown", "/controller", 404, ("ghost",), ctl(
            action, projects=["ghost"]
        ))
        for action in ("start", "stop", "restart", "reset", "status")
    ],
    # One known and one unknown name: nothing may change (beta would start, alpha would stop).
    Case("ctl-start-known-and-unknown", "/controller", 404, ("ghost",), ctl(
        "start", projects=["beta", "ghost"]
    )),
    Case("ctl-stop-known-and-unknown", "/controller", 404, ("ghost",), ctl(
        "stop", projects=["alpha", "ghost"]
    )),
    Case("ctl-restart-known-and-unknown", "/controller", 404, ("ghost",), ctl(
        "restart", projects=["alpha", "beta", "ghost"]
    )),
    Case("ctl-reset-known-and-unknown", "/controller", 404, ("ghost",), ctl(
        "reset", projects=["alpha", "ghost"]
    )),
    Case("ctl-forget-alive-node", "/controller", 409, ("pi-1", "alive"), ctl(
        "node-forget", node="pi-1"
    )),
    Case("ctl-forget-unknown-node", "/controller", 404, ("pi-7",), ctl("node-forget", node="pi-7")),
    Case("ctl-drain-unknown-node", "/controller", 404, ("pi-7",), ctl("node-drain", node="pi-7")),
    Case("ctl-drain-no-node", "/controller", 400, ("node",), ctl("node-drain")),
    Case("ctl-label-unknown-node", "/controller", 404, ("pi-7",), ctl(
        "node-label", node="pi-7", labels={"zone": "lab"}
    )),
    Case("ctl-label-no-node", "/controller", 400, ("node",), ctl(
        "node-label", labels={"zone": "lab"}
    )),
    Case("ctl-label-nothing", "/controller", 400, ("labels", "remove"), ctl(
        "node-label", node="pi-1"
    )),
    Case("ctl-label-bad-key", "/controller", 400, ("labels", "'bad key'"), ctl(
        "node-label", node="pi-1", labels={"bad key": "x"}
    )),
    Case("ctl-label-bad-remove", "/controller", 400, ("remove", "'-x'"), ctl(
        "node-label", node="pi-1", remove=["-x"]
    )),
    Case("ctl-label-not-a-dict", "/controller", 400, ("labels",), ctl(
        "node-label", node="pi-1", labels=["zone=lab"]
    )),
    Case("ctl-label-set-and-remove", "/controller", 400, ("zone", "at once"), ctl(
        "node-label", node="pi-1", labels={"zone": "lab"}, remove=["zone"]
    )),
    Case("ctl-logs-no-project", "/controller", 400, ("exactly one", "projects"), ctl("logs")),
    Case("ctl-logs-two-projects", "/controller", 400, ("exactly one",), ctl(
        "logs", projects=["alpha", "beta"]
    )),
    Case("ctl-logs-unknown", "/controller", 404, ("no project named 'ghost'",), ctl(
        "logs", projects=["ghost"]
    )),
    Case("ctl-logs-bad-name", "/controller", 400, ("projects",), ctl(
        "logs", projects=["../../etc"]
    )),
    Case("ctl-logs-lines-zero", "/controller", 400, ("lines",), ctl(
        "logs", projects=["alpha"], lines=0
    )),
    Case("ctl-logs-lines-too-many", "/controller", 400, ("lines", "1000"), ctl(
        "logs", projects=["alpha"], lines=1001
    )),
    Case("ctl-logs-lines-string", "/controller", 400, ("lines",), ctl(
        "logs", projects=["alpha"], lines="all"
    )),
    Case("ctl-logs-lines-fraction", "/controller", 400, ("lines",), ctl(
        "logs", projects=["alpha"], lines=2.5
    )),
    # rollout (DESIGN section 12): one project; --retry only after a rollback
    Case("ctl-rollout-no-project", "/controller", 400, ("exactly one", "projects"), ctl(
        "rollout", retry=True
    )),
    Case("ctl-rollout-two-projects", "/controller", 400, ("exactly one",), ctl(
        "rollout", projects=["alpha", "beta"], retry=True
    )),
    Case("ctl-rollout-unknown", "/controller", 404, ("no project named 'ghost'",), ctl(
        "rollout", projects=["ghost"], retry=True
    )),
    Case("ctl-rollout-retry-not-rolled-back", "/controller", 409, ("alpha", "no bad commit"), ctl(
        "rollout", projects=["alpha"], retry=True
    )),
    Case("ctl-rollout-retry-not-a-bool", "/controller", 400, ("retry",), ctl(
        "rollout", projects=["alpha"], retry="perhaps"
    )),
    Case("report-bad-commit-too-long", "/node-update", 400, ("bad-commit",), report(
        **{"bad-commit": "b" * 65}
    )),
    Case("report-bad-reason-not-text", "/node-update", 400, ("bad-reason",), report(
        **{"bad-reason": ["crash", "loop"]}
    )),
    # /controller: forms ---------------------------------------------------------------------
    Case("ctl-form-wrong-token", "/controller", 401, ("token",), form(lambda k: [
        ("action", "stop"), ("projects", "alpha"), ("access-token", "wrong"),
    ])),
    Case("ctl-form-repeated-action", "/controller", 400, ("action",), form(lambda k: [
        ("action", "stop"), ("action", "remove"), ("access-token", k.token),
    ])),
    Case("ctl-form-add-bad-name", "/controller", 400, ("name",), form(lambda k: [
        ("action", "add"),
        ("access-token", k.token),
        ("project", "{'name': '.hidden', 'url': 'https://example.com/x.git'}"),
    ])),
    Case("ctl-form-add-ext-url", "/controller", 400, ("url",), form(lambda k: [
        ("action", "add"),
        ("access-token", k.token),
        ("project", json.dumps({"name": "gamma", "url": "ext::sh -c touch% /tmp/pwned"})),
    ])),
    Case("ctl-form-add-project-not-dict", "/controller", 400, ("project",), form(lambda k: [
        ("action", "add"), ("access-token", k.token), ("project", "[1, 2]"),
    ])),
    Case("ctl-form-start-known-and-unknown", "/controller", 404, ("ghost",), form(lambda k: [
        ("action", "start"), ("access-token", k.token), ("projects", "['beta', 'ghost']"),
    ])),
    Case("ctl-form-too-large", "/controller", 413, ("limit",), form(lambda k: [
        ("action", "status"), ("access-token", k.token), ("pad", "x" * (MIB + 16)),
    ])),
]  # fmt: skip


def result(command_id: Any = 2, token: str | None = "", **fields: Any) -> Make:
    """A /node-command-result from pi-3 (the right token unless given) for command 2."""

    def make(k: Known) -> Request:
        body: dict[str, Any] = {
            "name": "pi-3",
            "access-token": token or k.pi3_token,
            "id": command_id,
            "response": "two",
            "exit-code": 0,
            "duration": 0.01,
            **fields,
        }
        return Request(json={key: v for key, v in body.items() if v is not None})

    return make


def hw(**fields: str) -> Make:
    """A /hw_supervisor form as the seed's device client sends it (as pi-1's device side)."""

    def make(k: Known) -> Request:
        pairs = {"user": "pi-1", "pword": k.pi1.token, **fields}
        return Request(form=list(pairs.items()))

    return make


COMMAND_CASES: list[Case] = [
    # /controller: the command channel -------------------------------------------------------
    Case("cmd-send-wrong-token", "/controller", 401, ("token",), ctl(
        "command-send", token="wrong", nodes=["pi-1"], code="print(1)"
    )),
    Case("cmd-send-no-target", "/controller", 400, ("nodes",), ctl(
        "command-send", code="print(1)"
    )),
    Case("cmd-send-nodes-and-all", "/controller", 400, ("not both",), ctl(
        "command-send", nodes=["pi-1"], all=True, code="print(1)"
    )),
    Case("cmd-send-no-code", "/controller", 400, ("code",), ctl(
        "command-send", nodes=["pi-1"]
    )),
    Case("cmd-send-empty-code", "/controller", 400, ("code",), ctl(
        "command-send", nodes=["pi-1"], code=""
    )),
    Case("cmd-send-code-too-long", "/controller", 400, ("code",), ctl(
        "command-send", nodes=["pi-1"], code="x" * (64 * 1024 + 1)
    )),
    Case("cmd-send-unknown-interpreter", "/controller", 400, ("interpreter",), ctl(
        "command-send", nodes=["pi-1"], code="print(1)", interpreter="perl"
    )),
    Case("cmd-send-timeout-zero", "/controller", 400, ("timeout",), ctl(
        "command-send", nodes=["pi-1"], code="print(1)", timeout=0
    )),
    Case("cmd-send-timeout-text", "/controller", 400, ("timeout",), ctl(
        "command-send", nodes=["pi-1"], code="print(1)", timeout="soon"
    )),
    Case("cmd-send-timeout-huge", "/controller", 400, ("timeout",), ctl(
        "command-send", nodes=["pi-1"], code="print(1)", timeout=1e12
    )),
    Case("cmd-send-pickup-negative", "/controller", 400, ("pickup",), ctl(
        "command-send", nodes=["pi-1"], code="print(1)", pickup=-1
    )),
    Case("cmd-send-unknown-node", "/controller", 404, ("ghost",), ctl(
        "command-send", nodes=["pi-1", "ghost"], code="print(1)"
    )),
    Case("cmd-send-bad-node-name", "/controller", 400, ("nodes",), ctl(
        "command-send", nodes=["../../etc"], code="print(1)"
    )),
    Case("cmd-send-nodes-not-a-list", "/controller", 400, ("nodes",), ctl(
        "command-send", nodes=5, code="print(1)"
    )),
    Case("cmd-show-no-id", "/controller", 400, ("id",), ctl("command-show")),
    Case("cmd-show-id-text", "/controller", 400, ("id",), ctl("command-show", id="one")),
    Case("cmd-show-id-zero", "/controller", 400, ("id",), ctl("command-show", id=0)),
    Case("cmd-show-id-true", "/controller", 400, ("id",), ctl("command-show", id=True)),
    Case("cmd-show-unknown", "/controller", 404, ("no command 99",), ctl(
        "command-show", id=99
    )),
    Case("cmd-analyze-requested", "/controller", 409, ("requested",), ctl(
        "command-analyze", id=1, analysis="too early"
    )),
    Case("cmd-analyze-collected", "/controller", 409, ("collected",), ctl(
        "command-analyze", id=2, analysis="too early"
    )),
    Case("cmd-analyze-no-text", "/controller", 400, ("analysis",), ctl(
        "command-analyze", id=1
    )),
    Case("cmd-analyze-unknown", "/controller", 404, ("no command 99",), ctl(
        "command-analyze", id=99, analysis="x"
    )),
    Case("cmd-cancel-collected", "/controller", 409, ("collected",), ctl(
        "command-cancel", id=2
    )),
    Case("cmd-cancel-unknown", "/controller", 404, ("no command 99",), ctl(
        "command-cancel", id=99
    )),
    Case("cmd-list-bad-state", "/controller", 400, ("state",), ctl(
        "command-list", state="done"
    )),
    Case("cmd-list-limit-zero", "/controller", 400, ("limit",), ctl("command-list", limit=0)),
    Case("cmd-list-limit-huge", "/controller", 400, ("limit",), ctl(
        "command-list", limit=100_000
    )),
    Case("cmd-list-before-text", "/controller", 400, ("before",), ctl(
        "command-list", before="yesterday"
    )),
    # /node-command-result -------------------------------------------------------------------
    Case("result-wrong-token", "/node-command-result", 401, ("token",), result(
        token="wrong"
    )),
    Case("result-not-collected", "/node-command-result", 409, ("requested",), lambda k: Request(
        json={"name": "pi-1", "access-token": k.pi1.token, "id": 1, "response": "one"}
    )),
    Case("result-other-nodes-command", "/node-command-result", 404, ("no command 2",),
         lambda k: Request(
        json={"name": "pi-1", "access-token": k.pi1.token, "id": 2, "response": "two"}
    )),
    Case("result-unknown-command", "/node-command-result", 404, ("no command 99",), result(99)),
    Case("result-no-response", "/node-command-result", 400, ("response",), result(
        response=None
    )),
    Case("result-response-too-long", "/node-command-result", 400, ("response",), result(
        response="x" * (128 * 1024 + 1)
    )),
    Case("result-exit-code-text", "/node-command-result", 400, ("exit-code",), result(
        **{"exit-code": "ok"}
    )),
    Case("result-duration-negative", "/node-command-result", 400, ("duration",), result(
        duration=-1
    )),
    Case("result-id-text", "/node-command-result", 400, ("id",), result("two")),
    Case("result-malformed-json", "/node-command-result", 400, ("json",), raw(b"{'id': 2")),
    Case("result-too-large", "/node-command-result", 413, ("limit",), big_json(
        lambda k: {"name": "pi-3", "access-token": k.pi3_token, "id": 2, "response": "x"}
    )),
    # /hw_supervisor (pi-1 runs projects: a wrong request must not turn it into a device) -----
    Case("hw-wrong-pword", "/hw_supervisor", 401, ("pword",), lambda k: Request(
        form=[("user", "pi-1"), ("pword", "wrong"), ("command", "status_query")]
    )),
    Case("hw-unknown-command", "/hw_supervisor", 400, ("command",), hw(command="reboot")),
    Case("hw-no-command", "/hw_supervisor", 400, ("command",), hw()),
    Case("hw-device-may-not-request", "/hw_supervisor", 403, ("not for the device",), hw(
        command="hw_command_request", hw_comm="print(1)"
    )),
    Case("hw-controller-may-not-retrieve", "/hw_supervisor", 403, ("not for a controller",),
         lambda k: Request(
        form=[("user", "pi-2"), ("pword", k.token), ("command", "hw_command_retrieval")]
    )),
    Case("hw-no-user", "/hw_supervisor", 400, ("user",), lambda k: Request(
        form=[("pword", k.pi1.token), ("command", "status_query")]
    )),
    Case("hw-unknown-device", "/hw_supervisor", 404, ("ghost",), lambda k: Request(
        form=[("user", "ghost"), ("pword", k.token), ("command", "status_query")]
    )),
    Case("hw-request-for-an-agent", "/hw_supervisor", 409, ("agent",), lambda k: Request(
        form=[("user", "pi-3"), ("pword", k.token), ("command", "hw_command_request"),
              ("hw_comm", "print(1)")]
    )),
]  # fmt: skip
CASES += COMMAND_CASES


def _form_report(k: Known) -> list[tuple[str, str]]:
    """A report on alpha from pi-1 as a form; only the field a case adds is wrong."""
    fields = report_body(k)
    fields.pop("persistent-variables")
    return [(key, str(value)) for key, value in fields.items()]


def _cases_with_unique_ids() -> list[Case]:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    return CASES


# Cases about commands reach the store (their rows are read from it): each runs on both.
_READ_FROM_THE_STORE = ("cmd", "result", "hw")


def _kind(case: Case) -> tuple[str, int, str]:
    """What the PostgreSQL half runs one case of: a route, a status and a kind of request."""
    prefix = case.id.split("-")[0]
    if prefix in _READ_FROM_THE_STORE:
        return case.route, case.status, case.id
    return case.route, case.status, prefix


@by_store(_cases_with_unique_ids(), lambda case: case.id, _kind)
async def test_bad_input_is_refused_and_changes_nothing(
    manager_log: pytest.LogCaptureFixture, known: Known, case: Case
) -> None:
    manager = known.manager
    before = await snapshot(manager)

    status, _, body = await send(manager.url, case.route, case.make(known))

    assert_refused(case.route, case.status, status, body, case.says)
    assert await snapshot(manager) == before
    assert_no_tracebacks(manager_log)


SEED_ROUTES = ("/node-initialize", "/node-status", "/node-update")
# The seed's codes for what a case is about; any other refusal carries its HTTP status.
SEED_CODES = {
    "/node-initialize": lambda status: 1,
    "/node-status": lambda status: status,
    "/node-update": lambda status: status,
}


@by_store(
    [c for c in _cases_with_unique_ids() if c.route in SEED_ROUTES], lambda case: case.id, _kind
)
async def test_seed_dialect_gets_the_same_refusal_as_http_200_with_a_code(
    manager_log: pytest.LogCaptureFixture, known: Known, case: Case
) -> None:
    """The same bad request without the Syncopate-Agent header (the seed's own client): HTTP
    200 (it reads any HTTP error as "server down"), the same result fields and reason, the
    seed's numeric `code` and `failure-reasoning`; nothing changes (DESIGN §10)."""
    manager = known.manager
    before = await snapshot(manager)
    request = dataclasses.replace(case.make(known), seed=True)

    status, _, body = await send(manager.url, case.route, request)

    expected = 200 if case.status < 500 else case.status
    reason = assert_refused(case.route, expected, status, body, case.says)
    assert body["failure-reasoning"] == reason
    if case.route == "/node-initialize":
        assert body["code"] == 1
    else:
        assert body["code"] in (case.status, 100, 101, 102, 103), body
    assert await snapshot(manager) == before
    assert_no_tracebacks(manager_log)


@pytest.mark.parametrize(
    ("make", "route", "status", "code"),
    [
        (lambda k: Request(json=join_body(**{"syncopate-password": "guess"})),
         "/node-initialize", 401, 1),
        (lambda k: Request(json={"name": "pi-77", "access-token": k.pi1.token}),
         "/node-status", 401, 100),
        (lambda k: Request(json={"name": "pi-1", "access-token": "wrong"}),
         "/node-status", 401, 101),
        (report("pi-2"), "/node-update", 403, 102),
        (report(**{"project-name": "nosuch"}), "/node-update", 404, 102),
        (report(**{"project-url": BETA_URL}), "/node-update", 409, 103),
        (report(status="sleeping"), "/node-update", 400, 400),
    ],
    ids=["wrong-password", "unknown-node", "wrong-token", "not-this-node", "no-project",
         "url-mismatch", "bad-status"],
)  # fmt: skip
async def test_seed_codes_with_and_without_the_agent_header(
    known: Known, make: Make, route: str, status: int, code: int
) -> None:
    """Our agent gets the real HTTP status, the seed's client HTTP 200; both the same `code`."""
    manager = known.manager
    before = await snapshot(manager)
    for seed, http_status in ((False, status), (True, 200)):
        request = dataclasses.replace(make(known), seed=seed)
        got, _, body = await send(manager.url, route, request)
        assert (got, body["code"]) == (http_status, code), body
        assert body["failure-reasoning"], body
    assert await snapshot(manager) == before


async def test_seed_answers_carry_code_zero(known: Known) -> None:
    """Success: `code` 0 on every seed route, with and without the header."""
    manager = known.manager
    for seed in (False, True):
        poll_answer = await send(
            manager.url, "/node-status", dataclasses.replace(poll()(known), seed=seed)
        )
        assert poll_answer[0] == 200 and poll_answer[2]["code"] == 0, poll_answer
        update = await send(
            manager.url,
            "/node-update",
            dataclasses.replace(report(**{"persistent-variables": {"count": 4}})(known), seed=seed),
        )
        assert update[0] == 200 and update[2]["code"] == 0, update
    ctl_answer = await send(manager.url, "/controller", ctl("status")(known))
    assert ctl_answer[0] == 200 and ctl_answer[2]["code"] == 0, ctl_answer


async def test_seed_report_of_empty_variables_keeps_them(known: Known) -> None:
    """A seed node sends {} when its project.variables file is missing: that wipes nothing."""
    manager = known.manager
    request = Request(json=report_body(known, **{"persistent-variables": {}}), seed=True)
    got, _, body = await send(manager.url, "/node-update", request)
    assert (got, body["code"]) == (200, 0), body
    async with manager.client() as ctl:
        assert (await ctl.status())["alpha"]["persistent-variables"] == {"count": 3}


async def test_join_throttle_locks_out_after_five_wrong_passwords(
    manager_log: pytest.LogCaptureFixture, known: Known
) -> None:
    """5 wrong passwords within 60 s lock the address out: the 6th, and the right password, 429."""
    manager = known.manager
    before = await snapshot(manager)
    wrong = Request(json=join_body(**{"syncopate-password": "guess"}))

    for attempt in range(1, 6):
        status, _, body = await send(manager.url, "/node-initialize", wrong)
        assert status == 401, f"attempt {attempt}: {status} {body!r}"

    status, headers, body = await send(manager.url, "/node-initialize", wrong)
    assert_refused("/node-initialize", 429, status, body, ("too many", "try again"))
    retry_after = int(headers["Retry-After"])
    assert 1 <= retry_after <= 61, headers

    right = Request(json=join_body())
    status, headers, body = await send(manager.url, "/node-initialize", right)
    assert_refused("/node-initialize", 429, status, body, ("too many",))
    assert 1 <= int(headers["Retry-After"]) <= 61, headers

    manager.end_lockouts()  # the snapshot's requests come from the locked address too
    assert await snapshot(manager) == before
    assert_no_tracebacks(manager_log)


async def test_a_right_password_does_not_reset_the_failure_count(known: Known) -> None:
    """Failures expire only by the window (DESIGN §15): a right password between wrong ones
    starts nothing again, or a guesser who holds it would guess at full speed."""
    manager = known.manager
    wrong = Request(json=join_body(**{"syncopate-password": "guess"}))
    for _ in range(4):
        status, _, _ = await send(manager.url, "/node-initialize", wrong)
        assert status == 401
    status, _, body = await send(manager.url, "/node-initialize", Request(json=join_body()))
    assert status == 200, body
    status, _, body = await send(manager.url, "/node-initialize", wrong)
    assert status == 401, body  # the 5th wrong one: it locks the address out of joining
    status, _, body = await send(manager.url, "/node-initialize", wrong)
    assert_refused("/node-initialize", 429, status, body, ("too many wrong join passwords",))
