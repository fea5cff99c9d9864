"""What idle agents cost the manager: requests per node per report interval, by route, and the
manager's CPU for them (issue 18: an idle node should cost one request per interval).

    python benchmarks/agent_requests.py                       # 3 agents, 6 projects, 20 s
    python benchmarks/agent_requests.py --agents 5 --projects 20 --interval 1 --window 30

It starts a real manager and real `syncopate node join` agents as subprocesses on 127.0.0.1,
adds sleeping projects (spread by placement), waits until all run and a few intervals more,
then counts the node routes' requests the manager answered (its /metrics) over `--window`
seconds, with the manager's CPU seconds (psutil). To compare with another version of
Syncopate, run it with PYTHONPATH pointing at that checkout (the subprocesses inherit it).
Prints figures, asserts nothing, ends every subprocess on exit.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
import urllib.request
from pathlib import Path

import psutil
from agent_nodes import OPENER, Controller, make_repo, project_command
from harness.procs import PASSWORD, PY, Processes, run_main, start_manager

ROUTE = re.compile(r'syncopate_http_requests_total\{route="([^"]+)",status="(\d+)"\} (\d+)')


def counts(manager: Controller) -> dict[str, int]:
    """Requests the manager answered, by route (every status together)."""
    with OPENER.open(urllib.request.Request(f"{manager.url}/metrics"), timeout=10) as response:
        text = response.read().decode()
    found: dict[str, int] = {}
    for route, _status, count in ROUTE.findall(text):
        found[route] = found.get(route, 0) + int(count)
    return found


def start_agents(
    procs: Processes, manager: Controller, folder: Path, count: int, interval: float
) -> None:
    for index in range(count):
        name = f"pi-{index + 1}"
        data_dir = folder / name
        data_dir.mkdir(parents=True)
        command = [
            *(PY, "-m", "syncopate", "node", "join", manager.url, "--password", PASSWORD),
            *("--name", name, "--data-dir", str(data_dir)),
            *("--interval", f"{interval:g}", "--sync-interval", "60"),
        ]
        procs.start(command, folder / f"{name}.log")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        nodes = manager.ask("nodes")["nodes"]
        if sum(1 for n in nodes.values() if n["status"] == "alive") == count:
            return
        time.sleep(0.1)
    raise RuntimeError("the agents did not all join")


def body(tmp: Path, procs: Processes) -> None:
    args = parse_args()
    started = start_manager(procs, tmp / "manager", "--node-timeout", "30")
    manager = Controller(started.proc, started.url, started.token, 30.0)
    start_agents(procs, manager, tmp / "nodes", args.agents, args.interval)
    url = make_repo(tmp / "repo")
    for index in range(args.projects):
        project = {"name": f"p{index}", "url": url, "command": project_command(f"p{index}")}
        manager.ask("add", project=project, initial_variables={})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        statuses = [p["status"] for p in manager.ask("status")["projects"].values()]
        if statuses.count("running") == args.projects:
            break
        time.sleep(0.2)
    else:
        raise RuntimeError(f"not all projects ran: {statuses}")
    time.sleep(3 * args.interval)  # the start-up's own reports are sent

    server = psutil.Process(manager.proc.pid)
    before, cpu_before, began = counts(manager), server.cpu_times(), time.monotonic()
    time.sleep(args.window)
    after, cpu_after, ended = counts(manager), server.cpu_times(), time.monotonic()
    node_intervals = args.agents * (ended - began) / args.interval
    cpu = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)

    import syncopate  # the version the subprocesses run (PYTHONPATH decides)

    print(f"syncopate from {Path(syncopate.__file__).parent}")
    print(
        f"{args.agents} agents, {args.projects} projects, interval {args.interval:g} s, "
        f"window {ended - began:.1f} s ({node_intervals:.0f} node-intervals)"
    )
    total = 0
    per = "per node-interval"
    for route in ("/node-status", "/node-update", "/node-command-result"):
        made = after.get(route, 0) - before.get(route, 0)
        total += made
        print(f"  {route:22} {made:6d} requests  {made / node_intervals:6.2f} {per}")
    print(f"  {'node routes':22} {total:6d} requests  {total / node_intervals:6.2f} {per}")
    print(f"  manager CPU {cpu * 1000:.0f} ms: {cpu * 1e6 / node_intervals:.0f} µs {per}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int, default=3)
    parser.add_argument("--projects", type=int, default=6)
    parser.add_argument("--interval", type=float, default=1.0, help="the agents' --interval")
    parser.add_argument("--window", type=float, default=20.0, help="seconds measured")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(run_main("syncopate-agent-requests-", body))
