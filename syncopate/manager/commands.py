"""The command channel's rules: programs sent to nodes and lite devices, and every step of them.

A command moves `requested -> collected -> responded -> analyzed`, or ends `timed-out` (not
collected before its pickup deadline, or no response within its run timeout plus a margin) or
`canceled` (taken back before it was collected). Every move goes through `CommandBook._move`,
which checks `states.COMMAND_TRANSITIONS` and refuses anything else with 409 naming the current
state; each move is stored (with who and when) before the answer goes out. As in the cluster,
every change happens inside `CommandBook._write()`: a write the store refuses (503) puts memory
back as it was and announces nothing (see undo.py).

Agent nodes collect their commands in the /node-status long poll; lite devices collect theirs
through /hw_supervisor (the hardware_synchronizer seed's protocol), one outstanding at a time.
Only commands still waiting for someone (requested, collected) are held in memory; the rest are
read from the store when asked for, so the log can grow without the manager growing with it.
What a command looks like to the outside (to controllers, nodes and devices) is command_wire.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from syncopate.command_protocol import CommandQuery, CommandResultRequest, CommandSend
from syncopate.errors import Conflict, InvalidRequest, NotFound, StoreFailed
from syncopate.manager.cluster import Clock, Notify, did_you_mean
from syncopate.manager.command_wire import SEED_STATES, command_order, device_status, utc_now_ms
from syncopate.manager.records import CommandRecord, CommandStep, NodeRecord
from syncopate.manager.storage import Storage
from syncopate.manager.undo import Undoable
from syncopate.states import (
    COMMAND_FINAL_STATES,
    COMMAND_TRANSITIONS,
    CommandState,
    NodeStatus,
    command_transition_allowed,
)

WAITING_STATES = frozenset({CommandState.REQUESTED, CommandState.COLLECTED})
# A lite device holds one command until it is analyzed, canceled or timed out (the seed's rule).
OUTSTANDING_STATES = WAITING_STATES | {CommandState.RESPONDED}
VERBS = {
    CommandState.COLLECTED: "collect",
    CommandState.RESPONDED: "take a response for",
    CommandState.ANALYZED: "analyze",
    CommandState.CANCELED: "cancel",
    CommandState.TIMED_OUT: "time out",
}
RECENT_IN_SNAPSHOT = 100


class CommandBook(Undoable):
    """Every command: creation, hand-out, responses, analysis, cancellation and timeouts."""

    def __init__(
        self,
        store: Storage,
        nodes: dict[str, NodeRecord],
        *,
        wake: Callable[[str], None],
        notify: Notify | None = None,
        margin: float = 10.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.store = store
        self.nodes = nodes  # the cluster's node table, read only here
        self.wake = wake
        self.notify: Notify = notify or (lambda kind, name: None)
        self.margin = margin
        self.clock = clock
        self.waiting: dict[int, CommandRecord] = {}
        self._queued: dict[str, list[int]] = {}  # agent node -> requested command ids, in order
        self._last_id = store.last_command_id()
        now = clock()
        # After a restart every open command gets its full pickup or run time again: the
        # manager was away, so the node may not have had its chance.
        for command in store.load_commands_in(WAITING_STATES):
            command.since = now
            self._index(command)

    def _transaction(self, durable: bool) -> AbstractContextManager[None]:
        return self.store.transaction(durable)

    def _keep(self, command: CommandRecord) -> None:
        assert self._undo is not None, "a command changed outside CommandBook._write()"
        self._undo.keep(command)

    def _later(self, effect: Callable[..., None], *args: str) -> None:
        """Call `effect(*args)` once the open write is committed."""
        assert self._undo is not None
        self._undo.later(effect, *args)

    # The indexes' lists are replaced, not changed in place, so that the undo can keep them.
    def _hold(self, command: CommandRecord) -> None:
        assert self._undo is not None
        self._undo.keep_entry(self.waiting, command.id)
        self._undo.keep_entry(self._queued, command.node)
        self._index(command)

    def _index(self, command: CommandRecord) -> None:
        self.waiting[command.id] = command
        if command.state is CommandState.REQUESTED and not command.lite:
            self._queued[command.node] = [*self._queued.get(command.node, ()), command.id]

    def _release(self, command: CommandRecord) -> None:
        assert self._undo is not None
        self._undo.keep_entry(self.waiting, command.id)
        self.waiting.pop(command.id, None)
        queued = self._queued.get(command.node)
        if queued and command.id in queued:
            self._undo.keep_entry(self._queued, command.node)
            rest = [i for i in queued if i != command.id]
            if rest:
                self._queued[command.node] = rest
            else:
                del self._queued[command.node]

    # the one place states change --------------------------------------------------------------
    @staticmethod
    def _check(command: CommandRecord, target: CommandState) -> None:
        """Refuse a move the state machine does not allow, naming the current state (409)."""
        if not command_transition_allowed(command.state, target):
            sources = " or ".join(
                s.value for s, allowed in COMMAND_TRANSITIONS.items() if target in allowed
            )
            raise Conflict(
                f"command {command.id} is {command.state.value}; cannot {VERBS[target]} it "
                f"(only a {sources} command can be)",
                state=command.state.value,
                id=command.id,
            )

    def _move(
        self, command: CommandRecord, target: CommandState, by: str, durable: bool = True
    ) -> None:
        self._check(command, target)
        stamp = utc_now_ms()
        with self._write(durable):
            self._keep(command)
            command.state = target
            command.history = [*command.history, CommandStep(target.value, stamp, by)]
            command.since = self.clock()
            if target is CommandState.COLLECTED:
                command.collected = stamp
            elif target is CommandState.RESPONDED:
                command.responded = stamp
            elif target is CommandState.ANALYZED:
                command.analyzed = stamp
            if target in COMMAND_FINAL_STATES:
                command.ended = stamp
            if target in WAITING_STATES:
                self._hold(command)
            else:
                self._release(command)
            self.store.save_command(command)
            self._later(self.notify, "command", str(command.id))

    # sending ----------------------------------------------------------------------------------
    def send(self, user: str, spec: CommandSend) -> list[CommandRecord]:
        """One command per target node; all are stored (durably) before this returns."""
        targets = self._targets(spec)
        for node in targets:
            if node.kind == "lite":
                if spec.interpreter != "python":
                    raise InvalidRequest(
                        f"{node.name} is a lite device: it runs Python programs only, not sh"
                    )
                busy = self.outstanding(node.name)
                if busy is not None:
                    raise Conflict(
                        f"lite device {node.name} has command {busy.id} outstanding "
                        f"({busy.state.value}); a device takes one at a time — wait for it to "
                        "be analyzed, or cancel it while it is requested",
                        state=busy.state.value,
                        id=busy.id,
                    )
        stamp = utc_now_ms()
        now = self.clock()
        created = []
        with self._write(durable=True):
            for number, node in enumerate(targets, start=self._last_id + 1):
                command = CommandRecord(
                    id=number,
                    user=user,
                    node=node.name,
                    code=spec.code,
                    interpreter=spec.interpreter,
                    timeout=spec.timeout,
                    pickup=spec.pickup,
                    lite=node.kind == "lite",
                    created=stamp,
                    history=[CommandStep(CommandState.REQUESTED.value, stamp, user)],
                    since=now,
                )
                self.store.save_command(command)
                created.append(command)
                self._hold(command)
                self._later(self.notify, "command", str(command.id))
                if not command.lite:
                    self._later(self.wake, command.node)
        # Only now: a refused send uses no number.
        self._last_id += len(created)
        return created

    def _targets(self, spec: CommandSend) -> list[NodeRecord]:
        if spec.all:
            alive = [
                node
                for name, node in sorted(self.nodes.items())
                if node.status is NodeStatus.ALIVE and not node.left and node.kind == "agent"
            ]
            if not alive:
                raise Conflict("no live node to send the command to")
            return alive
        targets = []
        for name in spec.nodes:
            node = self.nodes.get(name)
            if node is None:
                raise NotFound(f"no node named {name!r}{did_you_mean(name, self.nodes)}")
            targets.append(node)
        return targets

    # agent nodes ------------------------------------------------------------------------------
    def collect(self, node: str) -> list[dict[str, Any]]:
        """Hand an agent node its requested commands (each once: they become collected)."""
        ids = self._queued.get(node)
        if not ids:
            return []
        handed = []
        with self._write(durable=False) as undo:
            undo.keep_entry(self._queued, node)
            del self._queued[node]
            for command_id in ids:
                command = self.waiting[command_id]
                self._move(command, CommandState.COLLECTED, node, durable=False)
                handed.append(command_order(command))
        return handed

    def respond(self, node: str, result: CommandResultRequest) -> CommandRecord:
        """A node's response to a command it collected."""
        command = self._of_node(node, result.id)
        self._take_response(command, node, result.response, result.exit_code, result.duration)
        return command

    def _of_node(self, node: str, command_id: int) -> CommandRecord:
        command = self.waiting.get(command_id) or self.store.get_command(command_id)
        if command is None or command.node != node:
            raise NotFound(f"no command {command_id} for node {node!r}")
        return command

    def _take_response(
        self,
        command: CommandRecord,
        by: str,
        response: str,
        exit_code: int | None,
        duration: float | None,
    ) -> None:
        self._check(command, CommandState.RESPONDED)
        # A node's report: it survives a crash of the manager without an fsync (see store).
        with self._write(durable=False):
            self._keep(command)
            command.response = response
            command.exit_code = exit_code
            command.duration = round(duration, 4) if duration is not None else None
            self._move(command, CommandState.RESPONDED, by, durable=False)

    # people -----------------------------------------------------------------------------------
    def analyze(self, command_id: int, analysis: str, by: str) -> CommandRecord:
        command = self.get(command_id)
        self._check(command, CommandState.ANALYZED)
        with self._write(durable=True):
            self._keep(command)
            command.analysis = analysis
            self._move(command, CommandState.ANALYZED, by)
        return command

    def cancel(self, command_id: int, by: str, reason: str = "") -> CommandRecord:
        command = self.get(command_id)
        self._check(command, CommandState.CANCELED)
        with self._write(durable=True):
            self._keep(command)
            command.reason = reason or f"canceled by {by}"
            self._move(command, CommandState.CANCELED, by)
        return command

    def get(self, command_id: int) -> CommandRecord:
        command = self.waiting.get(command_id) or self.store.get_command(command_id)
        if command is None:
            raise NotFound(f"no command {command_id}")
        return command

    def find(self, query: CommandQuery) -> tuple[list[CommandRecord], bool]:
        """Commands matching the query, newest first, and whether older ones match too."""
        if query.state is not None and query.state not in {s.value for s in CommandState}:
            allowed = ", ".join(s.value for s in CommandState)
            raise InvalidRequest(f"state {query.state!r} is not a command state; one of: {allowed}")
        found = self.store.find_commands(
            node=query.node,
            state=query.state,
            user=query.user,
            before=query.before,
            limit=query.limit + 1,
        )
        return found[: query.limit], len(found) > query.limit

    def waiting_counts(self) -> dict[str, int]:
        """Commands waiting for a node, by state (requested, collected), for /metrics."""
        counts = {state.value: 0 for state in WAITING_STATES}
        for command in self.waiting.values():
            counts[command.state.value] += 1
        return counts

    def recent(self) -> list[CommandRecord]:
        """The newest commands and every open one, for an /events snapshot."""
        newest = self.store.find_commands(limit=RECENT_IN_SNAPSHOT)
        seen = {c.id for c in newest}
        return newest + [c for c in self.waiting.values() if c.id not in seen]

    # deadlines --------------------------------------------------------------------------------
    def tick(self) -> None:
        """Time out commands nobody collected in time, and collected ones nobody answered.

        A timeout the store refuses changed nothing; the next tick tries it again.
        """
        now = self.clock()
        for command in list(self.waiting.values()):
            if command.state is CommandState.REQUESTED and now - command.since > command.pickup:
                reason = f"not collected within {command.pickup:g}s: is {command.node} online?"
            elif (
                command.state is CommandState.COLLECTED
                and now - command.since > command.timeout + self.margin
            ):
                reason = (
                    f"no response within its {command.timeout:g}s timeout "
                    f"(+{self.margin:g}s margin) after {command.node} collected it"
                )
            else:
                continue
            try:
                with self._write(durable=True):
                    self._keep(command)
                    command.reason = reason
                    self._move(command, CommandState.TIMED_OUT, "manager")
            except StoreFailed:
                return

    # lite devices (the hardware_synchronizer seed) --------------------------------------------
    def outstanding(self, node: str) -> CommandRecord | None:
        """The device's command that is not finished with, if any."""
        last = self.store.last_command_of(node)
        if last is not None and last.state in OUTSTANDING_STATES:
            return self.waiting.get(last.id, last)
        return None

    def device_retrieve(self, node: str) -> CommandRecord:
        """hw_command_retrieval: the device collects its requested command (state 1 -> 2)."""
        command = self._device_command(node, CommandState.COLLECTED)
        self._move(command, CommandState.COLLECTED, node, durable=False)
        return command

    def device_respond(self, node: str, response: str) -> CommandRecord:
        """hw_response_provide: the device's response (state 2 -> 3)."""
        command = self._device_command(node, CommandState.RESPONDED)
        self._take_response(command, node, response, None, None)
        return command

    def device_analyze(self, node: str, analysis: str, by: str) -> CommandRecord:
        """server_analysis_provide: the analysis ends the device's command (state 3 -> 0)."""
        command = self._device_command(node, CommandState.ANALYZED)
        return self.analyze(command.id, analysis, by)

    def _device_command(self, node: str, target: CommandState) -> CommandRecord:
        command = self.outstanding(node)
        if command is None:
            raise Conflict(
                f"{node} is at rest (state 0): there is no command to {VERBS[target]}",
                state=0,
            )
        if not command_transition_allowed(command.state, target):
            raise Conflict(
                f"{node} is in state {SEED_STATES[command.state]} ({command.state.value}); "
                f"cannot {VERBS[target]} its command now",
                state=SEED_STATES[command.state],
            )
        return command

    def device_status(self, node: str) -> dict[str, Any]:
        """The seed's status fields for one device (or node), plus `id` and `state-name`."""
        last = self.store.last_command_of(node)
        if last is not None:
            last = self.waiting.get(last.id, last)  # the live one, while it is open
        return device_status(node, last)
