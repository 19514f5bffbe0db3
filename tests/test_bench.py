"""The benchmark harness's own logic: statistics, interleaving, the table, the README section.

No peer and no timing is checked here (speed is measured by `make bench`, never asserted): these
tests only make sure the numbers the harness prints are computed as its README says.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import measure, report, rows, workspace  # noqa: E402
from bench.measure import Result, Sample, Stats  # noqa: E402


def samples(*walls: float) -> list[Sample]:
    return [Sample(w, w / 2, 1024 * (i + 1)) for i, w in enumerate(walls)]


def test_stats_are_median_min_max():
    assert Stats.of([3.0, 1.0, 2.0]) == Stats(2.0, 1.0, 3.0)
    assert Stats.of([4.0, 1.0, 2.0, 3.0]).median == 2.5
    with pytest.raises(ValueError):
        Stats.of([])


def test_ratio_is_the_median_of_pairwise_ratios_not_the_ratio_of_medians():
    # Pairs (A, B): (1, 1), (2, 1), (10, 20). Ratios 1, 2, 0.5: median 1.0.
    # The ratio of the medians would be 2 / 1 = 2.0: a pair's two sides share a moment's noise.
    result = Result(a=samples(1.0, 2.0, 10.0), b=samples(1.0, 1.0, 20.0))
    assert result.ratios == [1.0, 2.0, 0.5]
    assert result.ratio() == Stats(1.0, 0.5, 2.0)
    assert result.wall("a").median / result.wall("b").median == 2.0


def test_interleave_alternates_and_drops_the_warmup():
    order: list[str] = []
    counter = iter(range(100))

    def side(name: str):
        def run() -> Sample:
            order.append(name)
            return Sample(float(next(counter) + 1), 0.0, 0)
        return run

    result = measure.interleave(side("a"), side("b"), pairs=3, warmup=2)
    assert order == ["a", "b"] * 5
    assert [s.wall for s in result.a] == [5.0, 7.0, 9.0]  # runs 1-4 were the warm-up
    assert [s.wall for s in result.b] == [6.0, 8.0, 10.0]
    with pytest.raises(ValueError):
        measure.interleave(side("a"), side("b"), pairs=0)


def test_launcher_report_is_parsed_in_seconds_and_kib():
    sample, code = measure.parse_report("2500000 1500 500 2048 3\n")
    assert sample == Sample(0.0025, 0.002, 2048) and code == 3


def outcomes() -> list[report.Outcome]:
    measured = report.Outcome("Start", "mini vs runc", "mini run --rm", "runc run + delete",
                              Result(a=samples(0.090, 0.100, 0.110), b=samples(0.030, 0.040, 0.050)),
                              engine_cpu={"b"})
    skipped = report.Outcome("Later", "exec", reason="needs chapter 06", skipped=True)
    failed = report.Outcome("Start", "mini vs crun", reason="crun: exited 1")
    return [measured, skipped, failed]


def test_table_has_the_measured_row_and_says_why_others_are_not():
    text = report.table(outcomes())
    row = next(line for line in text.splitlines() if line.startswith("| mini vs runc"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:3] == ["`mini run --rm`", "`runc run + delete`"]
    assert cells[3] == "100.0 (90.0–110.0)" and cells[4] == "40.0 (30.0–50.0)"
    assert cells[5] == "50.0" and cells[6] == "20.0 †"  # CPU: half the wall here; † = daemon's
    assert cells[7] == "2.0" and cells[8] == "2.0"  # KiB 1024, 2048, 3072: median 2 MiB
    assert cells[9] == "**2.50** (2.20–3.00)"  # ratios 3.0, 2.5, 2.2
    assert "- Later: exec: skipped: needs chapter 06" in text
    assert "- Start: mini vs crun: failed: crun: exited 1" in text


def test_document_names_machine_versions_and_method():
    info = {"os": "Debian", "kernel": "6.1", "cpu": "EPYC", "cpus": "2", "memory": "24 GiB",
            "cgroups": "v2", "python": "3.11.2"}
    text = report.document(outcomes(), info, {"runc": "runc version 1.1.5"}, ["a note"], 20,
                           0.0, "make bench")
    assert text.startswith("# `make bench`, 1970-01-01 00:00 UTC")
    for needle in ("kernel 6.1", "EPYC (2 CPUs)", "runc: runc version 1.1.5", "20 counted pairs",
                   "| mini vs runc |", "- a note"):
        assert needle in text


def test_machine_reads_this_host():
    info = report.machine()
    assert info["kernel"] and info["cpus"].isdigit() and info["cgroups"].split()[0] in ("v1", "v2", "hybrid")


def test_readme_section_is_replaced_between_markers_only():
    text = f"intro\n{report.README_START}\nold table\n{report.README_END}\noutro\n"
    new = report.replace_between_markers(text, "new table\n")
    assert new == f"intro\n{report.README_START}\nnew table\n{report.README_END}\noutro\n"
    with pytest.raises(ValueError):
        report.replace_between_markers("no markers", "x")


def test_the_readme_has_the_section_and_the_harness_is_small():
    readme = (REPO / "README.md").read_text()
    assert readme.index(report.README_START) < readme.index(report.README_END)
    for module in (REPO / "bench").glob("*.py"):
        assert len(module.read_text().splitlines()) <= 400, module.name


def test_rows_are_unique_and_later_chapters_say_which():
    titles = [(r.group, r.title) for r in rows.ROWS]
    assert len(titles) == len(set(titles)) and len(titles) >= 15

    class FakeBench(rows.Bench):
        def __init__(self, help_text: str) -> None:
            self._help = help_text

        def mini_commands(self) -> str:
            return self._help

    later = [r for r in rows.ROWS if r.group == rows.LATER]
    for spec in later:
        with pytest.raises(rows.Skip, match=r"needs chapter (06|07|10)$"):
            spec.make(FakeBench("    run  rm  images  --memory"))
    pull_row = next(r for r in later if "pull" in r.title)
    with pytest.raises(rows.Skip, match="write this row"):
        pull_row.make(FakeBench("    run\n    pull   pull an image from a registry"))
    assert sorted(r.title for r in later if "bridge" in r.title) == [
        "run with the default bridge: mini vs docker", "run with the default bridge: mini vs podman"]


def test_the_notebooks_row_times_each_notebook_and_fails_with_a_failing_cell(tmp_path, monkeypatch):
    import nbformat

    monkeypatch.setattr(rows, "NOTEBOOKS", tmp_path)
    spec = next(r for r in rows.ROWS if r.group == rows.COURSE)
    with pytest.raises(rows.Skip, match="no notebook"):
        spec.make(None)
    cell = nbformat.v4.new_code_cell
    nbformat.write(nbformat.v4.new_notebook(cells=[cell("x = 6 * 7"), cell("assert x == 42")]),
                   tmp_path / "01-one.ipynb")
    with pytest.raises(rows.Measured, match=r"^1 notebooks in [0-9.]+ s \(01: [0-9.]+; slowest 01\)$"):
        spec.make(None)
    nbformat.write(nbformat.v4.new_notebook(cells=[cell("assert False, 'a failing cell'")]),
                   tmp_path / "02-two.ipynb")
    with pytest.raises(Exception, match="a failing cell"):
        spec.make(None)


def test_a_change_of_the_machines_network_is_reported_and_nothing_else():
    before = {"links": ["1: lo", "2: eth0"], "nftables": [], "ip_forward": ["0"]}
    assert workspace.network_changes(before, {k: list(v) for k, v in before.items()}) == []
    after = dict(before, links=["1: lo", "2: eth0", "5: docker0"], nftables=["table ip nat {"])
    problems = workspace.network_changes(before, after)
    assert len(problems) == 2
    assert "links changed" in problems[0] and "5: docker0" in problems[0]
    assert "nftables changed" in problems[1] and "table ip nat {" in problems[1]


@pytest.mark.root
def test_a_namespace_still_held_is_reported():
    holder = subprocess.Popen(["unshare", "--net", "sleep", "60"])
    try:
        path = f"/proc/{holder.pid}/ns/net"
        for _ in range(100):  # until unshare has made it and exec'd sleep
            if os.readlink(path) != os.readlink("/proc/self/ns/net"):
                break
            time.sleep(0.02)
        ours = [("the test's net namespace", os.readlink(path))]
        assert workspace.namespaces_held(ours) == [
            f"the test's net namespace ({ours[0][1]}) is still held by process {holder.pid}"]
    finally:
        holder.kill()
        holder.wait()
    assert workspace.namespaces_held(ours) == []


@pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc")), reason="no C compiler")
def test_launcher_times_a_command_and_reports_its_exit(tmp_path: Path):
    launcher = measure.build_launcher(tmp_path)
    stderr = str(tmp_path / "stderr")
    sample, code = measure.run_once(launcher, ["/bin/sh", "-c", "echo oops >&2; exit 3"], {}, stderr)
    assert code == 3 and measure.last_line(stderr) == "oops"
    assert 0 < sample.wall < 10 and sample.maxrss > 0
    side = measure.Side("false", [["/bin/false"]], env={})
    with pytest.raises(measure.Failed, match="exited 1"):
        measure.run_side(launcher, side, stderr)
