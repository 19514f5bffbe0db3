"""Chapter 07: the network package on the real kernel, inside the harness's private namespaces.

Every test that touches the network takes the `test_host` fixture (tests/netharness.py): the
code under test runs in a private "test host" namespace whose only neighbour is an "outside"
namespace; nothing here can reach the machine's network or a real address. Listeners and
clients are small Python programs or busybox, started inside the namespaces.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mini_runtime import network, syscalls
from mini_runtime.errors import Conflict, InvalidParameter, NotFound, System, Unavailable
from mini_runtime.network import bridge, etcfiles, ipam, namespace, nat, networks, ports
from mini_runtime.network import proxy as network_proxy
from netharness import no_container_left, python_in, require_nat, run_in, test_host, wait_ready  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.root, pytest.mark.integration]
BUSYBOX = "/bin/busybox"

SERVER = textwrap.dedent("""
    import socket, sys
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", {port})); s.listen(8); print("ready", flush=True)
    for _ in range({count}):
        c, peer = s.accept()
        c.sendall(("{greeting} " + peer[0] + "\\n").encode()); c.close()
""")
UDP_ECHO = textwrap.dedent("""
    import socket
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", {port}))
    print("ready", flush=True)
    data, peer = s.recvfrom(100); s.sendto(b"echo " + data, peer)
""")
CLIENT = textwrap.dedent("""
    import socket
    with socket.create_connection(("{ip}", {port}), timeout=5) as c:
        print(c.recv(100).decode().strip())
