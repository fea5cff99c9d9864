"""TUI benchmark: the Textual controller following a real manager with a large simulated fleet.

    python benchmarks/tui.py                       # 1,000 nodes, 5,000 projects; under a minute
    python benchmarks/tui.py --nodes 100 --projects 500 --batches 5 --renders 1
    python benchmarks/tui.py --profile             # and cProfile tops from the TUI process

This process runs the manager and the simulated nodes and prints; `SyncopateApp` runs headless
in a child process (`tui_child.py`). It times the first full render, batches of changes (given
to `app.apply` directly, and the real way through the manager's /events) and the TUI's RSS;
benchmarks/README.md says how, step by step. It prints figures next to the targets, asserts
nothing, and ends every subprocess on exit, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from harness import stats
from harness.procs import Child, Processes, receive, run_main, start_manager
from harness.stats import (
    cpu_seconds,
    mb,
    ms,
    percentile,
    print_header,
    print_targets,
    rss,
    syncopate_version,
    uss,
)
from tui_child import SCREEN, Sample, spaced, tui_main
from tui_fleet import IN_FLIGHT, Fleet, set_up

NODE_TIMEOUT = 3600.0  # s: the simulated nodes report once and then stay silent
TARGET_RENDER = 2.0  # s: first full render
TARGET_BATCH = 0.050  # s: a batch of 100 changed rows
TARGET_RSS_MB = 200.0
FEED_TIMEOUT = 30.0  # s to wait for a real-path batch to show in the app


def spread(values: list[float]) -> str:
    return stats.spread(values, "p50 max min")


# --- driving the TUI process ---
async def next_report(tui: Child, what: str, timeout: float = 180) -> Any:
    """The TUI process's next `(what, value)` message: its value."""
    kind, value = await asyncio.wait_for(receive(tui.conn), timeout)
    if kind == "failed":
        raise RuntimeError(f"the TUI process failed: {value}")
    if kind != what:
        raise RuntimeError(f"the TUI process said {kind!r}, expected {what!r}")
    return value


@dataclass
class Render:
    imported: float
    report: dict[str, Any]
    rss: int  # psutil, from this process, once the snapshot is drawn
    uss: int


async def first_render(tui: Child) -> Render:
    imported = await next_report(tui, "imported")
    report = await next_report(tui, "rendered")
    return Render(imported, report, rss(tui.pid), uss(tui.pid))


def print_render(i: int, render: Render) -> None:
    r = render.report
    applied = r["snapshot_arrived"] + r["snapshot_apply"]
    print(f"  run {i} (imports took {render.imported:.2f} s before the app started; not counted)")
    print(
        f"    from the app's start: mounted {r['ready']:.2f} s, snapshot arrived "
        f"{r['snapshot_arrived']:.2f} s, applied {applied:.2f} s "
        f"(apply {ms(r['snapshot_apply'])}), "
        f"all rows in the tables {r['rows']:.2f} s, drawn with all rows {r['drawn']:.2f} s, "
        f"idle {r['idle']:.2f} s"
    )
    print(
        f"    snapshot {r['snapshot_bytes'] / 1e6:.1f} MB of JSON (json.loads of it: "
        f"{ms(r['snapshot_decode'])}); rows {r['rows_shown'][0]:,} nodes, "
        f"{r['rows_shown'][1]:,} projects; CPU to idle {r['cpu']:.2f} s"
    )
    print(
        f"    after the snapshot arrived: DataTable measuring the new rows (on idle) "
        f"{ms(r['measure_time'])}, screen refreshes {ms(r['render_time'])}; since the start: "
        f"GC {ms(r['gc_time'])} ({r['gc2']} full), the app's 5 s timers {ms(r['timers'])}"
    )
    print(
        f"    RSS {mb(render.rss)} (USS {mb(render.uss)}) once drawn; "
        f"{mb(r['rss_imported'])} after the imports"
    )


def print_samples(title: str, samples: list[Sample]) -> None:
    print(f"  {title}")
    for key, text in (
        ("call", "app.apply() call            "),
        ("drawn", "until drawn                  "),
        ("idle", "until idle (pilot.pause())  "),
        ("cpu", "CPU, call to idle            "),
        ("render", "  screen refreshes in it    "),
        ("measure", "  DataTable measuring rows  "),
        ("gc", "  GC pauses before drawn    "),
    ):
        print(f"    {text} {spread([s[key] for s in samples])}")
    hit = [s for s in samples if s["busy"]]
    if hit:
        clean = [s["drawn"] for s in samples if not s["busy"]]
        print(
            f"    {len(hit)} of {len(samples)} had a full (gen-2) GC or one of the app's 5 s "
            f"timers before drawn ({', '.join(sorted(Counter(s['busy'] for s in hit)))}); "
            f"without those, until drawn {spread(clean)}"
        )


