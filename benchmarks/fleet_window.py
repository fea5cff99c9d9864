"""One measurement window of the fleet benchmark: the server's CPU and RSS (psutil), the
clients' latencies, lags and holds (from the workers), the generator's own CPU; printed with a
WARNING when the generator, not the server, may be what limits the figures."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import psutil
from fleet_record import ROUTES, STATUS
from harness.stats import cpu_seconds, ms, percentile

if TYPE_CHECKING:
    from fleet_setup import Bench

SATURATED_CPU = 0.9  # of one core, per worker process: a worker is one thread
BUSY_OTHERS = 0.25  # cores the rest of the machine may use before a window gets a WARNING
NO_HELD = "without `held`"


@dataclass
class Window:
    """What one measurement window saw."""

    label: str
    seconds: float
    latency: dict[str, list[float]]
    failed: int
    notes: Counter[str]
    remarks: Counter[str]
    lag: list[float]
    held: list[float]
    gc: list[float]  # the generator's garbage-collection pauses
    cpu_seconds: float
    rss_max: int
    client_cpu: list[float]  # each worker's CPU, share of one core
    other_cpu: float  # cores busy with everything else on the machine (other helpers, tests)
    server_time: dict[str, float] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return sum(len(v) for v in self.latency.values()) + self.failed

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_per_request(self) -> float:
        return self.cpu_seconds / max(1, self.requests)

    @property
    def all_latencies(self) -> list[float]:
        return [x for values in self.latency.values() for x in values]

    @property
    def no_held(self) -> int:
        """Answers to held polls that did not say how long they were held."""
        return sum(n for text, n in self.remarks.items() if NO_HELD in text)

    def warnings(self, period: float) -> dict[str, str]:
        """Why the generator or the machine may be what limits this window (`period`: a
        node's cycle): {kind: the figures}."""
        found = {}
        busiest = max(self.client_cpu, default=0.0)
        if busiest >= SATURATED_CPU:
            found["a generator worker >= 90% of its core (saturated)"] = f"{100 * busiest:.0f}%"
        lag = percentile(self.lag, 0.99)
        if lag > period / 10:
            found[f"generator lag p99 > {period / 10:g} s (late: busy or starved)"] = ms(lag)
        if self.other_cpu > BUSY_OTHERS:
            kind = f"the machine's other processes > {100 * BUSY_OTHERS:.0f}% of a core"
            found[kind] = f"{100 * self.other_cpu:.0f}%"
        return found


async def measure(bench: Bench, label: str, pid: int, metrics: bool) -> Window:
    """Run one window: server CPU and RSS by psutil, client latencies from the workers."""
    args = bench.args
    server = psutil.Process(pid)
    before = {r: await bench.route_time(r) for r in ROUTES} if metrics else {}
    t0, cpu0, client0 = time.monotonic(), cpu_seconds(pid), bench.workers.cpu()
    busy0, own0 = busy_seconds(), cpu_seconds(os.getpid())
    rss_max = 0
    while time.monotonic() - t0 < args.duration:
        rss_max = max(rss_max, server.memory_info().rss)
        await asyncio.sleep(min(1.0, max(0.0, args.duration - (time.monotonic() - t0))))
    t1, cpu1, client1 = time.monotonic(), cpu_seconds(pid), bench.workers.cpu()
    busy1, own1 = busy_seconds(), cpu_seconds(os.getpid())
    ours = (cpu1 - cpu0) + (own1 - own0) + sum(b - a for a, b in zip(client0, client1, strict=True))
    rss_max = max(rss_max, server.memory_info().rss)
    after = {r: await bench.route_time(r) for r in ROUTES} if metrics else {}
    stats = await bench.workers.ask("stats", t0, t1)
    window = Window(
        label=label,
        seconds=t1 - t0,
        latency={r: [x for s in stats for x in s["latency"][r]] for r in ROUTES},
        failed=sum(sum(s["failed"].values()) for s in stats),
        notes=sum((s["notes"] for s in stats), Counter()),
        remarks=sum((s["remarks"] for s in stats), Counter()),
        lag=[x for s in stats for x in s["lag"]],
        held=[x for s in stats for x in s["held"]],
        gc=[x for s in stats for x in s["gc"]],
        cpu_seconds=cpu1 - cpu0,
        rss_max=rss_max,
        client_cpu=[(b - a) / (t1 - t0) for a, b in zip(client0, client1, strict=True)],
        other_cpu=max(0.0, (busy1 - busy0 - ours) / (t1 - t0)),
    )
    for route in before:
        calls = after[route][1] - before[route][1]
        if calls:
            window.server_time[route] = (after[route][0] - before[route][0]) / calls
    return window


def busy_seconds() -> float:
    """CPU seconds every core of the machine spent busy so far (neither idle nor waiting)."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def print_window(window: Window, offered: float, period: float, pattern: str) -> None:
    print(
        f"  requests: {window.requests:,} in {window.seconds:.1f} s = {window.rate:,.0f} req/s "
        f"(load offered: {offered:,.0f} req/s); errors: {window.failed}"
    )
    for route in ROUTES:
        values = window.latency[route]
        if not values and pattern == "agent":
            continue
        handler = window.server_time.get(route)
        extra = ""
        if handler and not (pattern == "agent" and route == STATUS):  # that one holds
            extra = f"; handler time in the manager (its /metrics) mean {ms(handler)}"
        print(
            f"  {route:13} n={len(values):>7,}  p50 {ms(percentile(values, 0.5)):>9}  "
            f"p99 {ms(percentile(values, 0.99)):>9}  max {ms(max(values, default=0)):>9}{extra}"
        )
    if pattern == "agent":
        held = window.held
        print(
            f"  held polls: {len(held):,}, held p50 {percentile(held, 0.5):.2f} s "
            f"min {min(held, default=float('nan')):.2f} s (latencies above leave the hold out)"
        )
        if window.no_held:
            print(f"  NOTE: {window.no_held:,} answers without `held`: raw times, hold included")
    print(
        f"  server CPU: {100 * window.cpu_seconds / window.seconds:.0f}% of one core, "
        f"{window.cpu_per_request * 1e6:.0f} us CPU per request; RSS max "
        f"{window.rss_max / 2**20:.0f} MB"
    )
    cpus = " + ".join(f"{100 * c:.0f}%" for c in window.client_cpu)
    what = "poll start lag" if pattern == "seed" else f"event-loop lag ({1000 * 0.1:.0f} ms probe)"
    print(
        f"  generator ({len(window.client_cpu)} worker processes): CPU {cpus} of one core "
        f"each; {what} p50 {ms(percentile(window.lag, 0.5))} "
        f"p99 {ms(percentile(window.lag, 0.99))}; its GC pauses: {len(window.gc)}, max "
        f"{ms(max(window.gc, default=0.0))}; the machine's other processes: "
        f"{100 * window.other_cpu:.0f}% of one core"
    )
    for kind, figure in window.warnings(period).items():
        print(f"  WARNING: {kind}: {figure}")
    for note, n in (window.notes + window.remarks).most_common(6):
        if NO_HELD not in note:
            print(f"    {n} x {note}")