""")


def server(netns: str, port: int, greeting: str, count: int = 1):
    proc = python_in(netns, SERVER.format(port=port, greeting=greeting, count=count))
    wait_ready(proc)
    return proc


def fetch(ip: str, port: int, timeout: float = 3) -> str:
    """Connect from the test host itself (this thread is in it) and read one line."""
    with socket.create_connection((ip, port), timeout=timeout) as c:
        return c.recv(100).decode().strip()


def finish(*procs: subprocess.Popen) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


@pytest.fixture
def container(tmp_path, test_host):
    """attach() containers on demand; everything detached afterwards."""
    made: list[str] = []

    def make(name: str, **kwargs) -> tuple[network.Endpoint, list[ports.Held]]:
        if kwargs.get("network", "bridge") not in ("none", "host"):
            require_nat()                       # (a bridge network's rules: mark the test `nat`)
        container_id = os.urandom(32).hex()
        made.append(container_id)
        resolv = tmp_path / "resolv.conf"
        resolv.write_text("nameserver 127.0.0.53\nsearch example.test\n")
        return network.attach(container_id, tmp_path / container_id, hostname=container_id[:12],
                              name=name, resolv_source=resolv, **kwargs)

    yield make
    for container_id in made:
        network.detach(container_id)


# --- namespaces and veth -----------------------------------------------------------------------

def test_a_new_netns_has_only_lo_and_it_is_down(test_host):
    path = namespace.create("mini-probe")
    try:
        assert namespace.exists("mini-probe")
        assert namespace.identity(path) != os.stat("/proc/thread-self/ns/net").st_ino
        view = bridge.container_view(path)
        assert list(view["links"]) == ["lo"] and not view["links"]["lo"]["up"]
        assert "lo" in run_in(path, [BUSYBOX, "ip", "-o", "link"]).stdout
        assert run_in(path, [BUSYBOX, "ip", "-o", "link"]).stdout.count("\n") == 1
    finally:
        namespace.remove("mini-probe")
    assert not namespace.exists("mini-probe") and not path.exists()


def test_a_new_netns_cannot_be_made_twice(test_host):
    namespace.create("mini-twice")
    try:
        with pytest.raises(Conflict, match="exists already"):
            namespace.create("mini-twice")
    finally:
        namespace.remove("mini-twice")


def test_a_veth_pair_carries_a_ping_between_two_namespaces(test_host):
    a, b = namespace.create("mini-a"), namespace.create("mini-b")
    try:
        fd = os.open(b, os.O_RDONLY | os.O_CLOEXEC)
        with bridge.netlink(a) as nl:                   # made in a, its peer born in b
            nl.add_veth("mva", "mvb", peer_netns_fd=fd)
        os.close(fd)
        for name, ns, address in (("mva", a, "198.18.0.1/24"), ("mvb", b, "198.18.0.2/24")):
            with bridge.netlink(ns) as inner:
                inner.add_address(inner.index(name), ipaddress.IPv4Interface(address))
                inner.set_link(name, up=True)
        ping = run_in(a, [BUSYBOX, "ping", "-c", "1", "-W", "3", "198.18.0.2"])
        assert ping.returncode == 0 and "1 packets received" in ping.stdout, ping.stdout + ping.stderr
    finally:
        namespace.remove("mini-a")
        namespace.remove("mini-b")      # the veth pair ends with its namespaces


# --- the bridge --------------------------------------------------------------------------------

@pytest.mark.nat
def test_two_containers_on_the_bridge_reach_each_other(container):
    one, _ = container("one")
    two, _ = container("two")
    subnet = ipam.default_subnet()
    assert (one.ip, two.ip) == (str(subnet[2]), str(subnet[3]))   # the next free addresses
    view = bridge.container_view(one.netns)
    assert set(view["links"]) == {"lo", "eth0"}
    eth0 = view["links"]["eth0"]
    assert eth0["up"] and eth0["addresses"] == [f"{one.ip}/{subnet.prefixlen}"]
    assert eth0["mac"] == one.mac == "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.ip_address(one.ip).packed)
    assert view["gateway"] == one.gateway == str(subnet[1])
    assert bridge.bridge_ports("mini0") == sorted([bridge.host_end(one.container_id),
                                                   bridge.host_end(two.container_id)])
    ping = run_in(one.netns, [BUSYBOX, "ping", "-c", "1", "-W", "3", two.ip])
    assert ping.returncode == 0, ping.stdout + ping.stderr
    # what the container's child does before exec: network.join(endpoint)
    seen = subprocess.run([BUSYBOX, "ip", "-o", "-4", "addr", "show", "eth0"], capture_output=True, text=True,
                          preexec_fn=lambda: network.join(two), timeout=10)
    assert f"inet {two.ip}/{subnet.prefixlen}" in seen.stdout, seen.stderr


def test_network_none_has_only_lo(container):
    none, held = container("quiet", network="none", bindings=ports.parse("8080:80"))
    assert held == [] and none.ip == ""
    assert list(bridge.container_view(none.netns)["links"]) == ["lo"]
    assert "mini0" not in bridge.links()


@pytest.mark.nat
def test_masquerade_the_outside_sees_the_test_hosts_address(container, test_host):
    one, _ = container("one")
    peer = server(test_host.outside_path, 7000, "you are")
    try:
        client = run_in(one.netns, ["python3", "-c", CLIENT.format(ip=test_host.outside_ip, port=7000)])
    finally:
        finish(peer)
    assert client.stdout.strip() == f"you are {test_host.host_ip}", client.stderr
    assert one.ip != test_host.host_ip


@pytest.mark.nat
def test_without_the_nat_table_the_outside_gets_the_container_address_and_cannot_answer(container, test_host):
    """The honest half of the test above: take MASQUERADE away and the reply has no way back."""
    one, _ = container("one")
    nat.remove_network("mini0")
    peer = server(test_host.outside_path, 7001, "you are")
    try:
        client = run_in(one.netns, ["python3", "-c", CLIENT.format(ip=test_host.outside_ip, port=7001)])
    finally:
        finish(peer)
        nat.add_network("mini0", str(ipam.default_subnet()))
    assert client.returncode != 0 and "timed out" in client.stderr


# --- published ports ---------------------------------------------------------------------------

@pytest.mark.nat
def test_dnat_a_published_port_reaches_the_container_from_outside(container, test_host):
    web, held = container("web", bindings=ports.parse("18080:80"))
    assert [h.binding for h in held] == [ports.PortBinding("", 18080, 80, "tcp")]
    listener = server(web.netns, 80, "hello from web", count=3)
    try:
        outside = run_in(test_host.outside_path, ["python3", "-c", CLIENT.format(ip=test_host.host_ip, port=18080)])
        assert outside.stdout.startswith("hello from web "), outside.stderr
        # the host to its own addresses: the output chain
        assert fetch(test_host.host_ip, 18080, timeout=1).startswith("hello from web")
        assert fetch(web.gateway, 18080, timeout=1).startswith("hello from web")
    finally:
        finish(listener)
        ports.release(held)


@pytest.mark.nat
def test_localhost_needs_the_userland_proxy(container):
    web, held = container("web", bindings=ports.parse("80") + ports.parse("5353/udp"))
    tcp, udp = held
    low, high = ports.local_port_range()
    assert low <= tcp.binding.host_port <= high and low <= udp.binding.host_port <= high
    listener = server(web.netns, 80, "hello from web", count=3)  # (the queued one comes first)
    echo = python_in(web.netns, UDP_ECHO.format(port=5353))
    wait_ready(echo)
    try:
        with pytest.raises(socket.timeout):   # DNAT skips 127.0.0.1: the held port only queues it
            fetch("127.0.0.1", tcp.binding.host_port, timeout=1)
        # the monitor gets the held sockets as file descriptors and serves them
        handed = [ports.adopt(h.binding, os.dup(h.sock.fileno())) for h in held]
        ports.release(held)
        proxy = network_proxy.Proxy(handed, web.ip).start()
        try:
            assert fetch("127.0.0.1", tcp.binding.host_port).startswith("hello from web ")
            # hairpin: the container through the host's published port (not DNATed: iifname
            # mini0 is left out), served by the proxy, as docker's userland proxy does
            hairpin = run_in(web.netns, ["python3", "-c", CLIENT.format(ip=web.gateway, port=tcp.binding.host_port)])
            assert hairpin.stdout.startswith(f"hello from web {web.gateway}"), hairpin.stderr
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(3)
                s.sendto(b"ping", ("127.0.0.1", udp.binding.host_port))
                assert s.recv(100) == b"echo ping"
        finally:
            proxy.close()
        with pytest.raises(ConnectionRefusedError):   # closing the proxy let the port go
            fetch("127.0.0.1", tcp.binding.host_port)
    finally:
        finish(listener, echo)


@pytest.mark.nat
def test_a_port_in_use_fails_with_dockers_message_and_leaves_nothing(container, test_host):
    taken = socket.socket()
    taken.bind(("0.0.0.0", 18082))
    taken.listen()
    try:
        with pytest.raises(Conflict) as e:
            container("web", bindings=ports.parse("18083:81") + ports.parse("18082:80"))
        assert str(e.value) == "Bind for 0.0.0.0:18082 failed: port is already allocated"
        no_container_left()
        socket.socket().bind(("0.0.0.0", 18083))   # the port held before the failure is free again
    finally:
        taken.close()


@pytest.mark.nat
def test_rtnetlink_raises_the_kernels_errno_for_the_three_wiring_mistakes(test_host):
    """The chapter's "why?" answers (predicted_errnos) are what rtnetlink.py gets back: each
    refusal is an OSError with the kernel's errno, and nothing is left made."""
    from mini_runtime.network.rtnetlink import Netlink, NetlinkError
    expected = bridge.predicted_errnos()
    with Netlink() as nl:
        def errno_of(action) -> int:
            with pytest.raises(NetlinkError) as refused:
                action()
            return refused.value.errno
        nl.add_veth("mwhy0", "mwhy1")
        try:
            assert errno_of(lambda: nl.add_link("mwhy" + "x" * 12, "bridge")) == expected["name_too_long"]
            assert errno_of(lambda: nl.add_default_route(ipaddress.IPv4Address("203.0.113.1"))) == \
                expected["gateway_not_on_link"]
            assert errno_of(lambda: nl.set_link("mwhy1", master=nl.index("mwhy0"))) == expected["master_not_a_bridge"]
            assert errno_of(lambda: nl.set_link("mwhy9", up=True)) == errno.ENODEV
            assert nl.index("mwhy9") is None
        finally:
            nl.delete_link("mwhy0")
        assert not [link.name for link in nl.links() if link.name.startswith("mwhy")]
    with pytest.raises(System, match="^netlink: No such device$"), bridge.netlink() as nl:
        nl.delete_link("mwhy0")                      # its peer went with it, and now it is gone


