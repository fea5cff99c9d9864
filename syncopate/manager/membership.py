"""A node's life in the cluster: joining, proving who it is, speaking, and going away.

A node joins (`initialize`: a free name and a new token), authenticates with that token, and
each request it makes counts as contact (`touch`: a dead or departed node that speaks again is
alive). It goes away by leaving cleanly, by being drained (its projects move off, see
monitor.py), by turning out to be a lite device, or by being forgotten once dead; its projects
fail over through placement.py. Silence (death) is the monitor's to notice.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from syncopate import constraints, validate
from syncopate.errors import (
    UNKNOWN_NODE,
    WRONG_TOKEN,
    Conflict,
    InvalidRequest,
    NotFound,
    Unauthorized,
)
from syncopate.manager.auth import hash_secret, new_token, secret_matches
from syncopate.manager.monitor import Monitor
from syncopate.manager.placement import Placement
from syncopate.manager.records import NodeRecord, utc_now
from syncopate.protocol import InitializeRequest
from syncopate.states import NodeStatus

log = logging.getLogger("syncopate.manager")

if TYPE_CHECKING:
    from syncopate.manager.cluster import Cluster


class Membership:
    """The nodes' records, from joining to being forgotten."""

    def __init__(self, cluster: Cluster, placement: Placement, monitor: Monitor) -> None:
        self.cluster = cluster
        self.state = cluster.state
        self.placement = placement
        self.monitor = monitor

    def initialize(self, request: InitializeRequest, address: str) -> tuple[str, str]:
        """Admit a node (the password was checked by the caller); return (name, token)."""
        name = self._free_name(request.preferred_name)
        token = new_token()
        now = utc_now()
        node = NodeRecord(
            name=name,
            token_hash=hash_secret(token),
            storage=request.storage,
            ram=request.ram,
            labels=dict(request.labels),
            agent_version=request.agent_version,
            kind=request.kind,
            joined_at=now,
            last_contact_wall=now,
            last_contact=self.cluster.clock(),
            alive_since=self.cluster.clock(),
            address=address,
        )
        with self.cluster._write(durable=True) as undo:
            self.cluster.store.save_node(node)
            undo.keep_entry(self.state.nodes, name)
            self.state.nodes[name] = node
            undo.keep_entry(self.state.on_node, name)
            self.state.on_node.setdefault(name, set())
            self.state.contact.heard(name)  # (a refused join leaves a name the tick drops)
            self.state.balance_needed = self.state.retry_needed = True
            self.cluster._node_changed(name)
        return name, token

    def _free_name(self, preferred: str) -> str:
        """The preferred name made safe, with a counter if a node has it (or it is reserved)."""
        taken = self.state.nodes
        base = re.sub(r"[^A-Za-z0-9._-]", "-", preferred.strip())[:56].lstrip("._-")
        if not base or base in validate.RESERVED_NODE_NAMES:
            base = "node"
        if base not in taken and base not in validate.RESERVED_NODE_NAMES and base != "node":
            return base
        counter = 1
        while f"{base}-{counter}" in taken:
            counter += 1
        return f"{base}-{counter}"

    def authenticate_node(self, name: str, token: str) -> NodeRecord:
        """The node with this name and token, or Unauthorized."""
        node = self.state.nodes.get(name)
        if node is None:
            # Compare anyway, so timing does not tell which names exist.
            secret_matches(token, "0" * 64)
            raise Unauthorized(
                f"unknown node {name!r} or wrong access token; join again", code=UNKNOWN_NODE
            )
        if not secret_matches(token, node.token_hash):
            raise Unauthorized(
                f"wrong access token for node {name!r}; join again", code=WRONG_TOKEN
            )
        return node

    def touch(self, node: NodeRecord, address: str = "") -> None:
        """Record contact from a node; a dead or departed node that speaks again is alive."""
        node.last_contact = self.cluster.clock()
        node.last_contact_wall = utc_now()
        self.state.contact.heard(node.name)  # last of all now, where the tick looks last
        if address:
            node.address = address
        if node.status is NodeStatus.DEAD or node.left:
            with self.cluster._write(durable=True):
                self.cluster._set_node_status(node, NodeStatus.ALIVE)
                node.left = False
                node.alive_since = node.last_contact
                self.cluster.store.save_node(node)
                self.state.balance_needed = self.state.retry_needed = True
                self.cluster._node_changed(node.name)
            # The other half of monitor.py's "is dead" line: the log tells a flapping node.
            log.info("node %s is alive again (from %s)", node.name, node.address or "?")

    def mark_lite(self, node: NodeRecord) -> None:
        """The node is a lite device (it spoke /hw_supervisor as one): it runs no projects."""
        if node.kind == "lite":
            return
        with self.cluster._write(durable=True):
            self.cluster._keep(node)
            node.kind = "lite"
            self.cluster.store.save_node(node)
            self.placement.fail_over(
                [
                    (self.state.projects[name], f"node {node.name} is a lite device")
                    for name in self.state.placed_on(node.name)
                ]
            )
            self.cluster._node_changed(node.name)

    def leave(self, node: NodeRecord) -> list[str]:
        """A node stopped cleanly: its projects move at once. Returns their names."""
        moved = self.state.placed_on(node.name)
        with self.cluster._write(durable=True):
            self.cluster._keep(node)
            node.left = True
            self.cluster._set_node_status(node, NodeStatus.DEAD)
            self.cluster.store.save_node(node)
            self.placement.fail_over(
                [(self.state.projects[name], f"node {node.name} left") for name in moved]
            )
            self.cluster._node_changed(node.name)
        return moved

    def drain(self, name: str) -> list[str]:
        """No new projects on this node, and its projects move elsewhere (stop first)."""
        node = self.named(name)
        with self.cluster._write(durable=True):
            self.cluster._keep(node)
            node.drained = True
            self.cluster.store.save_node(node)
            # Changed first: its view says it takes no projects before any is placed.
            self.cluster._node_changed(name)
            self.monitor.move_off_unschedulable()
        return self.state.placed_on(name)

    def undrain(self, name: str) -> None:
        node = self.named(name)
        with self.cluster._write(durable=True):
            self.cluster._keep(node)
            node.drained = False
            self.cluster.store.save_node(node)
            self.state.balance_needed = self.state.retry_needed = True
            self.cluster._node_changed(name)

    def label(self, name: str, labels: dict[str, str], remove: list[str]) -> dict[str, str]:
        """Set and remove a node's labels; returns its labels now.

        Projects placed there that no longer meet their constraints move away (stopped first,
        as for a drain; with nowhere to go they wait unplaced, saying why), and unplaced
        projects are tried again: the node may meet theirs now.
        """
        node = self.named(name)
        both = sorted(set(labels) & set(remove))
        if both:
            raise InvalidRequest(f"label {', '.join(both)}: set and removed at once; pick one")
        new = {k: v for k, v in node.labels.items() if k not in remove} | labels
        try:
            constraints.check_labels(new)
        except ValueError as exc:
            raise InvalidRequest(f"node {name}: {exc}") from None
        if new == node.labels:
            return new
        with self.cluster._write(durable=True):
            self.cluster._keep(node)
            node.labels = new  # a new dict: the placement views and the undo hold the old one
            self.cluster.store.save_node(node)
            self.cluster._node_changed(name)
            for project_name in self.state.placed_on(name):
                project = self.state.projects[project_name]
                if project.copy_of is not None:
                    continue  # a copy is not moved: reconciling deletes it (every_node.py)
                if project.moving_to is None and not self.placement.meets(project, node):
                    self.placement.move_elsewhere(project)
            self.state.balance_needed = self.state.retry_needed = True
        return new

    def forget(self, name: str) -> None:
        """Delete a dead node's record; its token stops working."""
        node = self.named(name)
        if node.status is NodeStatus.ALIVE:
            raise Conflict(
                f"node {name!r} is alive; drain it and stop its agent before forgetting it"
            )
        with self.cluster._write(durable=True) as undo:
            self.cluster._keep(
                node
            )  # so that a refused forget marks its placement view stale again
            self.placement.fail_over(
                [
                    (self.state.projects[project_name], f"node {name} was forgotten")
                    for project_name in self.state.placed_on(name)
                ]
            )
            self.cluster.store.delete_node(name)
            for index in (
                self.state.nodes,
                self.state.on_node,
                self.cluster.polls.versions,
                self.cluster.polls.sent_versions,
            ):
                undo.keep_entry(index, name)
                index.pop(name, None)
            self.cluster._node_changed(name)

    def named(self, name: str) -> NodeRecord:
        node = self.state.nodes.get(name)
        if node is None:
            raise NotFound(f"no node named {name!r}")
        return node
