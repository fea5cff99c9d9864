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
from dataclasses import dataclass
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
from syncopate.manager.context import ManagerSettings
from syncopate.manager.join import PASSWORD_FILE, join_command
from syncopate.manager.sql_store import STORE_FILE, SqlStore, open_store
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


async def serve(options: ServeOptions, ready: Callable[[Listening], None] | None = None) -> None:
    """Run the manager until SIGINT or SIGTERM; `ready(listening)` once listening."""
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
    app = make_app(settings, store)
    runner = make_runner(app)
    await runner.setup()
    # A fleet reconnecting at once (after a manager restart, or a burst of command responses)
    # overflows aiohttp's default backlog of 128, and each dropped connect waits 1 s to retry.
    site = web.TCPSite(
        runner, options.host, options.port, ssl_context=context, backlog=LISTEN_BACKLOG
    )
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        store.close()
        raise ConfigError(
            f"cannot listen on {options.host}:{options.port}: {exc.strerror or exc}; "
            "is another manager running? pick another --port (0 picks a free one)"
        ) from None
    port = runner.addresses[0][1]
    scheme = "https" if context else "http"
    host = "127.0.0.1" if options.host in ("0.0.0.0", "", "::") else options.host
    url = f"{scheme}://{host}:{port}"
    join_url = f"{scheme}://{url_host(join_host(options.host))}:{port}"
    if insecure:
        log.warning(
            "plain HTTP on %s (--insecure): join passwords and tokens cross the network in clear",
            options.host,
        )

    controller_path = data_dir / CONTROLLER_FILE
    extra: dict[str, str] = {"url": url, "join-url": join_url}
    if store.get_meta(CONTROLLER_TOKEN_KEY) is None or not controller_path.exists():
        if store.get_meta(CONTROLLER_TOKEN_KEY) is not None:
            log.warning("%s was missing: a new controller token was made", controller_path)
        rotate_controller_token(data_dir, store, url)
    current = json.loads(controller_path.read_text(encoding="utf-8"))
    current.pop("fingerprint", None)  # a pin of an earlier run over HTTPS
    if pin is not None:
        extra["fingerprint"] = pin
    write_private_json(controller_path, {**current, **extra})
    renewal = asyncio.create_task(renew_while_running(own)) if own is not None else None

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready(Listening(url, password, password_source, join_url, pin, insecure))
    try:
        await stop.wait()
    finally:
        if renewal is not None:
            renewal.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