def test_a_host_address_that_is_not_ours_is_refused(container, test_host):
    with pytest.raises(InvalidParameter, match="Bind for 192.0.2.77:18086/tcp failed: Cannot assign requested address"):
        container("web", bindings=ports.parse("192.0.2.77:18086:80"))
    no_container_left()


@pytest.mark.nat
def test_a_subnet_overlapping_a_route_is_refused(container, test_host):
    # the test host's link to the outside gets a 172.29.7.0/24
    subprocess.run(["ip", "addr", "add", "172.29.7.1/24", "dev", "mth0"], check=True)
    try:
        with pytest.raises(Conflict, match=r"subnet 172\.29\.0\.0/16 overlaps the route 172\.29\.7\.0/24 dev mth0"):
            container("web", bindings=ports.parse("18084:80"))
        assert namespace.names() == [] and "mini0" not in bridge.links() and nat.table() is None
        assert ipam.owners() == {}
    finally:
        subprocess.run(["ip", "addr", "del", "172.29.7.1/24", "dev", "mth0"], check=True)


@pytest.mark.nat
def test_everything_is_removed_after_detach_and_mini0_after_a_prune(container, test_host):
    forward_before = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    web, held = container("web", bindings=ports.parse("18085:80"))
    ports.release(held)
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == "1\n"
    assert nat.owners() == {web.container_id}
    assert not network.prune_default_bridge() and bridge.bridge_ports("mini0")  # in use: it stays
    network.detach(web.container_id)
    network.detach(web.container_id)            # idempotent
    no_container_left()
    assert "mini0" in bridge.links() and nat.table() is not None    # docker0 stays too
    assert network.prune_default_bridge()       # `mini network prune`: the host as it was
    assert nat.table() is None and "mini0" not in bridge.links()
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == forward_before
    assert not network.prune_default_bridge()   # idempotent


