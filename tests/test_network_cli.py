"""Chapter 07 through `mini`: the seed's web server, published ports, names on a user-defined
network, the /etc files, errors and cleanup (checks F5, G1-G7).

Every test here runs `mini` inside the harness's private "test host" namespace (the `test_host`
fixture moves this thread there, and the processes it starts are born there), with the
harness's "outside" namespace as the only other host: nothing reaches the machine's network.
These containers get mini's real default network, the bridge (conftest sets `none` for the
tests that run in the machine's namespace).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
import urllib.request

import pytest

from conftest import mini
from mini_runtime.network import ports
from netharness import no_container_left, python_in, run_in, test_host, wait_ready  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.root, pytest.mark.integration]

WEB = ["busybox", "sh", "-c", 'mkdir -p /www && echo "<h1>hello from {name}</h1>" > /www/index.html '
       "&& exec httpd -f -p 80 -h /www"]
PEER = """
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", {port})); s.listen(1); print("ready", flush=True)
c, peer = s.accept(); c.sendall(("you are " + peer[0] + "\\n").encode()); c.close()
"""


def bridged(*args: str, timeout: float = 60, **env: str):
    """`mini ...` with mini's own default network (not the test suite's `none`)."""
    environ = {k: v for k, v in os.environ.items() if k != "MINI_DEFAULT_NETWORK"} | env
    return mini(*args, timeout=timeout, env=environ)


def web(name: str, *flags: str) -> str:
    started = bridged("run", "-d", "--name", name, *flags, *[w.format(name=name) for w in WEB])
    assert started.returncode == 0, started.stderr
    return started.stdout.strip()


def get(url: str, timeout: float = 10) -> str:
    """HTTP GET from the test host, retried while the server is starting."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                return answer.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def inspect(name: str) -> dict:
    shown = mini("inspect", name)
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)[0]


def nothing_of_ours_left() -> None:
    """No container's traces (netharness.no_container_left); mini0 may stay, as docker0 does,
    and the test host's check takes it down as `mini network prune` does."""
    no_container_left()


# --- the seed ----------------------------------------------------------------------------------

@pytest.mark.nat
def test_the_seed_web_server_on_a_free_port(test_host):
    """`run -d -p 80 --name web busybox httpd ...`: port, ps, and the page from the test host
    (127.0.0.1 through the proxy, the host's address through DNAT) and from outside."""
    web("web", "-p", "80")
    try:
        record = inspect("web")
        bindings = record["NetworkSettings"]["Ports"]["80/tcp"]
        port = int(bindings[0]["HostPort"])
        low, high = ports.local_port_range()
        assert bindings == [{"HostIp": "0.0.0.0", "HostPort": str(port)}] and low <= port <= high
        assert record["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": ""}]}
        assert record["Config"]["ExposedPorts"] == {"80/tcp": {}}
        assert f"0.0.0.0:{port}->80/tcp" in mini("ps").stdout.splitlines()[1]
        assert get(f"http://127.0.0.1:{port}/") == "<h1>hello from web</h1>\n"
        assert get(f"http://{test_host.host_ip}:{port}/") == "<h1>hello from web</h1>\n"
        outside = run_in(test_host.outside_path, ["busybox", "wget", "-q", "-O-", f"http://{test_host.host_ip}:{port}/"])
        assert outside.stdout == "<h1>hello from web</h1>\n", outside.stderr
    finally:
        assert mini("rm", "-f", "web").returncode == 0
    nothing_of_ours_left()
    with pytest.raises(OSError):
        get(f"http://127.0.0.1:{port}/", timeout=0)


def containers() -> set[str]:
    """Every container's short id (other tests' kept containers too: compare before and after)."""
    return set(mini("ps", "-a", "-q").stdout.split())


@pytest.mark.nat
def test_a_fixed_port_and_a_second_claim_of_it_at_start(test_host):
    """Check F5 as docker does it: ports are published at start, so `run` creates the second
    container, its start fails (125, docker's words) and it stays `created` with the error in
    its record, nothing of the attempt left (no process, monitor, address, link, rule, netns);
    `start` fails the same way (1) while the port is taken and runs it once the port is free."""
    from mini_runtime import container
    from mini_runtime.network import ipam, namespace, nat
    before = containers()
    first = web("web", "-p", "18080:80")
    try:
        assert get("http://127.0.0.1:18080/") == "<h1>hello from web</h1>\n"
        assert "0.0.0.0:18080->80/tcp" in mini("ps").stdout
        again = bridged("run", "-d", "--name", "web2", "-p", "18080:80", *[w.format(name="web2") for w in WEB])
        second = inspect("web2")
        refusal = (f"driver failed programming external connectivity on endpoint web2 ({second['Id']}): "
                   "Bind for 0.0.0.0:18080 failed: port is already allocated")
        assert (again.returncode, again.stderr) == (125, f"mini: {refusal}\n")
        state = second["State"]
        assert (state["Status"], state["Running"], state["Pid"], state["ExitCode"]) == ("created", False, 0, 128)
        assert state["Error"] == refusal and second["NetworkSettings"]["IPAddress"] == ""
        assert second["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": "18080"}]}
        assert namespace.names() == [first] and list(ipam.owners()) == [first] and nat.owners() == {first}
        assert not container.run_dir(second["Id"]).exists()            # no monitor, no owner
        assert "Created" in next(line for line in mini("ps", "-a").stdout.splitlines() if "web2" in line)
        foreground = bridged("run", "--name", "web3", "-p", "18080:80", "busybox", "true")
        assert foreground.returncode == 125 and inspect("web3")["State"]["Status"] == "created"
        removed = bridged("run", "--rm", "-p", "127.0.0.1:18080:80", "busybox", "true")   # --rm: gone
        assert removed.returncode == 125 and "Bind for 127.0.0.1:18080 failed" in removed.stderr
        still = mini("start", "web2")
        assert still.returncode == 1 and refusal in still.stderr
        assert inspect("web2")["State"]["Status"] == "created"
        assert mini("rm", "-f", "web").returncode == 0                  # the port is free again
        assert mini("start", "web2").returncode == 0
        assert get("http://127.0.0.1:18080/") == "<h1>hello from web2</h1>\n"
        assert inspect("web2")["State"]["Error"] == ""
    finally:
        mini("rm", "-f", "web", "web2", "web3")
    nothing_of_ours_left()
    assert containers() == before


@pytest.mark.parametrize("spec, message", [("80:abc", "Invalid containerPort: abc"),
                                           ("1.2.3:80:80", "Invalid ip address: 1.2.3"),
                                           ("80/xyz", "Invalid proto: xyz"),
                                           ("80/sctp", "80/sctp: sctp ports: mini publishes tcp and udp only "
                                            "(docker publishes sctp too)"),
                                           ("[::]:8080:80", "invalid IP address: [::] (an IPv6 host address "
                                            "needs an IPv6 network; mini's are IPv4-only, as docker's default bridge)"),
                                           ("::1:8080:80/udp", "invalid IP address: [::1] (an IPv6 host address "
                                            "needs an IPv6 network; mini's are IPv4-only, as docker's default bridge)")])
