"""The checker: runs one check and decides its verdict, `python -m exercises.sandbox` (started
by the grader, which writes the job on its stdin: nothing of it shows in /proc/PID/cmdline).

It never imports the learner's file: the learner's code runs in the check's jail
(`exercises.jail`), and what comes back from there is data. The verdict is one line on stdout
that starts with a secret of the job, so a line printed by anyone else is not a verdict.

It is the session leader of its own session (the grader kills the whole group on timeout),
and it moves into its own mount namespace with all mounts private, so nothing a learner's code
mounts can reach the machine, and its own network namespace (only `lo`), so nothing it starts
reaches an address of the machine's. In there, the checkout, the Python installation and the image
cache are read-only, and containers get their files on a tmpfs of their own: some mistakes act
on a whole filesystem rather than on one mount (a remount without MS_BIND changes the
superblock, shared by every namespace), and then they hit that tmpfs, not the machine's disk.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import tempfile
import traceback
from pathlib import Path

from exercises.grading import GATE, REPO, CheckFailed, Context, find_chapter, gate_check
from exercises.parts import SOLUTIONS

# Never written to by anyone: the system's own files, read-only in the sandbox too.
SYSTEM = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib64", "/lib32")


def isolate(scratch: Path) -> bool:
    """Isolate this process (as root); say whether it was. The check's scratch directory
    becomes a tmpfs of its own (learner code mounts there, checks keep a state root there)."""
    if os.geteuid() != 0:
        return False  # unprivileged graders (some hosted autograders) run without this layer
    from exercises.jail import bind_read_only, read_only_paths
    from mini_runtime import namespaces, paths, syscalls

    # Own mount table, hostname, IPC objects and network: a learner's sethostname() that runs
    # before the container's UTS namespace exists renames this sandbox, not the machine, and
    # nothing in here can reach an address of the machine's (127.0.0.1 included): `lo` only.
    syscalls.unshare(syscalls.CLONE_NEWNS | syscalls.CLONE_NEWUTS | syscalls.CLONE_NEWIPC | syscalls.CLONE_NEWNET)
    namespaces.bring_up_loopback()
    syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)
    syscalls.mount("tmpfs", str(scratch), "tmpfs", syscalls.MS_NOSUID, "mode=755,size=1g")
    # mini's state root is a tmpfs of the sandbox's (containers, names, locks, network records go
    # with it), where the machine's image store and its unpacked files are bound back read-only.
    state, cache = paths.state_root(), ("images", "rootfs", "layers")
    state.mkdir(parents=True, exist_ok=True)
    kept = {name: os.open(state / name, os.O_PATH | os.O_CLOEXEC) for name in cache if (state / name).is_dir()}
    syscalls.mount("tmpfs", str(state), "tmpfs", syscalls.MS_NOSUID, "mode=755")
    for name, fd in kept.items():
        (state / name).mkdir()
        syscalls.mount(f"/proc/self/fd/{fd}", str(state / name), None, syscalls.MS_BIND | syscalls.MS_REC)
        os.close(fd)
    # Their volatile files (pids, owners) too: they go with the sandbox, whatever the learner did.
    paths.run_root().mkdir(parents=True, exist_ok=True)
    syscalls.mount("tmpfs", str(paths.run_root()), "tmpfs", syscalls.MS_NOSUID, "mode=755")
    # Read-only: the image store and its unpacked files, the checkout, Python, the system.
    targets = [state / name for name in cache]
    targets += read_only_paths(REPO) + [Path(p).resolve() for p in SYSTEM]
    done: list[Path] = []
    for target in targets:
        if target.is_dir() and target != Path("/") and not any(target.is_relative_to(d) for d in done):
            bind_read_only(target)
            done.append(target)
    return True


def main() -> None:
    job = json.loads(sys.stdin.readline())
    # Before mini_runtime.cgroups is imported: this check's containers get a cgroup parent of
    # their own, made and removed here, so two checks at once never share one.
    os.environ["MINI_CGROUP_PARENT"] = job["cgroup_parent"]
    # Chapters 01-06 grade chapter 03's network world: a container with an empty network
    # namespace (`--network none`), never a bridge or NAT rules on the learner's machine.
    # Chapter 07's checks ask for the network they test with --network.
    os.environ["MINI_DEFAULT_NETWORK"] = "none"
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    # A verdict must not depend on how the grader was started: under `nohup` SIGHUP is ignored,
    # and an ignored signal stays ignored in every process below, a learner's container too.
    from mini_runtime import process
    process.default_signals(but=(signal.SIGPIPE, signal.SIGXFSZ))  # (Python's own two stay)
    passed, message = False, "no verdict"
    ctx: Context | None = None
    try:
        scratch = Path(job["scratch"])
        isolated = isolate(scratch)
        if isolated:  # a check's temporary files where its jail sees them (its /tmp is its own)
            tempfile.tempdir = str(scratch)
        chapter = find_chapter(job["chapter"])
        check = gate_check() if job["check"] == GATE else next(c for c in chapter.checks if c.number == job["check"])
        learner_path = scratch / "learner" / job["learner_file"]  # the copy the jail imports
        learner_path.parent.mkdir()
        learner_path.write_bytes(job["source"].encode("utf-8", errors="surrogateescape"))
        ctx = Context(chapter, learner_path.resolve(), random.Random(job["seed"]), check.plug,
                      scratch=scratch, isolated=isolated, hidden=(str(SOLUTIONS), *job.get("hide", ())))
        check.function(ctx)
        passed, message = True, "passed"
    except CheckFailed as e:
        message = str(e)
    except NotImplementedError as e:
        message = f"not implemented yet: {e} (still a TODO)" if str(e) else "not implemented yet (a TODO is left)"
    except Exception as e:  # noqa: BLE001 - any learner exception is a failed check
        where = getattr(e, "learner_where", None)
        if where is None:
            frame = traceback.extract_tb(e.__traceback__)[-1]
            where = f"{Path(frame.filename).name}:{frame.lineno}"
        name = "" if type(e).__name__ == "LearnerError" else f"{type(e).__name__}: "
        message = f"{name}{e}" + (f" (at {where})" if where else "")
    finally:
        if ctx is not None:
            try:
                ctx.close()
            except Exception as e:  # noqa: BLE001
                passed, message = False, f"the check could not clean up: {type(e).__name__}: {e}"
    message = " ".join(message.split())  # one line, whatever it quotes
    sys.stdout.write(f"{job['nonce']} {json.dumps({'passed': passed, 'message': message})}\n")
    sys.stdout.flush()
    _tidy_cgroups()


def _tidy_cgroups() -> None:
    """A learner's bug may have killed mini before its cleanup: the container directories
    (on this sandbox's tmpfs) name the cgroups that may be left; remove the empty ones, and
    this check's cgroup parent."""
    from mini_runtime import cgroups, paths

    containers = paths.state_root() / "containers"
    for directory in containers.iterdir() if containers.is_dir() else ():
        group = cgroups.Cgroup(directory.name)
        try:
            if group.mode == "v2" and group.unified.is_dir():
                (group.unified / "cgroup.freeze").write_text("0")  # a learner's freeze, never thawed
                if (group.unified / "cgroup.kill").exists():      # Linux 5.14 and later
                    (group.unified / "cgroup.kill").write_text("1")
            group.remove()
        except (OSError, cgroups.CgroupBusy):
            pass
    for parent in {cgroups.ROOT / cgroups.PARENT, *(cgroups.ROOT / c / cgroups.PARENT for c in cgroups.V1_CONTROLLERS)}:
        try:
            parent.rmdir()
        except OSError:
            pass


if __name__ == "__main__":
    main()
