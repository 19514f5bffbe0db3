"""The results as a Markdown table (with the machine and every peer's version) and a chart.

Why both: the table is what a reader checks (absolute times, CPU, memory, spread); the chart is
what a reader sees at once (each ratio against 1.0, on a log scale so that 0.1x and 10x are as
far from parity). The README shows the latest table between two markers, rewritten by each
full run.
"""

from __future__ import annotations

import os
import platform
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.measure import Result, Stats

README_START = "<!-- bench:start -->"
README_END = "<!-- bench:end -->"


@dataclass
class Outcome:
    """One row's fate: measured (result), skipped or failed (reason)."""

    group: str
    title: str
    a: str = ""
    b: str = ""
    result: Result | None = None
    reason: str = ""
    skipped: bool = False
    measured: bool = False  # not a time: `reason` is the figure (memory per container)
    engine_cpu: set[str] = field(default_factory=set)  # sides whose CPU includes a daemon's


def machine() -> dict[str, str]:
    """What the numbers depend on: OS, kernel, CPU, memory, cgroup layout, Python."""
    info = {"kernel": platform.release(), "python": platform.python_version()}
    try:
        os_release = Path("/etc/os-release").read_text()
        info["os"] = re.search(r'^PRETTY_NAME="?([^"\n]*)', os_release, re.M).group(1)  # type: ignore[union-attr]
    except (OSError, AttributeError):
        info["os"] = "?"
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        info["cpu"] = re.search(r"^model name\s*:\s*(.*)$", cpuinfo, re.M).group(1).strip()  # type: ignore[union-attr]
    except (OSError, AttributeError):
        info["cpu"] = platform.processor() or "?"
    info["cpus"] = str(os.cpu_count())
    try:
        kib = int(re.search(r"^MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text(), re.M).group(1))  # type: ignore[union-attr]
        info["memory"] = f"{kib / 1024 / 1024:.0f} GiB"
    except (OSError, AttributeError):
        info["memory"] = "?"
    root = Path("/sys/fs/cgroup")
    info["cgroups"] = ("v2" if (root / "cgroup.controllers").exists() else
                       "hybrid (v1 controllers, a cgroup2 tree beside them)"
                       if (root / "unified" / "cgroup.controllers").exists() else "v1")
    return info


def ms(stats: Stats) -> str:
    return f"{stats.median * 1000:.1f} ({stats.low * 1000:.1f}–{stats.high * 1000:.1f})"


def ratio(stats: Stats) -> str:
    return f"**{stats.median:.2f}** ({stats.low:.2f}–{stats.high:.2f})"


def cpu(result: Result, side: str, engine: bool) -> str:
    return f"{result.cpu(side).median * 1000:.1f}{' †' if engine else ''}"


def mib(result: Result, side: str) -> str:
    return f"{result.maxrss(side).median / 1024:.1f}"


def table(outcomes: list[Outcome]) -> str:
    """One Markdown table per group of measured rows; skipped and failed rows as a list."""
    lines: list[str] = []
    group = None
    for o in outcomes:
        if o.result is None:
            continue
        if o.group != group:
            group = o.group
            lines += ["", f"**{group}**", "",
                      "| row | A | B | A wall ms, median (min–max) | B wall ms | A CPU ms | B CPU ms "
                      "| A peak MiB | B peak MiB | A/B, median of pairs (min–max) |",
                      "|---|---|---|---|---|---|---|---|---|---|"]
        r = o.result
        lines.append(f"| {o.title} | `{o.a}` | `{o.b}` | {ms(r.wall('a'))} | {ms(r.wall('b'))} "
                     f"| {cpu(r, 'a', 'a' in o.engine_cpu)} | {cpu(r, 'b', 'b' in o.engine_cpu)} "
                     f"| {mib(r, 'a')} | {mib(r, 'b')} | {ratio(r.ratio())} |")
    otherwise = [o for o in outcomes if o.result is None and o.measured]
    if otherwise:
        lines += ["", "**Measured, not timed**", ""]
        lines += [f"- {o.group}: {o.title}: {o.reason}" for o in otherwise]
    others = [o for o in outcomes if o.result is None and not o.measured]
    if others:
        lines += ["", "**Not measured**", ""]
        lines += [f"- {o.group}: {o.title}: {'skipped' if o.skipped else 'failed'}: {o.reason}"
                  for o in others]
    return "\n".join(lines).lstrip("\n") + "\n"


def document(outcomes: list[Outcome], info: dict[str, str], versions: dict[str, str],
             notes: list[str], pairs: int, when: float, command: str) -> str:
    """The whole results file: where and when, with what, how, then the tables and notes."""
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(when))
    head = [f"# `make bench`, {stamp}", "",
            f"Machine: {info['os']}, kernel {info['kernel']}, {info['cpu']} ({info['cpus']} CPUs), "
            f"{info['memory']}, cgroups {info['cgroups']}. Python {info['python']}.", ""]
    head += ["Peers: " + "; ".join(f"{k}: {v}" for k, v in sorted(versions.items())) + ".", ""]
    head += [f"Method: {command}. Each row runs A and B interleaved (A B A B …) after a warm-up, "
             f"{pairs} counted pairs. Wall: start to exit, seen from outside. CPU: user + system "
             "time of the command's whole process tree (wait4's rusage); † adds what the engine's "
             "daemon side used meanwhile (dockerd, containerd and shims; podman's conmon and runc), "
             "read from their cgroup's cpuacct.usage. Peak: the largest single process the command "
             "waited for (ru_maxrss): for docker that is the client only. A/B: the median of the "
             "pairwise ratios, the figure to quote on a shared machine.", ""]
    tail = ["", "**Notes**", ""] + [f"- {n}" for n in notes] if notes else []
    return "\n".join(head) + "\n" + table(outcomes) + "\n".join(tail) + ("\n" if tail else "")


def chart(outcomes: list[Outcome], path: Path, title: str) -> None:
    """A horizontal bar per measured row: the median ratio, with its min–max as a whisker."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    measured = [o for o in outcomes if o.result is not None]
    if not measured:
        return
    labels = [f"{o.a}  vs  {o.b}" for o in measured]
    stats = [o.result.ratio() for o in measured if o.result is not None]
    medians = [s.median for s in stats]
    errors = [[s.median - s.low for s in stats], [s.high - s.median for s in stats]]
    # Green: mini is faster than the peer; red: slower; grey: not a peer (floors, mini vs mini).
    colors = ["#9e9e9e" if o.group.startswith("Floors") or o.b.startswith("mini") else
              "#2a9d8f" if m <= 1.0 else "#e76f51" for o, m in zip(measured, medians)]
    fig, ax = plt.subplots(figsize=(11, 0.42 * len(measured) + 1.6))
    y = list(range(len(measured)))[::-1]
    ax.barh(y, medians, xerr=errors, color=colors, alpha=0.85, capsize=3, ecolor="#555555")
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_yticks(y, labels, fontsize=8)
    for yy, m in zip(y, medians):
        ax.annotate(f"{m:.2f}×", (m, yy), xytext=(4, 3), textcoords="offset points", fontsize=8)
    ax.set_xlabel("A / B wall time, median of interleaved pairs (log scale; < 1: A is faster)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def replace_between_markers(text: str, new: str) -> str:
    """`text` with what lies between README_START and README_END replaced by `new`."""
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"the README has no {README_START} … {README_END} section")
    return text[:start + len(README_START)] + "\n" + new.strip("\n") + "\n" + text[end:]
