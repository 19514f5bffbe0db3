"""Chapter 07's flags of `run` and `create`: --dns, --dns-search, --dns-option, --expose.

What docker writes into the container's /etc/resolv.conf with them, what its inspect shows, its
words for a bad value and for a flag its network mode refuses; --expose's ports for -P. No test
looks a name up: they only read the file inside the container. Published ports and the bridge
exist only in the harness's private network namespaces (test_host).
"""

from __future__ import annotations

import json
import os

import pytest

from conftest import mini
from mini_runtime.cli import netflags
from mini_runtime.errors import InvalidParameter, UsageError
from mini_runtime.network import etcfiles
from netharness import no_container_left, test_host  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.root, pytest.mark.integration]

HOST = "# the host's\nnameserver 127.0.0.53\nnameserver 198.51.100.53\ndomain lan\nsearch a.test b.test\noptions edns0\n"


# --- resolv.conf as docker 20.10 writes it (libnetwork's setupDNS) -------------------------------
# Each expected file below is what Debian's docker.io 20.10 wrote into a `--network none`
# container, byte for byte, with its host file bound to the input (a private dockerd, as
# tests/peers.py runs one).

LOOPBACK_ONLY = "nameserver 127.0.0.1\nnameserver ::1\nsearch host.example\noptions ndots:2\n"


@pytest.mark.parametrize("host, flags, want", [
    (HOST, dict(dns=["192.0.2.1", "2001:db8::1"]), "search a.test b.test\nnameserver 192.0.2.1\n"
                                                   "nameserver 2001:db8::1\noptions edns0\n"),
    # --dns-search or --dns-option alone: the host's nameservers *unfiltered*, loopback too
    (HOST, dict(search=["c.test"]), "search c.test\nnameserver 127.0.0.53\nnameserver 198.51.100.53\noptions edns0\n"),
    (HOST, dict(options=["ndots:2", "timeout:1"]),
     "search a.test b.test\nnameserver 127.0.0.53\nnameserver 198.51.100.53\noptions ndots:2 timeout:1\n"),
    (HOST, dict(search=["."]), "nameserver 127.0.0.53\nnameserver 198.51.100.53\noptions edns0\n"),   # ".": no search line
    (HOST, dict(options=[""]), "search a.test b.test\nnameserver 127.0.0.53\nnameserver 198.51.100.53\n"),
    (LOOPBACK_ONLY, dict(search=["x.example"]), "search x.example\nnameserver 127.0.0.1\nnameserver ::1\noptions ndots:2\n"),
    (LOOPBACK_ONLY, dict(search=["x.example"], options=["ndots:5"]),
     "search x.example\nnameserver 127.0.0.1\nnameserver ::1\noptions ndots:5\n"),
    # no flag: the host's file, loopback and IPv6 nameserver lines cut out (and the blank lines
    # after them), the rest as it was; docker's defaults appended when none is left
    (HOST, {}, "# the host's\nnameserver 198.51.100.53\ndomain lan\nsearch a.test b.test\noptions edns0\n"),
    (LOOPBACK_ONLY, {}, "search host.example\noptions ndots:2\n\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n"),
    ("nameserver fd00::1\nsearch lan\n", {}, "search lan\n\nnameserver 8.8.8.8\nnameserver 8.8.4.4"),  # (no \n: docker's)
    ("search x", {}, "search x\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n"),
    ("", {}, "\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n"),
    ("nameserver 127.0.0.53\n\n\n# after\nnameserver 10.0.0.1 # trailing\n", {},
     "# after\nnameserver 10.0.0.1 # trailing\n"),
])
def test_resolv_conf_is_docker_s_file(host, flags, want):
    """Without a flag, docker filters the host's file; with any of --dns, --dns-search,
    --dns-option it builds a new one of three kinds of lines (resolvconf.Build), each from its
    flag, else from the host's file as it is. (Before: mini also filtered the nameservers in
    the second case, and wrote a file of its own with a comment in the first.)"""
    assert etcfiles.resolv_conf(host, **flags) == want


def test_a_container_s_resolv_conf_with_dns_search_alone(tmp_path):
    """The same through `mini run`, with a host file of loopback nameservers only (never the
    machine's; the container only reads its file)."""
    source = tmp_path / "resolv.conf"
    source.write_text(LOOPBACK_ONLY)
    env = dict(os.environ, MINI_RESOLV_CONF=str(source))
    for flags, want in (([], "search host.example\noptions ndots:2\n\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n"),
                        (["--dns-search", "x.example"],
                         "search x.example\nnameserver 127.0.0.1\nnameserver ::1\noptions ndots:2\n")):
        result = mini("run", "--rm", "--network", "none", *flags, "busybox", "cat", "/etc/resolv.conf", env=env)
        assert (result.returncode, result.stdout, result.stderr) == (0, want, "")


