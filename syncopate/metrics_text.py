"""How a node's metrics read (cpu, load, temperature, uptime): in `node show` and the TUI."""

from __future__ import annotations

from collections.abc import Mapping


def _number(value: object) -> float | None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    return float(value)


def duration(seconds: object) -> str:
    """`45s`, `12m`, `5h 3m`, `3d 4h`; `-` when unknown."""
    value = _number(seconds)
    if value is None or value < 0:
        return "-"
    whole = int(value)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m"
    if whole < 86400:
        return f"{whole // 3600}h {whole % 3600 // 60}m"
    return f"{whole // 86400}d {whole % 86400 // 3600}h"


def metrics_text(metrics: object) -> str:
    """A node's metrics in a line: `cpu 12%  load 0.52  48.3 °C  up 3d 4h`; `-` when it sends
    none. A figure the node does not know (a machine without a sensor) is left out."""
    if not isinstance(metrics, Mapping):
        return "-"
    cpu, load = _number(metrics.get("cpu")), _number(metrics.get("load"))
    temperature = _number(metrics.get("temperature"))
    parts = []
    if cpu is not None:
        parts.append(f"cpu {cpu:.0f}%")
    if load is not None:
        parts.append(f"load {load:.2f}")
    if temperature is not None:
        parts.append(f"{temperature:.1f} °C")
    if _number(metrics.get("uptime")) is not None:
        parts.append(f"up {duration(metrics.get('uptime'))}")
    return "  ".join(parts) or "-"


def cpu_cell(metrics: object) -> str:
    """A node's CPU use in at most 4 characters (`7%`, `100%`); `-` when unknown."""
    cpu = _number(metrics.get("cpu")) if isinstance(metrics, Mapping) else None
    return "-" if cpu is None else f"{cpu:.0f}%"