@pytest.mark.nat
def test_a_containers_pair_leaves_the_bridge_at_once_and_goes_with_its_namespace(container, test_host):
    """detach unplugs the host end (off mini0, down: no wait) and removes the netns mount; the
    kernel then deletes the pair with the namespace. A namespace another name still holds
    (`--network container:NAME`) outlives the container: its pair is deleted there and then."""
    one, _ = container("one")
    two, _ = container("two")
    three, _ = container("three")
    namespace.create("sharer", three.netns)     # what `--network container:three` makes
    try:
        network.detach(one.container_id)
        assert bridge.bridge_ports("mini0") == sorted([bridge.host_end(two.container_id),
                                                       bridge.host_end(three.container_id)])
        network.detach(three.container_id)      # shared: deleted at once, not left to the kernel
        assert bridge.host_end(three.container_id) not in bridge.links()
        assert namespace.names() == sorted(["sharer", two.container_id])
    finally:
        namespace.remove("sharer")
    network.detach(two.container_id)
    no_container_left()


@pytest.mark.nat
def test_sweep_removes_what_a_dead_container_left(container):
    alive, _ = container("alive")
    dead, _ = container("dead")
    assert network.sweep(lambda cid: cid == alive.container_id) == [dead.container_id]
    assert namespace.names() == [alive.container_id]
    assert bridge.bridge_ports("mini0") == [bridge.host_end(alive.container_id)]


@pytest.mark.nat
def test_anything_left_only_when_an_owner_of_an_address_or_namespace_is_gone(container):
    """The sweep's cheap question, asked by every exec, ps and inspect: with containers on the
    bridge, all alive, no sweep (no nftables, no netlink); with one gone, a sweep. A
    `container:NAME` sharer has nothing but its namespace's name, which is enough."""
    first, _ = container("first")
    second, _ = container("second")
    namespace.create("sharer", first.netns)
    try:
        assert network.anything_left(lambda cid: True) is False
        assert network.anything_left(lambda cid: cid != second.container_id) is True
        assert network.anything_left(lambda cid: cid != "sharer") is True
    finally:
        namespace.remove("sharer")


# --- /etc files and user-defined networks ------------------------------------------------------

@pytest.mark.nat
def test_etc_files_of_a_bridge_container(container):
    web, _ = container("web")
    assert web.files.hosts.read_text().splitlines()[-1] == f"{web.ip}\t{web.container_id[:12]}"
    assert web.files.hostname.read_text() == web.container_id[:12] + "\n"
    resolv = web.files.resolv_conf.read_text()
    assert "127.0.0.53" not in resolv and "nameserver 8.8.8.8" in resolv and "search example.test" in resolv


