"""`python -m syncopate.node`: the agent's own light entry point.

`syncopate node join` parses its options with Typer and then execs this, so the long-running
agent does not carry the CLI's imports (Typer converts options through pydantic: ~10 MB of
resident memory on a Raspberry Pi, for nothing). The password travels in SYNCOPATE_PASSWORD,
not on the command line where `ps` would show it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from syncopate.errors import SyncopateError
from syncopate.node.agent import Agent, AgentSettings
from syncopate.paths import default_node_dir


def parse(argv: list[str]) -> tuple[AgentSettings, str]:
    """Agent settings and the log level from the command line (and SYNCOPATE_PASSWORD)."""
    parser = argparse.ArgumentParser(prog="syncopate node join")
    parser.add_argument("url")
    parser.add_argument("--name", default="")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--sync-interval", type=float, default=60.0)
    parser.add_argument("--ca-file", default=None)
    parser.add_argument("--fingerprint", default=None)
    parser.add_argument("--label", action="append", default=[])
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    labels = {}
    for item in args.label:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"label {item!r} is not KEY=VALUE")
        labels[key] = value
    settings = AgentSettings(
        manager=args.url.rstrip("/"),
        data_dir=(args.data_dir or default_node_dir()).expanduser(),
        password=os.environ.get("SYNCOPATE_PASSWORD") or None,
        name=args.name,
        interval=args.interval,
        sync_interval=args.sync_interval,
        ca_file=args.ca_file,
        fingerprint=args.fingerprint,
        labels=labels,
    )
    return settings, args.log_level


def main(argv: list[str] | None = None) -> int:
    settings, log_level = parse(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=getattr(logging, log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await Agent(settings).run(stop)

    try:
        asyncio.run(run())
    except SyncopateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
