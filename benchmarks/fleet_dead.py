"""The fleet benchmark's dead-node detection: silence a few simulated nodes spread over the
fleet, then time how long the manager takes to declare each of them dead."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from harness.stats import ms, percentile

if TYPE_CHECKING:
    from fleet_setup import Bench


async def silence_nodes(bench: Bench) -> dict[str, float]:
    """Stop --dead-nodes nodes spread over the fleet; when each went silent (monotonic)."""
    everyone = sorted(n for names in bench.names for n in names)
    step = max(1, len(everyone) // max(1, bench.args.dead_nodes))
    chosen = set(everyone[step // 2 :: step][: bench.args.dead_nodes])
    answers = await asyncio.gather(
        *(
            bench.workers.children[w].ask("silence", sorted(chosen & set(names)))
            for w, names in enumerate(bench.names)
        )
    )
    return {name: at for answer in answers for name, at in answer.items()}


async def detect_dead(bench: Bench) -> float:
    """Silence a few nodes and time their detection. Returns the worst delay (upper bound).

    /health's dead count is polled every 0.1 s (cheap); when it changes, and at least every
    --dead-poll seconds, /controller `nodes` says which nodes are dead. A node's delay lies
    between the previous probe's sending and this `nodes` answer, counted from its silence.
    """
    args = bench.args
    silent_at = await silence_nodes(bench)
    print(
        f"  silenced {len(silent_at)} nodes; /health every 0.1 s, /controller 'nodes' when its "
        f"dead count changes or every {args.dead_poll:g} s (node-timeout {args.node_timeout:g} s)"
    )
    found: dict[str, tuple[float, float]] = {}
    answer_times: list[float] = []
    dead_count = (await bench.health())["nodes"].get("dead", 0)
    previous = next_full = time.monotonic()
    deadline = previous + 2 * args.node_timeout + 30
    while len(found) < len(silent_at) and time.monotonic() < deadline:
        sent = time.monotonic()
        count = (await bench.health())["nodes"].get("dead", 0)
        if count != dead_count or sent >= next_full:
            dead_count, next_full = count, sent + args.dead_poll
            asked = time.monotonic()
            _, answer = await bench.controller("nodes")
            received = time.monotonic()
            answer_times.append(received - asked)
            for name, info in answer.get("nodes", {}).items():
                if name in silent_at and name not in found and info.get("status") == "dead":
                    found[name] = (previous - silent_at[name], received - silent_at[name])
        previous = sent
        await asyncio.sleep(max(0.0, 0.1 - (time.monotonic() - sent)))
    print_detection(silent_at, found, answer_times)
    if len(found) < len(silent_at):
        return float("inf")
    return max(high for _, high in found.values())


def print_detection(
    silent_at: dict[str, float], found: dict[str, tuple[float, float]], answer_times: list[float]
) -> None:
    print(
        f"  'nodes' answer time: p50 {ms(percentile(answer_times, 0.5))} "
        f"max {ms(max(answer_times, default=0))} ({len(answer_times)} calls)"
    )
    missing = sorted(set(silent_at) - set(found))
    if len(silent_at) > 10:
        highs = sorted(high for _, high in found.values())
        lows = sorted(max(low, 0) for low, _ in found.values())
        if highs:
            print(
                f"    {len(found):,} of {len(silent_at):,} declared dead; silence before it "
                f"(upper bounds): p50 {percentile(highs, 0.5):.2f} s, max {highs[-1]:.2f} s; "
                f"lower bounds: min {lows[0]:.2f} s"
            )
    else:
        for name in sorted(found):
            low, high = found[name]
            print(f"    {name}: dead after {max(low, 0):.2f}..{high:.2f} s of silence")
    for name in missing[:10]:
        print(f"    {name}: NOT declared dead")
