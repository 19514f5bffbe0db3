"""`make bench` (`python -m bench`): mini side by side with runc, crun, podman and docker.

Runs every row of rows.py, prints each as it goes, writes bench/results/latest.md and
latest.png, and puts the table into the README. Whatever the harness started or made is
removed at the end, also after an error or ctrl-C; what could not be is printed.
Never a pass/fail: speed is a goal the numbers inform, not a test.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from bench import report
from bench.measure import Failed, Sample, Side, interleave, run_side
from bench.peers import Bench, Skip
from bench.rows import ROWS, Measured, RowSpec
from bench.workspace import REPO, Workspace, report_problems

RESULTS = REPO / "bench" / "results"


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    p.add_argument("--pairs", type=int, default=int(os.environ.get("BENCH_PAIRS", "20")),
                   help="counted A/B pairs per row (default 20; the results in git use at least 15)")
    p.add_argument("--only", action="append", default=[], metavar="TEXT",
                   help="only rows whose group or title contains TEXT (repeatable); "
                        "the results are then printed, not written")
    p.add_argument("--no-write", action="store_true", help="print the table, write nothing")
    return p.parse_args(argv)


def measure(bench: Bench, spec: RowSpec, pairs: int) -> report.Outcome:
    outcome = report.Outcome(spec.group, spec.title)
    try:
        a, b = spec.make(bench)
    except Skip as e:
        outcome.reason, outcome.skipped = str(e), True
        return outcome
    except Measured as e:               # a figure that is not a time (memory)
        outcome.reason, outcome.measured = str(e), True
        return outcome
    except Exception as e:              # setting a row up failed: that row only
        outcome.reason = f"{type(e).__name__}: {e}".splitlines()[0][:400]
        return outcome
    outcome.a, outcome.b = a.label, b.label
    outcome.engine_cpu = {name for name, side in (("a", a), ("b", b)) if side.extra_cpu}
    stderr = str(bench.ws.dir / "stderr")

    def run(side: Side) -> Sample:
        sample = run_side(bench.launcher, side, stderr)
        bench.ws.reap()  # orphans that came back to us (containerd's shims exit after the run)
        return sample

    try:
        outcome.result = interleave(lambda: run(a), lambda: run(b), pairs, spec.warmup)
    except Exception as e:  # one row failing must not stop the others
        outcome.reason = f"{type(e).__name__}: {e}".splitlines()[0][:400]
    finally:
        bench.ws.reap()
    return outcome


def say(outcome: report.Outcome, number: int, total: int) -> None:
    where = f"[{number}/{total}] {outcome.group}: {outcome.title}"
    if outcome.result is None:
        kind = "measured" if outcome.measured else "skipped" if outcome.skipped else "failed"
        print(f"{where}: {kind}: {outcome.reason}", flush=True)
        return
    r = outcome.result
    print(f"{where}: {r.ratio().median:.2f}x  ({outcome.a} {r.wall('a').median * 1000:.1f} ms, "
          f"{outcome.b} {r.wall('b').median * 1000:.1f} ms)", flush=True)


def write(outcomes: list[report.Outcome], bench: Bench, pairs: int, started: float) -> None:
    info = report.machine()
    document = report.document(outcomes, info, bench.versions, bench.notes, pairs, started,
                               f"`make bench` (`python -m bench --pairs {pairs}`)")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.md").write_text(document)
    title = (f"mini vs peers, {time.strftime('%Y-%m-%d', time.gmtime(started))}: "
             f"{info['cpu']} ×{info['cpus']}, kernel {info['kernel']}, cgroups {info['cgroups'].split()[0]}")
    report.chart(outcomes, RESULTS / "latest.png", title)
    readme = REPO / "README.md"
    body = document.split("\n", 1)[1].strip()  # without its own title
    section = (f"Latest run ({time.strftime('%Y-%m-%d', time.gmtime(started))}, "
               f"[bench/results/latest.md](bench/results/latest.md), chart "
               f"[bench/results/latest.png](bench/results/latest.png)):\n\n{body}\n")
    readme.write_text(report.replace_between_markers(readme.read_text(), section))
    print(f"bench: wrote {RESULTS / 'latest.md'}, {RESULTS / 'latest.png'} and the README's table")


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str]) -> int:
    args = parse(argv)
    if os.geteuid() != 0:
        print("bench: run as root (containers need it)", file=sys.stderr)
        return 1
    if args.pairs < 1:
        print("bench: --pairs must be at least 1", file=sys.stderr)
        return 2
    specs = [s for s in ROWS if not args.only or any(t in f"{s.group}: {s.title}" for t in args.only)]
    signal.signal(signal.SIGINT, _interrupt)  # also where a shell started us with SIGINT ignored
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    started = time.time()
    ws = Workspace()
    outcomes: list[report.Outcome] = []
    stopped = 0  # the exit status when the rows did not all run
    print(f"bench: {len(specs)} rows, {args.pairs} pairs each; workspace {ws.dir}", flush=True)
    try:
        bench = Bench(ws)
        load = [os.getloadavg()[0]]
        for number, spec in enumerate(specs, 1):
            outcomes.append(measure(bench, spec, args.pairs))
            say(outcomes[-1], number, len(specs))
            load.append(os.getloadavg()[0])
        bench.notes.append(f"Load during the run (1-minute load average, {os.cpu_count()} CPUs, sampled "
                           f"between rows): {min(load):.1f} to {max(load):.1f}, median "
                           f"{sorted(load)[len(load) // 2]:.1f}. Only the ratios survive load.")
        bench.bridge_notes()
        docker = bench.started("docker")
        if docker is not None:
            bench.notes.append(f"Resident besides, between runs: dockerd + containerd "
                               f"{docker.resident_mib():.0f} MiB (RSS).")
    except KeyboardInterrupt:
        stopped = 130
        print("\nbench: interrupted; cleaning up", file=sys.stderr)
    except Failed as e:
        stopped = 1
        print(f"bench: {e}", file=sys.stderr)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # cleanup must finish
        problems = ws.close()
        report_problems(problems)
        print("bench: cleaned up" + (" (see above)" if problems else ": nothing left behind"))
    if stopped:
        return stopped
    print("\n" + report.table(outcomes))
    for note in bench.notes:
        print(f"- {note}")
    if not args.only and not args.no_write:
        write(outcomes, bench, args.pairs, started)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
