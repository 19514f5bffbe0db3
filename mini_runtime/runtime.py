"""The container-creation pipeline, in one place.

Each chapter adds its steps here, in order, so you can read what chapter N contributes:

    parent side (host)                        child side (inside)
    01 find the image                         01 wait for "go"
    01 merge image defaults and flags         03 new UTS, IPC and network namespaces
    05 its layers, each unpacked once         02 a private mount table
    05 the container's record and upper dir   05 mount the overlay: layers + upper dir
    04 a cgroup with the limits               02 pivot_root into it, fresh /proc /dev /sys
    03 the next child is PID 1 of a new       03 hostname, loopback up
       PID namespace                          02 create the working directory, --read-only
    01 fork the child (it waits)              03 --init: stay PID 1, run the command as a child
    04 move it into the cgroup                01 chdir, find the command, execve
    01 forward signals, release, wait
    03 record the namespaces
    04 was it OOM-killed? remove the cgroup
    05 keep the container (its upper dir) for diff/commit/export, or remove it (--rm)

Chapters to come slot in as: 06 make the network (parent); 08 drop privileges (child).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from mini_runtime import cgroups, container, namespaces, overlay, paths, process, rootfs, users
from mini_runtime.config import ContainerConfig, ProcessSpec, process_spec
from mini_runtime.errors import MiniError
from mini_runtime.image.store import Image, Store
from mini_runtime.units import human_size, now_rfc3339


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
    lower = store.layer_dirs(image)                 # 05: each layer unpacked once, shared
    container_id = container.new_id()
    directory = container.create(container_id, describe(config, spec, image, lower))  # 05: the record
    hostname = config.hostname or container_id[:12] # 03: docker's default host name
    group = cgroups.Cgroup(container_id)            # 04
    if config.cgroupns is None:                     # 04: docker's default cgroup namespace
        config = config._replace(cgroupns="private" if group.mode == "v2" else "host")
    status, oom = None, False
    try:
        files = overlay.prepare(directory, store.layers_root, lower)  # 05: upper/, work/, rootfs/
        limit(group, config)                        # 04: a cgroup with the limits
        with namespaces.children_in_new_pid_namespace():  # 03: the child will be PID 1
            child = process.spawn(spec, root="/",   # 01: fork; the child waits for "go"
                                  setup=lambda: inside(config, spec, files, hostname))
        try:
            group.add(child.pid)                    # 04: limited before it runs anything
            with process.forward_signals(child.pid):    # 01: ctrl-C and kill reach the container
                process.release(child)                  # 01: go! (126/127 if execve failed)
                record(directory, child.pid)            # 03: its pid and namespaces, for later
                status = process.wait_for(child.pid)    # 01: until it ends; reaps the zombie
        except BaseException:
            _kill_and_reap(child.pid)
            raise
        oom = report_oom(group, config, status)     # 04: say so if the OOM killer struck
    finally:
        group.remove()                              # 04: on every hierarchy
        code = None if status is None else process.exit_code(status)  # None: it never ran
        container.finish(directory, code, keep=not config.remove, oom=oom)  # 05: kept unless --rm
    return process.exit_code(status)                # 01: exit code, or 128 + signal
# <<< run


# >>> inside
def inside(config: ContainerConfig, spec: ProcessSpec, files: overlay.Overlay, hostname: str) -> None:
    """The child's steps between "go" and execve. It is PID 1 of its PID namespace."""
    namespaces.enter_namespaces()                   # 03: its own UTS, IPC and network
    if config.cgroupns == "private":
        namespaces.enter_cgroup_namespace()         # 04: its cgroup is its "/" (joined already)
    v2 = cgroups.mode() == "v2"                     # 04: (asked while the host's /sys is ours)
    rootfs.make_mounts_private()                    # 02: nothing we mount reaches the host
    overlay.mount(files)                            # 05: the image's layers + our upper dir
    rootfs.enter(str(files.merged), pivot=config.pivot)  # 02: new root, /proc /dev /sys
    if config.cgroupns == "private" and v2:
        rootfs.mount_cgroup()                       # 04: /sys/fs/cgroup: its own cgroup, read-only
    namespaces.set_hostname(hostname)               # 03
    namespaces.bring_up_loopback()                  # 03: 127.0.0.1 works, nothing else
    os.makedirs(spec.cwd, exist_ok=True)            # 02: like docker, -w creates the directory
    if config.read_only:
        rootfs.remount_readonly()                   # 02: --read-only
    if spec.user:
        users.become(spec.user)                     # 05: the image's User, or -u
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
def report_oom(group: cgroups.Cgroup, config: ContainerConfig, status: int) -> bool:
    """An OOM kill looks like any SIGKILL (137); the cgroup's counter tells them apart.
    One line on stderr; the caller records the fact (`State.OOMKilled`, as docker inspect shows)."""
    if config.memory is None or not group.oom_kills():
        return False
    limit_text = human_size(config.memory) if config.memory % (1 << 20) else f"{config.memory >> 20} MiB"
    who = "the container was" if process.exit_code(status) == 137 else "a process in the container was"
    sys.stderr.write(f"mini: {who} killed: out of memory (its --memory limit is {limit_text})\n")
    return True
# <<< report-oom


def describe(config: ContainerConfig, spec: ProcessSpec, image: Image, lower: list[str]) -> dict:
    """The container's record, in docker inspect's names (chapter 07 adds to it)."""
    return {"Name": config.name or "", "Created": now_rfc3339(), "Image": image.id,
            "Path": spec.args[0], "Args": spec.args[1:],
            "Config": {"Image": config.image, "Cmd": list(config.command) or None, "Hostname": config.hostname},
            "State": {"Status": "running", "Running": True, "StartedAt": now_rfc3339()},
            "HostConfig": {"AutoRemove": config.remove, "ReadonlyRootfs": config.read_only},
            "GraphDriver": {"Name": "overlay", "Data": {"LowerDir": lower}}}


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