# --- the client's checks (docker-cli's opts) ---------------------------------------------------

@pytest.mark.parametrize("given, shown", [("192.0.2.1", "192.0.2.1"), (" 192.0.2.1", "192.0.2.1"),
                                          ("2001:DB8:0::1", "2001:db8::1"), ("::ffff:192.0.2.1", "192.0.2.1")])
def test_dns_addresses_in_gos_canonical_form(given, shown):
    assert netflags.ip_address(given) == shown


@pytest.mark.parametrize("given", ["bogus", "1.2.3.4%eth0", "", "1.2.3", "01.2.3.4"])
def test_a_bad_dns_address_in_dockers_words(given):
    with pytest.raises(UsageError) as e:
        netflags.ip_address(given)
    assert str(e.value) == f'invalid argument "{given}" for "--dns" flag: {given} is not an ip address'


@pytest.mark.parametrize("given, shown", [("example.test", "example.test"), ("example.test.", "example.test"),
                                          (".", "."), (" lan ", "lan"), ("a-b.c9", "a-b.c9")])
def test_search_domains_as_docker_records_them(given, shown):
    assert netflags.search_domain(given) == shown


@pytest.mark.parametrize("given", ["bad_domain", "123", "", "-a.test", "a..test", "a" * 255, "lan\nsearch x"])
def test_a_bad_search_domain_in_dockers_words(given):
    with pytest.raises(UsageError, match=r'(?s)^invalid argument ".*" for "--dns-search" flag: .* is not a valid domain$'):
        netflags.search_domain(given)


def test_a_dns_option_is_one_line_of_the_file():
    """docker writes --dns-option as given: a line break would add a line of the user's choice
    (a nameserver) behind the flags' backs. mini refuses it."""
    assert netflags.dns_options(["ndots:2", "timeout:1 attempts:2"]) == ["ndots:2", "timeout:1 attempts:2"]
    with pytest.raises(UsageError, match=r"^invalid argument .* for \"--dns-option\" flag: an option is one line"):
        netflags.dns_options(["ndots:2\nnameserver 192.0.2.9"])


@pytest.mark.parametrize("specs, keys", [
    (["80"], ["80/tcp"]), (["53/udp", "53/UDP"], ["53/udp", "53/UDP"]), (["7000-7002"], ["7000/tcp", "7001/tcp", "7002/tcp"]),
    (["9/sctp", "80/"], ["9/sctp", "80/tcp"]), (["443", "443/tcp"], ["443/tcp"]),
    (["0"], ["0/tcp"]), (["80/foo"], ["80/foo"]), (["0-2"], ["0/tcp", "1/tcp", "2/tcp"]), (["0/tcp"], ["0/tcp"]),
])
def test_expose_gives_exposedports_keys(specs, keys):
    """docker's client checks the numbers only, and keeps the protocol as written (the oracle:
    dockerd 20.10, `create --expose 0 --expose 80/foo --expose 80/UDP`, then inspect)."""
    assert netflags.exposed_ports(specs) == keys


@pytest.mark.parametrize("spec, why", [
    ("abc", 'invalid range format for --expose: abc, error: strconv.ParseUint: parsing "abc": invalid syntax'),
    ("70000", 'invalid range format for --expose: 70000, error: strconv.ParseUint: parsing "70000": value out of range'),
    ("7000-6000", "invalid range format for --expose: 7000-6000, error: Invalid range specified for the Port: 7000-6000"),
    ("/udp", "invalid range format for --expose: /udp, error: Empty string specified for ports."),
    ("8080:80", "invalid port format for --expose: 8080:80"),
])
def test_a_bad_expose_in_dockers_words(spec, why):
    with pytest.raises(InvalidParameter) as e:
        netflags.exposed_ports([spec])
    assert str(e.value) == why


@pytest.mark.parametrize("given", ["02:42:ac:11:00:09", "02-42-AC-11-00-09", "0242.ac11.0009",
                                   "02:42:ac:11:00:09:00:01"])   # (Go reads 8 bytes too)
def test_mac_address_forms_docker_reads(given):
    assert netflags.mac_address(given) == given


@pytest.mark.parametrize("given", ["zz", "02:42:ac:11:00", "02:42-ac:11:00:09", "0242ac110009", "02:42:ac:11:00:0g"])
def test_a_bad_mac_address_in_dockers_words(given):
    with pytest.raises(InvalidParameter) as e:
        netflags.mac_address(given)
    assert str(e.value) == f"{given} is not a valid mac address"


def test_a_veth_takes_six_unicast_bytes():
    from mini_runtime.network import bridge
    assert bridge.canonical_mac("02-42-AC-11-00-09") == bridge.canonical_mac("0242.ac11.0009") == "02:42:ac:11:00:09"
    for bad in ("02:42:ac:11:00:09:00:01", "01:00:5e:00:00:01", "00:00:00:00:00:00"):
        with pytest.raises(InvalidParameter, match="is not a valid mac address for a container"):
            bridge.canonical_mac(bad)


