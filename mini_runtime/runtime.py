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
child joins it, or unshares an empty one for `--network none`) and holds the published host
ports; start hands them to the userland proxy; cleanup disconnects. Chapter 08 slots in as
privileges (inside).
"""

from __future__ import annotations

import json
import os
import signal
import socket
from pathlib import Path
from typing import NamedTuple

from mini_runtime import cgroups, container, namespaces, network, overlay, paths, process, rootfs, users
from mini_runtime.config import ContainerConfig, ProcessSpec, process_spec
from mini_runtime.errors import InvalidParameter
from mini_runtime.image.store import Image, Store
from mini_runtime.units import now_rfc3339


#: The container's settings (ContainerConfig, defaults resolved), beside its record (06).
CONFIG = "config.json"
#: 07: the container's endpoint (netns, address, ports, /etc files), beside its record; and the
#: pid of its userland proxy, in its run dir.
NETWORK, PROXY = "network.json", "proxy.pid"


class Created(NamedTuple):
    """A created container, its child waiting for "go": what start, wait and cleanup need."""
    id: str
    directory: Path
    config: ContainerConfig     # with its defaults resolved (hostname, cgroupns)
    group: cgroups.Cgroup
    child: process.Child
    endpoint: network.Endpoint | None = None  # 07: its place on the network
    held: tuple = ()                            # 07: the host ports it publishes, bound


class Exited(NamedTuple):
    """How the container ended: docker's exit code, whether the OOM killer struck, and what
    cleanup could not undo (a cgroup still busy), said as a warning."""
    code: int
    oom: bool
    warning: str | None = None


# >>> run
def create(config: ContainerConfig, store: Store | None = None, container_id: str | None = None) -> Created:
    """Everything up to the child waiting for "go". Nothing is left behind if a step fails.
    (Chapter 06's monitor picks the id itself, so that it is in its command line.)"""
    store = store or Store()
    image = store.get(config.image)                 # 01: unknown image -> exit 125
    try:
        spec = process_spec(config, image.config)   # 01: Entrypoint + Cmd, Env, WorkingDir
    except ValueError as e:
        raise InvalidParameter(str(e)) from None
    container.sweep_stale()                         # 02: tidy up after a killed mini
    lower = store.layer_dirs(image)                 # 05: each layer unpacked once, shared
    container_id = container_id or container.new_id()
    group = cgroups.Cgroup(container_id)            # 04
    config = resolve_defaults(config, container_id, group.mode)  # 03 04: kept in the record
    directory = container.create(container_id, describe(config, spec, image, lower))  # 05: the record
    endpoint, held = None, []                       # 07
    try:
        files = overlay.prepare(directory, store.layers_root, lower)  # 05: upper/, work/, rootfs/
        limit(group, config)                        # 04: a cgroup with the limits
        endpoint, held = connect(config, directory, image.config)  # 07: netns, wired; ports held
        with namespaces.children_in_new_pid_namespace():  # 03: the child will be PID 1
            child = process.spawn(spec, root="/",   # 01: fork; it says "ready", waits for "go"
                                  setup=lambda: inside(config, spec, files, endpoint))
    except BaseException:
        disconnect(endpoint, held)                  # 07
        group.remove()                              # 04
        container.finish(directory, None, keep=False)   # 05: it never ran: nothing to keep
        raise
    return Created(container_id, directory, config, group, child, endpoint, tuple(held))


def start(created: Created) -> None:
    """Let the child run its command, inside its cgroup. If that fails, the child is gone."""
    pid = created.child.pid
    try:
        created.group.add(pid)                      # 04: limited before it runs anything
        serve_localhost(created)                    # 07: the userland proxy for 127.0.0.1
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
    try:                                            # 04
        created.group.remove()                      # 04: on every hierarchy
        warning = None
    except cgroups.CgroupBusy as e:
        warning = str(e)
    warning = disconnect(created.endpoint or network_of(created.directory), created.held,
                         created.directory) or warning  # 07: links, rules, proxy, netns
    code = None if exited is None else exited.code  # 05: None: it never ran
    container.finish(created.directory, code, keep=not created.config.remove,
                     oom=exited is not None and exited.oom)  # 05: kept unless --rm
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


def recreate(container_id: str, store: Store | None = None) -> Created:
    """`start` of a container that has exited (06): its record, settings and upper dir as they
    are, a new cgroup and a new process waiting for "go". On failure it stays as it was."""
    store = store or Store()
    directory = container.containers_dir() / container_id
    config = ContainerConfig(**json.loads((directory / CONFIG).read_text()))
    record = container.reopen(directory)            # 06: owned by this monitor again
    group = cgroups.Cgroup(container_id)
    endpoint, held = None, []                       # 07
    try:
        image = store.get(record["Image"])
        spec = process_spec(config, image.config)
        files = overlay.of(directory, store.layers_root, record["GraphDriver"]["Data"]["LowerDir"])
        files.work.mkdir(exist_ok=True)             # (finish removed overlay's scratch space)
        limit(group, config)
        endpoint, held = connect(config, directory, image.config)
        with namespaces.children_in_new_pid_namespace():
            child = process.spawn(spec, root="/", setup=lambda: inside(config, spec, files, endpoint))
    except BaseException:
        disconnect(endpoint, held)
        group.remove()
        container.finish(directory, record["State"].get("ExitCode", 0), keep=True)
        raise
    return Created(container_id, directory, config, group, child, endpoint, tuple(held))


def keep_config(created: Created) -> None:
    """The settings, defaults resolved, beside the record: what `start` runs again (06)."""
    paths.atomic_write(created.directory / CONFIG, json.dumps(created.config._asdict()).encode())


# >>> resolve-defaults
def resolve_defaults(config: ContainerConfig, container_id: str, cgroup_mode: str) -> ContainerConfig:
    """docker's defaults, decided once at create and kept in the record: the host name is the
    short id (03); the cgroup namespace is private on cgroup v2, the host's on v1 (04)."""
    return config._replace(
        hostname=config.hostname or container_id[:12],
        cgroupns=config.cgroupns or ("private" if cgroup_mode == "v2" else "host"),
        network=config.network or os.environ.get("MINI_DEFAULT_NETWORK") or "bridge")
# <<< resolve-defaults


# >>> inside
def inside(config: ContainerConfig, spec: ProcessSpec, files: overlay.Overlay,
           endpoint: network.Endpoint | None = None) -> None:
    """The child's steps between "go" and execve. It is PID 1 of its PID namespace."""
    mode = endpoint.network if endpoint else "none"  # (07: else the parent made it)
    namespaces.enter_namespaces(new_network=mode == "none")  # 03: its own UTS, IPC (and network)
    if endpoint:
        network.join(endpoint)                      # 07: the namespace the parent wired
    if config.cgroupns == "private":
        namespaces.enter_cgroup_namespace()         # 04: its cgroup is its "/" (joined already)
    v2 = cgroups.mode() == "v2"                     # 04: (asked while the host's /sys is ours)
    rootfs.make_mounts_private()                    # 02: nothing we mount reaches the host
    if endpoint and endpoint.files:                 # 07: mount points for /etc/hosts ... on top
        files = files._replace(lower=[str(files.upper.parent / "init")] + files.lower)
    overlay.mount(files)                            # 05: the image's layers + our upper dir
    if endpoint and endpoint.files:
        network.etcfiles.bind(endpoint.files, files.merged)  # 07: hosts, hostname, resolv.conf
    rootfs.enter(str(files.merged), pivot=config.pivot)  # 02: new root, /proc /dev /sys
    if config.cgroupns == "private" and v2:
        rootfs.mount_cgroup()                       # 04: /sys/fs/cgroup: its own cgroup, read-only
    if config.tty:                                  # 06: -t: a pty of its own /dev/pts, its
        process.take_terminal(socket.socket(fileno=0))  # terminal; the monitor's socket is fd 0
    namespaces.set_hostname(config.hostname or "")  # 03: resolved at create
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


# >>> connect-container
def connect(config: ContainerConfig, directory: Path, image_config: dict) -> tuple[network.Endpoint, list]:
    """07: the container's network, made before its child exists (by --network; -p and -P's
    host ports held first), and recorded as docker inspect shows it."""
    from mini_runtime.network import ports
    exposed = dict((image_config.get("config") or {}).get("ExposedPorts") or {})
    bindings = ports.parse_all(config.publish, config.publish_all, exposed)
    exposed.update({b.key: {} for b in bindings})   # publishing also exposes
    mode, share = config.network or "bridge", None
    if mode.startswith("container:"):
        if bindings:
            raise InvalidParameter("conflicting options: port publishing and the container type network mode")
        mode, share = shared_network(mode.partition(":")[2])
    elif mode in ("none", "host"):
        bindings = []                               # docker: discarded in these modes
    network.etcfiles.init_layer(directory)          # empty mount points for the /etc files
    record = container.load(directory)
    endpoint, held = network.connect(directory.name, directory, config.hostname or "", mode,
                                     record["Name"].lstrip("/"), bindings, share)
    record["NetworkSettings"] = network.settings(endpoint, exposed)
    record["HostConfig"].update(NetworkMode=mode, PortBindings=ports.port_bindings(bindings),
                                PublishAllPorts=config.publish_all)
    record["Config"]["ExposedPorts"] = exposed or None
    if endpoint.files:
        record.update(ResolvConfPath=str(endpoint.files.resolv_conf),
                      HostnamePath=str(endpoint.files.hostname), HostsPath=str(endpoint.files.hosts))
    container.save(directory, record)
    paths.atomic_write(directory / NETWORK, json.dumps(endpoint.record()).encode())
    return endpoint, held
# <<< connect-container


def shared_network(name: str) -> tuple[str, tuple[str, network.EtcFiles | None]]:
    """`--network container:NAME`: that running container's namespace and /etc files."""
    other = container.find(name)
    state = container.load(other)["State"]
    theirs = network_of(other)
    if not state.get("Running") or theirs is None:
        raise InvalidParameter(f"cannot join network of a non running container: {other.name}")
    if theirs.network == "host" or (theirs.network.startswith("container:") and not theirs.netns):
        return "host", ("", None)
    return f"container:{other.name}", (theirs.netns or f"/proc/{state['Pid']}/ns/net", theirs.files)


def network_of(directory: Path) -> network.Endpoint | None:
    """The endpoint connect() recorded beside the record (None: nothing connected)."""
    try:
        return network.Endpoint.from_record(json.loads((directory / NETWORK).read_text()))
    except (OSError, ValueError):
        return None


def serve_localhost(created: Created) -> None:
    """07: published ports get the userland proxy (a process of its own, the monitor's child),
    which takes over the held host ports."""
    if created.held and created.endpoint and created.endpoint.ip:
        from mini_runtime.network import ports, proxy
        pid = proxy.spawn(created.held, created.endpoint.ip)
        paths.atomic_write(container.run_dir(created.id) / PROXY, str(pid).encode())
        ports.release(created.held)


def disconnect(endpoint: network.Endpoint | None, held, directory: Path | None = None) -> str | None:
    """07: undo connect(): the held ports, the proxy, the links, rules and netns; the record
    shows no address any more. Returns what could not be undone, as a warning."""
    from mini_runtime.errors import MiniError
    for h in held:
        h.sock.close()
    if directory is not None:
        pid_file = container.run_dir(directory.name) / PROXY
        if pid_file.exists():
            from mini_runtime.network import proxy
            proxy.stop(int(pid_file.read_text()))
            pid_file.unlink()
    if endpoint is None:
        return None
    try:
        network.disconnect(endpoint)
    except MiniError as e:
        return str(e)
    if directory is not None and (directory / NETWORK).exists():
        (directory / NETWORK).unlink()
        record = container.load(directory)
        record["NetworkSettings"] = network.settings(network.Endpoint(endpoint.container_id, endpoint.network,
                                                                      network_id=endpoint.network_id))
        container.save(directory, record)
    return None


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
                       "AttachStdin": False, "AttachStdout": False, "AttachStderr": False,
                       "Tty": config.tty, "OpenStdin": config.open_stdin, "StdinOnce": config.stdin_once,
                       "Env": [f"{k}={v}" for k, v in spec.env.items()], "Cmd": cmd,
                       "Image": config.image, "WorkingDir": config.workdir or defaults.get("WorkingDir", ""),
                       "Entrypoint": entrypoint, "Labels": defaults.get("Labels") or {},
                       **({"StopSignal": defaults["StopSignal"]} if defaults.get("StopSignal") else {})},
            "State": container.initial_state(), "RestartCount": 0, "Driver": "overlay",
            "Platform": "linux",
            "HostConfig": {"AutoRemove": config.remove, "ReadonlyRootfs": config.read_only,
                           "CgroupnsMode": config.cgroupns, "Init": config.init or None,
                           "Memory": config.memory or 0, "MemorySwap": config.memory_swap or 0,
                           "NanoCpus": int((config.cpus or 0) * 1e9), "CpuShares": config.cpu_shares or 0,
                           "PidsLimit": config.pids_limit, "CpusetCpus": config.cpuset_cpus or "",
                           "LogConfig": {"Type": "json-file", "Config": {}}, "NetworkMode": config.network},
            "GraphDriver": {"Name": "overlay", "Data": {"LowerDir": lower}}}


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
