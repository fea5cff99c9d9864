"""The agent's side of the command channel: the programs the manager hands this node.

Each poll answer may carry commands (`{"id", "code", "interpreter", "timeout"}`). Every one runs
in a task of its own beside the projects (`commands.run_command` runs the program); its result
is sent to the manager until the manager takes or refuses it. When the agent leaves, the
programs still running are ended and say so.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from syncopate.client import ManagerClient
from syncopate.errors import ConnectionFailed, ProtocolError, RequestError, SyncopateError
from syncopate.node import commands
from syncopate.node.backoff import REQUEST_RETRY, delays, jitter
from syncopate.node.leftovers import MARKER, marker_value

log = logging.getLogger("syncopate.node")


class CommandChannel:
    """The command-channel programs of one agent, by id, until their results are sent."""

    def __init__(
        self,
        client: ManagerClient,
        credentials: Callable[[], tuple[str, str]],
        data_dir: Path,
        scratch_dir: Path,
        clock: Callable[[], float],
    ) -> None:
        self.client = client
        self.credentials = credentials  # (name, token) now: a rejoin changes them
        self.data_dir = data_dir
        self.scratch_dir = scratch_dir
        self.clock = clock
        # Programs under way (or whose response is not sent yet), by id.
        self._running: dict[int, asyncio.Task[None]] = {}

    def take(self, handed: list[dict[str, Any]]) -> None:
        """Start the programs the manager handed out; each runs beside the projects."""
        for item in handed:
            try:
                command_id = int(item["id"])
                code, interpreter = str(item["code"]), str(item.get("interpreter") or "python")
                timeout = float(item.get("timeout") or 30.0)
            except (KeyError, TypeError, ValueError):
                log.warning("ignoring a malformed command from the manager: %.200r", item)
                continue
            if command_id in self._running:
                continue
            task = asyncio.create_task(self._command(command_id, code, interpreter, timeout))
            self._running[command_id] = task
            task.add_done_callback(functools.partial(self._command_done, command_id))

    async def end_all(self) -> None:
        """The agent leaves: end the running programs (their process groups with them)."""
        for task in list(self._running.values()):
            task.cancel()
        for task in list(self._running.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _command_done(self, command_id: int, _task: asyncio.Task[None]) -> None:
        self._running.pop(command_id, None)

    async def _command(self, command_id: int, code: str, interpreter: str, timeout: float) -> None:
        """Run one command, then send its response until the manager takes (or refuses) it."""
        log.info("command %d: running (%s, timeout %gs)", command_id, interpreter, timeout)
        started = self.clock()
        try:
            env = commands.command_environment()
            env[MARKER] = marker_value(self.data_dir)  # a later agent ends what it leaves
            result = await commands.run_command(
                code, interpreter, timeout, self.scratch_dir / str(command_id), env=env
            )
        except ValueError as exc:  # an interpreter this agent does not know
            result = commands.CommandResult(str(exc), None, self.clock() - started, False)
        except asyncio.CancelledError:
            # The agent is stopping: say so, once, rather than leave the command to time out.
            result = commands.CommandResult(
                "[syncopate] the node agent stopped before the program finished",
                None,
                self.clock() - started,
                False,
            )
            with contextlib.suppress(SyncopateError):
                async with asyncio.timeout(2.0):
                    await self._send_result(command_id, result)
            raise
        for delay in delays(REQUEST_RETRY):
            try:
                await self._send_result(command_id, result)
                return
            except (ConnectionFailed, ProtocolError) as exc:
                log.warning("command %d: response not sent (%s); retrying", command_id, exc)
            except RequestError as exc:
                log.warning("command %d: the manager refused the response: %s", command_id, exc)
                return
            await asyncio.sleep(jitter(delay))

    async def _send_result(self, command_id: int, result: commands.CommandResult) -> None:
        name, token = self.credentials()
        await self.client.node_command_result(
            name,
            token,
            command_id,
            result.response,
            result.exit_code,
            round(result.duration, 4),
        )
