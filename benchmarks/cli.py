"""CLI benchmark: how long `syncopate --help` and `syncopate project list` take, start to end.

    python benchmarks/cli.py                 # 20 runs each, about 20 s
    python benchmarks/cli.py --runs 50 --projects 200

Start-up time matters on a Raspberry Pi: every command is a fresh interpreter. This starts a
real manager subprocess on 127.0.0.1 in a temporary data dir, adds `--projects` projects (no
node joins, so they stay unschedulable: the list still carries every field), then times whole
runs of the `syncopate` console script (or `python -m syncopate` when the script is not on
PATH) as a person's shell would start them, beside `python -c pass` as the floor. It prints
medians next to the targets and asserts nothing.

Bytecode: the runs may write and then read Python's bytecode cache, as an installed syncopate
has it (pip compiles it at install time) and as Python does by default. With
PYTHONDONTWRITEBYTECODE set (this sandbox sets it), a checkout would compile every one of its
modules again on every run, about 40 ms of `project list` that no installed copy pays; the
first run, included in the figures, still does.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
from pathlib import Path

from harness.procs import Processes, run_main, start_manager, timed_runs
from harness.stats import percentile, print_header, print_targets, syncopate_version

from syncopate.client import ManagerClient

# Seconds, median of whole runs. `--help` imports and builds every command to list them.
TARGETS = {"syncopate --help": 0.300, "syncopate project list": 0.250}


def command_prefix() -> list[str]:
    script = Path(sys.executable).parent / "syncopate"
    if script.exists():
        return [str(script)]
    found = shutil.which("syncopate")
    return [found] if found else [sys.executable, "-m", "syncopate"]


async def run(args: argparse.Namespace, tmp: Path, procs: Processes) -> None:
    prefix = command_prefix()
    print_header("CLI start-up", f"syncopate {syncopate_version()}")
    print(f"  command: {' '.join(prefix)} ...; {args.runs} runs each, the first one included")
    manager = start_manager(procs, tmp / "manager")
    async with ManagerClient(manager.url, manager.token) as client:
        for i in range(args.projects):
            await client.add(
                f"bench-{i:04d}", "https://example.invalid/x.git", {"n": i}, command="true"
            )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCOPATE_")}
    if env.pop("PYTHONDONTWRITEBYTECODE", None):
        print("  PYTHONDONTWRITEBYTECODE unset for the runs: bytecode cached as installed")
    env |= {"SYNCOPATE_MANAGER": manager.url, "SYNCOPATE_TOKEN": manager.token, "COLUMNS": "120"}
    results = {
        # The floor every command pays: an interpreter that starts and does nothing.
        "python -c pass (baseline)": timed_runs([sys.executable, "-c", "pass"], args.runs, env=env),
        "syncopate --help": timed_runs([*prefix, "--help"], args.runs, env=env),
        f"syncopate project list ({args.projects} projects)": timed_runs(
            [*prefix, "project", "list"], args.runs, env=env
        ),
        "syncopate project list --json": timed_runs(
            [*prefix, "project", "list", "--json"], args.runs, env=env
        ),
    }
    procs.stop([manager.proc])
    print(f"\n  {'command':<44} {'median':>8} {'p90':>8} {'max':>8}")
    for name, times in results.items():
        print(
            f"  {name:<44} {statistics.median(times) * 1000:>6.0f}ms "
            f"{percentile(times, 0.9) * 1000:>6.0f}ms {max(times) * 1000:>6.0f}ms"
        )
    rows = []
    for name, times in list(results.items())[1:3]:
        median = statistics.median(times)
        target = next(t for prefix, t in TARGETS.items() if name.startswith(prefix))
        rows.append(
            (f"{name} <= {target * 1000:.0f} ms", f"{median * 1000:.0f} ms", median <= target)
        )
    print_targets("\ntargets (median wall time of a whole run)", rows, width=62, value=8)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--projects", type=int, default=50)
    args = parser.parse_args()
    return run_main("syncopate-cli-bench-", lambda tmp, procs: run(args, tmp, procs))


if __name__ == "__main__":
    sys.exit(main())
