"""/events `logs` messages: their times, and `*` following every project's output."""

from __future__ import annotations

from syncopate.manager.events import EventHub, Subscriber


def drained(subscriber: Subscriber) -> list[dict[str, object]]:
    messages = []
    while not subscriber.queue.empty():
        messages.append(subscriber.queue.get_nowait())
    return messages


def test_star_follows_every_project_and_lines_carry_their_times() -> None:
    hub = EventHub(dict, lambda kind, name: None)
    everyone, only_a, nobody = hub.subscribe(["*"]), hub.subscribe(["a"]), hub.subscribe()
    for subscriber in (everyone, only_a, nobody):
        assert [m["type"] for m in drained(subscriber)] == ["snapshot"]
    hub.add_lines("a", 0, ["one"], [1_800_000_000.0])
    hub.add_lines("b", 4, ["two", "three"], [1_800_000_001.0, 1_800_000_001.5])
    hub.flush()
    b_message = {
        "type": "logs",
        "project": "b",
        "seq": 4,
        "lines": ["two", "three"],
        "times": ["2027-01-15T08:00:01.000Z", "2027-01-15T08:00:01.500Z"],
    }
    a_message = {
        "type": "logs",
        "project": "a",
        "seq": 0,
        "lines": ["one"],
        "times": ["2027-01-15T08:00:00.000Z"],
    }
    assert drained(everyone) == [a_message, b_message]
    assert drained(only_a) == [a_message]
    assert drained(nobody) == []
    hub.unsubscribe(everyone)
    hub.add_lines("b", 6, ["unheard"], [1_800_000_002.0])  # nobody follows b now: dropped
    hub.flush()
    assert drained(only_a) == [] and drained(nobody) == []
