"""Chapter 06: `rm` (ContainerDelete), including `rm -f` of a container caught in its setup.

A created container is removed by its monitor, which made it: asked "remove", it undoes what
it made (cgroup, network, files) and answers. But a monitor answers only between its steps: one
busy in a step that hangs (a mount on a dead NFS server, a monitor stopped with SIGSTOP, a
kernel that keeps it waiting) answers nobody. docker's `rm -f` means "whatever it is doing", so
then it ends, by pid, what that monitor started:

    its monitor      the container's owner (run dir: "pid starttime"): killed through a pidfd,
                     if it is still the process recorded there (not a new one given its pid)
    its init         dies with it (its parent-death signal, armed before it said "ready")
    its cgroup       anything already in it is killed too, and the cgroup waited empty
    the rest         as after any killed monitor: the sweep removes the cgroup and network,
                     then the record goes with its files
"""

from __future__ import annotations

import os
import select
import signal as signals
import time
from pathlib import Path

from mini_runtime import container, lifecycle, monitor, paths, syscalls
from mini_runtime.errors import Conflict

#: How long a created container's monitor may take to answer "remove" before `rm` decides it
#: is stuck (it answers at once while it waits for "start"; a start takes well under a second).
SETUP_WAIT = 10.0
#: The same for `rm -f`, which needs no patience: the user asked for the end, whatever it does.
FORCED_SETUP_WAIT = 2.0


def remove(directory: Path, text: str, force: bool) -> None:
    """ContainerDelete, one at a time: a second `rm -f` of a container being removed is
    refused, as docker's, not run alongside (both would kill, wait and remove, and say so)."""
    try:
        claim = paths.try_lock(directory / ".removing")
    except FileNotFoundError:
        raise container.NoSuchContainer(f"No such container: {text}") from None
    if claim is None:
        raise Conflict(f"removal of container {text} is already in progress")
    try:
        if not (directory / container.RECORD).exists():      # (removed while we looked it up)
            raise container.NoSuchContainer(f"No such container: {text}")
        remove_claimed(directory, force)
    finally:
        os.close(claim)


def prune(filters: dict[str, list[str]]) -> dict:
    """ContainersPrune (`mini container prune`): every container without a process, created or
    exited, as docker's, kept by `label=`/`label!=`/`until=`. What it frees is each one's own
    changes, its upper dir. One that starts or goes meanwhile is skipped, not an error: a prune
    is a sweep, not a request about a container."""
    from mini_runtime import filters as flt
    from mini_runtime.errors import NotFound
    from mini_runtime.units import rfc3339_ns

    flt.check(filters, ("label", "label!", "until"))
    may_go = flt.prune_filter(filters)
    deleted, freed = [], 0
    for record in container.records():
        labels = (record.get("Config") or {}).get("Labels") or {}
        created = rfc3339_ns(record.get("Created") or "") or 0
        if container.status(record).has_process or not may_go(labels, created):
            continue
        directory = container.containers_dir() / record["Id"]
        size = paths.disk_usage(directory / "upper") if (directory / "upper").is_dir() else 0
        try:
            remove(directory, record["Id"], force=False)
        except (Conflict, NotFound):
            continue
        deleted.append(record["Id"])
        freed += size
    return {"ContainersDeleted": deleted, "SpaceReclaimed": freed}


def remove_claimed(directory: Path, force: bool) -> None:
    record = container.load(directory)
    if container.status(record) is container.Status.CREATED:
        record = removed_by_monitor(directory, force)
        if record is None:
            container.remove(directory)                 # (its monitor did; any leftovers)
            return
    state = container.status(record)
    if state.has_process:
        if not force:                                   # (docker 20.10's words; later ones
            procedure = "Stop the container before attempting removal or force remove"  # reword)
            if state is container.Status.PAUSED:            # its process is frozen: not even
                procedure = "Unpause and then " + procedure.lower()  # SIGKILL ends it till thawed
            raise Conflict(f"You cannot remove a {state.value} container {record['Id']}. {procedure}")
        container.manually_stopped(directory)
        if lifecycle.restarting_ended(directory):       # (it may have started again meanwhile)
            lifecycle.thawed(directory)
            where = lifecycle.run_dir(directory)
            monitor.request(where, {"op": "kill", "signal": int(signals.SIGKILL)}, 5)
            monitor.request(where, {"op": "wait"}, 30)
    if state.has_process or state is container.Status.CREATED:
        container.sweep_stale()                         # what a monitor that died left
    container.remove(directory)


def removed_by_monitor(directory: Path, force: bool) -> dict | None:
    """A created container: its monitor removes it (None once it has), or its record as it is
    now if that is for someone else (it has started meanwhile, or its monitor is gone). A
    monitor that does not answer in time is stuck in the setup: `rm -f` ends it, `rm` says so."""
    deadline = time.monotonic() + (FORCED_SETUP_WAIT if force else SETUP_WAIT)
    while True:
        left = max(deadline - time.monotonic(), 0.05)
        reply = monitor.request(lifecycle.run_dir(directory), {"op": "remove"}, left)
        if reply is not None and "Error" not in reply:
            return None
        try:
            record = container.load(directory)
        except OSError:
            return None                                 # (removed meanwhile)
        if container.status(record) is not container.Status.CREATED or not container.owner_alive(directory.name):
            return record
        if time.monotonic() >= deadline:
            break
        time.sleep(0.05)                                # (its socket is not there yet: creating)
    if not force:
        raise Conflict(f'cannot remove container "{record["Name"]}": its monitor has not answered for '
                       f"{SETUP_WAIT:.0f} s while setting it up: force remove to end it")
    end_setup(directory)
    return container.load(directory)


def end_setup(directory: Path, timeout: float = 10.0) -> None:
    """End by pid what a stuck monitor started: itself, so its init too, and its cgroup's
    processes; returns once they are gone (or after `timeout`: the sweep leaves a busy cgroup)."""
    from mini_runtime import cgroups

    owner = container.owner_of(directory.name)
    if owner is not None:
        try:
            pidfd = syscalls.pidfd_open(owner[0])
        except ProcessLookupError:
            pidfd = -1
        if pidfd >= 0:
            try:
                if container.start_time(owner[0]) == owner[1]:     # the one recorded, held
                    syscalls.pidfd_send_signal(pidfd, signals.SIGKILL)
                    select.select([pidfd], [], [], timeout)         # readable once it has ended
            except ProcessLookupError:
                pass
            finally:
                os.close(pidfd)
    group = cgroups.Cgroup(directory.name)
    deadline = time.monotonic() + timeout
    while (left := group.processes()) and time.monotonic() < deadline:
        for pid in left:
            kill_if_in(pid, directory.name)
        time.sleep(0.02)


def kill_if_in(pid: int, container_id: str) -> None:
    """SIGKILL `pid` if it is (still) in the container's cgroup: the pidfd holds the process,
    so a pid given to another meanwhile is not the one signalled."""
    try:
        pidfd = syscalls.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        if container_id in Path(f"/proc/{pid}/cgroup").read_text():
            syscalls.pidfd_send_signal(pidfd, signals.SIGKILL)
    except OSError:
        pass                                            # (it has ended)
    finally:
        os.close(pidfd)
