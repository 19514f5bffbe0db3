"""Learner code in a batch run gets nothing of the machine's or of other learners': no secret
file, no model solution, no other submission, no network (not even the machine's 127.0.0.1),
and nothing it writes outside its scratch survives the run. And the grader's lines for what
went wrong: why a submission was not graded, an unknown check, a `mini` that hangs, a TODO."""

from __future__ import annotations

import csv
import json
import random
import shutil
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from exercises import feedback, grading, parts, reports

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


# --- feedback lines --------------------------------------------------------------------------

def test_a_submission_not_graded_says_why_in_the_csv_and_json(tmp_path):
    """A refusal at the first step (a syntax error here) fills the `error` column and key."""
    chapter = grading.find_chapter("01")
    results = [grading.Result(c, False, "your file does not import: SyntaxError", 0.0, 1, refused=True)
               for c in chapter.checks]
    out = tmp_path / "grades.csv"
    reports.write_csv(chapter, [("bob.py", results)], out, 1, "v")
    assert next(csv.DictReader(out.open()))["error"] == "your file does not import: SyntaxError"
    data = reports.batch_json(chapter, [("bob.py", results)], 1, "v")
    assert data["submissions"]["bob.py"]["error"] == "your file does not import: SyntaxError"
    graded = [grading.Result(c, False, "expected 1, got 2", 0.0, 1) for c in chapter.checks]
    reports.write_csv(chapter, [("carol.py", graded)], out, 1, "v")
    assert next(csv.DictReader(out.open()))["error"] == ""


def test_only_a_check_that_does_not_exist_is_a_usage_error():
    result = subprocess.run([sys.executable, "-m", "exercises", "grade", "06", "--only", "6.9"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "TOTAL" not in result.stdout, result.stdout
    assert "6.9" in result.stderr and "6.1, 6.2" in result.stderr, result.stderr


def test_a_mini_that_does_not_return_is_one_teaching_line(monkeypatch):
    """Not `TimeoutExpired: Command '[.../python', '-m', 'exercises.plugged', ...]'`."""
    chapter = grading.find_chapter("06")
    ctx = grading.Context(chapter, Path("monitor.py"), random.Random(1), ())
    container = "074a3b65aa803b2a319117a014b274fe088572d2d8f51b5f3289579976d50785"
    monkeypatch.setattr(grading.Context, "popen", lambda self, *args, **kwargs: subprocess.Popen(
        ["sleep", "10"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    with pytest.raises(grading.CheckFailed) as failed:
        ctx.mini("wait", container, timeout=0.2)
    assert str(failed.value).startswith("`mini wait 074a3b65aa80` did not return within 0.2 s ("), failed.value
    assert "exercises.plugged" not in str(failed.value)


def test_a_todo_left_is_not_retried_and_says_so(monkeypatch):
    """A timing-sensitive check whose function is still the skeleton's runs once, and says so;
    a cut quote ends at a word, with '…'."""
    chapter = grading.find_chapter("06")
    check = next(c for c in chapter.checks if c.number == "6.3")
    assert check.retry and check.plug == ("answer",)
    runs = []

    def run_check(*args, **kwargs):
        runs.append(args)
        return grading.Result(check, False, "expected exit 0, got 'is not r'", 0.1, 1)
    monkeypatch.setattr(grading, "run_check", run_check)
    skeleton = (chapter.folder / chapter.learner_file).read_bytes()
    result = grading.run_with_retry(chapter, check, skeleton, 1, 1)
    assert len(runs) == 1 and "timing-sensitive" not in result.message
    assert result.message.endswith("(`answer` is still a TODO: it raises NotImplementedError)")
    written = skeleton.replace(b'raise NotImplementedError("answer")', b'return None')
    result = grading.run_with_retry(chapter, check, written, 1, 1)
    assert len(runs) == 3 and "(a timing-sensitive check: it failed twice)" in result.message
    assert feedback.clip("Container 074a3b65aa80 is not running", 30) == "Container 074a3b65aa80 is not…"
