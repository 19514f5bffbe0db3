"""`python -m bench.profile`: where the parent side of `mini run --rm busybox true` spends its time.

`--bridge` profiles the run on mini's default bridge instead of `--network none`, inside a
private network namespace as the bridge rows run it (netns.py), never in this machine's own.

Two views of the same command, in private roots like the harness's (nothing is left behind):
- `python -X importtime`: what importing costs, module by module (cumulative, microseconds);
- `cProfile` of the whole parent process: functions by cumulative and by own time. The
  container's child process execs `true` and is not profiled; the parent's wait for it shows
  as time in `os.waitpid`/`read` on the parent/child channel.
Each is taken on a warm run (the image unpacked, the page cache warm), the median of a few.
Prints Markdown for bench/README.md. Why not in `make bench`: profiling changes what it
measures (cProfile roughly doubles the run time); the numbers are for finding the hot spots.
"""

from __future__ import annotations

import argparse
import os
import pstats
import re
import subprocess
import sys
from pathlib import Path

from typing import NamedTuple

from bench import images, netns
from bench.workspace import Workspace, report_problems

RUN = ["run", "--rm", "--network", "none", "busybox", "true"]


class Target(NamedTuple):
    """How to start the profiled `mini`: before its argv (nsenter), its environment, its args."""
    enter: list[str]
    env: dict[str, str]
    run: list[str]


def target(ws: Workspace, bridge: bool) -> Target:
    if not bridge:
        return Target([], ws.env, RUN)
    side = netns.mini_side(ws)  # its own netns, roots and env; one untimed run done
    return Target(["nsenter", f"--net={side.net_ns}", "--"], side.env or ws.env, ["run", "--rm", "busybox", "true"])


def importtime(ws: Workspace, t: Target, runs: int) -> list[tuple[int, int, str, str]]:
    """(cumulative µs, self µs, module, imported by) for every import of the run with the
    median total. `-X importtime` prints a module after the modules it imports, one indent
    deeper: the importer is the next line with a smaller indent."""
    tables = []
    for _ in range(runs):
        err = subprocess.run([*t.enter, *images.mini_argv(ws, "-X", "importtime"), *t.run],
                             env=t.env, capture_output=True, text=True, check=True).stderr
        parsed = [(int(m.group(2)), int(m.group(1)), len(m.group(3)), m.group(4))
                  for m in re.finditer(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)", err)]
        rows = []
        for i, (cumulative, own, indent, name) in enumerate(parsed):
            importer = next((n for _, _, d, n in parsed[i + 1:] if d < indent), "-")
            rows.append((cumulative, own, name, importer))
        tables.append(rows)
    tables.sort(key=lambda rows: sum(r[1] for r in rows))
    return tables[len(tables) // 2]


def cprofile(ws: Workspace, t: Target, runs: int) -> pstats.Stats:
    """The profile of the run with the median total time."""
    profiles = []
    for i in range(runs):
        out = ws.dir / f"run-{i}.prof"
        subprocess.run([*t.enter, *images.mini_argv(ws, "-m", "cProfile", "-o", str(out)), *t.run],
                       env=t.env, capture_output=True, check=True)
        stats = pstats.Stats(str(out))
        profiles.append((stats.total_tt, stats))  # type: ignore[attr-defined]
    profiles.sort(key=lambda p: p[0])
    return profiles[len(profiles) // 2][1]


def where(func: tuple[str, int, str]) -> str:
    filename, line, name = func
    short = filename.split("/mini_runtime/", 1)[-1] if "/mini_runtime/" in filename else Path(filename).name
    return f"{short}:{line} {name}" if line else name


def markdown(imports: list[tuple[int, int, str, str]], stats: pstats.Stats, top: int) -> str:
    total_import = sum(own for _, own, _, _ in imports)
    first = sorted((r for r in imports if r[3] == "-"), reverse=True)
    lines = [f"Imports: {total_import / 1000:.1f} ms in all. What `mini` imports itself, cumulative:",
             "", "| module | cumulative ms |", "|---|---|"]
    lines += [f"| `{name}` | {c / 1000:.1f} |" for c, _, name, _ in first[:top]]
    lines += ["", "The most expensive modules by their own import time, and who imports them:", "",
              "| module | own ms | imported by |", "|---|---|---|"]
    lines += [f"| `{name}` | {own / 1000:.1f} | `{by}` |"
              for _, own, name, by in sorted(imports, key=lambda r: r[1], reverse=True)[:top]]
    entries = stats.stats  # type: ignore[attr-defined]
    total = stats.total_tt  # type: ignore[attr-defined]
    # The import machinery's frames say "importing" in ten ways: the import tables above say it.
    program = {f: v for f, v in entries.items()
               if not f[0].startswith("<frozen") and "builtins." not in f[2]}
    by_cum = sorted(program.items(), key=lambda kv: kv[1][3], reverse=True)
    by_own = sorted(entries.items(), key=lambda kv: kv[1][2], reverse=True)
    lines += ["", f"cProfile of the parent, {total * 1000:.1f} ms in all (profiling included); "
              "by cumulative time (import machinery left out):", "", "| function | calls | cumulative ms | own ms |", "|---|---|---|---|"]
    lines += [f"| `{where(f)}` | {v[1]} | {v[3] * 1000:.1f} | {v[2] * 1000:.1f} |" for f, v in by_cum[:top]]
    lines += ["", "By own time:", "", "| function | calls | own ms |", "|---|---|---|"]
    lines += [f"| `{where(f)}` | {v[1]} | {v[2] * 1000:.1f} |" for f, v in by_own[:top]]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=5, help="profiled runs; the median one is shown")
    p.add_argument("--top", type=int, default=25, help="rows per table")
    p.add_argument("--bridge", action="store_true",
                   help="mini's default bridge, in a private network namespace (not --network none)")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("bench.profile: run as root", file=sys.stderr)
        return 1
    ws = Workspace()
    try:
        images.busybox_rootfs(ws)
        t = target(ws, args.bridge)
        for _ in range(2):  # warm: the layer unpacked, the byte-code compiled, caches full
            subprocess.run([*t.enter, *images.mini_argv(ws), *t.run], env=t.env, capture_output=True, check=True)
        print(markdown(importtime(ws, t, args.runs), cprofile(ws, t, args.runs), args.top))
    finally:
        problems = ws.close()
        report_problems(problems)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
