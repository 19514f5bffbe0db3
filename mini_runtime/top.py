"""`docker top`: the processes of a container, as the host sees them (host PIDs).

docker runs the host's `ps -ef` restricted to the container's PIDs (`-q PID,PID,...`), finds the
PID column in the header and keeps the rows whose PID is the container's (moby
daemon/top_unix.go). We read the default columns `UID PID PPID C STIME TTY TIME CMD` from /proc
ourselves, as procps computes them, so `mini top` needs no `ps` for the common case; other ps
options (`mini top C aux`) run the host's `ps` with docker's algorithm.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Sequence

from mini_runtime.errors import InvalidParameter, System

TITLES = ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
HERTZ = os.sysconf("SC_CLK_TCK")
#: Options docker refuses: renaming the PID column would hide it (validatePSArgs).
RENAMED_PID = re.compile(r"\s+([^\s]*)=\s*(PID[^\s]*)")


def top(pids: Sequence[int], ps_args: str = "") -> tuple[list[str], list[list[str]]]:
    """(titles, rows) of `docker top` for the container's processes `pids` (its cgroup's
    cgroup.procs, in that order). Without ps options, or with docker's default `-ef`, the rows
    are computed from /proc; otherwise the host's `ps` runs with `ps_args`."""
    if ps_args in ("", "-ef"):
        return list(TITLES), [row for row in map(proc_row, pids) if row is not None]
    return ps_table(pids, ps_args)


# --- the default columns, from /proc --------------------------------------------------------

def proc_row(pid: int) -> list[str] | None:
    """One process as `ps -ef` prints it, after docker's whitespace split (None if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
        with open(f"/proc/{pid}/status") as f:
            uid = int(next(line.split()[2] for line in f if line.startswith("Uid:")))  # effective
    except (OSError, StopIteration):  # gone meanwhile
        return None
    comm = stat[stat.index("(") + 1:stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2:].split()
    state, ppid, tty_nr = fields[0], fields[1], int(fields[4])
    cpu_ticks, start_ticks = int(fields[11]) + int(fields[12]), int(fields[19])
    return [user_name(uid), str(pid), ppid, str(cpu_percent(cpu_ticks, start_ticks)),
            start_time(start_ticks), tty_name(pid, tty_nr), cpu_time(cpu_ticks),
            command(cmdline, comm, state)]


def user_name(uid: int) -> str:
    """The host's name for `uid`, as procps shows it in 8 columns: "systemd+" for a longer one,
    the number when the host has no such user (the container's own /etc/passwd is not used)."""
    try:
        with open("/etc/passwd") as f:
            for line in f:
                parts = line.split(":")
                if len(parts) > 2 and parts[2] == str(uid):
                    name = parts[0]
                    return name if len(name) <= 8 else name[:7] + "+"
    except OSError:
        pass
    return str(uid)


def uptime() -> float:
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


def boot_time() -> int:
    with open("/proc/stat") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("btime "))