def resolve_in(endpoint: network.Endpoint, name: str) -> subprocess.CompletedProcess[str]:
    """busybox ping NAME in the container's netns, with its hosts file as /etc/hosts."""
    def enter() -> None:
        namespace.join(endpoint.netns)
        syscalls.unshare(syscalls.CLONE_NEWNS)
        syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)
        syscalls.mount(str(endpoint.files.hosts), "/etc/hosts", None, syscalls.MS_BIND)
    return subprocess.run([BUSYBOX, "ping", "-c", "1", "-W", "2", name], preexec_fn=enter,
                          capture_output=True, text=True, timeout=20)


@pytest.mark.nat
def test_a_user_defined_network_resolves_names_the_default_bridge_does_not(container):
    record = networks.create("minitestnet")
    try:
        assert ipaddress.ip_network(record["IPAM"]["Config"][0]["Subnet"]).subnet_of(ipaddress.ip_network(ipam.USER_POOL))
        web, _ = container("web", network="minitestnet", aliases=["www"])
        client, _ = container("client", network="minitestnet")
        loner, _ = container("loner")                    # on the default bridge
        assert f"{web.ip}\tweb www {web.container_id[:12]}" in client.files.hosts.read_text()
        assert f"{client.ip}\tclient" in web.files.hosts.read_text()   # rewritten when client joined
        for name in ("web", "www"):
            found = resolve_in(client, name)
            assert found.returncode == 0 and f"({web.ip})" in found.stdout, found.stdout + found.stderr
        assert "bad address" in resolve_in(loner, "web").stderr
        isolated = run_in(loner.netns, [BUSYBOX, "ping", "-c", "1", "-W", "2", web.ip])
        assert isolated.returncode != 0                  # bridges are kept apart
        with pytest.raises(Conflict, match="has active endpoints"):
            networks.remove("minitestnet")
        network.detach(client.container_id)
        assert "client" not in web.files.hosts.read_text()
        network.detach(web.container_id)
        assert [n["Name"] for n in networks.ls()] == ["bridge", "host", "none", "minitestnet"]
        assert networks.inspect(record["Id"][:8])["Name"] == "minitestnet"
    finally:
        network.sweep(lambda _id: False)     # (after a failure: the network must be empty to go)
        networks.remove("minitestnet")
    with pytest.raises(NotFound):
        networks.inspect("minitestnet")


def test_network_create_refuses_bad_requests(test_host):
    with pytest.raises(Conflict, match="pre-defined"):
        networks.remove("bridge")
    with pytest.raises(Conflict, match="already exists"):
        networks.create("bridge")
    with pytest.raises(InvalidParameter):
        networks.create("bad name")
    with pytest.raises(Conflict, match="Pool overlaps"):
        networks.create("minitest2", subnet="172.29.3.0/24")
    with pytest.raises(Conflict, match="overlaps the route 198.51.100.0/24"):
        networks.create("minitest2", subnet="198.51.100.0/25")
    assert [n["Name"] for n in networks.ls()] == ["bridge", "host", "none"]


# --- ipam ----------------------------------------------------------------------------------------

def test_ipam_persists_and_releases(test_host):
    subnet = ipaddress.ip_network("172.29.0.0/29")   # gateway .1, containers .2 - .6
    pool = ipam.Pool("minitest-ipam", subnet)
    try:
        assert [str(pool.allocate(o)) for o in "abc"] == ["172.29.0.2", "172.29.0.3", "172.29.0.4"]
        again = ipam.Pool("minitest-ipam", subnet)      # another process would read the same file
        assert again.allocate("b") == ipaddress.ip_address("172.29.0.3")
        assert again.release("a") and not again.release("a")
        assert str(pool.allocate("d")) == "172.29.0.2"  # the released address comes back first
        pool.allocate("e"), pool.allocate("f")
        with pytest.raises(Unavailable):
            pool.allocate("g")
        with pytest.raises(Conflict, match="changed its subnet"):
            ipam.Pool("minitest-ipam", ipaddress.ip_network("172.29.8.0/29")).allocate("h")
    finally:
        ipam.forget("minitest-ipam")


def test_ipam_concurrent_allocations_never_collide(test_host):
    pool = ipam.Pool("minitest-race", ipaddress.ip_network("172.29.0.0/24"))
    children = []
    for n in range(4):
        pid = os.fork()
        if pid == 0:
            try:
                for i in range(10):
                    pool.allocate(f"{n}-{i}")
            finally:
                os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    try:
        taken = pool.allocated()
        assert len(taken) == 40 and len(set(taken.values())) == 40
    finally:
        ipam.forget("minitest-race")