def test_a_bad_publish_spec_is_one_line_and_leaves_nothing(test_host, spec, message):
    before = containers()
    result = bridged("run", "-p", spec, "busybox", "true")
    assert (result.returncode, result.stderr) == (125, f"mini: {message}\n")
    assert containers() == before
    nothing_of_ours_left()


@pytest.mark.nat
def test_a_subnet_that_overlaps_a_route_is_refused(test_host):
    before = containers()
    result = bridged("run", "--rm", "busybox", "true", MINI_SUBNET="198.51.100.0/25")
    assert result.returncode == 125 and result.stderr.count("\n") == 1
    assert "overlaps the route 198.51.100.0/24 dev mth0" in result.stderr
    assert containers() == before
    nothing_of_ours_left()


@pytest.mark.nat
def test_network_create_subnet_gateway_ip_range_and_what_it_refuses(test_host):
    """--gateway and --ip-range (docker's): the bridge has the gateway, containers get the
    range. Refused with one line, exit 1, and no network, bridge or rule made: loopback,
    multicast, 0/8, too small, another mini network's subnet, a gateway or range
    outside the subnet, two subnets, a name too long for its files. (224.0.0.0/24 was accepted,
    and every run on it then failed with "Network is unreachable"; --gateway and --ip-range were
    unknown flags; of two --subnet the last was taken silently; a 300-character name gave a raw
    "file name too long" with the whole path.)"""
    from mini_runtime.network import bridge, nat
    made = mini("network", "create", "--subnet", "10.99.0.0/24", "--gateway", "10.99.0.254",
                "--ip-range", "10.99.0.128/30", "minitestok")
    assert made.returncode == 0, made.stderr
    try:
        shown = bridged("run", "--rm", "--network", "minitestok", "busybox", "sh", "-c",
                        "ip -o -4 addr show eth0; ip route")
        assert "inet 10.99.0.128/24" in shown.stdout and "default via 10.99.0.254" in shown.stdout, shown.stderr
        for flags, why in [(["--subnet", "127.0.0.0/8"], "it overlaps 127.0.0.0/8, loopback"),
                           (["--subnet", "224.0.0.0/24"], "it overlaps 224.0.0.0/4, multicast"),
                           (["--subnet", "0.0.0.0/8"], "it overlaps 0.0.0.0/8"),
                           (["--subnet", "10.0.0.0/31"], "too small for a gateway and a container"),
                           (["--subnet", "10.99.0.128/25"], "Pool overlaps with other one on this address space"),
                           (["--gateway", "10.0.0.1"], "every ip-range or gateway must have a corresponding subnet"),
                           (["--subnet", "10.98.0.0/24", "--gateway", "10.97.0.1"], "no matching subnet for gateway"),
                           (["--subnet", "10.98.0.0/24", "--gateway", "10.98.0.255"], "the broadcast address"),
                           (["--subnet", "10.98.0.0/24", "--ip-range", "10.98.0.0/23"], "no matching subnet for range"),
                           (["--subnet", "10.98.0.0/24", "--subnet", "10.97.0.0/24"], "doesn't support multiple subnets"),
                           (["--subnet", "10.98.0.0/24", "--gateway", "10.98.0.1", "--gateway", "10.98.0.2"],
                            "every ip-range or gateway must have a corresponding subnet")]:
            refused = mini("network", "create", *flags, "minitestbad")
            assert refused.returncode == 1 and refused.stderr.count("\n") == 1, refused.stderr
            assert why in refused.stderr and refused.stdout == ""
        long = mini("network", "create", "a" * 201)       # (its files are named after it: no raw ENAMETOOLONG)
        assert (long.returncode, long.stderr.count("\n")) == (1, 1) and "201 characters, at most 200" in long.stderr
        assert [line.split()[1] for line in mini("network", "ls").stdout.splitlines()[1:]] == [
            "bridge", "host", "minitestok", "none"]                     # (docker's: sorted by name)
        made = json.loads(mini("network", "inspect", "minitestok").stdout)[0]["Options"]["com.docker.network.bridge.name"]
        assert [link for link in bridge.links() if link.startswith("mini")] == [made]
        assert {r.get("comment") for r in nat.rules()} == {f"mini:net:{made}"}
    finally:
        assert mini("network", "rm", "minitestok").returncode == 0
    nothing_of_ours_left()


@pytest.mark.nat
def test_a_full_network_refuses_the_next_container_and_leaves_nothing(test_host):
    """A /30 has room for one container: the next `run` (-d or not) fails in one line with
    docker's words and exit 125, and leaves no container, netns, address, veth, rule or held
    port (before: "no free address left on network ...")."""
    from mini_runtime.network import bridge, ipam, namespace, nat
    assert mini("network", "create", "--subnet", "10.97.0.0/30", "minifull").returncode == 0
    before = containers()
    try:
        first = web("one", "--network", "minifull", "-p", "18150:80")
        for detach in (["-d"], []):
            refused = bridged("run", *detach, "--network", "minifull", "-p", "18151:80", "busybox", "sleep", "60")
            assert (refused.returncode, refused.stderr) == (125, "mini: no available IPv4 addresses on this "
                                                                 "network's address pools: minifull (10.97.0.0/30)\n")
        assert containers() == before | {first[:12]} and namespace.names() == [first]
        assert list(ipam.owners()) == [first] and nat.owners() == {first}
        assert [link for link in bridge.links() if link.startswith("mv")] == ["mv" + first[:12]]
        with socket.socket() as s:                                     # the port was never held
            s.bind(("0.0.0.0", 18151))
    finally:
        mini("rm", "-f", "one")
        mini("network", "rm", "minifull")
    nothing_of_ours_left()


def test_a_network_name_never_leads_out_of_the_state_root(test_host):
    """`--network ../../x` read $MINI_ROOT/network/networks/../../x.json as a network record: a
    planted one could name the host's own link as its bridge (here the test host's mth0), and
    its address file too (a traceback: KeyError 'Subnet'). A name no network can have is none."""
    from mini_runtime import paths
    planted = paths.state_root() / "evil.json"
    (paths.state_root() / "network" / "networks").mkdir(parents=True, exist_ok=True)   # (there once used)
    planted.write_text(json.dumps({"Name": "../../evil", "Id": "e" * 64, "Containers": {}, "Options": {
        "com.docker.network.bridge.name": "mth0"}, "IPAM": {"Config": [{"Subnet": "10.66.0.0/24", "Gateway": "10.66.0.1"}]}}))
    before = containers()
    try:
        for network in ("../../evil", "../networks/bridge", "a" * 300):
            refused = bridged("run", "--rm", "--network", network, "busybox", "true")
            assert (refused.returncode, refused.stderr) == (125, f"mini: network {network} not found\n")
    finally:
        planted.unlink()
    assert not (paths.state_root() / "evil.lock").exists() and containers() == before
    nothing_of_ours_left()                              # (and test_host: mth0 as it was)


