#!/usr/bin/env python3
"""`make bench`: how fast `mini run` starts a container, side by side with peers, as ratios.

Method (as in the reference measurements): each command runs interleaved with the baseline,
A B A B ..., after a warm-up; the ratio is taken pair by pair and its median reported, so a
noisy shared machine moves both sides of a pair together. Baseline: the bare syscalls,
`unshare --fork --pid --mount --uts --ipc --net --mount-proc chroot ROOTFS /bin/true`.
Peers are measured when installed (runc needs a bundle, made here from the same rootfs).
Never a pass/fail: speed is a goal, not a test.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = int(os.environ.get("BENCH_RUNS", "20"))


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def pairwise(cmd: list[str], baseline: list[str]) -> tuple[float, float]:
    """(median seconds of cmd, median of cmd/baseline ratios over interleaved pairs)."""
    timed(cmd), timed(baseline)
    own, ratios = [], []
    for _ in range(RUNS):
        a, b = timed(cmd), timed(baseline)
        own.append(a)
        ratios.append(a / b)
    return statistics.median(own), statistics.median(ratios)


def main() -> int:
    if os.geteuid() != 0:
        print("bench: run as root (containers need it)", file=sys.stderr)
        return 1
    root = Path(tempfile.mkdtemp(prefix="mini-bench-"))
    env_root = {"MINI_ROOT": str(root / "lib"), "MINI_RUN": str(root / "run")}
    os.environ.update(env_root)
    try:
        from mini_runtime.image.store import BUILTIN, Store

        store = Store()
        rootfs = store.rootfs(store.get(BUILTIN))
        baseline = ["unshare", "--fork", "--pid", "--mount", "--uts", "--ipc", "--net",
                    "--mount-proc", "chroot", str(rootfs), "/bin/true"]
        mini_bin = str(Path(sys.executable).parent / "mini")
        rows = [("bare syscalls (baseline)", baseline),
                ("mini run busybox true", [mini_bin, "run", "busybox", "true"]),
                ("/bin/true (fork+exec floor)", ["/bin/true"]),
                ("python3 -c pass (interpreter floor)", [sys.executable, "-c", "pass"])]
        if shutil.which("runc"):
            bundle = root / "bundle"
            bundle.mkdir()
            subprocess.run(["runc", "spec"], cwd=bundle, check=True)
            spec = json.loads((bundle / "config.json").read_text())
            spec["root"] = {"path": str(rootfs), "readonly": True}
            spec["process"].update(terminal=False, args=["/bin/true"])
            (bundle / "config.json").write_text(json.dumps(spec))
            rows.append(("runc run (Debian)", ["runc", "--root", str(root / "runc"), "run", "-b",
                                               str(bundle), f"minibench{os.getpid()}"]))
        print(f"start-to-exit of `true`, {RUNS} interleaved pairs each, median\n")
        print(f"{'command':<38} {'median':>10} {'x baseline':>11}")
        for name, cmd in rows:
            seconds, ratio = pairwise(cmd, baseline)
            print(f"{name:<38} {seconds * 1000:>8.1f}ms {ratio:>10.2f}x")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