def cpu_percent(cpu_ticks: int, start_ticks: int) -> int:
    """procps's C: CPU time over lifetime, as a whole percentage, at most 99."""
    seconds = uptime() - start_ticks / HERTZ
    return min(99, int((cpu_ticks * 100 // HERTZ) / seconds)) if seconds > 0 else 0


def start_time(start_ticks: int, now: float | None = None) -> str:
    """procps's STIME: "17:38" if it started today, "Nov27" this year, else the year."""
    started = time.localtime(boot_time() + start_ticks // HERTZ)
    today = time.localtime(now)
    if started.tm_year != today.tm_year:
        return time.strftime("%Y", started)
    return time.strftime("%H:%M" if started.tm_yday == today.tm_yday else "%b%d", started)


def cpu_time(cpu_ticks: int) -> str:
    """procps's TIME: cumulative CPU time, "00:00:03", with "2-" in front for days."""
    seconds = cpu_ticks // HERTZ
    days, seconds = divmod(seconds, 86400)
    text = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    return f"{days}-{text}" if days else text


def tty_name(pid: int, tty_nr: int) -> str:
    """The controlling terminal as ps names it: "pts/0", "tty1", "ttyS0", or "?" for none."""
    if tty_nr == 0:
        return "?"
    major, minor = os.major(tty_nr), os.minor(tty_nr)
    if 136 <= major <= 143:
        return f"pts/{(major - 136) * 256 + minor}"
    if major == 4:
        return f"tty{minor}" if minor < 64 else f"ttyS{minor - 64}"
    for fd in ("2", "0", "1", "255"):  # procps looks at the process's own terminal fds too
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
            if link.startswith("/dev/") and os.stat(link).st_rdev == tty_nr:
                return link.removeprefix("/dev/")
        except OSError:
            continue
    return "?"


def command(cmdline: bytes, comm: str, state: str) -> str:
    """CMD: the arguments joined by spaces (ps shows control characters as "?"), "[comm]" when
    there are none; then docker splits the line on whitespace and joins the fields with single
    spaces, so runs of spaces collapse."""
    if not cmdline.strip(b"\0"):
        return f"[{comm}]" + (" <defunct>" if state == "Z" else "")
    text = cmdline.rstrip(b"\0").decode(errors="replace").replace("\0", " ")
    text = "".join("?" if ch < " " or ch == "\x7f" else ch for ch in text)
    return " ".join(word for word in text.split(" ") if word)


# --- other ps options: the host's ps, docker's algorithm ------------------------------------

def ps_table(pids: Sequence[int], ps_args: str) -> tuple[list[str], list[list[str]]]:
    """Run `ps ARGS -qPID,...` (without -q when ps refuses it with those options, as docker
    retries) and keep the container's rows."""
    for key, column in RENAMED_PID.findall(" " + ps_args):
        if key != "pid":
            raise InvalidParameter(f'specifying "{key}={column}" is not allowed')
    args = ps_args.split(" ")
    quick = "-q" + ",".join(str(p) for p in pids)
    try:
        result = subprocess.run(["ps", *args, quick], capture_output=True)
        if result.returncode != 0:
            result = subprocess.run(["ps", *args], capture_output=True)
    except FileNotFoundError:
        raise System('ps: exec: "ps": executable file not found in $PATH') from None
    if result.returncode != 0:                          # (the first line of stderr says why)
        reason = result.stderr.decode(errors="replace").split("\n", 1)[0]
        raise System(f"ps: {reason or f'exit status {result.returncode}'}")
    return parse_ps_output(result.stdout.decode(errors="replace"), pids)


def fields(line: str) -> list[str]:
    """Go's strings.FieldsFunc on ASCII whitespace only, as docker splits ps output."""
    return [f for f in re.split(r"[\t\n\f\r ]+", line) if f]


def parse_ps_output(output: str, pids: Sequence[int]) -> tuple[list[str], list[list[str]]]:
    """docker's parsePSOutput: titles from the header; rows whose PID is one of `pids` (thread
    rows, PID "-", follow their process), the overhanging fields joined into the last column."""
    lines = output.split("\n")
    titles = fields(lines[0])
    if "PID" not in titles:
        raise System("Couldn't find PID field in ps output")
    index, wanted, rows, keep = titles.index("PID"), set(pids), [], False
    for line in lines[1:]:
        if not line:
            continue
        cells = fields(line)
        if len(cells) <= index:
            continue
        if cells[index] == "-":
            if keep:
                rows.append(cells[:len(titles) - 1] + [" ".join(cells[len(titles) - 1:])])
            continue
        try:
            pid = int(cells[index])
        except ValueError:
            raise System(f"Unexpected pid '{cells[index]}': strconv.Atoi: parsing "
                         f"\"{cells[index]}\": invalid syntax") from None
        keep = pid in wanted
        if keep:
            rows.append(cells[:len(titles) - 1] + [" ".join(cells[len(titles) - 1:])])
    return titles, rows
