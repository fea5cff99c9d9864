"""The fleet benchmark's results: one size's windows reduced to medians, the table with a row
per size, and the issue's targets checked against the rows."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from fleet_setup import Setup
from fleet_window import Window
from harness.stats import percentile, print_targets

MB = 2**20


def median(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return statistics.median(finite) if finite else float("nan")


@dataclass
class SizeResult:
    """Everything measured at one size."""

    nodes: int
    offered: float  # req/s the fleet sends
    period: float  # a node's cycle, s (seed: the interval; agent: the hold)
    setup: Setup = field(default_factory=Setup)
    manager: list[Window] = field(default_factory=list)
    bare: list[Window] = field(default_factory=list)
    detection: float = float("nan")  # worst delay, s
    skipped: str = ""  # why this size did not run

    def med(self, which: str, figure: str) -> float:
        """The median over this size's windows of `figure` for the manager or the bare."""
        windows = self.manager if which == "manager" else self.bare
        values: dict[str, Callable[[Window], float]] = {
            "rate": lambda w: w.rate,
            "p50": lambda w: percentile(w.all_latencies, 0.5),
            "p99": lambda w: percentile(w.all_latencies, 0.99),
            "cpu": lambda w: w.cpu_per_request,
            "rss": lambda w: float(w.rss_max),
            "errors": lambda w: float(w.failed),
            "gen_cpu": lambda w: max(w.client_cpu, default=float("nan")),
            "lag99": lambda w: percentile(w.lag, 0.99),
            "other": lambda w: w.other_cpu,
        }
        value = values[figure]
        return median([value(w) for w in windows])

    @property
    def ratio(self) -> float:
        return self.med("bare", "cpu") / self.med("manager", "cpu")

    @property
    def warnings(self) -> Counter[str]:
        """How many of this size's windows (manager and bare) had each kind of warning."""
        windows = self.manager + self.bare
        return Counter(kind for w in windows for kind in w.warnings(self.period))

    @property
    def raw_times(self) -> bool:
        return any(w.no_held for w in self.manager)


def print_medians(result: SizeResult, which: str) -> None:
    windows = result.manager if which == "manager" else result.bare
    if len(windows) < 2:
        return
    print(
        f"  median of {len(windows)} windows: {result.med(which, 'rate'):,.0f} req/s, "
        f"p50 {1000 * result.med(which, 'p50'):.1f} ms, p99 {1000 * result.med(which, 'p99'):.1f}"
        f" ms, {1e6 * result.med(which, 'cpu'):.0f} us CPU per request"
    )


def print_table(results: list[SizeResult], pattern: str) -> None:
    """The run's tables: traffic (medians of the windows) and setup, a row per size."""
    print(f"\nsummary, pattern {pattern} (medians of each size's windows; us = CPU us/request)")
    print(
        f"  {'nodes':>6} {'offered':>8} {'achieved':>8} {'p50 ms':>7} {'p99 ms':>8} "
        f"{'errors':>6} {'mgr us':>6} {'bare us':>7} {'ratio':>5} {'bare p99':>8} {'RSS MB':>6} "
        f"{'gen CPU':>7} {'gen lag99':>9} {'others':>6}"
    )
    for r in results:
        if r.skipped:
            print(f"  {r.nodes:>6,} skipped: {r.skipped}")
            continue
        print(
            f"  {r.nodes:>6,} {r.offered:>8,.0f} {r.med('manager', 'rate'):>8,.0f} "
            f"{1000 * r.med('manager', 'p50'):>7.1f} {1000 * r.med('manager', 'p99'):>8.1f} "
            f"{r.med('manager', 'errors'):>6.0f} {1e6 * r.med('manager', 'cpu'):>6.0f} "
            f"{1e6 * r.med('bare', 'cpu'):>7.0f} {r.ratio:>5.2f} "
            f"{1000 * r.med('bare', 'p99'):>8.1f} {r.med('manager', 'rss') / MB:>6.0f} "
            f"{100 * r.med('manager', 'gen_cpu'):>6.0f}% "
            f"{1000 * r.med('manager', 'lag99'):>7.1f}ms "
            f"{100 * r.med('manager', 'other'):>5.0f}%"
        )
        for kind, n in sorted(r.warnings.items()):
            print(f"         WARNING in {n} of {len(r.manager) + len(r.bare)} windows: {kind}")
        if r.raw_times:
            print("         NOTE: answers without `held` (older manager): raw times, hold included")
    print(
        f"\n  {'nodes':>6} {'joined':>7} {'joins/s':>7} {'added':>7} {'adds/s':>7} "
        f"{'1 add ms':>8} {'handler ms':>10} {'place us':>8} {'detection s':>11} {'settled':>7}"
    )
    for r in results:
        if r.skipped:
            continue
        s = r.setup
        print(
            f"  {r.nodes:>6,} {s.joined:>7,} {s.joined / max(s.join_seconds, 1e-9):>7,.0f} "
            f"{s.added:>7,} {s.adds_per_second:>7,.0f} {1000 * s.single_add:>8.2f} "
            f"{1000 * s.single_add_handler:>10.2f} {1e6 * s.placement:>8.1f} {r.detection:>11.2f} "
            f"{'yes' if s.settled else 'NO':>7}"
        )
    print(
        "  offered/achieved: req/s; p50/p99: client-side, every route, held polls without "
        "their hold; ratio = bare us / manager us (>= 0.7 wanted); gen: the load generator's "
        "busiest worker (% of one core) and its lag; others: the rest of the machine's CPU in the "
        "manager's windows (% of one core); 1 add: one add alone under the fleet's "
        "load (placement, its write, and any wait for the loop), the client's time and the "
        "manager's handler time; place: the manager's own time placing one project (/metrics), "
        "mean over those single adds"
    )


def print_verdicts(results: list[SizeResult], pattern: str, node_timeout: float) -> None:
    """Issue 18's targets, for the sizes they are set at (when those ran)."""
    rows: list[tuple[str, str, bool]] = []
    for r in results:
        if r.skipped or not r.manager:
            continue
        n = r.nodes
        p99 = r.med("manager", "p99")
        if pattern == "agent" and n >= 10_000:
            rows.append((f"{n:,} nodes, agent: p99 < 50 ms", f"{1000 * p99:.1f} ms", p99 < 0.05))
        if pattern == "seed" and n >= 20_000:
            rows.append((f"{n:,} nodes, seed: p99 < 200 ms", f"{1000 * p99:.1f} ms", p99 < 0.2))
        errors = r.med("manager", "errors")
        rows.append((f"{n:,} nodes: 0 errors", f"{errors:.0f}", errors == 0))
        rows.append((f"{n:,} nodes: ratio bare/manager >= 0.7", f"{r.ratio:.2f}", r.ratio >= 0.7))
        if n >= 10_000:
            limit = node_timeout + 1
            dead = r.detection
            rows.append((f"{n:,} nodes: detection <= {limit:g} s", f"{dead:.2f} s", dead <= limit))
            # The manager's own placement time (/metrics), mean over the single adds.
            one = r.setup.placement
            what = f"{n:,} nodes: placement of one project < 1 ms"
            rows.append((what, f"{1e6 * one:.1f} us", one < 1e-3))
            rate = r.setup.adds_per_second
            rows.append((f"{n:,} nodes: adds >= 334/s", f"{rate:.0f}/s", rate >= 10_000 / 30))
            rss = r.med("manager", "rss") / MB
            rows.append((f"{n:,} nodes: manager RSS <= 200 MB", f"{rss:.0f} MB", rss <= 200))
    if rows:
        print_targets("\ntargets (issue 18)", rows, width=44, value=10)
