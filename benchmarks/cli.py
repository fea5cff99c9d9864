"""CLI benchmark: how long `syncopate --help` and `syncopate project list` take, start to end.

    python benchmarks/cli.py                 # 20 runs each, about 20 s
    python benchmarks/cli.py --runs 50 --projects 200

Start-up time matters on a Raspberry Pi: every command is a fresh interpreter. This starts a
real manager subprocess on 127.0.0.1 in a temporary data dir, adds `--projects` projects (no
node joins, so they stay unschedulable: the list still carries every field), then times whole
runs of the `syncopate` console script (or `python -m syncopate` when the script is not on
PATH) as a person's shell would start them. It prints medians next to the 400 ms target and
asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import percentile, syncopate_version, terminate_on_sigterm, verdict

from syncopate.client import ManagerClient

TARGET = 0.400  # seconds, median
LISTENING = re.compile(r"Syncopate manager listening on (https?://\S+)")


def command_prefix() -> list[str]:
    script = Path(sys.executable).parent / "syncopate"
    if script.exists():
        return [str(script)]
    found = shutil.which("syncopate")
    return [found] if found else [sys.executable, "-m", "syncopate"]


def start_manager(data_dir: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "syncopate", "manager", "serve", "--host", "127.0.0.1",
         "--port", "0", "--data-dir", str(data_dir), "--password", "bench"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        found = LISTENING.search(line)
        if found:
            return proc, found.group(1)
    raise SystemExit(f"the manager exited ({proc.wait()}) before listening")


async def add_projects(url: str, token: str, count: int, repo_url: str) -> None:
    async with ManagerClient(url, token) as client:
        for i in range(count):
            await client.add(f"bench-{i:04d}", repo_url, {"n": i}, command="true")


def time_runs(argv: list[str], env: dict[str, str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--projects", type=int, default=50)
    args = parser.parse_args()
    prefix = command_prefix()
    print("Syncopate CLI start-up benchmark (traffic on 127.0.0.1 only)")
    print(f"  machine: {os.cpu_count()} CPUs; Python {sys.version.split()[0]}; "
          f"syncopate {syncopate_version()}")  # fmt: skip
    print(f"  command: {' '.join(prefix)} ...; {args.runs} runs each, the first one included")
    with tempfile.TemporaryDirectory(prefix="syncopate-cli-bench-") as scratch, \
            terminate_on_sigterm():  # fmt: skip
        data_dir = Path(scratch) / "manager"
        proc, url = start_manager(data_dir)
        try:
            token = json.loads((data_dir / "controller.json").read_text())["token"]
            asyncio.run(add_projects(url, token, args.projects, "https://example.invalid/x.git"))
            env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCOPATE_")}
            env |= {"SYNCOPATE_MANAGER": url, "SYNCOPATE_TOKEN": token, "COLUMNS": "120"}
            results = {
                "syncopate --help": time_runs([*prefix, "--help"], env, args.runs),
                f"syncopate project list ({args.projects} projects)": time_runs(
                    [*prefix, "project", "list"], env, args.runs
                ),
                "syncopate project list --json": time_runs(
                    [*prefix, "project", "list", "--json"], env, args.runs
                ),
            }
        finally:
            proc.terminate()
            proc.wait(10)
    print()
    print(f"  {'command':<44} {'median':>8} {'p90':>8} {'max':>8}")
    for name, times in results.items():
        print(
            f"  {name:<44} {statistics.median(times) * 1000:>6.0f}ms "
            f"{percentile(times, 0.9) * 1000:>6.0f}ms {max(times) * 1000:>6.0f}ms"
        )
    print()
    print("targets (median wall time of a whole run)")
    for name, times in list(results.items())[:2]:
        median = statistics.median(times)
        label = f"{name} <= {TARGET * 1000:.0f} ms"
        print(f"  {label:<62} measured {median * 1000:>5.0f} ms  {verdict(median <= TARGET)}")


if __name__ == "__main__":
    main()
