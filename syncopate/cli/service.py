"""A systemd unit for the node agent or the manager: how people run them at boot on a Pi.

A system unit (`/etc/systemd/system/syncopate-node.service` or `syncopate-manager.service`,
written as root) runs the program as the user who asked for it (`$SUDO_USER` under sudo), never
as root by accident; a user unit (`~/.config/systemd/user/`) runs it in that user's session
manager. The node's join password goes to an environment file only the agent's user can read,
not into the unit (units are world-readable); the manager keeps its own in its data dir.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from pathlib import Path

from syncopate.errors import ConfigError
from syncopate.paths import write_private

ROLES = ("node", "manager")  # what a unit runs; also its data dir's name and `syncopate-ROLE`


@dataclass(frozen=True)
class ServicePlan:
    user_unit: bool
    run_as: str  # the account the program runs under
    data_dir: Path
    unit_path: Path
    env_path: Path | None  # the node's password file; the manager's unit needs none

    @property
    def service(self) -> str:
        """The name systemctl knows the unit by: `syncopate-node`."""
        return self.unit_path.name.removesuffix(".service")


def plan(
    role: str = "node", *, user: bool, data_dir: Path | None, unit_dir: Path | None
) -> ServicePlan:
    """Where the unit (and the node's password file) go, and whom the program runs as."""
    if role not in ROLES:
        raise ValueError(f"no service for {role!r}")
    account = os.environ.get("SUDO_USER") if not user and os.geteuid() == 0 else None
    entry = pwd.getpwnam(account) if account else pwd.getpwuid(os.getuid())
    home = Path(entry.pw_dir)
    if data_dir is None:
        if account or "SYNCOPATE_HOME" not in os.environ:
            data_dir = home / ".local" / "share" / "syncopate" / role
        else:
            data_dir = Path(os.environ["SYNCOPATE_HOME"]) / role
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
        unit_path=unit_dir.expanduser().absolute() / f"syncopate-{role}.service",
        env_path=data_dir / "join.env" if role == "node" else None,
    )


def quote(arg: str) -> str:
    """One ExecStart word, quoted by systemd's rules (and `%`, `$` kept literal)."""
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    if any(c in escaped for c in "\n\r"):
        raise ConfigError(f"{arg!r} holds a line break; it cannot go into a systemd unit")
    needs_quotes = not escaped or any(c.isspace() or c in "'\";" for c in arg)
    return f'"{escaped}"' if needs_quotes else escaped


def unit_text(argv: list[str], plan: ServicePlan, description: str) -> str:
    """The unit that runs `argv` as `plan` says; `description` names it in `systemctl status`."""
    if any(c in description for c in "\n\r"):
        raise ConfigError(f"{description!r} holds a line break; it cannot go into a systemd unit")
    lines = [
        "[Unit]",
        f"Description={description.replace('%', '%%')}",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=simple",
        f"ExecStart={' '.join(quote(a) for a in argv)}",
    ]
    if plan.env_path is not None:
        lines.append(f"EnvironmentFile=-{str(plan.env_path).replace('%', '%%')}")
    lines += [
        "Restart=always",
        "RestartSec=5",
        # SIGTERM to the main process alone: the agent stops its projects, sends their final
        # variables and tells the manager; the manager closes its database. systemd kills what
        # is left only after TimeoutStopSec.
        "KillMode=mixed",
        "TimeoutStopSec=90",
    ]
    if not plan.user_unit:
        lines.append(f"User={plan.run_as}")
    wanted_by = "default.target" if plan.user_unit else "multi-user.target"
    lines += ["", "[Install]", f"WantedBy={wanted_by}"]
    return "\n".join(lines) + "\n"


def install(
    plan: ServicePlan,
    unit: str,
    password: str | None = None,
    private: dict[str, str] | None = None,
) -> None:
    """Write the data dir, the password file if the plan has one (0600), `private` files into
    the data dir (name: text, 0600), and the unit; as root, the folders it made and those
    files belong to the account the program runs as."""
    if password is not None and any(c in password for c in "\n\r\0"):
        raise ConfigError("the password may not hold a line break")
    try:
        # Every folder made here, not only the data dir: a root-owned ~/.local/share/syncopate
        # left behind would stop the user's own commands from making their data dirs in it.
        made = [p for p in (plan.data_dir, *plan.data_dir.parents) if not p.exists()]
        plan.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        owned = [plan.data_dir, *made]
        if plan.env_path is not None and password is not None:
            write_private(plan.env_path, f"SYNCOPATE_PASSWORD={password}\n")
            owned.append(plan.env_path)
        for name, text in (private or {}).items():
            write_private(plan.data_dir / name, text)
            owned.append(plan.data_dir / name)
        plan.unit_path.parent.mkdir(parents=True, exist_ok=True)
        plan.unit_path.write_text(unit, encoding="utf-8")
        if os.geteuid() == 0 and plan.run_as != "root":
            entry = pwd.getpwnam(plan.run_as)
            for path in owned:
                os.chown(path, entry.pw_uid, entry.pw_gid)
    except PermissionError as exc:
        hint = "run it with sudo, or pass --user for a user unit"
        raise ConfigError(f"cannot write {exc.filename}: permission denied; {hint}") from None
    except OSError as exc:
        raise ConfigError(f"cannot write {exc.filename}: {exc.strerror}") from None


def next_steps(plan: ServicePlan) -> str:
    """The systemctl commands that enable and start the unit, and where its log is."""
    name = plan.service
    if plan.user_unit:
        return (
            "enable and start it:\n"
            f"  systemctl --user daemon-reload && systemctl --user enable --now {name}\n"
            f"start it at boot without logging in:  sudo loginctl enable-linger {plan.run_as}\n"
            f"follow its log:  journalctl --user -u {name} -f"
        )
    return (
        "enable and start it:\n"
        f"  sudo systemctl daemon-reload && sudo systemctl enable --now {name}\n"
        f"follow its log:  journalctl -u {name} -f"
    )
