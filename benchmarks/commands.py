"""Command-channel benchmark: round trip of one command, and a fleet of agents answering many.

    python benchmarks/commands.py                    # 100 agents x 10 commands; under a minute
    python benchmarks/commands.py --agents 10 --per-agent 3 --samples 30
    python benchmarks/commands.py --python /usr/bin/python3   # the agents' python3 for commands

It starts a real manager subprocess on 127.0.0.1 and real node agents (`Agent` objects, all in
one helper process: this file with --agent-host), times `--samples` commands one at a time to
an idle agent (`sh`, then `python`), then `--per-agent` fan-out sends to `--agents` agents;
completion is watched on /events. benchmarks/README.md says how, step by step. It prints
figures next to the target, asserts nothing, and ends every subprocess on exit, Ctrl-C and
SIGTERM included.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from commands_feed import Breakdown, Feed, stamp
from harness.procs import (
    PASSWORD,
    PY,
    Manager,
    Processes,
    raise_open_file_limit,
    run_main,
    start_manager,
    timed_runs,
)
from harness.stats import (
    cpu_seconds,
    ms,
    percentile,
    print_header,
    print_targets,
    spread,
    syncopate_version,
)

from syncopate.client import ManagerClient
from syncopate.node.agent import Agent, AgentSettings
from syncopate.node.commands import python_interpreter

TARGET = 0.020  # seconds: p50 of one command's round trip on loopback
SH_CODE = "echo ok"
PYTHON_CODE = "print(1)"
FLEET_CODE = 'echo "$$ ok"'
COMMAND_TIMEOUT = 30.0  # the commands' run timeout, s
STARTUP_RUNS = 10  # bare interpreter starts timed
AGENT_INTERVAL = 5.0  # the agents' report interval (no projects: nothing to report)
POLL_WAIT = 20.0  # the agents' long-poll hold (the manager caps it at node-timeout / 2)
JOIN_TIMEOUT = 120.0  # s for every agent of a helper to show alive
STOP_TIMEOUT = 60.0  # s for a helper's agents to leave before it is killed
NOFILE = 65536  # open files in the helper: each running command holds a few pipes

log = logging.getLogger("bench.commands")


# --- the helper processes holding the agents -------------------------------------------------
@dataclass
class Helper:
    """A helper process running `names` as Agent objects on one asyncio loop."""

    proc: subprocess.Popen[bytes]
    names: list[str]
    log_file: Path

    def output(self) -> str:
        return self.log_file.read_text(errors="replace")[-3000:]


def start_helper(
    procs: Processes, manager: Manager, folder: Path, names: list[str], env: dict[str, str] | None
) -> Helper:
    """Start a helper process with one agent per name (environment `env`; None: this one's)."""
    folder.mkdir(parents=True)
    (folder / "names.json").write_text(json.dumps(names), encoding="utf-8")
    command = [
        PY,
        str(Path(__file__).resolve()),
        "--agent-host",
        str(folder),
        "--manager",
        manager.url,
    ]
    proc = procs.start(command, folder / "helper.log", env=env, stop_timeout=STOP_TIMEOUT)
    return Helper(proc, names, folder / "helper.log")


def agents_python(tmp: Path, chosen: str | None) -> tuple[str, dict[str, str] | None]:
    """The python the agents will run commands with, and the helpers' environment.

    With `chosen` (--python), a symlink named python3 to it goes first on the helpers' PATH,
    where the agent's `python_interpreter()` finds it; else the agents find what this process
    would (the same environment).
    """
    if chosen is None:
        return python_interpreter(), None
    target = shutil.which(chosen)
    if target is None:
        raise SystemExit(f"--python {chosen}: no such program")
    folder = tmp / "bin"
    folder.mkdir()
    (folder / "python3").symlink_to(Path(target).absolute())
    env = dict(os.environ, PATH=f"{folder}{os.pathsep}{os.environ.get('PATH', '')}")
    found = shutil.which("python3", path=env["PATH"])
    assert found is not None
    return found, env


async def wait_alive(client: ManagerClient, helper: Helper, settle: float = 0.5) -> float:
    """Wait until the manager lists every agent of `helper` alive; the seconds it took."""
    started = time.perf_counter()
    deadline = time.monotonic() + JOIN_TIMEOUT
    while time.monotonic() < deadline:
        if helper.proc.poll() is not None:
            raise RuntimeError(f"the agents' helper exited; its output:\n{helper.output()}")
        nodes = await client.nodes()
        if all(nodes.get(name, {}).get("status") == "alive" for name in helper.names):
            took = time.perf_counter() - started
            # Each agent's first poll is answered at once; the next one is the long poll.
            await asyncio.sleep(settle)
            return took
        await asyncio.sleep(0.2)
    raise RuntimeError(f"agents did not all join in {JOIN_TIMEOUT:g} s:\n{helper.output()}")


async def stop_helper(procs: Processes, helper: Helper) -> float:
    """Stop a helper (its agents leave the manager); the seconds it took."""
    started = time.perf_counter()
    await asyncio.to_thread(procs.stop, [helper.proc])
    return time.perf_counter() - started


async def host_agents(folder: Path, manager: str) -> None:
    """In the helper: one Agent per name in `folder/names.json` until SIGTERM or SIGINT; then
    they leave."""
    names: list[str] = json.loads((folder / "names.json").read_text(encoding="utf-8"))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    agents = [
        Agent(
            AgentSettings(
                manager=manager,
                data_dir=folder / name,
                password=PASSWORD,
                name=name,
                interval=AGENT_INTERVAL,
                poll_wait=POLL_WAIT,
            )
        )
        for name in names
    ]
    results = await asyncio.gather(*(agent.run(stop) for agent in agents), return_exceptions=True)
    for agent, result in zip(agents, results, strict=True):
        if isinstance(result, BaseException):
            log.error("agent %s ended with %r", agent.settings.name, result)


# --- 1. round trip, one command at a time ---------------------------------------------------------
@dataclass
class RoundTrips:
    label: str
    times: Breakdown = field(default_factory=Breakdown)
    sends: list[float] = field(default_factory=list)  # command-send answered, client side, s
    missed: int = 0


async def round_trips(
    client: ManagerClient, feed: Feed, node: str, code: str, interpreter: str, samples: int
) -> RoundTrips:
    """`samples` commands one after another; the next is sent once the last is responded."""
    result = RoundTrips(f"{interpreter}: {code}")
    for _ in range(samples):
        started = time.perf_counter()
        sent = await client.command_send([node], code, interpreter=interpreter, timeout=10)
        result.sends.append(time.perf_counter() - started)
        command_id = int(next(iter(sent)))
        if await feed.wait_responded({command_id}, time.monotonic() + 15):
            result.missed += 1
        else:
            result.times.add(feed.commands[command_id])
    return result


def print_round_trips(result: RoundTrips) -> None:
    print(f"  {result.label}")
    result.times.print("    ")
    print(f"    command-send answered (client side) {spread(result.sends)}")
    if result.missed or result.times.non_zero:
        print(
            f"    NOT responded within 15 s: {result.missed}; "
            f"non-zero exit: {result.times.non_zero}"
        )


# --- 2. a fleet answering commands ----------------------------------------------------------------
@dataclass
class FleetResult:
    agents: int
    sent: int = 0
    send_seconds: float = 0.0  # all fan-out sends, client side
    wall: float = 0.0  # first send to the feed showing the last one responded, client side
    span: float = 0.0  # manager stamps: first created to last responded
    times: Breakdown = field(default_factory=Breakdown)
    not_completed: int = 0
    manager_cpu: float = 0.0  # CPU seconds during `wall`
    helper_cpu: float = 0.0  # the helper process's own (all its threads)
    commands_cpu: float = 0.0  # the programs it ran (its reaped children)


async def run_fleet(
    client: ManagerClient, feed: Feed, manager: Manager, helper: Helper, args: argparse.Namespace
) -> FleetResult:
    """`--per-agent` fan-out sends to every agent, back to back; wait for every response."""
    result = FleetResult(len(helper.names))
    ids: set[int] = set()
    manager_cpu = cpu_seconds(manager.proc.pid)
    helper_cpu = cpu_seconds(helper.proc.pid)
    helper_all = cpu_seconds(helper.proc.pid, children=True)
    started = time.perf_counter()
    for _ in range(args.per_agent):
        sent = await client.command_send(
            helper.names, FLEET_CODE, interpreter="sh", timeout=COMMAND_TIMEOUT
        )
        ids.update(int(key) for key in sent)
    result.send_seconds = time.perf_counter() - started
    result.sent = len(ids)
    left = await feed.wait_responded(ids, time.monotonic() + args.deadline)
    result.wall = time.perf_counter() - started
    result.manager_cpu = cpu_seconds(manager.proc.pid) - manager_cpu
    result.helper_cpu = cpu_seconds(helper.proc.pid) - helper_cpu
    result.commands_cpu = cpu_seconds(helper.proc.pid, children=True) - helper_all
    result.commands_cpu -= result.helper_cpu
    result.not_completed = len(left)
    done = [feed.commands[i] for i in sorted(ids - left)]
    for info in done:
        result.times.add(info)
    if done:
        first = min(stamp(info["created"]) for info in done)
        result.span = max(stamp(info["responded"]) for info in done) - first
    return result


def print_fleet(result: FleetResult, per_agent: int) -> None:
    responded = len(result.times.trips)
    rate = responded / result.span if result.span > 0 else float("nan")
    print(
        f"  {result.sent} commands sent ({per_agent} fan-out sends to {result.agents} agents) "
        f"in {result.send_seconds:.2f} s (client side)"
    )
    print(
        f"  all responded {result.wall:.2f} s after the first send (client side, seen on "
        f"/events); manager stamps, first created -> last responded: {result.span:.2f} s"
    )
    print(f"  throughput: {rate:.0f} commands/s ({responded} responded over the manager's span)")
    result.times.print("  ")
    print(
        f"  CPU over the run ({result.wall:.2f} s wall): manager {result.manager_cpu:.2f} s "
        f"({ms(result.manager_cpu / max(responded, 1))} per command); the agents' helper "
        f"{result.helper_cpu:.2f} s ({ms(result.helper_cpu / max(responded, 1))} per command), "
        f"the programs it ran {result.commands_cpu:.2f} s"
    )
    print(f"  not completed: {result.not_completed}; non-zero exit: {result.times.non_zero}")


# --- main -----------------------------------------------------------------------------------------
async def run(args: argparse.Namespace, tmp: Path, procs: Processes) -> None:
    interpreter, env = agents_python(tmp, args.python)
    print_header("command-channel", f"syncopate {syncopate_version()}")
    real = os.path.realpath(interpreter)
    shown = interpreter if real == interpreter else f"{interpreter} -> {real}"
    shim = "  (a pyenv shim: slow to start)" if "shims" in Path(interpreter).parts else ""
    print(f"  the agents' python for commands: {shown}{shim}")
    print(f"  --agents {args.agents} --per-agent {args.per_agent} --samples {args.samples}")
    python_start = timed_runs([interpreter, "-"], STARTUP_RUNS, input=b"pass")
    no_site_start = timed_runs([interpreter, "-S", "-"], STARTUP_RUNS, input=b"pass")
    sh_start = timed_runs(["/bin/sh", "-c", "true"], STARTUP_RUNS)
    manager = start_manager(procs, tmp / "manager", "--log-level", "warning")
    print(f"\nsetup: manager pid {manager.proc.pid} at {manager.url}")
    async with ManagerClient(manager.url, manager.token) as client:
        feed = Feed(client)
        await feed.start()
        try:
            solo = start_helper(procs, manager, tmp / "solo", ["cmd-solo"], env)
            took = await wait_alive(client, solo)
            print(f"  one agent (helper pid {solo.proc.pid}) alive after {took:.1f} s")
            print(f"\n1. round trip, {args.samples} commands one at a time to an idle agent")
            sh = await round_trips(client, feed, "cmd-solo", SH_CODE, "sh", args.samples)
            print_round_trips(sh)
            py = await round_trips(client, feed, "cmd-solo", PYTHON_CODE, "python", args.samples)
            print_round_trips(py)
            print(
                f"  bare start-up, p50 of {STARTUP_RUNS} runs: `echo pass | {interpreter} -` "
                f"{ms(statistics.median(python_start))} (with -S, no site-packages hooks: "
                f"{ms(statistics.median(no_site_start))}); `/bin/sh -c true` "
                f"{ms(statistics.median(sh_start))}"
            )
            await stop_helper(procs, solo)

            names = [f"cmd-{i:04d}" for i in range(1, args.agents + 1)]
            print(f"\n2. fleet: {args.agents} agents in one helper process")
            fleet_helper = start_helper(procs, manager, tmp / "fleet", names, env)
            took = await wait_alive(client, fleet_helper, settle=2.0)
            print(
                f"  {args.agents} agents (helper pid {fleet_helper.proc.pid}) alive after "
                f"{took:.1f} s"
            )
            print_fleet(await run_fleet(client, feed, manager, fleet_helper, args), args.per_agent)
            took = await stop_helper(procs, fleet_helper)
            print(f"  the {args.agents} agents left in {took:.1f} s")
        finally:
            await feed.stop()
    rows = []
    for result in (sh, py):
        p50 = percentile(result.times.trips, 0.5) if not result.missed else float("inf")
        rows.append(
            (f"round trip {result.label}, p50 <= {TARGET * 1000:.0f} ms", ms(p50), p50 <= TARGET)
        )
    title = "\ntargets (the manager's responded - created, one command at a time, idle agent)"
    print_targets(title, rows, width=52)
    print(
        f"  (of the python round trip, {ms(statistics.median(python_start))} is the interpreter's "
        f"bare start-up; the agent's duration p50 is {ms(percentile(py.times.durations, 0.5))})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=100, help="agents in the fleet part")
    parser.add_argument("--per-agent", type=int, default=10, help="commands sent to each agent")
    parser.add_argument("--samples", type=int, default=200, help="round trips per interpreter")
    parser.add_argument(
        "--python",
        metavar="PATH",
        help="the python3 the agents run python commands with (default: python3 on PATH)",
    )
    parser.add_argument(
        "--deadline", type=float, default=90.0, help="s to wait for the fleet's responses"
    )
    parser.add_argument("--agent-host", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--manager", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.agents < 1 or args.per_agent < 1 or args.samples < 1:
        parser.error("--agents, --per-agent and --samples must be at least 1")
    if args.agent_host:  # the helper process
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
        raise_open_file_limit(NOFILE)
        asyncio.run(host_agents(Path(args.agent_host), args.manager))
        return 0
    return run_main("syncopate-commands-bench-", lambda tmp, procs: run(args, tmp, procs))


if __name__ == "__main__":
    sys.exit(main())
