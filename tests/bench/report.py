"""Percentiles (nearest rank) and the tables the benchmark prints."""

from __future__ import annotations

import math
from collections import Counter

from tests.bench.cpu import PROCESSES


def percentile(ordered: list[float], p: float) -> float:
    """Nearest rank: the smallest value with at least p % of the values at or below it."""
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


LATENCY_HEADER = f"  {'latency, ms':<38}{'n':>6}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}"


def latency_row(label: str, values: list[float]) -> str:
    if not values:
        return f"  {label:<38}{0:>6}{'—':>9}{'—':>9}{'—':>9}{'—':>9}"
    ordered = sorted(values)
    cells = "".join(f"{percentile(ordered, p):>9.1f}" for p in (50, 90, 99, 100))
    return f"  {label:<38}{len(ordered):>6}{cells}"


def errors_line(errors: Counter[str]) -> str:
    if not errors:
        return "  errors: none"
    return "  errors: " + ", ".join(f"{count} × {kind}" for kind, count in errors.most_common())


def cpu_table(used_ms: dict[str, float], orders: int, cores: int) -> list[str]:
    """CPU ms per completed order by process, their total, and what the rest of the machine spent."""
    lines = [f"  {'CPU':<24}{'ms':>10}{'ms/order':>10}{'share':>8}"]
    total = sum(used_ms[name] for name in PROCESSES)
    for name in PROCESSES:
        lines.append(f"  {name:<24}{used_ms[name]:>10.0f}{used_ms[name] / orders:>10.2f}{used_ms[name] / total:>8.0%}")
    lines.append(f"  {'total':<24}{total:>10.0f}{total / orders:>10.2f}")
    rest = used_ms["machine"] - total
    busy = used_ms["machine"] / (used_ms["wall"] * cores)
    lines.append(f"  machine {busy:.0%} busy over the {used_ms['wall'] / 1000:.1f} s measured on {cores} cores; "
                 f"the rest of it (other jobs) {rest:.0f} ms")
    lines.append(f"  (postgres counts the whole server, {used_ms['postgres, other databases']:.0f} ms of it in "
                 f"other databases' backends; rabbitmq serves other vhosts too)")
    return lines


_SHORT = {"gateway": "gw", "orders": "ord", "payments": "pay", "postgres": "pg", "rabbitmq": "mq",
          "load generator": "gen"}
RAMP_HEADER = (f"  {'offered':>8}{'achieved':>9}{'POST p50':>10}{'p99':>8}{'→WS p50':>9}{'p99':>8}{'errors':>8}"
               f"   CPU ms/order:" + "".join(f"{_SHORT[name]:>6}" for name in PROCESSES) + f"{'all':>7}")


def ramp_row(offered: float, achieved: float, post_ms: list[float], ws_ms: list[float], errors: int,
             used_ms: dict[str, float], orders: int) -> str:
    def p(values: list[float], q: float) -> str:
        return f"{percentile(sorted(values), q):.0f}" if values else "—"

    per_order = [used_ms[name] / max(orders, 1) for name in PROCESSES]
    return (f"  {offered:>8.0f}{achieved:>9.0f}{p(post_ms, 50):>10}{p(post_ms, 99):>8}{p(ws_ms, 50):>9}"
            f"{p(ws_ms, 99):>8}{errors:>8}   {'':13}" + "".join(f"{v:>6.2f}" for v in per_order)
            + f"{sum(per_order):>7.2f}")
