"""Learner code in a batch run gets nothing of the machine's or of other learners': no secret
file, no model solution, no other submission, no network (not even the machine's 127.0.0.1),
and nothing it writes outside its scratch survives the run."""

from __future__ import annotations

import csv
import json
import shutil
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from exercises import grading, parts

REPO = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.root, pytest.mark.integration, pytest.mark.grader]

# Runs wherever the grader imports the file (the gate, the learner server, the plugged mini),
# and says what it got in exit_code's exception, which goes into the feedback file.
PROBE = '''
import os as _os, socket as _socket
def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read(4096).decode(errors="replace")
    except OSError as e:
        return f"ERR:{{type(e).__name__}}"
def _listing(path):
    try:
        return ",".join(sorted(_os.listdir(path))) or "EMPTY"
    except OSError as e:
        return f"ERR:{{type(e).__name__}}"
def _connect():
    try:
        with _socket.create_connection(("127.0.0.1", {port}), timeout=2) as s:
            s.sendall(b"escaped")
        return "CONNECTED"
    except OSError as e:
        return f"ERR:{{type(e).__name__}}"
_written = []
for _path in {drops!r}:
    try:
        with open(_path, "w") as f:
            f.write("left behind")
        _written.append(_path)
    except OSError:
        pass
_REPORT = " | ".join([
    "PROBE",
    "shadow=" + (lambda t: t if t.startswith("ERR:") else str(len(t)))(_read("/etc/shadow")),
    "solution=" + _read({solution!r})[:60],
    "other=" + _read({other!r})[:60],
    "folder=" + _listing({folder!r}),
    "root=" + _listing("/root"),
    "net=" + _connect(),
    "wrote=" + ",".join(_written),
])
def exit_code(status):
    raise RuntimeError(_REPORT)
'''


class Listener:
    """A TCP server on the machine's 127.0.0.1 (this test's network namespace): it counts
    the connections it accepts. Loopback only: nothing leaves the machine."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.stopping.set()
        self.thread.join()
        self.sock.close()


@pytest.mark.parametrize("where", ["tmp", "checkout"])
def test_learner_code_gets_nothing_of_the_machine_or_other_learners(where, tmp_path):
    """The submissions folder under /tmp, and inside the checkout (which learner code sees)."""
    chapter = grading.find_chapter("01")
    solution = parts.solution_file(chapter)
    assert solution.is_file() and solution.read_text().strip()
    subs = tmp_path / "submissions" if where == "tmp" else REPO / f".submissions-{uuid.uuid4().hex[:8]}"
    subs.mkdir()
    try:
        check_the_probe(chapter, solution, subs, tmp_path)
    finally:
        shutil.rmtree(subs)


def check_the_probe(chapter: grading.Chapter, solution: Path, subs: Path, tmp_path: Path) -> None:
    secret = f"secret-{uuid.uuid4().hex}"
    (subs / "alice.py").write_text(f"# {secret}\n")
    token = uuid.uuid4().hex
    drops = [f"/tmp/mini-test-escape-{token}", f"/var/tmp/mini-test-escape-{token}",
             f"/dev/shm/mini-test-escape-{token}", str(subs / f"escape-{token}"), f"/root/escape-{token}"]
    listener = Listener()
    try:
        skeleton = (chapter.folder / chapter.learner_file).read_text()
        (subs / "mallory.py").write_text(skeleton + PROBE.format(
            port=listener.port, drops=drops, solution=str(solution), other=str(subs / "alice.py"),
            folder=str(subs)))
        out = tmp_path / "grades.csv"
        result = subprocess.run([sys.executable, "-m", "exercises", "grade", "01", "--submissions", str(subs),
                                 "--csv", str(out), "--only", "1.1,1.4", "--seed", "3"],
                                cwd=REPO, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
    finally:
        listener.close()
        left = [path for path in drops if Path(path).exists()]
        for path in left:
            Path(path).unlink()
    text = (tmp_path / "grades-feedback" / "mallory.py.txt").read_text()
    report = next((line for line in text.splitlines() if "PROBE" in line), "")
    assert report, f"the probe did not run: {text}"
    got = dict(part.split("=", 1) for part in report.split("PROBE | ", 1)[1].split(" | "))
    nothing = ("EMPTY", "ERR:FileNotFoundError")
    leaks = [name for name, leaked in [
        ("/etc/shadow", got["shadow"] != "0" and not got["shadow"].startswith("ERR:")),  # /dev/null
        ("the model solution", bool(got["solution"].strip()) and not got["solution"].startswith("ERR:")),
        ("another learner's file", not got["other"].startswith("ERR:")),
        ("the submissions folder", got["folder"] not in nothing),
        ("/root", got["root"] not in nothing),
        ("the machine's 127.0.0.1", not got["net"].startswith("ERR:") or listener.accepted > 0),
        ("files left on the machine", bool(left)),
        ("a secret in the feedback", secret in text or "def parse_ulimit" in text),
    ] if leaked]
    assert not leaks, f"learner code got {leaks}: {got}, left {left}"
    rows = {row["submission"]: row for row in csv.DictReader(out.open())}
    assert rows["mallory.py"]["score"] == "0"
    assert secret not in json.dumps(json.loads((tmp_path / "grades.json").read_text()))