async def feed_batches(tui: Child, fleet: Fleet, count: int, size: int) -> list[Sample]:
    """Nodes report new figures for `size` projects; time until the app's model has them all."""
    names = sorted(fleet.placed)
    results = []
    for i in range(count):
        chosen = spaced(names, size, 11 * i + 5)
        expected = {p: round(fleet.ram[p] + 0.25 + i, 2) for p in chosen}
        await tui.ask("expect", expected)
        sent = time.monotonic()
        calls = (fleet.report(p, expected[p], 2 + i) for p in chosen)
        await fleet.gather(calls, IN_FLIGHT)
        answered = time.monotonic()
        seen = await tui.ask("await_seen", FEED_TIMEOUT, timeout=FEED_TIMEOUT + 10)
        if seen["seen"] is None:
            print(f"    batch {i}: NOT all seen within {FEED_TIMEOUT:g} s")
            continue
        results.append(
            {
                "sent": seen["seen"] - sent,
                "answered": seen["seen"] - answered,
                "reports": answered - sent,
                "drawn": (seen["drawn"] or float("nan")) - sent,
                "messages": seen["messages"],
                "busy": seen["busy"],
            }
        )
        await asyncio.sleep(0.3)  # apart, so each batch starts with an idle feed
    return results


def print_feed(results: list[Sample], size: int) -> None:
    print(f"  real path: {size} /node-update reports -> manager -> /events -> app.model")
    for key, text in (
        ("reports", f"the {size} reports answered    "),
        ("sent", "first report -> all in model "),
        ("answered", "last answer -> all in model  "),
        ("drawn", "first report -> drawn        "),
    ):
        print(f"    {text} {spread([r[key] for r in results])}")
    busy = [r for r in results if r["busy"]]
    if busy:
        clean = [r["sent"] for r in results if not r["busy"]]
        print(
            f"    {len(busy)} of {len(results)} had a full GC or one of the app's 5 s timers in "
            f"the way ({', '.join(sorted(Counter(r['busy'] for r in busy)))}); without those, "
            f"first report -> all in model {spread(clean)}"
        )
    messages = Counter(int(r["messages"]) for r in results)
    print(
        "    /events messages that carried a batch: "
        + ", ".join(f"{n} in {c} batch(es)" for n, c in sorted(messages.items()))
        + " (the manager flushes changes every 0.1 s)"
    )


# --- main ---
@dataclass
class Results:
    renders: list[Render] = field(default_factory=list)
    batches: list[Sample] = field(default_factory=list)
    rebuilds: list[Sample] = field(default_factory=list)
    feed: list[Sample] = field(default_factory=list)
    rss_end: int = 0


