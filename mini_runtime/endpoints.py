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
from mini_runtime.errors import Conflict, InvalidParameter, MiniError

NETWORK, PROXY = "network.json", "proxy.pid"


# >>> connect-container
def connect(config: ContainerConfig, directory: Path, image_config: dict) -> tuple[network.Endpoint, list]:
    """07: the container's network, made before its child exists (by --network), and recorded
    as docker inspect shows it; and the ports that start will publish (-p, -P)."""
    from mini_runtime.network import ports
    exposed = dict((image_config.get("config") or {}).get("ExposedPorts") or {})
    exposed.update(dict.fromkeys(config.expose, {}))  # --expose: as if the image said so (-P publishes them)
    mode, share = config.network or "bridge", None
    publish_all = config.publish_all and mode not in ("none", "host")     # (docker: -P has nothing to do)
    bindings = ports.parse_all(config.publish, publish_all, exposed)
    exposed.update({b.key: {} for b in bindings})   # publishing also exposes
    network.check_user_defined(mode, config.network_aliases, config.ip)   # (before a container:NAME is looked up)
    if mode.startswith("container:"):
        check_shared(config)
        mode, share = shared_network(mode.partition(":")[2])
    elif mode in ("none", "host"):
        if mode == "host" and config.mac_address:   # (the host's own interfaces)
            raise InvalidParameter("conflicting options: mac-address and the network mode")
        bindings = []                               # docker: discarded in these modes
    elif config.mac_address:
        from mini_runtime.network import bridge
        bridge.canonical_mac(config.mac_address)    # (refused before anything is made)
    network.etcfiles.init_layer(directory)          # empty mount points for the /etc files
    record = container.load(directory)
    endpoint = network.connect(directory.name, directory, config.hostname or "", mode,
                               record["Name"].lstrip("/"), share, config.add_hosts,
                               config.network_aliases, config.ip, dns_args(config), config.mac_address or "")
    try:
        connect_more(directory, endpoint, [list(c) for c in config.connected])  # `network connect`'s
    except BaseException:
        network.disconnect(endpoint)
        raise
    record["NetworkSettings"] = settings_of(directory, endpoint, exposed)
    record["HostConfig"].update(NetworkMode=mode, PortBindings=ports.port_bindings(bindings),
                                PublishAllPorts=config.publish_all, ExtraHosts=list(config.add_hosts) or None,
                                Dns=list(config.dns), DnsOptions=list(config.dns_options),
                                DnsSearch=list(config.dns_search))
    record["Config"]["ExposedPorts"] = dict(sorted(exposed.items())) or None  # (Go: a map's keys in order)
    if config.mac_address:
        record["Config"]["MacAddress"] = config.mac_address   # (docker's omits it when not given)
    if endpoint.files:
        record.update(ResolvConfPath=str(endpoint.files.resolv_conf),
                      HostnamePath=str(endpoint.files.hostname), HostsPath=str(endpoint.files.hosts))
    container.save(directory, record)
    paths.atomic_write(directory / NETWORK, json.dumps(endpoint.record()).encode(), durable=not config.remove)
    return endpoint, bindings
# <<< connect-container



def check_shared(config: ContainerConfig) -> None:
    """`--network container:NAME` takes NAME's namespace and /etc files as they are: a flag that
    would change them is refused, in docker's order and words (validateNetContainerMode)."""
    for given, what in ((config.dns, "dns and the network mode"),
                        (config.add_hosts, "custom host-to-IP mapping and the network mode"),
                        (config.mac_address, "mac-address and the network mode"),
                        (config.publish or config.publish_all, "port publishing and the container type network mode"),
                        (config.expose, "port exposing and the container type network mode")):
        if given:
            raise InvalidParameter(f"conflicting options: {what}")


def dns_args(config: ContainerConfig) -> dict:
    """--dns, --dns-search, --dns-option, as the network package writes them into resolv.conf."""
    return dict(dns=config.dns, search=config.dns_search, options=config.dns_options)


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


def check_at_start(endpoint: network.Endpoint | None) -> None:
    """`--network container:ID` at start, as docker checks it: ID must still run (its words), and
    be the process whose namespace the child was made to join (see sharing.check_at_start)."""
    if endpoint is None or not endpoint.network.startswith("container:"):
        return
    mode, (netns, _) = shared_network(endpoint.network.partition(":")[2])
    same = lambda a, b: (os.stat(a).st_dev, os.stat(a).st_ino) == (os.stat(b).st_dev, os.stat(b).st_ino)
    if mode != endpoint.network or not (netns and endpoint.netns and same(netns, endpoint.netns)):
        raise Conflict(f"container {endpoint.network[10:]} was restarted since this one was created")


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


def disconnect(endpoint: network.Endpoint | None, directory: Path | None = None,
               recorded: bool = True) -> str | None:
    """07: undo connect() and publish(): the proxy, the links, rules and netns; the record
    shows no address any more (unless not `recorded`: it is about to be removed, --rm).
    Returns what could not be undone, as a warning."""
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
    if directory is not None and recorded:
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
        (directory / MORE).unlink(missing_ok=True)
        record = container.load(directory)
    except OSError:
        return                                      # removed meanwhile (--rm)
    record["NetworkSettings"] = settings_of(directory, network.Endpoint(  # (what was asked stays, as in docker)
        endpoint.container_id, endpoint.network, network_id=endpoint.network_id, aliases=endpoint.aliases,
        requested_ip=endpoint.requested_ip), {})
    container.save(directory, record)


