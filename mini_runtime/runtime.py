"""The container-creation pipeline, in one place.

Each chapter adds its steps here, in order, so you can read what chapter N contributes:

    parent side (host)                        child side (inside)
    01 find the image, unpack it once         01 wait for "go"
    01 merge image defaults and flags         03 new UTS, IPC and network namespaces
    02 a private copy of the image's files    02 a private mount table, pivot_root into
    04 a cgroup with the limits                  the image, fresh /proc /dev /sys
    03 the next child is PID 1 of a new       03 hostname, loopback up
       PID namespace                          02 create the working directory, --read-only
    01 fork the child (it waits)              03 --init: stay PID 1, run the command as a child
    04 move it into the cgroup                01 chdir, find the command, execve
    01 forward signals, release, wait
    03 record the namespaces
    04 was it OOM-killed? remove the cgroup
    02 remove the copy

Chapters to come slot in as: 05 mount an overlay (instead of the copy), 06 make the network
(parent); 08 drop privileges (child).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from mini_runtime import cgroups, container, namespaces, paths, process, rootfs
from mini_runtime.config import ContainerConfig, ProcessSpec, process_spec
from mini_runtime.errors import MiniError
from mini_runtime.formatting import human_size
from mini_runtime.image.store import Store


# >>> run
def run(config: ContainerConfig, store: Store | None = None) -> int:
    """Run one container in the foreground and return its exit code (docker's numbers)."""
    store = store or Store()
    image = store.get(config.image)                 # 01: unknown image -> exit 125
    try:
        spec = process_spec(config, image.config)   # 01: Entrypoint + Cmd, Env, WorkingDir
    except ValueError as e:
        raise MiniError(str(e)) from None
    container.sweep_stale()                         # 02: tidy up after a killed mini
    container_id = container.new_id()
    directory = container.create(container_id)      # 02: $MINI_ROOT/containers/<id>
    hostname = config.hostname or container_id[:12] # 03: docker's default host name
    group = cgroups.Cgroup(container_id)            # 04
    try:
        files = rootfs.copy_image(store.rootfs(image), directory / "rootfs")  # 02: a private copy
        limit(group, config)                        # 04: a cgroup with the limits
        with namespaces.children_in_new_pid_namespace():  # 03: the child will be PID 1
            child = process.spawn(spec, root="/",   # 01: fork; the child waits for "go"
                                  setup=lambda: inside(config, spec, str(files), hostname))
        try:
            group.add(child.pid)                    # 04: limited before it runs anything
            with process.forward_signals(child.pid):    # 01: ctrl-C and kill reach the container
                process.release(child)                  # 01: go! (126/127 if execve failed)
                record(directory, child.pid)            # 03: its pid and namespaces, for later
                status = process.wait_for(child.pid)    # 01: until it ends; reaps the zombie
        except BaseException:
            _kill_and_reap(child.pid)
            raise
        report_oom(group, directory, config, status)  # 04: say so if the OOM killer struck
    finally:
        group.remove()                              # 04: on every hierarchy
        container.remove(directory)                 # 02: nothing left behind
    return process.exit_code(status)                # 01: exit code, or 128 + signal
# <<< run


# >>> inside
def inside(config: ContainerConfig, spec: ProcessSpec, files: str, hostname: str) -> None:
    """The child's steps between "go" and execve. It is PID 1 of its PID namespace."""
    namespaces.enter_namespaces()                   # 03: its own UTS, IPC and network
    rootfs.enter(files, pivot=config.pivot)         # 02: private mounts, new root, /proc /dev /sys
    namespaces.set_hostname(hostname)               # 03
    namespaces.bring_up_loopback()                  # 03: 127.0.0.1 works, nothing else
    os.makedirs(spec.cwd, exist_ok=True)            # 02: like docker, -w creates the directory
    if config.read_only:
        rootfs.remount_readonly()                   # 02: --read-only
    if config.init:                                 # 03: --init: we stay PID 1 ...
        signal.pthread_sigmask(signal.SIG_BLOCK, namespaces.INIT_SIGNALS)  # (none lost)
        command = os.fork()
        if command:
            namespaces.init_loop(command)           # ... and the command runs as PID 2
        signal.pthread_sigmask(signal.SIG_UNBLOCK, namespaces.INIT_SIGNALS)
# <<< inside


# >>> limit
def limit(group: cgroups.Cgroup, config: ContainerConfig) -> None:
    """Make the container's cgroup and write docker's limits into it."""
    group.create()
    group.set_limits(memory=config.memory, memory_swap=config.memory_swap, cpus=config.cpus,
                     cpu_shares=config.cpu_shares, pids=config.pids_limit)
    if config.cpuset_cpus is not None:
        group.set_cpuset(config.cpuset_cpus)
# <<< limit


# >>> report-oom
def report_oom(group: cgroups.Cgroup, directory: Path, config: ContainerConfig, status: int) -> None:
    """An OOM kill looks like any SIGKILL (137); the cgroup's counter tells them apart.
    One line on stderr, and the fact recorded (`State.OOMKilled` in chapter 07's inspect)."""
    if config.memory is None or not group.oom_kills():
        return
    limit_text = human_size(config.memory) if config.memory % (1 << 20) else f"{config.memory >> 20} MiB"
    who = "the container was" if process.exit_code(status) == 137 else "a process in the container was"
    sys.stderr.write(f"mini: {who} killed: out of memory (its --memory limit is {limit_text})\n")
    paths.atomic_write(directory / "oom_killed", b"true\n")
# <<< report-oom


def record(directory: Path, pid: int) -> None:
    """What `exec` and `inspect` (chapter 07) need to find a running container again.
    A command that has already ended leaves nothing to record."""
    try:
        state = {"pid": pid, "namespaces": namespaces.namespace_ids(pid)}
    except OSError:
        return
    paths.atomic_write(directory / "state.json", json.dumps(state).encode())


def _kill_and_reap(pid: int) -> None:
    """Leave nothing behind when the pipeline fails half-way."""
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