async def run(args: argparse.Namespace, tmp: Path, procs: Processes) -> None:
    print_header("TUI", f"syncopate {syncopate_version()}", f"textual {version('textual')}")
    print(
        f"  fleet: {args.nodes:,} simulated nodes, {args.projects:,} projects; "
        f"screen {SCREEN[0]}x{SCREEN[1]}, headless (run_test)"
    )
    if args.profile:
        print("  --profile: the last TUI process runs under cProfile; its times are 2-3x longer")
    manager = start_manager(
        procs, tmp / "manager", "--log-level", "warning", "--node-timeout", f"{NODE_TIMEOUT:g}"
    )
    print(
        f"\nsetup: manager pid {manager.proc.pid} at {manager.url} "
        f"(node-timeout {NODE_TIMEOUT:g} s)"
    )
    fleet = await set_up(manager, args)
    results = Results()
    try:
        print(f"\n1. first full render ({args.renders} fresh TUI process(es))")
        for i in range(1, args.renders + 1):
            full = i == args.renders
            target = (
                manager.url,
                manager.token,
                args.nodes,
                args.projects,
                full,
                args.profile and full,
            )
            tui = procs.spawn(tui_main, *target)
            tui.timeout = 180.0
            render = await first_render(tui)
            results.renders.append(render)
            print_render(i, render)
            if not full:
                tui.end()
        cpu_before = cpu_seconds(manager.proc.pid)
        if args.profile and render.report.get("profile"):
            print(render.report["profile"])
        print(f"\n2. batches (TUI pid {tui.pid}; changed rows spread over the table)")
        answer = await tui.ask("batches", args.batches, args.batch_size)
        results.batches = answer["samples"]
        print_samples(f"{args.batch_size} changed projects, app.apply() directly", results.batches)
        if answer["profile"]:
            print(answer["profile"])
        answer = await tui.ask("rebuilds", args.rebuilds, 3, 2)
        results.rebuilds = answer["samples"]
        print_samples(
            "3 projects added and 2 removed, then the reverse (the table is rebuilt)",
            results.rebuilds,
        )
        if answer["profile"]:
            print(answer["profile"])
        answer = await tui.ask("nodes_batch", 3)
        print_samples(
            f"all {args.nodes:,} nodes with a new contact time (what refresh_nodes applies "
            "every 5 s when the nodes poll)",
            answer["samples"],
        )
        answer = await tui.ask("fetch_nodes", 3)
        print(
            f"  refresh_nodes' fetch of all nodes and comparison with the model: wall "
            f"{spread(answer['wall'])}; the TUI process's CPU {spread(answer['cpu'])} "
            f"({answer['changed']} nodes differ)"
        )
        answer = await tui.ask("ages", 3)
        print(f"  refresh_ages() (every 5 s: every row's cells again)  {spread(answer['samples'])}")
        results.feed = await feed_batches(tui, fleet, args.feed_batches, args.batch_size)
        print_feed(results.feed, args.batch_size)
        state = await tui.ask("state")
        results.rss_end = rss(tui.pid)
        print(
            f"\n3. TUI process RSS at the end: {mb(results.rss_end)} (USS {mb(uss(tui.pid))}); "
            f"messages applied: {state['applies']}; manager CPU during 2.: "
            f"{cpu_seconds(manager.proc.pid) - cpu_before:.1f} s"
        )
        spans = state["spans"]
        print(
            f"  over the TUI process's life: {len(spans['gc2'])} full GCs "
            f"({state['objects']:,} objects tracked at the end), pause {spread(spans['gc2'])}"
        )
        print(f"  timer refresh_ages  (every 5 s) {spread(spans['refresh_ages'])}")
        print(
            f"  timer refresh_nodes (every 5 s) {spread(spans['refresh_nodes'])} (wall, with the "
            "fetch and any wait for the busy loop)"
        )
        tui.conn.send(("stop",))
        tui.end()
    finally:
        await fleet.client.close()
    print_verdicts(results, args)


def print_verdicts(results: Results, args: argparse.Namespace) -> None:
    renders = [r.report["drawn"] for r in results.renders]
    worst_render = max(renders, default=float("inf"))
    rss = max([r.rss for r in results.renders] + [results.rss_end]) / 2**20
    batch = [s["drawn"] for s in results.batches]
    call = [s["call"] for s in results.batches]
    render, render_ok = f"{worst_render:.2f} s", worst_render <= TARGET_RENDER
    p50_call, p50_drawn = percentile(call, 0.5), percentile(batch, 0.5)
    max_drawn = max(batch, default=float("inf"))
    batch_of = f"batch of {args.batch_size} changed rows"
    rows = [
        (f"first full render <= {TARGET_RENDER:g} s (max of {len(renders)})", render, render_ok),
        (f"{batch_of}, call, p50", ms(p50_call), p50_call <= TARGET_BATCH),
        (f"{batch_of}, until drawn, p50", ms(p50_drawn), p50_drawn <= TARGET_BATCH),
        (f"{batch_of}, until drawn, max", ms(max_drawn), max_drawn <= TARGET_BATCH),
        (f"TUI RSS <= {TARGET_RSS_MB:g} MB (max seen)", f"{rss:.0f} MB", rss <= TARGET_RSS_MB),
    ]
    print_targets(f"\ntargets ({args.nodes:,} nodes, {args.projects:,} projects)", rows, width=52)
    if results.rebuilds:
        drawn = [s["drawn"] for s in results.rebuilds]
        print(
            f"  (not a target: a batch that adds/removes rows, until drawn p50 "
            f"{ms(percentile(drawn, 0.5))}, max {ms(max(drawn))}; real path first report -> "
            f"in model p50 {ms(percentile([r['sent'] for r in results.feed], 0.5))})"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=1000, help="simulated nodes")
    parser.add_argument("--projects", type=int, default=5000, help="projects to add")
    parser.add_argument("--renders", type=int, default=3, help="fresh TUI processes timed")
    parser.add_argument("--batches", type=int, default=20, help="direct batches of changes")
    parser.add_argument("--batch-size", type=int, default=100, help="changed projects per batch")
    parser.add_argument("--rebuilds", type=int, default=6, help="batches adding/removing rows")
    parser.add_argument("--feed-batches", type=int, default=10, help="batches the real way")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the last TUI process; print the tops"
    )
    args = parser.parse_args(argv)
    if min(args.nodes, args.projects, args.renders, args.batches, args.batch_size) < 1:
        parser.error("--nodes, --projects, --renders, --batches and --batch-size must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_main("syncopate-tui-bench-", lambda tmp, procs: run(args, tmp, procs))


if __name__ == "__main__":
    sys.exit(main())