# --- end to end --------------------------------------------------------------------------------

def records(state_root) -> list:
    folder = state_root / "containers"
    return sorted(folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize("flags, want", [
    (["--dns", "bogus"], 'mini: invalid argument "bogus" for "--dns" flag: bogus is not an ip address\n'),
    (["--dns-search", "bad_domain"],
     'mini: invalid argument "bad_domain" for "--dns-search" flag: bad_domain is not a valid domain\n'),
    (["--expose", "abc"],
     'mini: invalid range format for --expose: abc, error: strconv.ParseUint: parsing "abc": invalid syntax\n'),
])
def test_a_bad_network_flag_is_125_one_line_and_creates_nothing(state_root, flags, want):
    before = records(state_root)
    result = mini("run", "--rm", *flags, "busybox", "true")
    assert (result.returncode, result.stderr) == (125, want)
    assert records(state_root) == before


def test_expose_takes_what_dockers_client_takes(state_root):
    """Port 0 and an unknown protocol were refused (125); docker's create takes them and records
    them as written (the oracle: dockerd 20.10, `create --expose 0 --expose 80/foo`)."""
    created = mini("create", "--expose", "0", "--expose", "80/foo", "--expose", "81/UDP", "busybox", "true")
    assert (created.returncode, created.stderr) == (0, "")
    try:
        shown = mini("inspect", "-f", "{{json .Config.ExposedPorts}}", created.stdout.strip())
        assert json.loads(shown.stdout) == {"0/tcp": {}, "80/foo": {}, "81/UDP": {}}
    finally:
        assert mini("rm", created.stdout.strip()).returncode == 0
    created = mini("create", "--network", "none", "-P", "--expose", "0", "busybox", "true")   # (-P: nothing
    assert (created.returncode, created.stderr) == (0, "")        # to publish without a network, as docker's)
    assert mini("rm", created.stdout.strip()).returncode == 0


def test_dns_flags_write_resolv_conf_and_show_in_inspect():
    """On `--network none` too (docker writes the file for every mode but container:NAME).
    The host's file is tests/data/resolv.conf (conftest's MINI_RESOLV_CONF)."""
    shown = mini("run", "--name", "dns1", "--dns", "192.0.2.1", "--dns", "2001:db8::1",
                 "--dns-search", "corp.test.", "--dns-search", "lab.test", "--dns-option", "ndots:2",
                 "--expose", "7000-7001/udp", "busybox", "cat", "/etc/resolv.conf")
    try:
        assert (shown.returncode, shown.stdout) == (0, "search corp.test lab.test\nnameserver 192.0.2.1\n"
                                                       "nameserver 2001:db8::1\noptions ndots:2\n"), shown.stderr
        record = json.loads(mini("inspect", "dns1").stdout)[0]
        host = record["HostConfig"]
        assert (host["Dns"], host["DnsOptions"], host["DnsSearch"]) == (["192.0.2.1", "2001:db8::1"], ["ndots:2"],
                                                                        ["corp.test", "lab.test"])
        assert record["Config"]["ExposedPorts"] == {"7000/udp": {}, "7001/udp": {}}
    finally:
        mini("rm", "dns1")
    plain = mini("create", "--name", "dns2", "busybox")
    try:
        host = json.loads(mini("inspect", "dns2").stdout)[0]["HostConfig"]
        assert (host["Dns"], host["DnsOptions"], host["DnsSearch"]) == ([], [], [])   # docker's client: empty lists
    finally:
        mini("rm", "dns2")
    assert plain.returncode == 0, plain.stderr


@pytest.mark.parametrize("flags, words", [
    (["--dns", "192.0.2.1"], "dns and the network mode"),
    (["--expose", "80"], "port exposing and the container type network mode"),
    (["-P"], "port publishing and the container type network mode"),
    (["--mac-address", "02:42:ac:11:00:09"], "mac-address and the network mode"),
])
def test_container_network_mode_refuses_what_would_change_the_others_files(state_root, flags, words):
    """`container:NAME` shares NAME's resolv.conf: --dns would change it (docker's daemon
    refuses it; --dns-search and --dns-option it ignores there)."""
    started = mini("run", "-d", "--name", "first", "busybox", "sleep", "60")
    assert started.returncode == 0, started.stderr
    try:
        before = records(state_root)
        result = mini("run", "--rm", "--network", "container:first", *flags, "busybox", "true")
        assert (result.returncode, result.stderr) == (125, f"mini: conflicting options: {words}\n")
        assert records(state_root) == before
        shared = mini("run", "--rm", "--network", "container:first", "--dns-search", "x.test", "busybox",
                      "cat", "/etc/resolv.conf")
        assert shared.returncode == 0 and "x.test" not in shared.stdout, shared.stderr
    finally:
        mini("rm", "-f", "first")


def bridged(*args: str, **env: str):
    """`mini ...` with mini's own default network, the bridge (in the harness's namespace)."""
    environ = {k: v for k, v in os.environ.items() if k != "MINI_DEFAULT_NETWORK"} | env
    return mini(*args, timeout=60, env=environ)


@pytest.mark.nat
def test_dns_flags_on_the_bridge_and_with_the_hosts_network(test_host, tmp_path):
    """On the bridge, as on `none`. With `--network host` the file is built too (docker copies
    the host's only when no flag is given), and a loopback nameserver of the host's stays."""
    on_bridge = bridged("run", "--rm", "--dns", "192.0.2.53", "--dns-option", "timeout:1", "busybox",
                        "cat", "/etc/resolv.conf")
    assert (on_bridge.returncode, on_bridge.stdout) == (0, "search example.test\nnameserver 192.0.2.53\n"
                                                           "options timeout:1\n"), on_bridge.stderr
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\nsearch host.test\n")
    on_host = bridged("run", "--rm", "--network", "host", "--dns-search", ".", "busybox", "cat", "/etc/resolv.conf",
                      MINI_RESOLV_CONF=str(resolv))
    assert (on_host.returncode, on_host.stdout) == (0, "nameserver 127.0.0.1\n"), on_host.stderr
    no_container_left()


@pytest.mark.nat
def test_expose_ranges_are_published_by_P(test_host):
    """--expose only says which ports the container serves; -P publishes each on a free port."""
    started = bridged("run", "-d", "--name", "exposed", "-P", "--expose", "7000-7002", "--expose", "53/udp",
                      "busybox", "sleep", "60")
    assert started.returncode == 0, started.stderr
    try:
        record = json.loads(mini("inspect", "exposed").stdout)[0]
        assert record["Config"]["ExposedPorts"] == {"53/udp": {}, "7000/tcp": {}, "7001/tcp": {}, "7002/tcp": {}}
        ports = record["NetworkSettings"]["Ports"]
        assert sorted(ports) == ["53/udp", "7000/tcp", "7001/tcp", "7002/tcp"]
        assert all(len(b) == 1 and int(b[0]["HostPort"]) > 0 for b in ports.values()), ports
        shown = mini("port", "exposed").stdout
        assert "7001/tcp -> 0.0.0.0:" in shown and "53/udp -> 0.0.0.0:" in shown, shown
    finally:
        assert mini("rm", "-f", "exposed").returncode == 0
    no_container_left()


@pytest.mark.nat
def test_mac_address_on_the_bridge_and_on_a_user_network(test_host):
    """eth0 has the MAC asked for (else 02:42 and its IPv4 address); inspect shows it as given
    (Config) and as the kernel has it (NetworkSettings). A MAC a veth cannot take is refused
    before anything is made; with the host's network there is no eth0 of its own to set."""
    assert mini("network", "create", "minimacnet").returncode == 0
    try:
        for network in ("bridge", "minimacnet"):
            shown = bridged("run", "--name", "mac1", "--network", network, "--mac-address", "02-42-AC-11-00-09",
                            "busybox", "cat", "/sys/class/net/eth0/address")
            try:
                assert (shown.returncode, shown.stdout) == (0, "02:42:ac:11:00:09\n"), shown.stderr
                record = json.loads(mini("inspect", "mac1").stdout)[0]
                assert record["Config"]["MacAddress"] == "02-42-AC-11-00-09"
                assert record["NetworkSettings"]["Networks"][network]["MacAddress"] == "" # (ended: released)
            finally:
                mini("rm", "mac1")
        running = bridged("run", "-d", "--name", "mac2", "--mac-address", "02:42:ac:11:00:0a", "busybox", "sleep", "60")
        try:
            assert running.returncode == 0, running.stderr
            assert json.loads(mini("inspect", "mac2").stdout)[0]["NetworkSettings"]["MacAddress"] == "02:42:ac:11:00:0a"
        finally:
            mini("rm", "-f", "mac2")
        for flags, words in ((["--mac-address", "01:00:5e:00:00:01"], "01:00:5e:00:00:01 is not a valid mac address"),
                             (["--network", "host", "--mac-address", "02:42:ac:11:00:09"],
                              "conflicting options: mac-address and the network mode")):
            refused = bridged("run", "--rm", *flags, "busybox", "true")
            assert refused.returncode == 125 and words in refused.stderr and len(refused.stderr.splitlines()) == 1
        no_container_left()
    finally:
        assert mini("network", "rm", "minimacnet").returncode == 0
