"""Start the manager: data dir, join password, controller token, TLS, and the listening socket.

TLS: the given --tls-cert/--tls-key, else beyond loopback (or with --tls) a certificate of the
manager's own (`tls.py`, renewed while it runs), else plain HTTP (loopback, or --insecure).
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import logging
import signal
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from aiohttp import web

from syncopate import validate
from syncopate.errors import ConfigError
from syncopate.manager.app import make_app, make_runner
from syncopate.manager.auth import (
    CONTROLLER_TOKEN_KEY,
    CONTROLLER_USER_KEY,
    hash_secret,
    new_password,
    new_token,
)
from syncopate.manager.context import STATE, ManagerSettings
from syncopate.manager.forward import forward_proof
from syncopate.manager.join import PASSWORD_FILE, join_command
from syncopate.manager.leadership import Leadership
from syncopate.manager.pg_store import PgStore
from syncopate.manager.shared_serve import (
    LOST_LEAD_EXIT,
    listening_socket,
    watch_leadership,
)
from syncopate.manager.sql_store import STORE_FILE, SqlStore, open_store
from syncopate.manager.standby import stand_by
from syncopate.manager.tls import (
    RENEW_CHECK_INTERVAL,
    OwnCertificate,
    join_host,
    needs_tls,
    url_host,
)
from syncopate.manager.token_book import MAIN_CREATED_KEY
from syncopate.manager.tokens import make_token
from syncopate.paths import write_private, write_private_json
from syncopate.pins import key_pin
from syncopate.roles import Role

log = logging.getLogger("syncopate.manager")

LISTEN_BACKLOG = 4096  # the kernel caps it at net.core.somaxconn
CONTROLLER_FILE = "controller.json"


@dataclass(frozen=True)
class ServeOptions:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8470
    password: str | None = None
    node_timeout: float = 15.0
    tls_cert: Path | None = None
    tls_key: Path | None = None
    balance: bool = True
    tls: bool = False  # HTTPS with the manager's own certificate even on loopback
    insecure: bool = False  # plain HTTP beyond loopback
    store: str | None = None  # postgresql://...; None: SQLite in the data dir


@dataclass(frozen=True)
class Listening:
    """What `serve` tells its caller once it listens."""

    url: str  # for this machine's CLI (127.0.0.1 when listening on every address)
    password: str
    password_source: str  # "given", or where the generated one is kept
    join_url: str  # the URL a node elsewhere reaches
    pin: str | None  # sha256 of the certificate's public key; None over plain HTTP
    insecure: bool  # plain HTTP beyond loopback

    def join_command(self) -> str:
        """The line a node runs; a given password is not repeated, only its place shown."""
        shown = self.password if self.password_source != "given" else "<password>"
        return join_command(self.join_url, self.pin, shown)


def resolve_password(data_dir: Path, given: str | None) -> tuple[str, str]:
    """The join password and where it came from; generated once and kept when not given."""
    if given:
        return given, "given"
    path = data_dir / PASSWORD_FILE
    if path.exists():
        return path.read_text(encoding="utf-8").strip(), str(path)
    password = new_password()
    write_private(path, password + "\n")
    return password, f"generated, kept in {path}"


def certificate_fingerprint(cert_file: Path) -> str:
    """The pin of the first certificate in a PEM file: `sha256:<hex>` of its public key."""
    pem = cert_file.read_text(encoding="ascii")
    start = pem.index("-----BEGIN CERTIFICATE-----")
    end = pem.index("-----END CERTIFICATE-----", start) + len("-----END CERTIFICATE-----")
    return key_pin(ssl.PEM_cert_to_DER_cert(pem[start:end]))


def rotate_controller_token(data_dir: Path, store: SqlStore, url: str | None = None) -> str:
    """Make a new controller token: its hash into the store, the token into controller.json."""
    token = new_token()
    with store.transaction(durable=True):
        store.set_meta(CONTROLLER_TOKEN_KEY, hash_secret(token))
        store.set_meta(MAIN_CREATED_KEY, repr(time.time()))
        if store.get_meta(CONTROLLER_USER_KEY) is None:
            store.set_meta(CONTROLLER_USER_KEY, local_user())
    path = data_dir / CONTROLLER_FILE
    previous: dict[str, str] = {}
    if path.exists():
        with contextlib.suppress(ValueError, OSError):
            previous = json.loads(path.read_text(encoding="utf-8"))
    data = {**previous, "token": token}
    if url:
        data["url"] = url
    write_private_json(path, data)
    return token


def local_user() -> str:
    """Who runs this manager: the name behind its main controller token."""
    try:
        name = getpass.getuser()
    except (OSError, KeyError):
        return "admin"
    try:
        return validate.check_name(name, "user")
    except ValueError:
        return "admin"


def user_token(store: SqlStore, user: str, role: Role | None = None) -> str:
    """Make a controller token of a person's own (replacing theirs); commands record the name.

    Its role: `role`, else that of the token it replaces, else operator (manager/tokens.py)."""
    return make_token(store, user, role)[0]


def tls_context(cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise ConfigError("HTTPS needs both --tls-cert and --tls-key")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the TLS certificate or key: {exc}") from None
    return context


def server_tls(
    options: ServeOptions,
) -> tuple[ssl.SSLContext | None, str | None, OwnCertificate | None]:
    """(context, pin, own certificate) the manager serves with: see the module's docstring."""
    given = options.tls_cert is not None or options.tls_key is not None
    if options.insecure and (given or options.tls):
        raise ConfigError("--insecure serves plain HTTP: drop it, or --tls/--tls-cert")
    if given:
        context = tls_context(options.tls_cert, options.tls_key)
        assert options.tls_cert is not None  # tls_context checked both are given
        return context, certificate_fingerprint(options.tls_cert), None
    if not options.tls and (options.insecure or not needs_tls(options.host)):
        return None, None, None
    own = OwnCertificate(options.data_dir / "tls", options.host)
    try:
        context = own.context()
    except (OSError, ValueError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot make or load the TLS certificate in {own.dir}: {exc}") from None
    return context, own.pin(), own


async def renew_while_running(own: OwnCertificate, interval: float = RENEW_CHECK_INTERVAL) -> None:
    """Check the certificate every `interval` seconds; renew it when due (same key)."""
    while True:
        await asyncio.sleep(interval)
        try:
            own.renew_if_due()
        except (OSError, ValueError, ssl.SSLError):
            log.exception("could not renew the TLS certificate in %s", own.dir)


async def serve(options: ServeOptions, ready: Callable[[Listening], None] | None = None) -> int:
    """Run the manager until SIGINT or SIGTERM; `ready(listening)` once listening. The exit
    status: 0, or LOST_LEAD_EXIT for a leader that lost its leadership (shared_serve.py)."""
    data_dir = options.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    password, password_source = resolve_password(data_dir, options.password)
    context, pin, own = server_tls(options)
    insecure = context is None and needs_tls(options.host)
    try:
        store = open_store(data_dir, options.store)
    except (ValueError, RuntimeError) as exc:
        raise ConfigError(str(exc)) from None
    if options.store is not None:
        write_private_json(data_dir / STORE_FILE, {"store": options.store})
    settings = ManagerSettings(
        data_dir=data_dir,
        password=password,
        node_timeout=options.node_timeout,
        balance=options.balance,
        tls=context is not None,
        insecure=insecure,
        settle_heap=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        tls = (context, pin, own)
        return await _serve(options, ready, store, settings, tls, password_source, stop)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _serve(
    options: ServeOptions,
    ready: Callable[[Listening], None] | None,
    store: SqlStore,
    settings: ManagerSettings,
    tls: tuple[ssl.SSLContext | None, str | None, OwnCertificate | None],
    password_source: str,
    stop: asyncio.Event,
) -> int:
    context, pin, own = tls
    shared = isinstance(store, PgStore)
    # On a shared database the socket is bound first: the URL it serves is known before it
    # leads, and it serves as a standby until then (shared_serve.py).
    sock = listening_socket(options.host, options.port, LISTEN_BACKLOG) if shared else None
    port = sock.getsockname()[1] if sock is not None else options.port
    scheme = "https" if context else "http"
    host = "127.0.0.1" if options.host in ("0.0.0.0", "", "::") else options.host
    join_url = f"{scheme}://{url_host(join_host(options.host))}:{port}"
    listening = Listening(
        f"{scheme}://{host}:{port}",
        settings.password,
        password_source,
        join_url,
        pin,
        settings.insecure,
    )
    told = False

    def tell() -> None:
        nonlocal told
        if ready is not None and not told:
            ready(listening)
        told = True

    leadership = None
    if isinstance(store, PgStore):
        assert sock is not None
        # This machine's CLI talks to this manager, whichever its role (a standby forwards).
        keep_controller_file(options.data_dir, store, listening, shared)
        leadership = Leadership(store, join_url)
        led = leadership.try_lead() or await stand_by(
            store, leadership, sock, context, stop, tell, pin
        )
        if not led:
            sock.close()
            store.close()
            return 0
        leadership.heartbeat()
    app = make_app(settings, store)
    app[STATE].leadership = leadership
    if leadership is not None:
        app[STATE].forward_proof = forward_proof(store.secrets)
    runner = make_runner(app)
    await runner.setup()
    # A fleet reconnecting at once (after a manager restart, or a burst of command responses)
    # overflows aiohttp's default backlog of 128, and each dropped connect waits 1 s to retry.
    site: web.BaseSite
    if sock is not None:
        site = web.SockSite(runner, sock, ssl_context=context)
    else:
        site = web.TCPSite(
            runner, options.host, options.port, ssl_context=context, backlog=LISTEN_BACKLOG
        )
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(
            f"cannot listen on {options.host}:{options.port}: {exc.strerror or exc}; "
            "is another manager running? pick another --port (0 picks a free one)"
        ) from None
    if sock is None:
        port = runner.addresses[0][1]
        listening = replace(
            listening,
            url=f"{scheme}://{host}:{port}",
            join_url=f"{scheme}://{url_host(join_host(options.host))}:{port}",
        )
    if settings.insecure:
        log.warning(
            "plain HTTP on %s (--insecure): join passwords and tokens cross the network in clear",
            options.host,
        )
    if not shared:
        keep_controller_file(options.data_dir, store, listening, shared)
    renewal = asyncio.create_task(renew_while_running(own)) if own is not None else None
    watchdog = (
        asyncio.create_task(watch_leadership(leadership, stop)) if leadership is not None else None
    )
    tell()
    try:
        await stop.wait()
    finally:
        if renewal is not None:
            renewal.cancel()
        if watchdog is not None:
            watchdog.cancel()
        await runner.cleanup()
    if leadership is not None and leadership.lost:
        return LOST_LEAD_EXIT
    return 0


def keep_controller_file(data_dir: Path, store: SqlStore, at: Listening, shared: bool) -> None:
    """controller.json for this machine's CLI: this run's URLs (and pin), the token kept.

    A missing file (or token) means a new controller token, except on a shared database that
    has one: a new one would shut out the other managers' controller.json; there the file is
    left out, and the other manager's file (or `manager token --user NAME`) gives one."""
    controller_path = data_dir / CONTROLLER_FILE
    extra: dict[str, str] = {"url": at.url, "join-url": at.join_url}
    has_token = store.get_meta(CONTROLLER_TOKEN_KEY) is not None
    if not has_token or not controller_path.exists():
        if has_token and shared:
            log.warning(
                "%s is missing and the database's other managers have a controller token: copy "
                "their controller.json here, or make one: syncopate manager token --user NAME",
                controller_path,
            )
            return
        if has_token:
            log.warning("%s was missing: a new controller token was made", controller_path)
        rotate_controller_token(data_dir, store, at.url)
    current = json.loads(controller_path.read_text(encoding="utf-8"))
    current.pop("fingerprint", None)  # a pin of an earlier run over HTTPS
    if at.pin is not None:
        extra["fingerprint"] = at.pin
    write_private_json(controller_path, {**current, **extra})
