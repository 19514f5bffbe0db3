"""Runs one check, isolated: `python -m exercises.sandbox JOB_JSON` (started by the grader).

It is the session leader of its own session (the grader kills the whole group on timeout),
and it moves into its own mount namespace with all mounts private, so nothing a learner's code
mounts can reach the machine. In there, the image cache is made read-only, and containers get
their files on a tmpfs of their own: some mistakes act on a whole filesystem rather than on one
mount (a remount without MS_BIND changes the superblock, shared by every namespace), and then
they hit that tmpfs, not the machine's disk.
"""

from __future__ import annotations

import json
import os
import random
import sys
import traceback
from pathlib import Path

from exercises.grading import CheckFailed, Context, find_chapter, load_module


def isolate() -> bool:
    """Isolate this process (as root); say whether it was."""
    if os.geteuid() != 0:
        return False  # unprivileged graders (some hosted autograders) run without this layer
    from mini_runtime import paths, syscalls

    # Own mount table, hostname and IPC objects: a learner's sethostname() that runs before
    # the container's UTS namespace exists renames this sandbox, not the machine.
    syscalls.unshare(syscalls.CLONE_NEWNS | syscalls.CLONE_NEWUTS | syscalls.CLONE_NEWIPC)
    syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)
    containers = paths.state_root() / "containers"
    containers.mkdir(parents=True, exist_ok=True)
    syscalls.mount("tmpfs", str(containers), "tmpfs", syscalls.MS_NOSUID, "mode=700")
    # Their volatile files (pids, owners) too: they go with the sandbox, whatever the learner did.
    paths.run_root().mkdir(parents=True, exist_ok=True)
    syscalls.mount("tmpfs", str(paths.run_root()), "tmpfs", syscalls.MS_NOSUID, "mode=755")
    for name in ("rootfs", "layers"):  # the unpacked images: read-only for the learner's code
        cache = paths.state_root() / name
        if cache.is_dir():
            syscalls.mount(str(cache), str(cache), None, syscalls.MS_BIND | syscalls.MS_REC)
            syscalls.mount(None, str(cache), None,
                           syscalls.MS_BIND | syscalls.MS_REMOUNT | syscalls.MS_RDONLY)
    return True


def main() -> None:
    job = json.loads(sys.argv[1])
    verdict = Path(job["verdict"])
    passed, message = False, "no verdict"
    try:
        isolated = isolate()
        chapter = find_chapter(job["chapter"])
        check = next(c for c in chapter.checks if c.number == job["check"])
        try:
            learner = load_module(Path(job["learner"]), "learner_module")
        except Exception as e:  # noqa: BLE001 - a syntax error is feedback, not a crash
            raise CheckFailed(f"your file does not import: {type(e).__name__}: {e}") from None
        ctx = Context(chapter, Path(job["learner"]), learner, random.Random(job["seed"]), check.plug,
                      scratch=verdict.parent, isolated=isolated)
        check.function(ctx)
        passed, message = True, "passed"
    except CheckFailed as e:
        message = str(e)
    except NotImplementedError as e:
        message = f"not implemented yet: {e}" if str(e) else "not implemented yet (a TODO is left)"
    except Exception as e:  # noqa: BLE001 - any learner exception is a failed check
        frame = traceback.extract_tb(e.__traceback__)[-1]
        message = f"{type(e).__name__}: {e} (at {Path(frame.filename).name}:{frame.lineno})"
    verdict.write_text(json.dumps({"passed": passed, "message": message}))
    _tidy_cgroups()


def _tidy_cgroups() -> None:
    """A learner's bug may have killed mini before its cleanup: the container directories
    (on this sandbox's tmpfs) name the cgroups that may be left; remove the empty ones."""
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


if __name__ == "__main__":
    main()
