"""/metrics' request histogram: each request counted once, in every bucket at or above it."""

from __future__ import annotations

import re

from syncopate.manager.metrics import BUCKETS, Metrics


def buckets(text: str, route: str) -> dict[str, int]:
    pattern = (
        rf'syncopate_http_request_duration_seconds_bucket{{route="{route}",le="([^"]+)"}} (\d+)'
    )
    return {le: int(count) for le, count in re.findall(pattern, text)}


def test_a_request_counts_in_its_bucket_and_every_one_above() -> None:
    metrics = Metrics()
    # Below the first bound, exactly on bounds (le: "less or equal"), between, above the last.
    times = [0.0001, BUCKETS[0], BUCKETS[0] * 1.01, BUCKETS[3], 0.3, BUCKETS[-1], 60.0]
    for seconds in times:
        metrics.observe("/node-update", 200, seconds)
    counts = buckets(metrics.render({}), "/node-update")
    expected = {f"{bound}": sum(t <= bound for t in times) for bound in BUCKETS}
    assert counts == {**expected, "+Inf": len(times)}
    assert counts["0.001"] == 2 and counts["5.0"] == 6


def test_routes_keep_their_own_counts() -> None:
    metrics = Metrics()
    metrics.observe("/a", 200, 0.002)
    metrics.observe("/b", 503, 0.2)
    text = metrics.render({})
    assert buckets(text, "/a")["0.0025"] == 1 and buckets(text, "/b")["0.0025"] == 0
    assert 'syncopate_http_requests_total{route="/b",status="503"} 1' in text


def test_gauges_print_exact_values() -> None:
    text = Metrics().render(
        {
            "big": {(): 1_234_567.0},
            "small": {(("route", "x"),): 0.000123456789},
            "whole": {(): 2.0},
            "count": {(): 3},  # an int (no is_integer() before Python 3.12)
        }
    )
    assert "big 1234567\n" in text
    assert 'small{route="x"} 0.000123456789\n' in text
    assert "whole 2\n" in text and "count 3\n" in text
