"""A container's record and its states, on disk in two places:

    $MINI_ROOT/containers/<64-hex id>/    persistent
        container.json   the record: id, name, image, command, state (docker inspect's names;
                         chapter 06 grows it into `ps`, `inspect`, `start`, `logs`)
        upper/ work/ rootfs/   chapter 05's overlay directories
    $MINI_ROOT/names/<name> -> <64-hex id>   who holds each name (a symlink: names.py)
    $MINI_RUN/containers/<64-hex id>/     volatile (gone at reboot, and when the container ends)
        owner            "pid starttime" of the `mini` running it
        shm/             --ipc shareable: its /dev/shm, a tmpfs, while it runs (sharing.py)
        state.json       its init's pid, start time and namespaces while it runs (exec)

A container that exits is kept, with its upper dir, for `diff`, `commit` and `export`, unless it
ran with `--rm`; `mini rm` removes it. A `mini` that was killed leaves a container that says it
is running: the next run finds its owner gone and tidies up after it.
"""

from __future__ import annotations

import contextlib
import json
import os
from enum import Enum
from pathlib import Path

from mini_runtime import names, paths, stopping
from mini_runtime.errors import Conflict, InvalidParameter, NotFound, reworded
from mini_runtime.units import now_rfc3339

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:
    from typing import Any

    from mini_runtime.config import ContainerConfig, ProcessSpec
    from mini_runtime.image.store import Image

RECORD = "container.json"


class Status(str, Enum):
    """docker's container states (State.Status), and what each allows."""
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    RESTARTING = "restarting"   # a restart policy waits to run it again (exercise 06)
    EXITED = "exited"
    DEAD = "dead"

    @property
    def can_start(self) -> bool:
        return self in (Status.CREATED, Status.EXITED)

    @property
    def can_pause(self) -> bool:
        return self is Status.RUNNING

    @property
    def can_unpause(self) -> bool:
        return self is Status.PAUSED

    @property
    def has_process(self) -> bool:
        """(docker counts a restarting container as running: stop, kill and rm -f act on it)"""
        return self in (Status.RUNNING, Status.PAUSED, Status.RESTARTING)


def status(record: dict[str, Any]) -> Status:
    return Status(record.get("State", {}).get("Status", "dead"))


def initial_state() -> dict[str, Any]:
    """State of a container just created: its process waits for "go"."""
    return {"Status": Status.CREATED.value, "Running": False, "Paused": False, "OOMKilled": False,
            "Dead": False, "Pid": 0, "ExitCode": 0, "StartedAt": "0001-01-01T00:00:00Z",
            "FinishedAt": "0001-01-01T00:00:00Z"}


