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

from syncopate.agent_options import OPTIONS, URL_HELP, parse_labels
from syncopate.errors import SyncopateError
from syncopate.node.agent import Agent
from syncopate.node.identity import remove_unjoined
from syncopate.node.settings import AgentSettings
from syncopate.paths import default_node_dir


def parse(argv: list[str]) -> tuple[AgentSettings, str]:
    """Agent settings and the log level from the command line (and SYNCOPATE_PASSWORD)."""
    parser = argparse.ArgumentParser(prog="syncopate node join")
    parser.add_argument("url", help=URL_HELP)
    for option in OPTIONS.values():
        if option.repeatable:
            parser.add_argument(option.flag, action="append", default=[], help=option.help)
        else:
            parser.add_argument(
                option.flag, type=option.type, default=option.default, help=option.help
            )
    args = parser.parse_args(argv)
    try:
        labels = parse_labels(args.label)
    except ValueError as exc:
        parser.error(str(exc))
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

    made_here = not settings.data_dir.exists()  # then a failed first join takes it away
    try:
        asyncio.run(run())
    except SyncopateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if made_here:
            remove_unjoined(settings.data_dir)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
