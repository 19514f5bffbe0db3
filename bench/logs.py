#!/usr/bin/env python3
"""How fast json-file logs are written and read: `python bench/logs.py [LINES]` (100000).

Writes LINES lines as the monitor would (one write per line), then reads them back the ways
`mini logs` does: all, with -t, `--tail 10`, `--since`. Each reading runs five times; the median
is printed. Never a pass/fail: speed is a goal, not a test.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mini_runtime import logs  # noqa: E402


def median_seconds(action, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    lines = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with tempfile.TemporaryDirectory(prefix="mini-bench-logs-") as tmp:
        path = os.path.join(tmp, "c-json.log")
        writer = logs.LogWriter(path)
        start = time.perf_counter()
        for i in range(lines):
            writer.write("stdout" if i % 10 else "stderr", b"hello world %d\n" % i)
        writer.close()
        wrote = time.perf_counter() - start
        middle = list(logs.read(path))[lines // 2]
        since = logs.entry_ns(middle)
        results = {
            "write (per line)": wrote,
            "read all": median_seconds(lambda: sum(1 for _ in logs.read(path))),
            "read all, -t": median_seconds(lambda: sum(len(logs.render(e, True))
                                                       for e in logs.read(path))),
            "--tail 10": median_seconds(lambda: list(logs.read(path, tail=10))),
            "--since (half)": median_seconds(lambda: sum(1 for _ in logs.read(path, since=since))),
        }
        size = os.path.getsize(path)
    print(f"json-file log of {lines} lines ({size / 1e6:.1f} MB)")
    for name, seconds in results.items():
        per = f"  ({seconds / lines * 1e6:.1f} µs/line)" if name != "--tail 10" else ""
        print(f"  {name:18} {seconds * 1000:8.1f} ms{per}")


if __name__ == "__main__":
    main()
