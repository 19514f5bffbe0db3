"""The container pipeline, in one place: create, start, wait, cleanup (and `run`, all four).

Each chapter adds its steps here, in order, so you can read what chapter N contributes:

    create (parent, host side)                inside (the child, after "go")
    01 find the image                         03 new UTS, IPC and network namespaces
    01 merge image defaults and flags         02 a private mount table
    05 its layers, each unpacked once         05 mount the overlay: layers + upper dir
    03 04 defaults resolved and recorded      02 pivot_root into it, fresh /proc /dev /sys
    05 the container's record and upper dir   03 hostname, loopback up
    04 a cgroup with the limits               02 create the working directory, --read-only
    03 the next child is PID 1 of a new       05 the image's user, or -u
       PID namespace                          03 --init: stay PID 1, run the command as a child
    01 fork the child: it reports "ready"     01 chdir, find the command, execve
       and waits for "go"
    start: 04 move it into the cgroup, 01 "go" (126/127 if execve failed), 03 record the pid
    wait: 01 its exit status, 04 was it OOM-killed?
    cleanup: 04 remove the cgroup, 05 keep the container (its upper dir) or remove it (--rm)

The phases are separate so that they can run in different processes (chapter 06's monitor runs
start/wait/cleanup). The pipeline never prints and never parses argv: it returns or raises.
Chapter 07 adds the network: at create, connect() makes and wires the network namespace (the
child joins it, or unshares an empty one for `--network none`); start publishes the ports (holds
the host ports, DNAT, the userland proxy); cleanup disconnects. Since chapter 06, a start
that fails (a port in use, a command not found) leaves the container as it was, with the error in
its record, as docker's does (not_started). Chapter 08 slots in as
privileges (inside).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import socket
from pathlib import Path

from mini_runtime import (cgroup_upkeep, cgroups, container, endpoints, namespaces, network, overlay, paths,
                          process, rootfs, sharing, syscalls, users)
from mini_runtime.config import ContainerConfig, ProcessSpec, process_spec
from mini_runtime.errors import InvalidParameter, MiniError, NotStarted
from mini_runtime.image.store import Store
from mini_runtime.tuples import named_tuple


#: The container's settings (ContainerConfig, defaults resolved), beside its record (06).
CONFIG = "config.json"
#: 07: the container's endpoint (netns, address, ports, /etc files), beside its record; and the
#: pid of its userland proxy, in its run dir.


@named_tuple
class Created:
    """A created container, its child waiting for "go": what start, wait and cleanup need."""
    id: str
    directory: Path
    config: ContainerConfig     # with its defaults resolved (hostname, cgroupns)
    group: cgroups.Cgroup
    child: process.Child
    endpoint: network.Endpoint | None = None  # 07: its place on the network
    bindings: tuple = ()                        # 07: the ports to publish at start (-p, -P)
    shared: sharing.Shared = sharing.Shared()   # 03: the namespaces its child joins


@named_tuple
class Exited:
    """How the container ended: docker's exit code, whether the OOM killer struck, and what
    cleanup could not undo (a cgroup still busy), said as a warning."""
    code: int
    oom: bool
    warning: str | None = None


# >>> run
def create(config: ContainerConfig, store: Store | None = None, container_id: str | None = None) -> Created:
    """Everything up to the child waiting for "go". Nothing is left behind if a step fails.
    (Chapter 06's monitor picks the id itself, so that it is in its command line.)"""
    cgroup_upkeep.warm_up()                         # 04: the first cgroup write's wait, now
    store = store or Store()
    extension_flags(config)                         # exercises 01 02: --ulimit, --tmpfs
    container_id = container_id or container.new_id()
    shared = sharing.resolve(config, container_id)  # 03: --pid --ipc --uts: namespaces to join
    image = store.get(config.image)                 # 01: unknown image -> exit 125
    group = cgroups.Cgroup(container_id)            # 04
    config = sharing.pinned(resolve_defaults(config, container_id, group.mode))  # 03 04: kept in the record
    try:
        spec = process_spec(config, image.config)   # 01: Entrypoint + Cmd, Env, WorkingDir
    except ValueError as e:
        raise InvalidParameter(str(e)) from None
    container.sweep_stale()                         # 02: tidy up after a killed mini
    lower = store.layer_dirs(image)                 # 05: each layer unpacked once, shared
    directory = container.create(container_id, container.describe(config, spec, image, lower))  # 05: the record
    endpoint, bindings = None, []                   # 07
    try:
        files = overlay.prepare(directory, store.layers_root, lower)  # 05: upper/, work/, rootfs/
        limit(group, config)                        # 04: a cgroup with the limits
        endpoint, bindings = endpoints.connect(config, directory, image.config)  # 07: netns, wired
        with sharing.children_born_in(shared.pid):  # 03: the child will be PID 1 (or --pid's)
            child = process.spawn(spec, root="/",   # 01: fork; it says "ready", waits for "go"
                                  setup=lambda: inside(config, spec, files, endpoint, shared))
    except BaseException:
        endpoints.disconnect(endpoint)              # 07
        group.remove()                              # 04
        container.finish(directory, None, keep=False)   # 05: it never ran: nothing to keep
        raise
    return Created(container_id, directory, config, group, child, endpoint, tuple(bindings), shared)


def start(created: Created) -> None:
    """Let the child run its command, inside its cgroup. If that fails, the child is gone (and
    chapter 06's callers leave the container as it was, with the error: not_started)."""
    pid = created.child.pid
    try:
        sharing.check_at_start(created.config, created.id, created.shared)  # 03: what it joins still
        endpoints.check_at_start(created.endpoint)  # 07: runs (docker checks again at start)
        held = publish(created)                     # 07: host ports held, DNAT (or NotStarted)
        created.group.add(pid)                      # 04: limited before it runs anything
        if created.config.ipc == "shareable":
            sharing.mount_shm(created.id)           # 03: its /dev/shm, for those that join it
        endpoints.serve_localhost(created.id, created.endpoint, held)  # 07: the userland proxy for 127.0.0.1
        process.release(created.child)              # 01: go! (126/127 if execve failed)
        container.mark_running(created.directory, pid, namespace_ids(pid))  # 03: running, its pid
    except BaseException:
        kill_and_reap(pid)
        raise


def wait(created: Created) -> Exited:
    """Until the container's PID 1 ends (it is reaped here): its code, and OOM or not."""
    return ended(created, process.wait_for(created.child.pid))  # 01: until it ends; reaps it


def ended(created: Created, status: int) -> Exited:
    """What a wait status says (the monitor reaps its child itself): code, and OOM or not."""
    oom = created.config.memory is not None and created.group.oom_kills() > 0  # 04
    return Exited(process.exit_code(status), oom)   # 01: exit code, or 128 + signal


def cleanup(created: Created, exited: Exited | None) -> str | None:
    """What the container used: its cgroup; its files unless --rm (or it never ran). Returns a
    warning if the cgroup could not go (a process is still in it): the container is finished
    anyway, and a later run's sweep removes the cgroup once it is empty."""
    sharing.end_the_rest(created.config, created.group)  # 03: --pid host: what its init left
    try:                                            # 04
        created.group.remove()                      # 04: on every hierarchy
        warning = None
    except cgroups.CgroupBusy as e:
        warning = str(e)
    code = None if exited is None else exited.code  # 05: None: it never ran
    keep = code is not None and not created.config.remove  # 05: kept unless --rm
    warning = endpoints.disconnect(created.endpoint or endpoints.of(created.directory), created.directory,
                                   recorded=keep) or warning  # 07: links, rules, proxy, netns
    container.finish(created.directory, code, keep=keep, oom=exited is not None and exited.oom)  # 05
    return warning                                  # 04


def run(config: ContainerConfig, store: Store | None = None) -> Exited:
    """A container in the foreground: create, start, wait, cleanup; signals sent to mini
    meanwhile (ctrl-C, kill) go to the container."""
    created = create(config, store)
    exited = None
    try:
        with process.forward_signals(created.child.pid):  # 01
            start(created)
            exited = wait(created)
    except BaseException:
        kill_and_reap(created.child.pid)
        raise
    finally:
        warning = cleanup(created, exited)
    return exited._replace(warning=warning)
# <<< run


def recreate(container_id: str, store: Store | None = None, *, again: bool = False) -> Created:
    """`start` of a container that has exited (06): its record, settings and upper dir as they
    are, a new cgroup and a new process waiting for "go". On failure it stays as it was.
    (`again`: a restart policy's restart, of a container that is "restarting".)"""
    store = store or Store()
    directory = container.containers_dir() / container_id
    config = ContainerConfig(**json.loads((directory / CONFIG).read_text()))
    record = container.reopen(directory, again)     # 06: owned by this monitor again
    group = cgroups.Cgroup(container_id)
    endpoint, bindings = None, []                   # 07
    try:
        image = store.get(record["Image"])
        spec = process_spec(config, image.config)
        files = overlay.of(directory, store.layers_root, record["GraphDriver"]["Data"]["LowerDir"])
        files.work.mkdir(exist_ok=True)             # (finish removed overlay's scratch space)
        limit(group, config)
        shared = sharing.resolve(config._replace(hostname=None), container_id)  # (what it joins must run again)
        endpoint, bindings = endpoints.connect(config, directory, image.config)
        with sharing.children_born_in(shared.pid):
            child = process.spawn(spec, root="/", setup=lambda: inside(config, spec, files, endpoint, shared))
    except BaseException as e:
        endpoints.disconnect(endpoint)
        group.remove()
        container.unstarted(directory, record["State"], str(e) or type(e).__name__,
                            getattr(e, "exit_code", 128))  # as it was: created, or exited
        raise
    return Created(container_id, directory, config, group, child, endpoint, tuple(bindings), shared)


def keep_config(created: Created) -> None:
    """The settings, defaults resolved, beside the record: what `start` runs again (06)."""
    paths.atomic_write(created.directory / CONFIG, json.dumps(created.config._asdict()).encode(),
                       durable=not created.config.remove)  # (--rm: removed when it ends)


# >>> resolve-defaults
def resolve_defaults(config: ContainerConfig, container_id: str, cgroup_mode: str) -> ContainerConfig:
    """docker's defaults, decided once at create and kept in the record: the host name is the
    short id (03; 07: the host's, or the joined container's, by the network); the cgroup
    namespace is private on cgroup v2, the host's on v1 (04)."""
    network = config.network or os.environ.get("MINI_DEFAULT_NETWORK") or "bridge"
    network = "bridge" if network == "default" else network     # (docker's name for its default)
    return config._replace(
        hostname=config.hostname or endpoints.default_hostname(network, container_id),
        cgroupns=config.cgroupns or ("private" if cgroup_mode == "v2" else "host"), network=network,
        ipc=config.ipc or "private")                # (docker 20.10's default: not shareable)
# <<< resolve-defaults


# >>> inside
def inside(config: ContainerConfig, spec: ProcessSpec, files: overlay.Overlay,
           endpoint: network.Endpoint | None = None, shared: sharing.Shared = sharing.Shared()) -> None:
    """The child's steps between "go" and execve. It is PID 1 of its PID namespace."""
    mode = endpoint.network if endpoint else "none"  # (07: else the parent made it)
    joined = sharing.opened(shared)                 # 03: --ipc, --uts: the ones it joins instead,
    namespaces.enter_namespaces(new_network=mode == "none")  # 03: its own UTS, IPC (and network)
    sharing.join(joined)                            # 03: ... now (or the host's: --uts host)
    if endpoint:
        network.join(endpoint)                      # 07: the namespace the parent wired
    if config.uptime_offset is not None:
        namespaces.enter_time_namespace(config.uptime_offset)  # exercise 03: --uptime-offset
    if config.cgroupns == "private":
        namespaces.enter_cgroup_namespace()         # 04: its cgroup is its "/" (joined already)
    v2 = cgroups.mode() == "v2"                     # 04: (asked while the host's /sys is ours)
    rootfs.make_mounts_private()                    # 02: nothing we mount reaches the host
    if endpoint and endpoint.files:                 # 07: mount points for /etc/hosts ... on top
        files = files._replace(lower=[str(files.upper.parent / "init")] + files.lower)
    overlay.mount(files._replace(volatile=config.remove))  # 05: layers + upper dir (--rm: never synced)
    shm = sharing.cloned_shm(shared)                # 03: --ipc: a shared /dev/shm, held by an fd
    if endpoint and endpoint.files:
        network.etcfiles.bind(endpoint.files, files.merged)  # 07: hosts, hostname, resolv.conf
    rootfs.enter(str(files.merged), pivot=config.pivot)  # 02: new root, /proc /dev /sys
    namespaces.mount_mqueue()                       # 03: its IPC namespace's message queues
    if config.ipc == "none":
        namespaces.unmount_shm()                    # 03: --ipc none: no /dev/shm
    sharing.attach_shm(shm)                         # 03: ... in place of its own
    if config.cgroupns == "private" and v2:
        rootfs.mount_cgroup()                       # 04: /sys/fs/cgroup: its own cgroup, read-only
    if config.tty:                                  # 06: -t: a pty of its own /dev/pts, its
        process.take_terminal(socket.socket(fileno=0))  # terminal; the monitor's socket is fd 0
    if shared.uts is None:                          # (--uts host: never rename the host)
        namespaces.set_hostname(config.hostname or "")  # 03: resolved at create
    namespaces.bring_up_loopback()                  # 03: 127.0.0.1 works, nothing else
    for path, flags, data in map(rootfs.parse_tmpfs, config.tmpfs):
        rootfs.mount_tmpfs(path, flags, data)       # exercise 02: --tmpfs
    rootfs.make_workdir(spec.cwd)                   # 02: like docker, -w creates the directory
    if config.read_only:
        rootfs.remount_readonly()                   # 02: --read-only
    if config.ulimits:
        process.set_ulimits([process.parse_ulimit(value) for value in config.ulimits])  # exercise 01
    users.become(spec.user, spec.env)                         # 05: the image's User, or -u (or root)
    if config.init:                                 # 03: --init: we stay PID 1 ...
        signal.pthread_sigmask(signal.SIG_BLOCK, namespaces.INIT_SIGNALS)  # (none lost)
        with contextlib.suppress(OSError):          # (ps in it: docker's kind of PID 1, no host
            syscalls.set_command_line(["mini-init", "--", *spec.args])  # paths; before the fork,
        command = os.fork()                         # or a quick `ps` may see the old one)
        if command:
            namespaces.init_loop(command)           # ... and the command runs as PID 2
        signal.pthread_sigmask(signal.SIG_UNBLOCK, namespaces.INIT_SIGNALS)
# <<< inside


def extension_flags(config: ContainerConfig) -> None:
    """The flags of exercises 01 and 02's extensions, refused in docker's words before
    anything is created (their hooks are the learner's: the reference says whose they are)."""
    for value in config.ulimits:
        try:
            process.parse_ulimit(value)
        except ValueError as e:
            raise InvalidParameter(f'invalid argument "{value}" for "--ulimit" flag: {e}') from None
    for value in config.tmpfs:
        try:
            rootfs.parse_tmpfs(value)
        except ValueError as e:
            raise InvalidParameter(str(e)) from None


# >>> limit
def limit(group: cgroups.Cgroup, config: ContainerConfig) -> None:
    """Make the container's cgroup with docker's limits written into it."""
    limits = dict(memory=config.memory, memory_swap=config.memory_swap, cpus=config.cpus,
                  cpu_shares=config.cpu_shares, pids=config.pids_limit, cpu_period=config.cpu_period,
                  cpu_quota=config.cpu_quota, memory_reservation=config.memory_reservation)
    try:
        group.create(**limits)
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
        asked = ", ".join(f"{name}={value}" for name, value in limits.items() if value is not None)
        raise InvalidParameter(f"the kernel refused a cgroup limit ({asked}): {e.strerror}") from None
    if config.cpuset_cpus is not None:
        group.set_cpuset(config.cpuset_cpus)
# <<< limit


# >>> publish-at-start
def publish(created: Created) -> list:
    """07, at start (docker's order): hold the host ports and DNAT them; the record shows the
    ports really held. If that fails (a port in use): NotStarted, with docker's words."""
    if not created.bindings or created.endpoint is None:
        return []
    try:
        endpoint, held = network.publish(created.endpoint, created.bindings)
    except MiniError as e:
        name = container.load(created.directory)["Name"].lstrip("/")
        raise NotStarted(f"driver failed programming external connectivity on endpoint {name} "
                         f"({created.id}): {e}") from None
    record = container.load(created.directory)
    record["NetworkSettings"] = endpoints.settings_of(created.directory, endpoint,
                                                      record["Config"].get("ExposedPorts") or {})
    container.save(created.directory, record)
    paths.atomic_write(created.directory / endpoints.NETWORK, json.dumps(endpoint.record()).encode(),
                       durable=not created.config.remove)
    return held
# <<< publish-at-start


def not_started(created: Created, error: BaseException) -> None:
    """06: after a start that failed (its child is gone), everything of the attempt is undone
    and the container left as it was (`created`, or exited) with the error and docker's exit
    code in its record: 126/127 for a command that cannot run, 128 for anything else (a port
    in use). With --rm it is gone."""
    before = container.load(created.directory)["State"]
    created.group.remove()
    endpoints.disconnect(created.endpoint, created.directory)
    container.unstarted(created.directory, before, error=str(error) or type(error).__name__,
                        code=getattr(error, "exit_code", 128), auto_remove=created.config.remove)




def watched(created: Created) -> list[int]:
    """06: what a created container's monitor watches while it waits for "start" (pidfds): its
    child, and the inits of the containers it joins (03 07)."""
    return [syscalls.pidfd_open(created.child.pid), *sharing.watched(created.config)]


def given_up(created: Created) -> None:
    """06: a created container whose child can no longer be started as made: a container it
    joins has ended (03 07; its child too, if it shared its PID namespace). What create made
    for the child is undone and the container stays `created`, without a monitor, as after a
    failed start: `start` makes everything anew then, and checks the targets again (docker's
    words if they are not running)."""
    kill_and_reap(created.child.pid)
    created.group.remove()
    endpoints.disconnect(created.endpoint, created.directory)
    container.remove_run_dir(created.id)


def namespace_ids(pid: int) -> dict[str, int]:
    """Its namespaces, for `exec` and `inspect` (chapter 06); none for a command already gone."""
    try:
        return namespaces.namespace_ids(pid)
    except OSError:
        return {}


def kill_and_reap(pid: int) -> None:
    """Leave nothing behind when the pipeline fails half-way."""
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
