"""The grader: run a chapter's checks against a learner's copy of a module, score them.

How a check runs (why it is built like this):
- Learner code runs as root and will have bugs. Each check runs in a fresh Python process
  (`exercises.sandbox`) in its own session and its own mount namespace, with a timeout; a wrong
  mount or a runaway loop cannot damage the machine or hang the grader.
- The learner's functions are *plugged into the reference runtime*: a check replaces some
  functions of e.g. `mini_runtime.process` by the learner's and runs real containers.
- Inputs are random (exit codes, signals, strings), so a hard-coded answer cannot pass.
- Every failed check prints one line: what was expected, what happened, what to reread.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
import random
import select
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

EXERCISES = Path(__file__).resolve().parent
REPO = EXERCISES.parent


class CheckFailed(AssertionError):
    """A check's verdict: one line of expected/actual feedback."""


@dataclass
class Check:
    number: str
    title: str
    points: float
    section: str                         # the chapter section to reread
    plug: tuple[str, ...]                # learner functions this check plugs in
    function: Callable[["Context"], None]
    timeout: float = 30.0


@dataclass
class Result:
    check: Check
    passed: bool
    message: str
    seconds: float
    seed: int | None = None   # the run's seed: `--seed` repeats it

    @property
    def score(self) -> float:
        return self.check.points if self.passed else 0.0


@dataclass
class Chapter:
    """What a chapter's `checks.py` declares."""
    number: str              # "01"
    slug: str                # "processes"
    module: str              # the reference module the learner re-implements, e.g. "mini_runtime.process"
    learner_file: str        # the learner's file in the exercise folder, e.g. "process.py"
    checks: list[Check] = field(default_factory=list)
    # what this machine must have to grade the chapter: returns why not, or None
    requires: Callable[[], str | None] | None = None

    def unmet(self) -> str | None:
        return self.requires() if self.requires else None

    @property
    def folder(self) -> Path:
        return EXERCISES / f"{self.number}_{self.slug}"

    @property
    def chapter_text(self) -> str:
        return f"chapters/{self.number}-{self.slug}.md"

    def check(self, number: str, title: str, *, points: float, section: str,
              plug: tuple[str, ...] = (), timeout: float = 30.0) -> Callable:
        """Decorator that registers a check function."""
        def register(fn: Callable[["Context"], None]) -> Callable[["Context"], None]:
            self.checks.append(Check(number, title, points, section, plug, fn, timeout))
            return fn
        return register


