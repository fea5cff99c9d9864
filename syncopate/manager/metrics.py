"""Request counts and latencies for /metrics, in the Prometheus text format."""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass, field
from itertools import accumulate

# Latency buckets in seconds: a long poll lands in +Inf, a report should land under 0.05.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass
class RouteStats:
    count: int = 0
    total: float = 0.0
    # Per bucket, the requests that landed in it and no lower one (one increment a request,
    # on the hot path); `cumulative()` gives the histogram's counts, each with all below.
    landed: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))

    def cumulative(self) -> list[int]:
        """Requests answered within each of BUCKETS (the exposition's `le` counts)."""
        return list(accumulate(self.landed[: len(BUCKETS)]))


class Metrics:
    """Counters the middleware feeds; rendered on demand."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.latency: dict[str, RouteStats] = defaultdict(RouteStats)

    def observe(self, route: str, status: int, seconds: float) -> None:
        self.requests[(route, status)] += 1
        stats = self.latency[route]
        stats.count += 1
        stats.total += seconds
        stats.landed[bisect_left(BUCKETS, seconds)] += 1

    def render(self, gauges: dict[str, dict[tuple[tuple[str, str], ...], float]]) -> str:
        """The exposition text: request counters, latency histograms, and the given gauges."""
        lines = [
            "# HELP syncopate_http_requests_total HTTP requests by route and status.",
            "# TYPE syncopate_http_requests_total counter",
        ]
        for (route, status), count in sorted(self.requests.items()):
            lines.append(
                f'syncopate_http_requests_total{{route="{route}",status="{status}"}} {count}'
            )
        lines += [
            "# HELP syncopate_http_request_duration_seconds Time to answer, by route.",
            "# TYPE syncopate_http_request_duration_seconds histogram",
        ]
        for route, stats in sorted(self.latency.items()):
            for bound, count in zip(BUCKETS, stats.cumulative(), strict=True):
                bucket = f'route="{route}",le="{bound}"'
                lines.append(f"syncopate_http_request_duration_seconds_bucket{{{bucket}}} {count}")
            lines.append(
                f'syncopate_http_request_duration_seconds_bucket{{route="{route}",le="+Inf"}} '
                f"{stats.count}"
            )
            lines.append(
                f'syncopate_http_request_duration_seconds_sum{{route="{route}"}} {stats.total:.6f}'
            )
            lines.append(
                f'syncopate_http_request_duration_seconds_count{{route="{route}"}} {stats.count}'
            )
        for name, series in gauges.items():
            lines.append(f"# TYPE {name} gauge")
            for labels, value in sorted(series.items()):
                label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
                number = _number(value)
                lines.append(
                    f"{name}{{{label_text}}} {number}" if label_text else f"{name} {number}"
                )
        return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    """A sample value, exact: `:g` keeps 6 digits, so a counter past 999,999 (or an uptime past
    11 days) would print rounded."""
    value = float(value)  # an int has no is_integer() before Python 3.12
    if value.is_integer() and abs(value) < 1e15:
        return f"{value:.0f}"
    return repr(value)


def _escape(value: str) -> str:
    """A label value as the exposition format quotes it (a node name is checked at join, but
    a label value must never be able to end the line)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