def describe(config: ContainerConfig, spec: ProcessSpec, image: Image, lower: list[str]) -> dict:
    """The container's record, in docker inspect's names: Config holds the command as it was
    resolved against the image (Entrypoint, Cmd, Env, WorkingDir, User), HostConfig the flags."""
    defaults = image.config.get("config") or {}
    if config.entrypoint is not None:
        entrypoint, cmd = ([config.entrypoint] if config.entrypoint else None), list(config.command) or None
    else:
        entrypoint, cmd = defaults.get("Entrypoint"), list(config.command) or defaults.get("Cmd")
    return {"Name": config.name or "", "Created": now_rfc3339(), "Image": image.id,
            "Path": spec.args[0], "Args": spec.args[1:],
            "Config": {"Hostname": config.hostname, "Domainname": "", "User": config.user or defaults.get("User", ""),
                       **config.attach_fields,
                       "Tty": config.tty, "OpenStdin": config.open_stdin, "StdinOnce": config.stdin_once,
                       "Env": config_env(config, spec, defaults), "Cmd": cmd,
                       "Image": config.image, "WorkingDir": spec.cwd if config.workdir or defaults.get("WorkingDir") else "",
                       "Entrypoint": entrypoint,
                       "Labels": dict(sorted({**(defaults.get("Labels") or {}),   # (Go: a map's keys in order)
                                              **dict(label.split("=", 1) for label in config.labels)}.items())),
                       **stopping.config_fields(config, defaults)},
            "State": initial_state(), "RestartCount": 0, "Driver": "overlay",
            "Platform": "linux",
            "HostConfig": {"AutoRemove": config.remove, "ReadonlyRootfs": config.read_only,
                           "CgroupnsMode": config.cgroupns, "Init": config.init or None, **config.namespace_modes(),
                           "Memory": config.memory or 0, "MemorySwap": config.memory_swap or 2 * (config.memory or 0),  # docker's default
                           "NanoCpus": int((config.cpus or 0) * 1e9), "CpuShares": config.cpu_shares or 0,
                           "PidsLimit": config.pids_limit, "CpusetCpus": config.cpuset_cpus or "",
                           "CpuPeriod": config.cpu_period or 0, "CpuQuota": config.cpu_quota or 0,
                           "MemoryReservation": config.memory_reservation or 0, "ContainerIDFile": config.cidfile or "",
                           "LogConfig": {"Type": "json-file", "Config": {}}, "NetworkMode": config.network,
                           "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0}},
            "GraphDriver": {"Name": "overlay", "Data": {"LowerDir": lower}}}


def config_env(config: ContainerConfig, spec: ProcessSpec, defaults: dict) -> list[str]:
    """Config.Env in docker's order: the -e variables, then the image's that they leave (moby's
    merge), then a default PATH if neither had one (not HOSTNAME or -t's TERM, as docker: they
    are added at start). The process's values."""
    order = [*(item.partition("=")[0] for item in config.env),
             *(item.partition("=")[0] for item in defaults.get("Env") or []), "PATH"]
    return [f"{key}={spec.env[key]}" for key in dict.fromkeys(order) if key in spec.env]


class NoSuchContainer(NotFound):
    """No container has that id, id prefix or name."""


def new_id() -> str:
    """Docker's form: 64 lowercase hex digits (shown shortened to 12)."""
    return os.urandom(32).hex()  # (the `secrets` module would cost ~7 ms of imports per run)


def containers_dir() -> Path:
    return paths.state_root() / "containers"


def run_dir(container_id: str) -> Path:
    """The container's volatile files: under the run root, gone with a reboot."""
    return paths.run_root() / "containers" / container_id


def create(container_id: str, record: dict[str, Any]) -> Path:
    """Make the container's directory, its owner file and its record; names are unique."""
    name = record.get("Name") or ""
    if name:
        names.validate(name)
    directory = containers_dir() / container_id
    with record_lock():
        index_names()
        if not name:  # docker's adjective_surname, drawn again while taken (06)
            name = names.generate(lambda n: holder(n) is not None, fallback=container_id[:12])
        name = name.lstrip("/")
        claim_free(name)
        names.claim(name, container_id)
        try:
            directory.mkdir(parents=True)
            run_dir(container_id).mkdir(parents=True)
            (run_dir(container_id) / "owner").write_text(f"{os.getpid()} {start_time(os.getpid())}\n")
            save(directory, dict(record, Id=container_id, Name="/" + name, LogPath=paths.log_file(directory)))
        except BaseException:
            names.release(name, container_id)
            raise
    return directory


def holder(name: str) -> str | None:
    """The id of the container that holds `name` (names.py's index: one readlink); None if
    nobody does, or if its container is gone (a removal interrupted between its two steps)."""
    container_id = names.indexed(name)
    return container_id if container_id and (containers_dir() / container_id / RECORD).exists() else None


def index_names() -> None:
    """Once (under the record lock): the index of a state made before there was one."""
    if not names.index_dir().is_dir():
        names.build_index((r["Name"], r["Id"]) for r in records())


def reopen(directory: Path, again: bool = False) -> dict[str, Any]:
    """`start` again (chapter 06): a container that has exited gets an owner and volatile files
    again. Only one `start` wins: the others find it running (docker's answer: nothing to do).
    `again`: its monitor restarts it (a restart policy), so it is "restarting"."""
    with paths.locked(paths.state_root() / "containers.lock"):
        record = load(directory)
        wanted = status(record) is Status.RESTARTING if again else status(record).can_start
        if not wanted or run_dir(directory.name).exists():
            raise Conflict(f"container {directory.name} is already running")
        run_dir(directory.name).mkdir(parents=True)
        (run_dir(directory.name) / "owner").write_text(f"{os.getpid()} {start_time(os.getpid())}\n")
    return record


def record_lock():  # -> a context manager
    """The lock every change of a record by a CLI takes (names, pause)."""
    return paths.locked(paths.state_root() / "containers.lock")


def claim_free(name: str) -> None:
    """Refuse a name another container holds, in docker's words (create, run and rename)."""
    if (other := holder(name)) is not None:
        raise Conflict(f'Conflict. The container name "/{name}" is already in use by container "{other}". '
                       "You have to remove (or rename) that container to be able to reuse that name.")


def rename(directory: Path, new_name: str) -> None:
    """docker rename: the new name must be valid and free, and not its own name (docker's words)."""
    if not new_name.lstrip("/"):
        raise InvalidParameter("Neither old nor new names may be empty")
    if "/" + new_name.lstrip("/") == load(directory)["Name"]:
        raise InvalidParameter("Renaming a container with the same name as its current name")
    with record_lock():
        index_names()
        try:                                            # (docker's daemon names it with its "/")
            name = names.validate(new_name if new_name.startswith("/") else "/" + new_name)
            claim_free(name)
        except (InvalidParameter, Conflict) as e:
            raise reworded(e, f"Error when allocating new name: {e}") from None
        old = load(directory)["Name"]
        names.claim(name, directory.name)
        save(directory, dict(load(directory), Name="/" + name))
        names.release(old, directory.name)


def save(directory: Path, record: dict[str, Any]) -> None:
    """Atomically; durably (fsync) unless the container goes when it ends (--rm): after a crash
    its owner is gone and the sweep removes it whatever the file holds."""
    durable = not record.get("HostConfig", {}).get("AutoRemove", False)
    paths.atomic_write(directory / RECORD, json.dumps(record, indent=2).encode(), durable=durable)


def load(directory: Path) -> dict[str, Any]:
    return json.loads((directory / RECORD).read_text())


def mark_running(directory: Path, pid: int, namespaces: dict[str, int]) -> None:
    """Its command runs: the record says so, and the run root has what `exec` will need: the
    init's pid, and its start time, which tells it from a later process given the same pid."""
    record = load(directory)
    record["State"] = dict(record["State"], Status=Status.RUNNING.value, Running=True, Pid=pid,
                           Restarting=False, ExitCode=0, OOMKilled=False, Error="", StartedAt=now_rfc3339())  # (a start again)
    save(directory, record)
    if namespaces:  # (a command that has already ended leaves nothing to record)
        paths.atomic_write(run_dir(directory.name) / "state.json",
                           json.dumps({"pid": pid, "started": start_time(pid),
                                       "namespaces": namespaces}).encode(), durable=False)


def records() -> list[dict[str, Any]]:
    base = containers_dir()
    found = []
    for directory in sorted(base.iterdir()) if base.is_dir() else []:
        try:
            found.append(load(directory))
        except (OSError, ValueError):
            continue  # being created or removed right now
    return found


def find(text: str) -> Path:
    """A container by full id, name or unique id prefix, in docker's order; from directory
    names and the name index, without reading every record."""
    base = containers_dir()
    hexadecimal = bool(text) and all(c in "0123456789abcdef" for c in text)
    if hexadecimal and (base / text / RECORD).exists():
        return base / text
    if not names.index_dir().is_dir():
        with record_lock():
            index_names()
    by_name = holder(text)
    if by_name is not None:
        return base / by_name
    matches = [d for d in (os.listdir(base) if hexadecimal and base.is_dir() else [])
               if d.startswith(text) and (base / d / RECORD).exists()]
    if len(matches) != 1:
        if len(matches) > 1:
            raise InvalidParameter(f"Multiple IDs found with provided prefix: {text}")  # (docker's words)
        raise NoSuchContainer(f"No such container: {text}")
    return base / matches[0]


# >>> finish
def finish(directory: Path, exit_code: int | None, *, keep: bool, oom: bool = False) -> None:
    """The container has ended: record how (kept), or remove everything (--rm, or a failed start)."""
    if not keep or exit_code is None:
        remove(directory)
        return
    record = load(directory)
    record["State"] = dict(record.get("State", {}), Status=Status.EXITED.value, Running=False, Pid=0,
                           Paused=False, Restarting=False, ExitCode=exit_code, OOMKilled=oom,
                           FinishedAt=now_rfc3339())
    save(directory, record)
    paths.remove_tree(directory / "work")  # overlay's scratch space, not needed now
    remove_run_dir(directory.name)                        # no owner, no pid: it has ended
    for path in directory.iterdir():
        if ".tmp-" in path.name:                           # (a half-written record)
            path.unlink()
# <<< finish


def manually_stopped(directory: Path, stopped: bool = True) -> None:
    """docker's HasBeenManuallyStopped: `stop`, `kill`, `rm -f` leave a file `stopped` by the record
    (a restart policy must not bring such a container back, exercise 06); a `start` removes it."""
    marker = directory / "stopped"
    try:
        marker.touch() if stopped else marker.unlink(missing_ok=True)
    except OSError:
        pass  # (removed meanwhile)


def unstarted(directory: Path, before: dict[str, Any], error: str, code: int, auto_remove: bool = False) -> None:
    """A start that failed before the container's command ran: it stays as it was (`created`, or
    exited), with no owner, the error and docker's exit code for it in its record (docker's
    State.Error). `auto_remove` (--rm): nothing is kept, as docker's AutoRemove."""
    if auto_remove:
        remove(directory)
        return
    record = load(directory)
    record["State"] = dict(before, Running=False, Paused=False, Pid=0, Error=error, ExitCode=code)
    save(directory, record)
    paths.remove_tree(directory / "work")  # overlay's scratch space
    remove_run_dir(directory.name)


def remove(directory: Path) -> None:
    try:
        name = load(directory)["Name"]
    except (OSError, ValueError, KeyError):
        name = ""  # (half-made: a link it may have left holds nothing once the record is gone)
    remove_run_dir(directory.name)
    paths.remove_tree(directory)
    names.release(name, directory.name)


def remove_run_dir(container_id: str) -> None:
    """Its volatile files (a mount first: --ipc shareable's /dev/shm), and their parent once no
    container has any: a run root with no container running is empty."""
    from mini_runtime import sharing  # 03
    sharing.unmount_shm(container_id)
    paths.remove_tree(run_dir(container_id))
    with contextlib.suppress(OSError):  # another container's files are there (or it is gone already)
        run_dir(container_id).parent.rmdir()


# >>> sweep-stale
def sweep_stale() -> None:
    """Tidy up after a `mini` that was killed before its cleanup: its container's cgroup and
    network go, and the container is removed (`--rm`) or kept as exited, as docker shows it.
    The start time tells a live owner from a new process that got the same pid. A container
    whose owner is gone but whose cgroup still holds a process is still running (its processes
    are dying right now, or outlived their mini): it is left for a later sweep."""
    from mini_runtime import cgroup_upkeep, cgroups  # chapter 04: the cgroups a killed mini left

    try:  # only containers with an owner (created or running) have a run dir: not every record
        live = frozenset(os.listdir(paths.run_root() / "containers"))
    except OSError:
        live = frozenset()
    cgroup_upkeep.sweep_empty(live=live)
    for directory in [containers_dir() / name for name in live]:
        owner = owner_of(directory.name)  # (None: finished, being created right now, or not ours)
        if owner is not None and start_time(owner[0]) != owner[1]:
            group = cgroups.Cgroup(directory.name)
            if group.processes():
                continue
            try:
                group.remove()
            except cgroups.CgroupBusy:
                continue  # a process in it after all: next time
            try:
                keep = not load(directory).get("HostConfig", {}).get("AutoRemove", False)
            except (OSError, ValueError):
                keep = False
            finish(directory, 137, keep=keep)
    from mini_runtime import endpoints, network  # chapter 07: what a killed monitor left; the
    if network.anything_left(owner_alive):        # record shows it gone (inspect, ps, port)
        for container_id in network.sweep(owner_alive):
            endpoints.forget(containers_dir() / container_id)
# <<< sweep-stale


def owner_of(container_id: str) -> tuple[int, str] | None:
    """The pid and start time of the process that owns the container (its monitor, or a
    foreground `mini run`), as recorded; None if none is."""
    try:
        pid, started = (run_dir(container_id) / "owner").read_text().split()
        return int(pid), started
    except (OSError, ValueError):
        return None


def owner_alive(container_id: str) -> bool:
    """Is it alive? (Its start time tells it from a new process given the same pid.)"""
    owner = owner_of(container_id)
    return owner is not None and start_time(owner[0]) == owner[1]


def start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot.
    None when the process is gone, or dead and not yet reaped (a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return None if fields[0] == "Z" else fields[19]
