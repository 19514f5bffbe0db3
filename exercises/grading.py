"""The grader: run a chapter's checks against a learner's copy of a module, score them.

Who runs what (why it is built like this; the threat model is in exercises/README.md):
- The **grader** (this process) never runs learner code. It reads the learner's file once,
  refuses a file that imports the graded module (`exercises.gate`), and starts one checker
  per check.
- A **checker** (`exercises.sandbox`) runs one check function, in its own session and mount
  namespace, with a timeout. It decides the verdict and never imports learner code either:
  the learner's functions run in a **jail** of that check (`exercises.jail`: its own PID and
  mount namespaces, the checkout read-only), either plugged into the reference runtime
  (`mini` with the learner's functions, `exercises.plugged`) or called directly through the
  learner server (`exercises.learner`), whose answers are data that the check compares.
- Inputs are random (exit codes, signals, strings), so a hard-coded answer cannot pass.
- Every failed check says in one line what was expected, what happened, what to reread.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import secrets
import select
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable

from exercises import feedback

if TYPE_CHECKING:
    from exercises.jail import Jail
    from exercises.remote import LearnerFunctions, LearnerServer

EXERCISES = Path(__file__).resolve().parent
REPO = EXERCISES.parent
GATE = "gate"  # the pseudo-check that inspects the learner's file before the checks run


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
    retry: bool = False                  # timing-sensitive: a failure is tried once more
    part: str = "rebuild"                # "rebuild" (the chapter's code) or "extend" (exercises.parts)


@dataclass
class Result:
    check: Check
    passed: bool
    message: str
    seconds: float
    seed: int | None = None   # the run's seed: `--seed` repeats it
    timed_out: bool = False
    refused: bool = False     # not run: the file failed the gate (the message says why)

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
    # names the skeleton may import from `module` (constants and helpers it is given)
    given: tuple[str, ...] = ()
    checks: list[Check] = field(default_factory=list)
    # what this machine must have to grade the chapter: returns why not, or None
    requires: Callable[[], str | None] | None = None
    # whether two submissions may be graded at once (`-j N`): each check has its own state
    # root, container names, cgroup parent and namespaces; a chapter that needs something of
    # the machine's for itself says False
    parallel: bool = True

    def unmet(self) -> str | None:
        return self.requires() if self.requires else None

    @property
    def folder(self) -> Path:
        return EXERCISES / f"{self.number}_{self.slug}"

    @property
    def chapter_text(self) -> str:
        return f"chapters/{self.number}-{self.slug}.md"

    @property
    def graded(self) -> list[str]:
        """The functions the learner writes: every name a check plugs in."""
        return list(dict.fromkeys(name for check in self.checks for name in check.plug))

    def check(self, number: str, title: str, *, points: float, section: str,
              plug: tuple[str, ...] = (), timeout: float = 30.0, retry: bool = False,
              part: str = "rebuild") -> Callable:
        """Decorator that registers a check function (`part="extend"`: see exercises.parts)."""
        def register(fn: Callable[["Context"], None]) -> Callable[["Context"], None]:
            self.checks.append(Check(number, title, points, section, plug, fn, timeout, retry, part))
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
    chapter = load_module(folders[0], f"exercises_checks_{number}").CHAPTER
    for more in sorted(folders[0].parent.glob("checks_*.py")):  # e.g. checks_extend.py: register(chapter)
        load_module(more, f"exercises_{more.stem}_{number}").register(chapter)
    return chapter


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
    """What a check function gets (in the checker): randomness, the learner's functions through
    the learner server, `mini` with them plugged in, and the jail they all run in."""
    chapter: Chapter
    learner_path: Path             # the copy of the learner's file the jail's processes import
    rng: random.Random
    plug: tuple[str, ...]
    scratch: Path | None = None    # a directory of this check's own, removed after it
    isolated: bool = False         # running in the checker's own namespaces (as root)
    shared_root: bool = False      # the jail's "/" shared, like systemd's host (chapter 02)
    hidden: tuple[str, ...] = ()   # more paths learner code must not see (a batch's submissions)
    _jail: "Jail | None" = None
    _server: "LearnerServer | None" = None

    def jail(self) -> "Jail | None":
        """The check's jail, made at the first need (None when not isolated)."""
        if self._jail is None and self.isolated and self.scratch is not None:
            from exercises.jail import for_check

            self._jail = for_check(self.scratch, REPO, shared_root=self.shared_root, hide=self.hidden)
        return self._jail

    @property
    def server(self) -> "LearnerServer":
        """The learner server of this check (started at the first call)."""
        if self._server is None:
            from exercises.remote import LearnerServer

            self._server = LearnerServer(self)
        return self._server

    @property
    def learner(self) -> "LearnerFunctions":
        """`ctx.learner.NAME(args)`: the learner's NAME, called in the learner server."""
        from exercises.remote import LearnerFunctions

        return LearnerFunctions(self)

    def popen(self, *args: str, plug: tuple[str, ...] | None = None, **kwargs: Any) -> subprocess.Popen:
        """Start `mini ARGS...` with the learner's functions plugged in, in the jail."""
        names = list(self.plug if plug is None else plug)
        config = {"module": self.chapter.module, "file": str(self.learner_path), "plug": names,
                  "graded": self.chapter.graded}
        argv = [sys.executable, "-m", "exercises.plugged", json.dumps(config), "--", *args]
        jail = self.jail()
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        return jail.popen(argv, **kwargs) if jail else subprocess.Popen(argv, **kwargs)

    def mini(self, *args: str, plug: tuple[str, ...] | None = None, timeout: float = 20.0,
             stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run `mini ARGS...` (see `popen`) to the end; its output is data for the check."""
        proc = self.popen(*args, plug=plug, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL)
        try:
            out, err = proc.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise CheckFailed(feedback.did_not_return(args, timeout)) from None
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def start(self, *args: str, plug: tuple[str, ...] | None = None) -> tuple[subprocess.Popen[str], int]:
        """Start `mini ARGS...` whose command prints 'ready' first; return it and the
        container's PID 1 (mini's only child), in the checker's numbering."""
        proc = self.popen(*args, plug=plug, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready = select.select([proc.stdout], [], [], 20)[0]
        line = proc.stdout.readline() if ready else ""  # type: ignore[union-attr]
        if line != "ready\n":
            proc.kill()
            raise CheckFailed(f"expected the container to start and print 'ready', got {line!r} "
                              f"{feedback.clip(proc.communicate()[1].strip(), 150)!r}")
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

    def mountinfo(self) -> str:
        """The mount table learner code sees (the jail's; the checker's own when not isolated)."""
        jail = self.jail()
        return jail.mountinfo() if jail else Path("/proc/self/mountinfo").read_text()

    def private_state_root(self) -> Path:
        """A MINI_ROOT of this check's own, for checks that add images or unpack layers: the
        machine's image cache is read-only in the sandbox, and a check's images must not land
        in the machine's store. In the sandbox it is on the check's scratch tmpfs (gone with the
        sandbox's mount namespace). From now on `mini` (and `Store()` here) use it, and it is
        also the working directory, so that a stray relative path in the learner's code lands
        there. Call it before the check's first `mini` or call: they inherit both."""
        base = self.scratch or Path(tempfile.mkdtemp(prefix="mini-grade-"))
        root = base / "state"
        root.mkdir(mode=0o755, exist_ok=True)
        os.environ["MINI_ROOT"] = str(root)
        os.chdir(root)
        return root

    def expect(self, condition: bool, expected: str, actual: str) -> None:
        if not condition:
            raise CheckFailed(f"expected {expected}, got {actual}")

    def close(self) -> None:
        """End the learner server and the jail (the kernel kills what is left in it)."""
        if self._server is not None:
            self._server.close()
        if self._jail is not None:
            self._jail.close()


def gate_check() -> Check:
    """The pseudo-check run before the others: the learner's file imports, and its graded
    functions are its own (see `exercises.gate`)."""
    from exercises.gate import dynamic_gate

    return Check(GATE, "your file imports, and its functions are its own", 0, "", (), dynamic_gate)


def run_check(chapter: Chapter, check: Check, learner: Path | bytes, seed: int,
              run_seed: int | None = None, hide: tuple[str, ...] = ()) -> Result:
    """Run one check in a checker process and read its verdict (a line that carries a
    secret of this run, so a line printed by anyone else is not taken for it)."""
    start = time.monotonic()
    source = learner if isinstance(learner, bytes) else learner.read_bytes()
    from exercises.jail import grade_parent, remove_cgroups

    nonce = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="mini-grade-") as scratch:
        job = {"chapter": chapter.number, "check": check.number, "learner_file": chapter.learner_file,
               "source": source.decode("utf-8", errors="surrogateescape"), "seed": seed, "nonce": nonce,
               "scratch": scratch, "cgroup_parent": f"{grade_parent()}-{secrets.token_hex(4)}", "hide": hide}
        proc = subprocess.Popen([sys.executable, "-m", "exercises.sandbox"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                                cwd=REPO)
        try:
            output, errors = proc.communicate(json.dumps(job).encode() + b"\n", timeout=check.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            remove_cgroups(job["cgroup_parent"])
            return Result(check, False, f"timed out after {check.timeout:g}s (an endless loop, or a "
                          "wait that never ends?)", time.monotonic() - start, run_seed, timed_out=True)
        _kill_group(proc)
        remove_cgroups(job["cgroup_parent"])
    for line in output.decode(errors="replace").splitlines():
        if line.startswith(nonce + " "):
            data = json.loads(line[len(nonce) + 1:])
            return Result(check, bool(data["passed"]), str(data["message"]), time.monotonic() - start, run_seed)
    tail = errors.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
    return Result(check, False, f"the check crashed before giving a verdict: {tail[0][:200]}",
                  time.monotonic() - start, run_seed)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill whatever the checker left running in its session, then reap it."""
    try:
        os.killpg(proc.pid, 9)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def run_with_retry(chapter: Chapter, check: Check, source: bytes, seed: int, run_seed: int,
                   hide: tuple[str, ...] = ()) -> Result:
    """A timing-sensitive check that fails (not by a timeout, nor because a function it plugs
    is still a TODO) is tried once more, with the same inputs; the feedback says so either way."""
    result = run_check(chapter, check, source, seed, run_seed, hide)
    todo = feedback.todos(source, check.plug)
    if not result.passed and todo and "not implemented yet" not in result.message:
        result.message += f" ({feedback.still_todo(todo)})"
    if result.passed or not check.retry or result.timed_out or todo or "ot implemented" in result.message \
            or "NotImplementedError" in result.message:
        return result
    again = run_check(chapter, check, source, seed, run_seed, hide)
    again.seconds += result.seconds
    if again.passed:
        again.message = (f"passed on the second try (a timing-sensitive check, tried twice); the first "
                         f"try said: {result.message}")
    else:
        again.message += " (a timing-sensitive check: it failed twice)"
    return again


def grade(chapter: Chapter, learner_path: Path, seed: int | None = None, only: list[str] | None = None,
          *, source: bytes | None = None, hide: tuple[str, ...] = ()) -> list[Result]:
    """Run the checks. Check i gets seed + i, so `--seed S --only N` repeats one check exactly.
    A file that fails the gate (it delegates to the reference, or does not import) scores 0
    on every check with the gate's one line. `hide`: paths learner code must not see."""
    from exercises import gate

    seed = random.SystemRandom().randrange(2**31) if seed is None else seed
    if source is None:
        source = learner_path.read_bytes()  # once: learner code only ever sees copies
    selected = [c for c in chapter.checks if not only or c.number in only]
    before = gate.fingerprint()

    def everyone(message: str) -> list[Result]:
        return [Result(c, False, message, 0.0, seed, refused=True) for c in selected]

    problem = gate.static_problem(chapter, source)
    if problem:
        return everyone(problem)
    _prepare()
    results: list[Result] = []
    for i, check in [(-1, gate_check()), *enumerate(chapter.checks)]:
        if check.number != GATE and check not in selected:
            continue
        result = run_with_retry(chapter, check, source, seed + max(i, 0), seed, hide)
        changed = gate.changed(before)
        if changed:
            return everyone(f"the grader's files changed while your code ran ({', '.join(changed[:3])}): "
                            "not graded; restore them (git checkout -- exercises mini_runtime) and grade again")
        if check.number == GATE and not result.passed:
            return everyone(result.message)
        if check.number != GATE:
            results.append(result)
    return results


def _prepare() -> None:
    """Make the built-in image before the sandboxes start (they see its files read-only)."""
    from mini_runtime.image.store import BUILTIN, Store

    store = Store()
    store.rootfs(store.get(BUILTIN))
    store.layer_dirs(store.get(BUILTIN))


def total(results: list[Result]) -> tuple[float, float]:
    return sum(r.score for r in results), sum(r.check.points for r in results)