def test_the_bind_mounted_hosts_file_sees_a_rewrite(tmp_path):
    """Why etcfiles.rewrite writes in place: a rename would not reach through a bind mount."""
    files = etcfiles.write(tmp_path, "box", "172.29.0.2", tmp_path / "missing")
    target = tmp_path / "target"
    target.write_text("")
    syscalls.mount(str(files.hosts), str(target), None, syscalls.MS_BIND)
    try:
        etcfiles.rewrite(files.hosts, etcfiles.hosts("box", "172.29.0.2", [("172.29.0.3", "web")]))
        assert target.read_text().endswith("172.29.0.3\tweb\n")
    finally:
        syscalls.umount2(str(target))


@pytest.mark.nat
def test_the_nft_command_is_a_fallback_for_the_python_binding(test_host, monkeypatch):
    """Where python3-nftables is missing, `nft -j -f -` applies the same JSON."""
    nat.ensure_table()
    nat.add_network("mini0", "172.29.0.0/16")
    with_binding = nat.rules()
    monkeypatch.setitem(sys.modules, "nftables", None)     # `import nftables` now fails
    try:
        assert nat.rules() == with_binding and len(with_binding) == 5
        nat.remove_network("mini0")
        assert nat.rules() == []
        nat.add_network("mini0", "172.29.0.0/16")
        assert len(nat.rules()) == 5
    finally:
        nat.remove_network("mini0")
        assert nat.drop_table_if_unused()
    monkeypatch.undo()
    assert nat.table() is None


def test_etc_files_are_bind_mounted_over_the_init_layer_and_never_copied_up(tmp_path):
    """What the pipeline will do in the child: the init layer as the topmost lower dir gives
    the mount points (even over an image's symlink), the bind mounts put our files there, and
    the container's upper dir stays empty: nothing for diff or commit."""
    image, upper, work, merged = (tmp_path / d for d in ("image", "upper", "work", "merged"))
    for d in (image / "etc", upper, work, merged):
        d.mkdir(parents=True)
    (image / "etc" / "hosts").symlink_to("/etc/passwd")          # a hostile image
    files = etcfiles.write(tmp_path / "ct", "box", "172.29.0.2", tmp_path / "none")
    init = etcfiles.init_layer(tmp_path / "ct")
    syscalls.mount("overlay", str(merged), "overlay", 0,
                   f"lowerdir={init}:{image},upperdir={upper},workdir={work}")
    try:
        etcfiles.bind(files, merged)
        try:
            assert (merged / "etc" / "hosts").read_text().endswith("172.29.0.2\tbox\n")
            assert (merged / "etc" / "hostname").read_text() == "box\n"
            assert "nameserver 8.8.8.8" in (merged / "etc" / "resolv.conf").read_text()
        finally:
            for name in etcfiles.NAMES:
                syscalls.umount2(str(merged / "etc" / name))
    finally:
        syscalls.umount2(str(merged))
    assert list(upper.iterdir()) == []


def test_a_bridged_run_imports_no_netlink_library():
    """The runtime speaks rtnetlink itself (rtnetlink.py): pyroute2 and the asyncio it brings
    cost more than a whole `mini run --network none` to import."""
    script = "import sys; from mini_runtime.network import bridge, networks, nat; " \
             "print(sorted({m.split('.')[0] for m in sys.modules} & {'pyroute2', 'asyncio', 'ssl'}))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


@pytest.mark.nat
def test_nftables_rules_land_in_the_namespace_the_caller_is_in(test_host):
    """apply() keeps a libnftables context, and a context keeps the netlink socket it opened in
    one namespace: kept per process, a table meant for the test host would land in the
    namespace of the first call (the real host's, in a run that started there)."""
    nat.ensure_table()
    here = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    outside = os.open(test_host.outside_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        syscalls.setns(outside, syscalls.CLONE_NEWNET)
        try:
            assert nat.table() is None
        finally:
            syscalls.setns(here, syscalls.CLONE_NEWNET)
        assert nat.table() is not None
    finally:
        os.close(here), os.close(outside)
        assert nat.drop_table_if_unused()
