"""A systemd unit for the node agent: how people run agents at boot on a Pi.

A system unit (`/etc/systemd/system/syncopate-node.service`, written as root) runs the agent as
the user who asked for it (`$SUDO_USER` under sudo), never as root; a user unit
(`~/.config/systemd/user/`) runs it in that user's session manager. The join password goes to
an environment file only the agent's user can read, not into the unit (units are world-readable).
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from pathlib import Path

from syncopate.errors import ConfigError
from syncopate.paths import write_private

UNIT_NAME = "syncopate-node.service"


@dataclass(frozen=True)
class ServicePlan:
    user_unit: bool
    run_as: str  # the account the agent runs under
    data_dir: Path
    unit_path: Path
    env_path: Path


def plan(*, user: bool, data_dir: Path | None, unit_dir: Path | None) -> ServicePlan:
    """Where the unit and its password file go, and whom the agent runs as."""
    account = os.environ.get("SUDO_USER") if not user and os.geteuid() == 0 else None
    entry = pwd.getpwnam(account) if account else pwd.getpwuid(os.getuid())
    home = Path(entry.pw_dir)
    if data_dir is None:
        if account or "SYNCOPATE_HOME" not in os.environ:
            data_dir = home / ".local" / "share" / "syncopate" / "node"
        else:
            data_dir = Path(os.environ["SYNCOPATE_HOME"]) / "node"
    if unit_dir is None:
        if user:
            config = os.environ.get("XDG_CONFIG_HOME") or str(home / ".config")
            unit_dir = Path(config) / "systemd" / "user"
        else:
            unit_dir = Path("/etc/systemd/system")
    data_dir = data_dir.expanduser().absolute()
    return ServicePlan(
        user_unit=user,
        run_as=entry.pw_name,
        data_dir=data_dir,
        unit_path=unit_dir.expanduser().absolute() / UNIT_NAME,
        env_path=data_dir / "join.env",
    )


def quote(arg: str) -> str:
    """One ExecStart word, quoted by systemd's rules (and `%`, `$` kept literal)."""
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    if any(c in escaped for c in "\n\r"):
        raise ConfigError(f"{arg!r} holds a line break; it cannot go into a systemd unit")
    needs_quotes = not escaped or any(c.isspace() or c in "'\";" for c in arg)
    return f'"{escaped}"' if needs_quotes else escaped


def unit_text(argv: list[str], plan: ServicePlan, url: str) -> str:
    lines = [
        "[Unit]",
        f"Description=Syncopate node agent (manager {url})",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=simple",
        f"ExecStart={' '.join(quote(a) for a in argv)}",
        f"EnvironmentFile=-{str(plan.env_path).replace('%', '%%')}",
        "Restart=always",
        "RestartSec=5",
        # SIGTERM to the agent alone: it stops its projects, sends their final variables and
        # tells the manager; systemd kills what is left only after TimeoutStopSec.
        "KillMode=mixed",
        "TimeoutStopSec=90",
    ]
    if not plan.user_unit:
        lines.append(f"User={plan.run_as}")
    wanted_by = "default.target" if plan.user_unit else "multi-user.target"
    lines += ["", "[Install]", f"WantedBy={wanted_by}"]
    return "\n".join(lines) + "\n"


def install(plan: ServicePlan, unit: str, password: str) -> None:
    """Write the password file (0600, owned by the agent's user) and the unit."""
    if any(c in password for c in "\n\r\0"):
        raise ConfigError("the password may not hold a line break")
    try:
        plan.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_private(plan.env_path, f"SYNCOPATE_PASSWORD={password}\n")
        plan.unit_path.parent.mkdir(parents=True, exist_ok=True)
        plan.unit_path.write_text(unit, encoding="utf-8")
        if os.geteuid() == 0 and plan.run_as != "root":
            entry = pwd.getpwnam(plan.run_as)
            for path in (plan.data_dir, plan.env_path):
                os.chown(path, entry.pw_uid, entry.pw_gid)
    except PermissionError as exc:
        hint = "run it with sudo, or pass --user for a user unit"
        raise ConfigError(f"cannot write {exc.filename}: permission denied; {hint}") from None
    except OSError as exc:
        raise ConfigError(f"cannot write {exc.filename}: {exc.strerror}") from None


def next_steps(plan: ServicePlan) -> str:
    if plan.user_unit:
        return (
            "enable and start it:\n"
            "  systemctl --user daemon-reload && systemctl --user enable --now syncopate-node\n"
            f"start it at boot without logging in:  sudo loginctl enable-linger {plan.run_as}\n"
            "follow its log:  journalctl --user -u syncopate-node -f"
        )
    return (
        "enable and start it:\n"
        "  sudo systemctl daemon-reload && sudo systemctl enable --now syncopate-node\n"
        "follow its log:  journalctl -u syncopate-node -f"
    )