# --- more networks: `network connect` and `disconnect` -----------------------------------------

MORE = "networks.json"                  # the endpoints `network connect` made (eth1, ...)


def more_of(directory: Path) -> list[network.Endpoint]:
    try:
        return [network.Endpoint.from_record(e) for e in json.loads((directory / MORE).read_text())]
    except (OSError, ValueError):
        return []


def connected_of(directory: Path) -> list[list]:
    """The networks `network connect` asked for, [network, [aliases], ip], from the settings
    on disk (the monitor's copy is the one of create; a connect changes the file)."""
    from mini_runtime.runtime import CONFIG
    try:
        return list(json.loads((directory / CONFIG).read_text()).get("connected") or [])
    except (OSError, ValueError):
        return []


def settings_of(directory: Path, endpoint: network.Endpoint, exposed: dict) -> dict:
    """NetworkSettings: eth0's network and ports, then each network connected later."""
    shown = network.settings(endpoint, exposed)
    if not endpoint.network.startswith("container:"):
        shown["Networks"].update(more_settings(directory))
    return shown


def more_settings(directory: Path) -> dict:
    """NetworkSettings.Networks of the networks connected later: with the address while the
    container has its namespace, else as asked (docker shows them so too)."""
    live, shown = {e.network: e for e in more_of(directory)}, {}
    for name, aliases, ip in connected_of(directory):
        more = live.get(name) or network.Endpoint(directory.name, name, aliases=tuple(aliases), requested_ip=ip or "")
        shown.update(network.settings(more)["Networks"])
    return shown


def connect_more(directory: Path, first: network.Endpoint, connected: list[list]) -> None:
    """At create or start: eth1, ... for the networks `network connect` added; on a failure the
    ones made are undone and the error raised (the caller undoes eth0)."""
    if not connected:
        return
    from mini_runtime.network import interfaces     # (not on the path of a run that has none)

    name, made = container.load(directory)["Name"].lstrip("/"), []
    try:
        for network_name, aliases, ip in connected:
            made.append(interfaces.add(first, network_name, name, aliases, ip))
    except BaseException:
        for endpoint in made:
            interfaces.remove(endpoint)
        raise
    paths.atomic_write(directory / MORE, json.dumps([e.record() for e in made]).encode())


def connect_network(directory: Path, ref: str, aliases: list[str], ip: str | None) -> None:
    """`network connect`: with its namespace there (created, running) the container gets its
    next ethN now, and at every start; without (exited), at its next start, as docker does."""
    from mini_runtime.network import interfaces, networks
    record = container.load(directory)
    name, mode = record["Name"].lstrip("/"), record["HostConfig"].get("NetworkMode") or "none"
    first = of(directory) or network.Endpoint(directory.name, mode)
    target = networks.inspect(ref)["Name"]
    connected = connected_of(directory)
    if target in [c[0] for c in connected]:
        raise Conflict(f"endpoint with name {name} already exists in network {target}")
    with container.record_lock():
        if first.netns and not first.network.startswith("container:"):
            made = interfaces.add(first, target, name, aliases, ip)
            paths.atomic_write(directory / MORE, json.dumps([e.record() for e in more_of(directory) + [made]]).encode())
        else:
            interfaces.validate(first, target, name, aliases, ip)
        change_connected(directory, connected + [[target, aliases, ip]])


def disconnect_network(directory: Path, ref: str) -> None:
    """`network disconnect`: undo a `network connect` (the pair, address, names, and what the
    next start makes). eth0's network stays: the namespace, ports and files hang on it."""
    from mini_runtime.network import interfaces, networks
    record = container.load(directory)
    mode = record["HostConfig"].get("NetworkMode") or "none"
    target = networks.inspect(ref)["Name"]
    if target == mode == "host":
        raise Conflict(interfaces.HOST)
    connected = connected_of(directory)
    if target not in [c[0] for c in connected]:
        if target == mode:
            raise InvalidParameter(f"{target} is the first network of container {record['Name'].lstrip('/')} "
                                   "(its eth0, which its namespace, ports and files hang on): mini disconnects "
                                   "only networks added by `network connect`")
        raise Conflict(f"container {directory.name} is not connected to network {target}")
    with container.record_lock():
        live = [e for e in more_of(directory) if e.network == target]
        for endpoint in live:
            interfaces.remove(endpoint)
        paths.atomic_write(directory / MORE, json.dumps([e.record() for e in more_of(directory)
                                                          if e.network != target]).encode())
        change_connected(directory, [c for c in connected if c[0] != target])


def change_connected(directory: Path, connected: list[list]) -> None:
    """The settings' `connected` (what the next start makes) and the record's NetworkSettings."""
    from mini_runtime.runtime import CONFIG
    before = {c[0] for c in connected_of(directory)}
    settings = json.loads((directory / CONFIG).read_text())
    paths.atomic_write(directory / CONFIG, json.dumps(settings | {"connected": connected}).encode())
    record = container.load(directory)
    shown = record["NetworkSettings"].get("Networks") or {}
    record["NetworkSettings"]["Networks"] = {k: v for k, v in shown.items() if k not in before} | more_settings(directory)
    container.save(directory, record)
