"""Count once a second and keep the count in persistent variables.

The count lives in `project.variables` (through `syncopate.variables`), which the node ships to
the manager with every report. When the node dies or leaves, the manager starts the counter on
another node with the last count it received, so the count carries on instead of starting at 0.
`nodes` lists where it has run, so a move shows in the variables as well as in the output.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from types import FrameType

from syncopate import variables

MAX_NODES_KEPT = 20  # the variables travel with every report: keep them small


class Stop(Exception):
    """SIGTERM arrived: the node is stopping this project."""


def _stop(signum: int, frame: FrameType | None) -> None:
    raise Stop


def main() -> int:
    signal.signal(signal.SIGTERM, _stop)
    node = os.environ.get("SYNCOPATE_NODE") or "this machine"
    state = variables.load()
    count = int(state.get("count", 0))
    nodes = [str(n) for n in state.get("nodes", [])]
    if not nodes or nodes[-1] != node:
        nodes = [*nodes, node][-MAX_NODES_KEPT:]
    print(f"counter: starting at {count} on {node} (has run on {', '.join(nodes)})", flush=True)
    try:
        while True:
            count += 1
            # save() is atomic, so a SIGTERM or a power cut never leaves half a file.
            variables.save({**state, "count": count, "nodes": nodes})
            print(f"count {count} on {node}", flush=True)
            time.sleep(1)
    except (Stop, KeyboardInterrupt):
        print(f"counter: stopped at {count} on {node}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