# --- what a container sees ---------------------------------------------------------------------

@pytest.mark.nat
def test_a_bridge_container_its_address_route_and_etc_files(test_host):
    shown = bridged("run", "--name", "box", "busybox", "sh", "-c",
                    "ip -o -4 addr show eth0; ip route; ip -o link | wc -l; echo ==; "
                    "cat /etc/hosts; echo ==; cat /etc/hostname; echo ==; cat /etc/resolv.conf")
    try:
        assert shown.returncode == 0, shown.stderr
        addr, hosts, hostname, resolv = shown.stdout.split("==\n")
        record = inspect("box")
        short = record["Id"][:12]
        assert "inet 172.29.0.2/16" in addr and "default via 172.29.0.1 dev eth0" in addr
        assert addr.splitlines()[-1].strip() == "2"                     # lo and eth0
        assert hosts.startswith("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
        assert hosts.splitlines()[-1] == f"172.29.0.2\t{short}" and hostname == short + "\n"
        assert "127.0.0.53" not in resolv and "nameserver 198.51.100.53" in resolv
        assert "search example.test" in resolv
        assert record["HostsPath"].endswith("/hosts") and record["HostConfig"]["NetworkMode"] == "bridge"
        assert mini("diff", "box").stdout == ""                         # not in the container's layer
        assert record["NetworkSettings"]["IPAddress"] == ""            # it has ended: released
    finally:
        mini("rm", "box")
    nothing_of_ours_left()


def test_network_none_has_only_lo_and_makes_nothing(test_host):
    shown = bridged("run", "--rm", "--network", "none", "busybox", "ip", "-o", "link")
    assert shown.returncode == 0 and [line.split(":")[1].strip() for line in shown.stdout.splitlines()] == ["lo"]
    nothing_of_ours_left()


@pytest.mark.nat
def test_masquerade_the_outside_sees_the_test_hosts_address(test_host):
    peer = python_in(test_host.outside_path, PEER.format(port=7100))
    wait_ready(peer)
    try:
        shown = bridged("run", "--rm", "busybox", "nc", test_host.outside_ip, "7100")
    finally:
        peer.kill()
        peer.communicate()
    assert shown.stdout == f"you are {test_host.host_ip}\n", shown.stderr


@pytest.mark.nat
def test_names_resolve_on_a_user_defined_network_not_on_the_bridge(test_host, tmp_path):
    other = mini("network", "create", "--driver", "overlay", "minitestnet")    # docker's 404: exit 1
    assert (other.returncode, other.stderr) == (1, 'mini: plugin "overlay" not found: only the bridge driver is built in\n')
    assert mini("network", "create", "minitestnet").returncode == 0
    try:
        web("web", "--network", "minitestnet")
        web("other")                                                    # on the default bridge
        by_name = bridged("run", "--rm", "--network", "minitestnet", "busybox", "wget", "-q", "-O-", "http://web/")
        assert by_name.stdout == "<h1>hello from web</h1>\n", by_name.stderr
        ip = inspect("web")["NetworkSettings"]["Networks"]["minitestnet"]["IPAddress"]
        assert ip.startswith("172.30.") and mini("network", "inspect", "minitestnet").returncode == 0
        # On the default bridge a name resolves only through /etc/hosts and the nameservers of
        # resolv.conf, as with docker (no embedded resolver there). busybox is linked statically
        # with glibc, whose built-in "dns" then "files" order needs no NSS module: it asks the
        # nameservers, then /etc/hosts. Here they are docker's defaults (the loopback stub is
        # filtered), which the test host cannot route to: the query fails at once (ENETUNREACH)
        # and wget says "bad address", exit 1. (Earlier this used `wget -T 2`: Debian 12's
        # busybox 1.35 segfaults on -T before it does anything (exit 139), found by strace: that
        # crash was never about names.)
        stub = tmp_path / "resolv.conf"
        stub.write_text("nameserver 127.0.0.53\n")
        from_bridge = bridged("run", "--rm", "busybox", "wget", "-q", "-O-", "http://web/",
                              MINI_RESOLV_CONF=str(stub))
        assert (from_bridge.returncode, from_bridge.stdout) == (1, ""), from_bridge.stderr
        assert from_bridge.stderr == "wget: bad address 'web'\n"
        other_hosts = bridged("run", "--rm", "busybox", "cat", "/etc/hosts").stdout
        assert other_hosts.startswith("127.0.0.1\tlocalhost") and " web" not in other_hosts
        shared = bridged("run", "--rm", "--network", "container:web", "busybox", "wget", "-q", "-O-",
                         "http://127.0.0.1/")
        assert shared.stdout == "<h1>hello from web</h1>\n", shared.stderr
        busy = mini("network", "rm", "minitestnet")
        assert busy.returncode == 1 and "has active endpoints" in busy.stderr
        listed = mini("network", "ls").stdout.splitlines()
        assert listed[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
        assert [line.split()[1] for line in listed[1:]] == ["bridge", "host", "minitestnet", "none"]
    finally:
        mini("rm", "-f", "web", "other")
        removed = mini("network", "rm", "minitestnet")
    assert removed.stdout == "minitestnet\n", removed.stderr
    nothing_of_ours_left()


@pytest.mark.nat
def test_network_prune_asks_then_removes_the_unused_and_takes_mini0_down(test_host):
    """mini0 stays between containers, as docker0 does; `network prune` removes the user-defined
    networks no container uses (docker's) and takes mini0 and its rules down once no container
    is on it (mini's own: the host as it was before mini)."""
    from mini_runtime.network import bridge, nat
    for name in ("minitestused", "minitestidle"):
        assert mini("network", "create", name).returncode == 0
    try:
        assert bridged("run", "--rm", "busybox", "true").returncode == 0
        assert "mini0" in bridge.links() and nat.table() is not None   # kept for the next one
        web("web", "--network", "minitestused")
        asked = mini("network", "prune", input="n\n")
        assert asked.returncode == 0 and asked.stdout.endswith("Are you sure you want to continue? [y/N] ")
        assert "minitestidle" in mini("network", "ls").stdout and "mini0" in bridge.links()
        pruned = mini("network", "prune", "-f")
        assert (pruned.returncode, pruned.stdout) == (0, "Deleted Networks:\nminitestidle\n"), pruned.stderr
        assert "mini0" not in bridge.links()                            # no container was on it
        assert "minitestused" in mini("network", "ls").stdout
    finally:
        mini("rm", "-f", "web")
        mini("network", "rm", "minitestused", "minitestidle")
    assert mini("network", "prune", "-f").stdout == ""
    assert nat.table() is None and not [n for n in bridge.links() if n.startswith("mini")]
    nothing_of_ours_left()


def test_network_prune_filters_by_label_and_age_as_dockers(test_host):
    """`--filter label=`, `label!=` and `until=`: what docker's NetworksPrune takes."""
    assert mini("network", "create", "--label", "keep=yes", "--label", "bare", "minitestkept").returncode == 0
    assert mini("network", "create", "minitestplain").returncode == 0
    try:
        assert mini("network", "inspect", "-f", "{{json .Labels}}", "minitestkept").stdout == '{"bare":"","keep":"yes"}\n'
        assert mini("network", "ls", "-f", "label=keep=yes", "--format", "{{.Name}}").stdout == "minitestkept\n"
        assert mini("network", "prune", "-f", "--filter", "until=1h").stdout == ""   # both are new
        pruned = mini("network", "prune", "-f", "--filter", "label!=keep")
        assert (pruned.returncode, pruned.stdout) == (0, "Deleted Networks:\nminitestplain\n"), pruned.stderr
        bad = mini("network", "prune", "-f", "--filter", "driver=bridge")
        assert (bad.returncode, bad.stderr) == (1, "mini: invalid filter 'driver'\n")
        assert "minitestkept" in mini("network", "ls").stdout
    finally:
        mini("network", "rm", "minitestkept", "minitestplain")
    nothing_of_ours_left()


# --- restart ------------------------------------------------------------------------------------

@pytest.mark.nat
def test_restart_brings_address_proxy_and_rules_back_and_releases_them(test_host):
    """`restart` ends the container (its address, veth, rules, proxy and netns go) and starts it
    again (all of them made anew). The address is the lowest free one at each start: docker too
    keeps an address across restarts only when it was asked for (--ip, user-defined networks),
    which mini lacks. A `--network container:web` container keeps the namespace it joined:
    when web restarts, that namespace loses its eth0 (the veth pair goes with web) and the
    joined container is left with lo only, as with docker, until it is restarted itself."""
    from mini_runtime.network import bridge, ipam, namespace, nat
    first = web("web", "-p", "18087:80")
    try:
        before = inspect("web")["NetworkSettings"]
        assert before["IPAddress"] == "172.29.0.2" and get("http://127.0.0.1:18087/").startswith("<h1>")
        joined = bridged("run", "-d", "--name", "joined", "--network", "container:web", "busybox", "sleep", "600")
        assert joined.returncode == 0, joined.stderr
        assert mini("stop", "-t", "0", "web").returncode == 0
        assert nat.owners() == set() and first not in ipam.owners() and first not in namespace.names()
        assert not [link for link in bridge.links() if link.startswith("mv")]
        with pytest.raises(OSError):
            get("http://127.0.0.1:18087/", timeout=0)                  # the proxy has gone
        other = web("other")                                            # takes the freed .2
        assert inspect("other")["NetworkSettings"]["IPAddress"] == "172.29.0.2"
        assert mini("restart", "web").returncode == 0
        after = inspect("web")["NetworkSettings"]
        assert after["IPAddress"] == "172.29.0.3" and after["Ports"] == before["Ports"]
        assert get("http://127.0.0.1:18087/") == "<h1>hello from web</h1>\n"
        assert get(f"http://{test_host.host_ip}:18087/") == "<h1>hello from web</h1>\n"   # DNAT again
        assert nat.owners() == {first} and sorted(ipam.owners()) == sorted([first, other])
        assert mini("restart", "-t", "0", "web").returncode == 0         # running: stop, then start
        assert get("http://127.0.0.1:18087/") == "<h1>hello from web</h1>\n"
        links = mini("exec", "joined", "ip", "-o", "link").stdout
        assert [line.split(":")[1].strip() for line in links.splitlines()] == ["lo"]   # web's old eth0 is gone
        assert mini("restart", "-t", "0", "joined").returncode == 0      # joins web's namespace now
        seen = mini("exec", "joined", "wget", "-q", "-O-", "http://127.0.0.1/")
        assert seen.stdout == "<h1>hello from web</h1>\n", seen.stderr
    finally:
        mini("rm", "-f", "joined", "web", "other")
    nothing_of_ours_left()


# --- cleanup after a killed monitor ------------------------------------------------------------

def dead(pid: int) -> bool:
    """Gone, or a zombie (pytest, the subreaper, has not reaped it yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.mark.nat
def test_a_sigkilled_monitors_network_is_swept(test_host):
    """What a killed monitor left goes at the next sweep (here: the next run's), and its record
    says so: no address, no ports. (The record kept them: `ps` and `port` showed a port that a
    new container could take, and inspect an address it could be given.)"""
    web("web", "-p", "18081:80", "-p", "127.0.0.1:18082:80")
    assert get("http://127.0.0.1:18081/").startswith("<h1>")
    record = inspect("web")
    with open(f"/proc/{record['State']['Pid']}/stat") as f:
        monitor = int(f.read().rsplit(")", 1)[1].split()[1])           # the init's parent
    assert mini("pause", "web").returncode == 0       # (frozen, its init cannot die yet: the
    os.kill(monitor, signal.SIGKILL)                    # sweep takes the network, not the record)
    try:
        deadline = time.monotonic() + 10
        while not dead(monitor) and time.monotonic() < deadline:
            time.sleep(0.05)
        again = web("again", "-p", "18083:80")                         # its create sweeps
        settings = inspect("web")["NetworkSettings"]
        assert (settings["IPAddress"], settings["SandboxKey"], settings["Ports"]) == ("", "", {}), settings
        assert mini("port", "web").stdout == ""
        assert get("http://127.0.0.1:18083/").startswith("<h1>")
    finally:                                            # (a frozen process cannot even be killed)
        mini("rm", "-f", "again")
        assert mini("unpause", "web").returncode == 0
    deadline = time.monotonic() + 10
    while mini("ps", "-q").stdout and time.monotonic() < deadline:     # ps sweeps
        time.sleep(0.2)
    swept = inspect("web")
    assert (swept["State"]["ExitCode"], swept["NetworkSettings"]["Ports"]) == (137, {})
    nothing_of_ours_left()
    with socket.socket() as s:                                         # the proxy let the port go
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)        # (a connection in TIME_WAIT)
        s.bind(("0.0.0.0", 18081))
        s.listen()
    mini("rm", "web")


@pytest.mark.nat
def test_exec_into_a_bridge_container_starts_no_network_sweep_while_nobody_died(test_host):
    """exec, ps and inspect sweep first (chapter 06). With containers on the bridge, all alive,
    the network's part must not even start: it imports the NAT and bridge modules and asks
    nftables for its rules, ~10 ms of every exec (test_a_sigkilled_monitors_network_is_swept
    shows that a dead one's network still goes)."""
    import subprocess
    import sys

    from conftest import MINI
    web("web")
    try:
        done = subprocess.run([sys.executable, "-S", "-X", "importtime", *MINI, "exec", "web", "true"],
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        imported = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines()
                    if line.startswith("import time:") and "imported package" not in line}
        assert "mini_runtime.nsenter" in imported           # (it did go through exec's path)
        assert imported & {"mini_runtime.network.nat", "mini_runtime.network.networks", "nftables"} == set()
    finally:
        mini("rm", "-f", "web")
    nothing_of_ours_left()


@pytest.mark.nat
def test_rm_f_while_its_monitor_is_still_creating_the_container(test_host):
    """`rm -f` of a container whose record is there but whose monitor is still making it (no
    socket yet: cgroup, netns, address, veth) waits for the monitor, then removes it whole.
    (Before: it removed the directory from under the monitor, whose create failed with
    "[Errno 2] No such file or directory", wrote the record again with no name leading to it,
    and left its address, veth and netns to a later sweep.)"""
    import subprocess

    from conftest import MINI
    from mini_runtime import container
    from mini_runtime.backend.local import LocalBackend
    before = containers()
    environ = {k: v for k, v in os.environ.items() if k != "MINI_DEFAULT_NETWORK"}
    run = subprocess.Popen(MINI + ["run", "-d", "--name", "racer", "-p", "18110:80", "busybox", "sleep", "600"],
                           env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while container.holder("racer") is None and time.monotonic() < deadline:
            time.sleep(0.001)
        LocalBackend().container_delete("racer", force=True)   # (in-process: no start-up time)
        _, err = run.communicate(timeout=60)
    finally:
        run.kill()
    assert "Errno" not in err and run.returncode in (0, 125), err
    assert containers() == before and container.holder("racer") is None
    assert not [d for d in container.containers_dir().iterdir() if not d.name.startswith(tuple(before))]
    nothing_of_ours_left()
    again = web("racer", "-p", "18110:80")                      # the name and the port are free
    assert mini("rm", "-f", again).returncode == 0
    nothing_of_ours_left()


# --- host names: container:NAME, host -----------------------------------------------------------

@pytest.mark.nat
def test_network_container_takes_the_others_hostname(test_host):
    """docker copies NAME's Config.Hostname (its /etc files are NAME's already): `hostname`,
    /etc/hostname and `hostname -i` (NAME's /etc/hosts has the line) agree, and the record
    says so. (Before: the container's own short id, NAME's file, "Host name lookup failure".)"""
    hip = web("hip")
    try:
        shown = bridged("run", "--name", "guest", "--network", "container:hip", "busybox", "sh", "-c",
                        "hostname; cat /etc/hostname; hostname -i")
        ip = inspect("hip")["NetworkSettings"]["IPAddress"]
        assert (shown.returncode, shown.stdout) == (0, f"{hip[:12]}\n{hip[:12]}\n{ip}\n"), shown.stderr
        assert inspect("guest")["Config"]["Hostname"] == hip[:12]
    finally:
        mini("rm", "-f", "guest", "hip")
    nothing_of_ours_left()


def test_network_host_takes_the_hosts_hostname_and_hosts_file(test_host, tmp_path):
    """docker: with `--network host` and no -h, the host's name (os.Hostname) and a copy of the
    host's /etc/hosts, so `hostname -i` resolves (here $MINI_HOSTS_FILE stands in for the
    machine's /etc/hosts; its nameserver is the test host's loopback, where nothing answers).
    With -h, that name. (Before: the short id, and a hosts file without it.)"""
    hosts = tmp_path / "hosts"
    hosts.write_text(f"127.0.0.1\tlocalhost\n192.0.2.7\t{os.uname().nodename}\n")
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\n")
    env = dict(MINI_HOSTS_FILE=str(hosts), MINI_RESOLV_CONF=str(resolv))
    shown = bridged("run", "--name", "onhost", "--network", "host", "busybox", "sh", "-c",
                    "hostname; cat /etc/hostname; hostname -i; cat /etc/hosts", **env)
    try:
        name = os.uname().nodename
        assert (shown.returncode, shown.stdout) == (0, f"{name}\n{name}\n192.0.2.7\n{hosts.read_text()}"), shown.stderr
        assert inspect("onhost")["Config"]["Hostname"] == name
    finally:
        mini("rm", "onhost")
    named = bridged("run", "--rm", "--network", "host", "-h", "mine", "busybox", "hostname", **env)
    assert named.stdout == "mine\n", named.stderr
    nothing_of_ours_left()


# --- rename -------------------------------------------------------------------------------------

@pytest.mark.nat
def test_rename_renames_the_container_on_its_network(test_host):
    """docker renames the endpoint's DNS names: the other members' /etc/hosts, `network
    inspect` and new members know the new name at once, not the old (before: the old one,
    until a restart)."""
    assert mini("network", "create", "minirenamenet").returncode == 0
    try:
        web("old", "--network", "minirenamenet")
        peer = bridged("run", "-d", "--name", "peer", "--network", "minirenamenet", "busybox", "sleep", "600")
        assert peer.returncode == 0, peer.stderr
        assert mini("rename", "old", "new").returncode == 0
        hosts = mini("exec", "peer", "cat", "/etc/hosts").stdout
        names = [line.split("\t", 1)[1].split() for line in hosts.splitlines()]
        assert ["new", inspect("new")["Id"][:12]] in names and not [n for n in names if "old" in n], hosts
        members = json.loads(mini("network", "inspect", "minirenamenet").stdout)[0]["Containers"]
        assert sorted(m["Name"] for m in members.values()) == ["new", "peer"]
        fetched = bridged("run", "--rm", "--network", "minirenamenet", "busybox", "wget", "-q", "-O-", "http://new/")
        assert fetched.stdout == "<h1>hello from old</h1>\n", fetched.stderr
    finally:
        mini("rm", "-f", "old", "new", "peer")
        mini("network", "rm", "minirenamenet")
    nothing_of_ours_left()


# --- ps -----------------------------------------------------------------------------------------

@pytest.mark.nat
def test_ps_shows_each_containers_networks(test_host):
    """`ps --format {{.Networks}}`: the names of NetworkSettings.Networks, as docker's: bridge,
    a user-defined network, none, host, and nothing for container:NAME (it has no endpoint of
    its own); also after the container has ended (before: always empty)."""
    assert mini("network", "create", "minipsnet").returncode == 0
    try:
        for name, mode in [("onbridge", "bridge"), ("onnet", "minipsnet"), ("onnone", "none"), ("onhost", "host")]:
            started = bridged("run", "-d", "--name", name, "--network", mode, "busybox", "sleep", "600")
            assert started.returncode == 0, started.stderr
        joined = bridged("run", "-d", "--name", "joined", "--network", "container:onbridge", "busybox", "sleep", "600")
        assert joined.returncode == 0, joined.stderr
        assert mini("stop", "-t", "0", "onnet").returncode == 0
        shown = mini("ps", "-a", "--format", "{{.Names}} {{.Networks}}").stdout.splitlines()
        assert sorted(line for line in shown if line.startswith(("on", "joined"))) == [
            "joined ", "onbridge bridge", "onhost host", "onnet minipsnet", "onnone none"]
        assert inspect("joined")["NetworkSettings"]["Networks"] == {}
    finally:
        mini("rm", "-f", "joined", "onbridge", "onnet", "onnone", "onhost")
        mini("network", "rm", "minipsnet")
    nothing_of_ours_left()


@pytest.mark.nat
def test_docker_publish_forms_a_host_port_range_and_port_zero(test_host):
    """`-p 8088-8089:80`: the first free port of the range (8088 is taken here); `-p 0:80`: any
    free port, as `-p 80` (before: "invalid hostPort" for both)."""
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 18088))
        taken.listen()
        web("ranged", "-p", "18088-18089:80")
        try:
            web("zero", "-p", "0:80")
            assert inspect("ranged")["NetworkSettings"]["Ports"]["80/tcp"] == [{"HostIp": "0.0.0.0", "HostPort": "18089"}]
            assert inspect("ranged")["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": "18088-18089"}]}
            assert get("http://127.0.0.1:18089/") == "<h1>hello from ranged</h1>\n"
            port = int(inspect("zero")["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"])
            low, high = ports.local_port_range()
            assert low <= port <= high and get(f"http://127.0.0.1:{port}/") == "<h1>hello from zero</h1>\n"
        finally:
            mini("rm", "-f", "ranged", "zero")
    nothing_of_ours_left()


def test_what_dockers_client_takes_but_cannot_publish_fails_at_start(test_host):
    """`-p 0-2:80` and `-p 0` pass docker's client (nat.ParsePortSpec), so the container is
    created; its start fails (125), as docker's port allocator refuses a range from port 0
    ("invalid port range: 0-2"), and it stays `created`, nothing of the attempt left (mini
    refused the value at once: "Invalid hostPort: 0-2", and `-p 0` as "Invalid containerPort")."""
    before = containers()
    try:
        for name, spec, words in (("range0", "0-2:80", "invalid port range: 0-2"),
                                  ("port0", "0", "invalid container port 0 in 0/tcp: ")):
            result = bridged("run", "-d", "--name", name, "-p", spec, "busybox", "sleep", "30")
            made = inspect(name)
            refusal = f"driver failed programming external connectivity on endpoint {name} ({made['Id']}): {words}"
            assert result.returncode == 125 and result.stderr.startswith(f"mini: {refusal}"), result.stderr
            assert made["State"]["Status"] == "created" and made["State"]["Error"].startswith(refusal)
    finally:
        mini("rm", "-f", "range0", "port0")
    assert containers() == before
    nothing_of_ours_left()


def test_network_inspect_of_a_missing_network_in_dockers_words(test_host):
    """docker's client: `[]`, then "Error: No such network: NAME", exit 1 (and the networks
    that are there are shown)."""
    missing = mini("network", "inspect", "nosuchnet")
    assert (missing.returncode, missing.stdout, missing.stderr) == (1, "[]\n", "Error: No such network: nosuchnet\n")
    both = mini("network", "inspect", "none", "nosuchnet")
    assert (both.returncode, both.stderr) == (1, "Error: No such network: nosuchnet\n")
    assert [n["Name"] for n in json.loads(both.stdout)] == ["none"]


@pytest.mark.nat
def test_network_default_is_the_default_bridge(test_host):
    """docker's daemon takes `--network default` for its default network, the bridge."""
    shown = bridged("run", "--name", "bydefault", "--network", "default", "busybox", "ip", "-o", "-4", "addr", "show", "eth0")
    try:
        assert shown.returncode == 0 and "inet 172.29.0." in shown.stdout, shown.stderr
        record = inspect("bydefault")
        assert record["HostConfig"]["NetworkMode"] == "bridge" and list(record["NetworkSettings"]["Networks"]) == ["bridge"]
        taken = mini("network", "create", "default")                     # (no network could be named so)
        assert (taken.returncode, taken.stderr) == (1, "mini: network with name default already exists\n")
    finally:
        mini("rm", "bydefault")
    nothing_of_ours_left()


@pytest.mark.nat
def test_network_ls_quiet_format_no_trunc_filters_and_inspect_format(test_host):
    """docker's `network ls` flags: sorted by name as Go's NaturalLess ("net2" before "net10"),
    -q, --no-trunc, --format (table or not, docker's field names and titles), -f name= (a
    regular expression), id= (a prefix is one), driver=, type=custom|builtin (any of them),
    dangling=; an unknown key or type in moby's words, exit 1. `network inspect -f` as
    `inspect -f`: one line per network, a field NetworkResource has not is an error. (Before:
    -f and --format were unknown flags, and ls listed in creation order.)"""
    for name in ("mininet10", "mininet2"):
        assert mini("network", "create", name).returncode == 0
    try:
        web("inuse", "--network", "mininet2")
        full = {n["Name"]: n["Id"] for n in json.loads(mini("network", "inspect", "bridge", "host", "none",
                                                             "mininet2", "mininet10").stdout)}
        order = ["bridge", "host", "mininet2", "mininet10", "none"]
        assert [line.split()[1] for line in mini("network", "ls").stdout.splitlines()[1:]] == order
        assert mini("network", "ls", "-q").stdout.split() == [full[n][:12] for n in order]
        assert mini("network", "ls", "-q", "--no-trunc").stdout.split() == [full[n] for n in order]
        table = mini("network", "ls", "--format", "table {{.Name}}\\t{{.Driver}}", "-f", "type=builtin").stdout
        assert table == ("NAME      DRIVER\nbridge    bridge\nhost      host\nnone      null\n")
        custom = mini("network", "ls", "--format", "{{.ID}} {{.Name}} {{.Scope}} {{.IPv6}} {{.Internal}}",
                      "--filter", "type=custom").stdout
        assert custom == "".join(f"{full[n][:12]} {n} local false false\n" for n in ("mininet2", "mininet10"))
        for flags, names in [(["-f", "name=net1"], ["mininet10"]), (["-f", "name=^b", "-f", "name=^h"], ["bridge", "host"]),
                             (["-f", f"id={full['mininet2'][:5]}"], ["mininet2"]),
                             (["-f", "driver=null"], ["none"]), (["-f", "dangling=true"], ["mininet10"]),
                             (["-f", "type=custom", "-f", "name=2"], ["mininet2"]),
                             (["-f", "type=custom", "-f", "type=builtin", "-f", "driver=bridge"],
                              ["bridge", "mininet2", "mininet10"])]:
            shown = mini("network", "ls", "--format", "{{.Name}}", *flags)
            assert (shown.returncode, shown.stdout.split()) == (0, names), (flags, shown.stderr)
        assert mini("network", "ls", "-q", "--format", "{{.Name}}", "-f", "name=mininet2").stdout == "mininet2\n"
        for flag, message in [("type=foo", "invalid filter: 'type'='foo'"), ("nope=1", "invalid filter 'nope'")]:
            refused = mini("network", "ls", "-f", flag)
            assert (refused.returncode, refused.stdout, refused.stderr) == (1, "", f"mini: {message}\n")
        shown = mini("network", "inspect", "-f", "{{.Name}} {{.Driver}} {{len .Containers}}", "mininet2", "host")
        assert (shown.returncode, shown.stdout) == (0, "mininet2 bridge 1\nhost host 0\n"), shown.stderr
        ip = inspect("inuse")["NetworkSettings"]["Networks"]["mininet2"]["IPAddress"]
        shown = mini("network", "inspect", "--format", "{{range .Containers}}{{.Name}} {{.IPv4Address}}{{end}}", "mininet2")
        assert shown.stdout.startswith(f"inuse {ip}/"), shown.stderr
        missing = mini("network", "inspect", "-f", "{{.Name}}", "nosuchnet", "none")
        assert (missing.returncode, missing.stdout, missing.stderr) == (1, "none\n", "Error: No such network: nosuchnet\n")
        wrong = mini("network", "inspect", "-f", "{{.Nope}}", "none")
        assert wrong.returncode == 1 and wrong.stderr.count("\n") == 1 and "Nope" in wrong.stderr
    finally:
        mini("rm", "-f", "inuse")
        for name in ("mininet10", "mininet2"):
            mini("network", "rm", name)
    nothing_of_ours_left()


# --- --network-alias, --ip ----------------------------------------------------------------------

@pytest.mark.nat
def test_network_alias_names_resolve_for_the_other_members(test_host):
    """`--network-alias` (docker's): the other members of the user-defined network reach the
    container by each alias too (their /etc/hosts has its name, aliases and short id on one
    line), and inspect shows Aliases as docker 20.10 does: the aliases, then the short id; they
    stay after the container stopped. On the default bridge, none or host: docker's refusal,
    exit 125, no container made. (Before: an unknown flag.)"""
    assert mini("network", "create", "minialiasnet").returncode == 0
    before = containers()
    try:
        for mode in ("bridge", "none", "host", "container:nosuch"):
            refused = bridged("run", "--rm", "--network", mode, "--network-alias", "www", "busybox", "true")
            assert (refused.returncode, refused.stderr) == (125, "mini: network-scoped aliases are only "
                                                                 "supported for user-defined networks\n")
        assert containers() == before
        web("web", "--network", "minialiasnet", "--network-alias", "www", "--network-alias", "site")
        short = inspect("web")["Id"][:12]
        for alias in ("www", "site", "web"):
            fetched = bridged("run", "--rm", "--network", "minialiasnet", "busybox", "wget", "-q", "-O-", f"http://{alias}/")
            assert fetched.stdout == "<h1>hello from web</h1>\n", (alias, fetched.stderr)
        ip = inspect("web")["NetworkSettings"]["Networks"]["minialiasnet"]["IPAddress"]
        hosts = bridged("run", "--rm", "--network", "minialiasnet", "busybox", "cat", "/etc/hosts").stdout
        assert f"{ip}\tweb www site {short}" in hosts.splitlines(), hosts
        assert inspect("web")["NetworkSettings"]["Networks"]["minialiasnet"]["Aliases"] == ["www", "site", short]
        assert mini("stop", "-t", "0", "web").returncode == 0
        assert inspect("web")["NetworkSettings"]["Networks"]["minialiasnet"]["Aliases"] == ["www", "site", short]
    finally:
        mini("rm", "-f", "web")
        mini("network", "rm", "minialiasnet")
    nothing_of_ours_left()


@pytest.mark.nat
def test_ip_on_a_user_defined_network_with_a_subnet(test_host):
    """`--ip` (docker's): the container gets that address (inspect's IPAddress and IPAMConfig,
    eth0 inside), again after a restart. Refused in docker's words, exit 125, with no container,
    address or link left: an address in use (the gateway too), outside the subnet, not an
    address; on the default bridge; on a network whose subnet mini picked (no --subnet).
    (Before: an unknown flag.)"""
    from mini_runtime.network import ipam
    assert mini("network", "create", "--subnet", "10.96.0.0/24", "miniipnet").returncode == 0
    assert mini("network", "create", "miniautonet").returncode == 0
    before = containers()
    try:
        fixed = bridged("run", "-d", "--name", "fixed", "--network", "miniipnet", "--ip", "10.96.0.50",
                        "busybox", "sleep", "600")
        assert fixed.returncode == 0, fixed.stderr
        fixed_id = fixed.stdout.strip()
        settings = inspect("fixed")["NetworkSettings"]["Networks"]["miniipnet"]
        assert (settings["IPAddress"], settings["IPAMConfig"]) == ("10.96.0.50", {"IPv4Address": "10.96.0.50"})
        assert "inet 10.96.0.50/24" in mini("exec", "fixed", "ip", "-o", "-4", "addr", "show", "eth0").stdout
        for network, ip, message in [
                ("miniipnet", "10.96.0.50", "Address already in use"),
                ("miniipnet", "10.96.0.1", "Address already in use"),
                ("miniipnet", "10.95.0.5", "Invalid address 10.95.0.5: It does not belong to any of this network's subnets"),
                ("miniipnet", "nope", "invalid IPv4 address: nope"),
                ("bridge", "172.29.0.50", "user specified IP address is supported on user defined networks only"),
                ("miniautonet", "172.30.0.50", "user specified IP address is supported only when connecting to "
                                               "networks with user configured subnets")]:
            refused = bridged("run", "-d", "--network", network, "--ip", ip, "busybox", "sleep", "600")
            assert (refused.returncode, refused.stdout, refused.stderr) == (125, "", f"mini: {message}\n")
        assert containers() == before | {fixed_id[:12]} and list(ipam.owners()) == [fixed_id]
        assert mini("restart", "-t", "0", "fixed").returncode == 0
        assert inspect("fixed")["NetworkSettings"]["Networks"]["miniipnet"]["IPAddress"] == "10.96.0.50"
    finally:
        mini("rm", "-f", "fixed")
        for name in ("miniipnet", "miniautonet"):
            mini("network", "rm", name)
    nothing_of_ours_left()


# --- network connect / disconnect ---------------------------------------------------------------

def links_of(name: str) -> list[str]:
    shown = mini("exec", name, "ip", "-o", "link")
    assert shown.returncode == 0, shown.stderr
    return [line.split(":")[1].strip().split("@")[0] for line in shown.stdout.splitlines()]


@pytest.mark.nat
def test_network_connect_and_disconnect_a_running_container(test_host):
    """`network connect [--ip] [--alias] NET CONTAINER` (docker's): a running container gets
    eth1 on that network (its address, the default route still eth0's), the other members
    resolve its name and aliases and it theirs; `network disconnect` undoes exactly that.
    docker's refusals, exit 1, nothing left: connected already, not connected, none/host/
    container: modes, no such network or container, --alias on the default bridge, an address
    in use. (Before: 'connect' and 'disconnect' were unknown commands.)"""
    from mini_runtime.network import bridge, ipam
    assert mini("network", "create", "--subnet", "10.94.0.0/24", "miniconna").returncode == 0
    try:
        web("srv", "--network", "miniconna")
        box = bridged("run", "-d", "--name", "box", "busybox", "sleep", "600")
        assert box.returncode == 0, box.stderr
        box_id = box.stdout.strip()
        for mode, name in (("none", "nobox"), ("host", "hostbox"), ("container:box", "joinbox")):
            started = bridged("run", "-d", "--network", mode, "--name", name, "busybox", "sleep", "600")
            assert started.returncode == 0, started.stderr
        host_links, owners = bridge.links(), ipam.owners()
        private = "container cannot be connected to multiple networks with one of the networks in private (none) mode"
        shared = "container sharing network namespace with another container or host cannot be connected to any other network"
        for args, message in [(["nosuchnet", "box"], "network nosuchnet not found"),
                              (["miniconna", "nosuch"], "No such container: nosuch"),
                              (["none", "box"], private), (["miniconna", "nobox"], private),
                              (["host", "box"], "container cannot be disconnected from host network or connected to host network"),
                              (["miniconna", "hostbox"], shared), (["miniconna", "joinbox"], shared),
                              (["miniconna", "srv"], "endpoint with name srv already exists in network miniconna"),
                              (["--alias", "x", "bridge", "srv"], "network-scoped alias is supported only for "
                                                                  "containers in user defined networks"),
                              (["--ip", "10.94.0.2", "miniconna", "box"], "Address already in use")]:
            refused = mini("network", "connect", *args)
            assert (refused.returncode, refused.stderr) == (1, f"mini: {message}\n"), args
        assert (bridge.links(), ipam.owners()) == (host_links, owners)

        made = mini("network", "connect", "--alias", "other", "--ip", "10.94.0.77", "miniconna", "box")
        assert (made.returncode, made.stdout, made.stderr) == (0, "", "")
        assert links_of("box") == ["lo", "eth0", "eth1"]
        addresses = mini("exec", "box", "ip", "-o", "-4", "addr").stdout
        assert "eth1    inet 10.94.0.77/24" in addresses and "default via 172.29.0.1 dev eth0" in \
            mini("exec", "box", "ip", "route").stdout
        fetched = mini("exec", "box", "wget", "-q", "-O-", "http://srv/")
        assert fetched.stdout == "<h1>hello from srv</h1>\n", fetched.stderr
        assert f"10.94.0.77\tbox other {box_id[:12]}" in mini("exec", "srv", "cat", "/etc/hosts").stdout.splitlines()
        settings = inspect("box")["NetworkSettings"]["Networks"]
        assert sorted(settings) == ["bridge", "miniconna"]
        assert (settings["miniconna"]["IPAddress"], settings["miniconna"]["Aliases"],
                settings["miniconna"]["IPAMConfig"]) == ("10.94.0.77", ["other", box_id[:12]], {"IPv4Address": "10.94.0.77"})
        assert box_id in json.loads(mini("network", "inspect", "miniconna").stdout)[0]["Containers"]
        again = mini("network", "connect", "miniconna", "box")
        assert (again.returncode, again.stderr) == (1, "mini: endpoint with name box already exists in network miniconna\n")

        gone = mini("network", "disconnect", "miniconna", "box")
        assert (gone.returncode, gone.stdout, gone.stderr) == (0, "", "")
        assert links_of("box") == ["lo", "eth0"] and (bridge.links(), ipam.owners()) == (host_links, owners)
        assert " box" not in mini("exec", "srv", "cat", "/etc/hosts").stdout
        assert "srv" not in mini("exec", "box", "cat", "/etc/hosts").stdout
        assert list(inspect("box")["NetworkSettings"]["Networks"]) == ["bridge"]
        for args, message in [(["miniconna", "box"], f"container {box_id} is not connected to network miniconna"),
                              (["host", "hostbox"], "container cannot be disconnected from host network or "
                                                    "connected to host network")]:
            refused = mini("network", "disconnect", *args)
            assert (refused.returncode, refused.stderr) == (1, f"mini: {message}\n"), args
        first = mini("network", "disconnect", "-f", "bridge", "box")
        assert first.returncode == 1 and first.stderr.count("\n") == 1 and "first network" in first.stderr
    finally:
        mini("rm", "-f", "joinbox", "srv", "box", "nobox", "hostbox")
        mini("network", "rm", "miniconna")
    nothing_of_ours_left()


@pytest.mark.nat
def test_network_connect_a_created_container_and_again_at_each_start(test_host):
    """A created container has its namespace already: connect plugs eth1 in at once; it runs
    with it, and after a stop inspect still shows the network (no address), and the next
    start connects it again; disconnect of the stopped container is for the next start."""
    assert mini("network", "create", "miniconnb").returncode == 0
    try:
        made = bridged("create", "--name", "made", "busybox", "sleep", "600")
        assert made.returncode == 0, made.stderr
        made_id = made.stdout.strip()
        assert mini("network", "connect", "miniconnb", "made").returncode == 0
        assert mini("start", "made").returncode == 0
        assert links_of("made") == ["lo", "eth0", "eth1"]
        ip = inspect("made")["NetworkSettings"]["Networks"]["miniconnb"]["IPAddress"]
        assert ip.startswith("172.30.") and f"inet {ip}/24" in mini("exec", "made", "ip", "-o", "-4", "addr", "show", "eth1").stdout
        assert mini("stop", "-t", "0", "made").returncode == 0
        stopped = inspect("made")["NetworkSettings"]["Networks"]
        assert sorted(stopped) == ["bridge", "miniconnb"] and stopped["miniconnb"]["IPAddress"] == ""
        assert mini("start", "made").returncode == 0
        assert links_of("made") == ["lo", "eth0", "eth1"]
        assert mini("stop", "-t", "0", "made").returncode == 0
        assert mini("network", "disconnect", "miniconnb", "made").returncode == 0
        assert list(inspect("made")["NetworkSettings"]["Networks"]) == ["bridge"]
        assert mini("start", "made").returncode == 0
        assert links_of("made") == ["lo", "eth0"]
        assert mini("stop", "-t", "0", "made").returncode == 0          # exited: for its next start
        assert mini("network", "connect", "--alias", "later", "miniconnb", "made").returncode == 0
        assert inspect("made")["NetworkSettings"]["Networks"]["miniconnb"]["Aliases"] == ["later", made_id[:12]]
        assert mini("start", "made").returncode == 0
        assert links_of("made") == ["lo", "eth0", "eth1"]               # and rm -f takes it all
    finally:
        mini("rm", "-f", "made")
        mini("network", "rm", "miniconnb")
    nothing_of_ours_left()


def test_run_P_of_an_image_exposing_no_port_is_125_and_leaves_nothing(test_host, state_root):
    """On the bridge, -P publishes every exposed port, so one that is no port is refused before
    anything is made (docker: 125, "invalid port specification")."""
    from conftest import image_variant

    image_variant("badports:1", config={"ExposedPorts": {"80/tcp": {}, "notaport": {}}})
    containers = state_root / "containers"
    before = set(os.listdir(containers)) if containers.exists() else set()
    try:
        result = bridged("run", "--rm", "-P", "badports:1", "true")
        assert (result.returncode, result.stdout) == (125, "")
        assert result.stderr.startswith('mini: invalid port specification: "notaport"'), result.stderr
        assert len(result.stderr.splitlines()) == 1
        assert set(os.listdir(containers)) == before
    finally:
        assert mini("rmi", "badports:1").returncode == 0
