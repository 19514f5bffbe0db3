"""Chapter 07: a container's network endpoint over its life, as the pipeline (runtime.py) uses
the network package: connect() at create (before the child exists, so that it joins a wired
namespace), serve_localhost() at start (after runtime.publish held the ports),
disconnect() at cleanup (or when create fails). What was
made is recorded beside the container's record (network.json), so that a later process (the
monitor's finish phase, a sweep) can undo it."""

from __future__ import annotations

import json
import os
from pathlib import Path

from mini_runtime import container, network, paths
from mini_runtime.config import ContainerConfig
from mini_runtime.errors import InvalidParameter, MiniError

NETWORK, PROXY = "network.json", "proxy.pid"


# >>> connect-container
def connect(config: ContainerConfig, directory: Path, image_config: dict) -> tuple[network.Endpoint, list]:
    """07: the container's network, made before its child exists (by --network), and recorded
    as docker inspect shows it; and the ports that start will publish (-p, -P)."""
    from mini_runtime.network import ports
    exposed = dict((image_config.get("config") or {}).get("ExposedPorts") or {})
    bindings = ports.parse_all(config.publish, config.publish_all, exposed)
    exposed.update({b.key: {} for b in bindings})   # publishing also exposes
    mode, share = config.network or "bridge", None
    network.check_user_defined(mode, config.network_aliases, config.ip)   # (before a container:NAME is looked up)
    if mode.startswith("container:"):
        if bindings:
            raise InvalidParameter("conflicting options: port publishing and the container type network mode")
        if config.add_hosts:
            raise InvalidParameter("conflicting options: custom host-to-IP mapping and the network mode")
        mode, share = shared_network(mode.partition(":")[2])
    elif mode in ("none", "host"):
        bindings = []                               # docker: discarded in these modes
    network.etcfiles.init_layer(directory)          # empty mount points for the /etc files
    record = container.load(directory)
    endpoint = network.connect(directory.name, directory, config.hostname or "", mode,
                               record["Name"].lstrip("/"), share, config.add_hosts,
                               config.network_aliases, config.ip)
    record["NetworkSettings"] = network.settings(endpoint, exposed)
    record["HostConfig"].update(NetworkMode=mode, PortBindings=ports.port_bindings(bindings),
                                PublishAllPorts=config.publish_all, ExtraHosts=list(config.add_hosts) or None)
    record["Config"]["ExposedPorts"] = exposed or None
    if endpoint.files:
        record.update(ResolvConfPath=str(endpoint.files.resolv_conf),
                      HostnamePath=str(endpoint.files.hostname), HostsPath=str(endpoint.files.hosts))
    container.save(directory, record)
    paths.atomic_write(directory / NETWORK, json.dumps(endpoint.record()).encode(), durable=not config.remove)
    return endpoint, bindings
# <<< connect-container



def default_hostname(mode: str, container_id: str) -> str:
    """docker's host name without -h: the short id; with `--network host`, the host's own
    name; with `container:NAME`, NAME's (whose /etc files it shares, with that name in them).
    (A NAME that is not there: the short id, and connect() says what is wrong.)"""
    if mode == "host":
        return os.uname().nodename
    if mode.startswith("container:"):
        try:
            return container.load(container.find(mode.partition(":")[2]))["Config"]["Hostname"]
        except (MiniError, OSError, KeyError):
            pass
    return container_id[:12]


def shared_network(name: str) -> tuple[str, tuple[str, network.EtcFiles | None]]:
    """`--network container:NAME`: that running container's namespace and /etc files."""
    other = container.find(name)
    state = container.load(other)["State"]
    theirs = of(other)
    if not state.get("Running") or theirs is None:
        raise InvalidParameter(f"cannot join network of a non running container: {other.name}")
    if theirs.network == "host" or (theirs.network.startswith("container:") and not theirs.netns):
        return "host", ("", None)
    return f"container:{other.name}", (theirs.netns or f"/proc/{state['Pid']}/ns/net", theirs.files)


def of(directory: Path) -> network.Endpoint | None:
    """The endpoint connect() recorded beside the record (None: nothing connected)."""
    try:
        return network.Endpoint.from_record(json.loads((directory / NETWORK).read_text()))
    except (OSError, ValueError):
        return None


def serve_localhost(container_id: str, endpoint: network.Endpoint | None, held: list) -> None:
    """At start: published ports get the userland proxy (a process of its own, the monitor's
    child), which takes over the held host ports."""
    if held:
        from mini_runtime.network import ports, proxy
        try:
            pid = proxy.spawn(held, endpoint.ip)
            paths.atomic_write(container.run_dir(container_id) / PROXY, str(pid).encode(), durable=False)
        finally:
            ports.release(held)


def disconnect(endpoint: network.Endpoint | None, directory: Path | None = None) -> str | None:
    """07: undo connect() and publish(): the proxy, the links, rules and netns; the record
    shows no address any more. Returns what could not be undone, as a warning."""
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
    if directory is not None:
        forget(directory)
    return None


def forget(directory: Path) -> None:
    """The record shows no address, ports or netns any more: its network is undone (by
    disconnect(), or by network.sweep() after a monitor was killed)."""
    endpoint = of(directory)
    if endpoint is None:
        return
    try:
        (directory / NETWORK).unlink()
        record = container.load(directory)
    except OSError:
        return                                      # removed meanwhile (--rm)
    record["NetworkSettings"] = network.settings(network.Endpoint(  # (what was asked stays, as in docker)
        endpoint.container_id, endpoint.network, network_id=endpoint.network_id, aliases=endpoint.aliases,
        requested_ip=endpoint.requested_ip))
    container.save(directory, record)