def load_module(path: Path, name: str) -> ModuleType:
    """Import a Python file under a name of our choosing (folder names start with digits)."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def find_chapter(number: str) -> Chapter:
    number = number.zfill(2)
    folders = sorted(EXERCISES.glob(f"{number}_*/checks.py"))
    if not folders:
        available = ", ".join(sorted(p.parent.name[:2] for p in EXERCISES.glob("*_*/checks.py")))
        raise SystemExit(f"grade: no exercise for chapter {number} (available: {available})")
    module = load_module(folders[0], f"exercises_checks_{number}")
    return module.CHAPTER


def resolve_learner_file(chapter: Chapter, path: Path | None, reference: bool) -> Path:
    """The file to grade: the reference module, a given file or folder, or the exercise copy."""
    if reference:
        spec = importlib.util.find_spec(chapter.module)
        assert spec is not None and spec.origin is not None
        return Path(spec.origin)
    if path is None:
        return chapter.folder / chapter.learner_file
    if path.is_dir():
        for candidate in (path / chapter.learner_file,
                          path / chapter.folder.name / chapter.learner_file,
                          path / "exercises" / chapter.folder.name / chapter.learner_file):
            if candidate.is_file():
                return candidate
        raise FileNotFoundError(f"no {chapter.learner_file} in {path}")
    return path


@dataclass
class Context:
    """What a check function gets: the learner's module, randomness, and helpers."""
    chapter: Chapter
    learner_path: Path
    learner: ModuleType
    rng: random.Random
    plug: tuple[str, ...]
    scratch: Path | None = None    # a directory of this check's own, removed after it
    isolated: bool = False         # running in the sandbox's own mount namespace

    def mini(self, *args: str, plug: tuple[str, ...] | None = None, timeout: float = 20.0,
             stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run `mini ARGS...` with the learner's functions plugged into the reference runtime."""
        return subprocess.run(self.mini_command(*args, plug=plug), input=stdin, text=True,
                              capture_output=True, timeout=timeout)

    def mini_command(self, *args: str, plug: tuple[str, ...] | None = None) -> list[str]:
        names = ",".join(self.plug if plug is None else plug)
        return [sys.executable, "-m", "exercises.plugged", self.chapter.module,
                str(self.learner_path), names, "--", *args]

    def start(self, *args: str, plug: tuple[str, ...] | None = None) -> tuple[subprocess.Popen[str], int]:
        """Start `mini ARGS...` whose command prints 'ready' first; return it and the
        container's PID 1 (mini's only child)."""
        proc = subprocess.Popen(self.mini_command(*args, plug=plug), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        ready = select.select([proc.stdout], [], [], 20)[0]
        line = proc.stdout.readline() if ready else ""  # type: ignore[union-attr]
        if line != "ready\n":
            proc.kill()
            raise CheckFailed(f"expected the container to start and print 'ready', got {line!r} "
                              f"{proc.communicate()[1].strip()[:150]!r}")
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        return proc, int(children[0])

    @staticmethod
    def stop(proc: subprocess.Popen[str], pid: int) -> None:
        """SIGKILL the container's PID 1 and wait for mini to clean up after it."""
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def private_state_root(self) -> Path:
        """A MINI_ROOT of this check's own, for checks that add images or unpack layers: the
        machine's image cache is read-only in the sandbox, and a check's images must not land
        in the machine's store. In the sandbox it is a fresh tmpfs (gone with the sandbox's
        mount namespace). From now on `mini` (and `Store()` here) use it, and it is also the
        working directory, so that a stray relative path in the learner's code lands there."""
        base = self.scratch or Path(tempfile.mkdtemp(prefix="mini-grade-"))
        root = base / "state"
        root.mkdir(mode=0o755, exist_ok=True)
        if self.isolated:
            from mini_runtime import syscalls

            syscalls.mount("tmpfs", str(root), "tmpfs", syscalls.MS_NOSUID, "mode=755,size=512m")
        self.learner_path = self.learner_path.resolve()
        os.environ["MINI_ROOT"] = str(root)
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        os.chdir(root)
        return root

    def expect(self, condition: bool, expected: str, actual: str) -> None:
        if not condition:
            raise CheckFailed(f"expected {expected}, got {actual}")


def run_check(chapter: Chapter, check: Check, learner_path: Path, seed: int,
              run_seed: int | None = None) -> Result:
    """Run one check in a sandbox process and read its verdict."""
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mini-grade-") as tmp:
        verdict = Path(tmp) / "verdict.json"
        job = {"chapter": chapter.number, "check": check.number, "learner": str(learner_path),
               "seed": seed, "verdict": str(verdict)}
        proc = subprocess.Popen([sys.executable, "-m", "exercises.sandbox", json.dumps(job)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO)
        try:
            output, _ = proc.communicate(timeout=check.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            return Result(check, False, f"timed out after {check.timeout:.0f}s (an endless loop, or a "
                          "wait that never ends?)", time.monotonic() - start, run_seed)
        _kill_group(proc)
        try:
            data = json.loads(verdict.read_text())
            passed, message = bool(data["passed"]), str(data["message"])
        except (OSError, ValueError, KeyError):
            tail = output.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            passed, message = False, f"the check crashed before giving a verdict: {tail[0]}"
    return Result(check, passed, message, time.monotonic() - start, run_seed)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill whatever the sandbox left running in its session, then reap it."""
    try:
        os.killpg(proc.pid, 9)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def grade(chapter: Chapter, learner_path: Path, seed: int | None = None,
          only: list[str] | None = None) -> list[Result]:
    """Run the checks. Check i gets seed + i, so `--seed S --only N` repeats one check exactly."""
    seed = random.SystemRandom().randrange(2**31) if seed is None else seed
    _prepare()
    return [run_check(chapter, check, learner_path, seed + i, seed)
            for i, check in enumerate(chapter.checks) if not only or check.number in only]


def _prepare() -> None:
    """Make the built-in image before the sandboxes start (they see its files read-only)."""
    from mini_runtime.image.store import BUILTIN, Store

    store = Store()
    store.rootfs(store.get(BUILTIN))
    store.layer_dirs(store.get(BUILTIN))


# --- reports -------------------------------------------------------------------------------

def total(results: list[Result]) -> tuple[float, float]:
    return sum(r.score for r in results), sum(r.check.points for r in results)


def _fmt(points: float) -> str:
    return f"{points:g}"


def score_table(chapter: Chapter, results: list[Result], title: str) -> str:
    out = io.StringIO()
    out.write(f"Chapter {chapter.number} ({chapter.slug}): {title}\n")
    width = max([len(f"{r.check.number} {r.check.title}") for r in results] + [40])
    for r in results:
        mark = "✓" if r.passed else "✗"
        name = f"{r.check.number} {r.check.title}"
        out.write(f"{mark} {name:<{width}}  {_fmt(r.score):>4} / {_fmt(r.check.points)}\n")
        if not r.passed:
            out.write(f"    {r.message}\n    reread: {chapter.chapter_text} {r.check.section}\n")
    got, most = total(results)
    out.write(f"{'-' * (width + 12)}\nTOTAL {_fmt(got)} / {_fmt(most)}\n")
    if results and results[0].seed is not None:
        out.write(f"(random inputs from --seed {results[0].seed}: pass it to repeat this run)\n")
    return out.getvalue()


def gradescope_json(chapter: Chapter, results: list[Result]) -> dict[str, Any]:
    """Gradescope's results.json (autograder specification)."""
    got, _ = total(results)
    return {
        "score": got,
        "execution_time": round(sum(r.seconds for r in results), 2),
        "output": f"Chapter {chapter.number} ({chapter.slug})",
        "stdout_visibility": "visible",
        "tests": [{
            "name": f"{r.check.number} {r.check.title}",
            "number": r.check.number,
            "score": r.score,
            "max_score": r.check.points,
            "status": "passed" if r.passed else "failed",
            "output": "passed" if r.passed else
                      f"{r.message}\nreread: {chapter.chapter_text} {r.check.section}",
            "visibility": "visible",
        } for r in results],
    }


def write_csv(chapter: Chapter, rows: list[tuple[str, list[Result] | str]], path: Path) -> None:
    """One row per submission: name, score, max, then each check's score (or the error)."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["submission", "score", "max_score", "error"] +
                        [f"{c.number} {c.title}" for c in chapter.checks])
        most = sum(c.points for c in chapter.checks)
        for name, results in rows:
            if isinstance(results, str):
                writer.writerow([name, 0, _fmt(most), results] + [0] * len(chapter.checks))
                continue
            by_number = {r.check.number: r.score for r in results}
            writer.writerow([name, _fmt(total(results)[0]), _fmt(most), ""] +
                            [_fmt(by_number.get(c.number, 0)) for c in chapter.checks])
