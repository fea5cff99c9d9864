"""The fleet benchmark's reference: a bare aiohttp server (a subprocess, `fleet.py
--bare-server`) answering the simulated nodes' requests as cheaply as aiohttp allows."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time
from pathlib import Path

from aiohttp import web
from harness.procs import HOST, PY, Processes, wait_for_line

LISTENING = r"bare server listening on (\S+)"


def serve_bare(hold_cap: float) -> None:
    """POST anything: the JSON body is parsed, a small JSON comes back. A body with `wait` is
    held that long, at most `hold_cap` s (the manager's longest hold), and the answer says how
    long in `held`, as the manager's does: connections and concurrency match the agent
    pattern's."""

    async def handle(request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        answer = {"result": "success", "name": body.get("name", "")}
        wait = body.get("wait")
        if isinstance(wait, int | float) and wait > 0:
            began = time.monotonic()
            await asyncio.sleep(min(float(wait), hold_cap))
            answer["held"] = time.monotonic() - began
        return web.json_response(answer)

    app = web.Application()
    app.router.add_post("/{route:.*}", handle)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    print(f"bare server listening on http://{HOST}:{sock.getsockname()[1]}", flush=True)
    web.run_app(app, sock=sock, access_log=None, print=None, backlog=4096)


def start_bare(procs: Processes, log: Path, hold_cap: float) -> tuple[subprocess.Popen[bytes], str]:
    """Start the bare server; its process and URL."""
    script = str(Path(__file__).resolve().parent / "fleet.py")
    command = [PY, script, "--bare-server", "--hold-cap", f"{hold_cap:g}"]
    proc = procs.start(command, log)
    return proc, wait_for_line(proc, log, LISTENING, 30)
