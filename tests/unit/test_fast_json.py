"""fast_json: orjson's JSON, the standard library's where orjson says no, and answers that
cost their own size in memory."""

from __future__ import annotations

import json
import tracemalloc

from syncopate import fast_json

ANSWER = {"code": 0, "name": "node-00001", "projects": {"p": {"project-url": "x" * 300}}}


def test_same_json_as_the_standard_library_and_its_fallbacks() -> None:
    for value in (ANSWER, {"big": 2**70}, {"text": "caf\u00e9 \ud800"}, [1, 2.5, None, True]):
        assert json.loads(fast_json.dumps(value)) == json.loads(
            json.dumps(value, separators=(",", ":"))
        )
        assert fast_json.dumps_text(value) == fast_json.dumps(value).decode()


def test_an_answer_kept_costs_its_own_size_not_a_buffer() -> None:
    """aiohttp keeps a connection's last answer through the next long poll's hold: orjson's
    own output would keep a 4 KiB buffer for each (measured), 10,000 nodes ~40 MB."""
    size = len(fast_json.dumps(ANSWER))
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [fast_json.dumps(ANSWER) for _ in range(1000)]
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(kept) == 1000
    assert grown / 1000 < size + 200, f"{grown / 1000:.0f} bytes kept per {size}-byte answer"
