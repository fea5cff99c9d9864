"""`syncopate demo`: a manager, local node agents and the example projects, in one scratch dir.

`repos` turns the examples into git repositories, `fleet` starts and stops the processes,
`view` shows the fleet while it runs, and `run` ties them together.
"""

from __future__ import annotations

from syncopate.errors import SyncopateError


class DemoError(SyncopateError):
    """The demo cannot start or carry on; the message says why and what to do."""
