"""Unit tests: no root, no kernel features; pure logic of the runtime."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket

import pytest

from mini_runtime import process, units
from mini_runtime.cli import formatting
from mini_runtime.config import ContainerConfig, process_spec
from mini_runtime.errors import InvalidReference
from mini_runtime.image import reference


@pytest.mark.parametrize("rows, want", [
    ([["REPOSITORY", "TAG", "IMAGE ID"], ["busybox", "latest", "055aabe24769"]],
     "REPOSITORY   TAG       IMAGE ID\nbusybox      latest    055aabe24769\n"),
])
def test_table_is_aligned_like_docker(rows, want):
    assert formatting.table(rows) == want


@pytest.mark.parametrize("seconds, want", [
    (0.5, "Less than a second"), (1, "1 second"), (59, "59 seconds"), (60, "About a minute"),
    (119, "About a minute"), (120, "2 minutes"), (3599, "59 minutes"), (3600, "About an hour"),
    (5400, "2 hours"), (47 * 3600, "47 hours"), (48 * 3600, "2 days"), (14 * 86400, "2 weeks"),
    (60 * 86400, "2 months"), (800 * 86400, "2 years"),
])
def test_human_duration_matches_go_units(seconds, want):
    assert units.human_duration(seconds) == want


@pytest.mark.parametrize("size, want", [(0, "0B"), (999, "999B"), (2140000, "2.14MB"),
                                        (4261234, "4.26MB"), (1e9, "1GB")])
def test_human_size_matches_go_units(size, want):
    assert units.human_size(size) == want


@pytest.mark.parametrize("text, full", [
    ("busybox", "docker.io/library/busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36"),
    ("me/app", "docker.io/me/app:latest"),
    ("localhost:5000/a/b:v1", "localhost:5000/a/b:v1"),
    ("registry.example/x", "registry.example/x:latest"),
    ("busybox@sha256:" + "a" * 64, "docker.io/library/busybox@sha256:" + "a" * 64),
])
def test_reference_parse_normalises_like_docker(text, full):
    assert reference.parse(text).full == full


def test_reference_repository_name_may_have_255_characters_as_in_docker():
    """docker counts the normalised name (`docker.io/library/` + the name): 237 characters
    pass, 238 do not (the oracle: `docker pull $(printf 'a%.0s' $(seq 238))`)."""
    assert reference.parse("a" * 237 + ":" + "t" * 128).tag == "t" * 128
    assert reference.parse("me/" + "a" * 242).path == "me/" + "a" * 242      # docker.io/me/...: 255
    assert reference.parse("example.com/" + "a" * 243).domain == "example.com"
    for too_long in ("a" * 238, "me/" + "a" * 243, "example.com/" + "a" * 244):
        with pytest.raises(InvalidReference, match="^repository name must not be more than 255 characters$"):
            reference.parse(too_long)


@pytest.mark.parametrize("name", ["Bad:Name", "Foo/bar", "foo/Bar", "LOCALHOST/x", "Host.com/Foo",
                                  "UPPER", "x@SHA256:" + "0" * 64])
def test_reference_an_uppercase_repository_is_refused_in_dockers_words(name):
    """docker splits the host off first (a first part with no . or : that is not `localhost` is
    no host), then the repository must be lowercase: `Foo/bar` and `LOCALHOST/x` were taken."""
    with pytest.raises(InvalidReference) as refused:
        reference.parse(name)
    assert str(refused.value) == "invalid reference format: repository name must be lowercase"


def test_reference_uppercase_where_docker_allows_it():
    assert str(reference.parse("Host.com/foo")) == "Host.com/foo:latest"      # a host's name
    assert str(reference.parse("busybox:TAG")) == "busybox:TAG"               # a tag
    assert str(reference.parse("index.docker.io/library/busybox")) == "busybox:latest"   # Hub's old name


@pytest.mark.parametrize("source, target, words", [
    ("busybox", "Bad:Name", '"Bad:Name" is not a valid repository/tag: invalid reference format: '
                            "repository name must be lowercase"),
    ("Bad:Name", "x", '"Bad:Name" is not a valid repository/tag: invalid reference format: '
                      "repository name must be lowercase"),
    ("busybox", "a:b:c", '"a:b:c" is not a valid repository/tag: invalid reference format'),
    ("busybox", "a\n", '"a\\n" is not a valid repository/tag: invalid reference format'),
    ("busybox", "0" * 64, f'"{"0" * 64}" is not a valid repository/tag: invalid repository name '
                          f"({'0' * 64}), cannot specify 64-byte hexadecimal strings"),
])
def test_reference_tag_says_which_name_does_not_parse_as_docker(source, target, words):
    """docker's client: `Error parsing reference: "X" is not a valid repository/tag: <why>`
    (Go's %q quoting), for either name, before the image is looked up."""
    with pytest.raises(InvalidReference) as refused:
        reference.tag_names(source, target)
    assert str(refused.value).startswith("Error parsing reference: " + words), str(refused.value)


def test_reference_tag_takes_an_image_id_as_source_and_refuses_a_digest_target_unprefixed():
    assert reference.tag_names("0" * 64, "x") == "x:latest"
    assert reference.tag_names("sha256:" + "0" * 64, "x:1") == "x:1"
    with pytest.raises(InvalidReference, match="^refusing to create a tag with a digest reference$"):
        reference.tag_names("busybox", "x@sha256:" + "0" * 64)


def test_reference_familiar_name():
    assert str(reference.parse("docker.io/library/busybox")) == "busybox:latest"
    assert str(reference.parse("localhost:5000/app")) == "localhost:5000/app:latest"


@pytest.mark.parametrize("bad", ["", "UPPER", "a//b", "-lead", "name:", "name:-bad", "a b", "busybox\n",
                                 "a" * 256, "example.com/" + "a" * 244 + ":tag", "a" * 2000])
def test_reference_rejects_invalid(bad):
    with pytest.raises(InvalidReference, match="invalid reference format|repository name must not be more"):
        reference.parse(bad)


def test_process_spec_merges_image_defaults_and_flags():
    image = {"config": {"Entrypoint": ["/bin/tini"], "Cmd": ["sh"], "Env": ["PATH=/bin", "A=1"],
                        "WorkingDir": "/srv"}}
    spec = process_spec(ContainerConfig("x", command=["echo", "hi"], env=["A=2", "B=3"]), image)
    assert spec.args == ["/bin/tini", "echo", "hi"]
    assert spec.env == {"PATH": "/bin", "A": "2", "B": "3"}
    assert spec.cwd == "/srv"
    spec = process_spec(ContainerConfig("x", workdir="/tmp"), {"config": {"Cmd": ["sh"]}})
    assert spec.args == ["sh"] and spec.cwd == "/tmp" and "PATH" in spec.env
    with pytest.raises(ValueError, match="no command"):
        process_spec(ContainerConfig("x"), {"config": {}})


@pytest.mark.parametrize("config, image, want", [
    (ContainerConfig("x", workdir="srv"), {"Cmd": ["sh"]}, "the working directory 'srv' is invalid"),
    (ContainerConfig("x"), {"Cmd": ["sh"], "WorkingDir": "srv"}, "the working directory 'srv' is invalid"),
    (ContainerConfig("x", env=["=x"]), {"Cmd": ["sh"]}, "invalid environment variable: =x"),
    (ContainerConfig("x"), {"Cmd": ["sh"], "Env": ["=1"]}, "invalid environment variable: =1"),
    (ContainerConfig("x"), {"Cmd": ["sh", "a\0b"]}, "a NUL byte"),
    (ContainerConfig("x"), {"Cmd": ["sh"], "Env": ["A=\0"]}, "a NUL byte"),
    (ContainerConfig("x"), {"Cmd": ["sh"], "User": "r\0t"}, "a NUL byte"),
])
def test_process_spec_refuses_what_execve_and_chdir_would(config, image, want):
    """From the flags or from a hostile image: refused before anything is made, not in the child."""
    with pytest.raises(ValueError, match=want):
        process_spec(config, {"config": image})


def _status(action: str, value: int) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            if action == "kill":
                if value != signal.SIGKILL:
                    signal.signal(value, signal.SIG_DFL)
                os.kill(os.getpid(), value)
        finally:
            os._exit(value)
    return os.waitpid(pid, 0)[1]


@pytest.mark.parametrize("code", [0, 1, 7, 255])
def test_exit_code_of_an_exit(code):
    assert process.exit_code(_status("exit", code)) == code


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_exit_code_of_a_signal_is_128_plus_n(sig):
    assert process.exit_code(_status("kill", sig)) == 128 + sig


def test_exec_error_codes():
    assert process.exec_error_code(errno.ENOENT) == 127
    assert process.exec_error_code(errno.EACCES) == 126


def test_find_executable_searches_path_inside_root(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "tool").write_text("not executable")
    (tmp_path / "b" / "tool").write_text("#!/bin/sh\n")
    (tmp_path / "b" / "tool").chmod(0o755)
    assert process.find_executable("tool", "/a:/b", str(tmp_path)) == str(tmp_path / "b" / "tool")
    assert process.find_executable("/b/tool", "", str(tmp_path)) == str(tmp_path / "b" / "tool")
    with pytest.raises(FileNotFoundError):
        process.find_executable("nope", "/a:/b", str(tmp_path))


def test_forward_signals_restores_handlers():
    before = signal.getsignal(signal.SIGTERM)
    with process.forward_signals(os.getpid() + 10**6):
        assert signal.getsignal(signal.SIGTERM) != before
    assert signal.getsignal(signal.SIGTERM) == before


# --- mini doctor: what chapters 01-05 need is required now, not "later" (issue 10) ----------

def test_doctor_requires_now_what_chapters_01_to_05_use():
    from mini_runtime import doctor

    later = {check.name: check.later for check in doctor.checks() if check.later}
    assert later == {"user namespaces": "chapter 08", "nftables": "chapter 07"}


def test_doctor_fails_a_machine_without_overlayfs(tmp_path, capsys):
    from mini_runtime import doctor

    (tmp_path / "filesystems").write_text("nodev\tsysfs\nnodev\tproc\n\text4\n")
    check = doctor.check_overlayfs(tmp_path / "filesystems", tmp_path / "modules")
    assert not check.ok and not check.later
    assert doctor.main([check]) == 1
    assert capsys.readouterr().out.startswith("✗ overlayfs")
    (tmp_path / "filesystems").write_text("nodev\tproc\nnodev\toverlay\n")
    assert doctor.check_overlayfs(tmp_path / "filesystems", tmp_path / "modules").ok


def test_doctor_fails_a_machine_without_the_cgroup_controllers(tmp_path, capsys):
    from mini_runtime import doctor

    proc_cgroups = tmp_path / "cgroups"
    proc_cgroups.write_text("#subsys_name\thierarchy\tnum_cgroups\tenabled\n"
                            "cpu\t2\t1\t1\nmemory\t3\t1\t1\npids\t4\t1\t1\n")
    (tmp_path / "v1" / "cpu").mkdir(parents=True)
    (tmp_path / "v1" / "memory").mkdir()   # pids: enabled in the kernel, but mounted nowhere
    check = doctor.check_cgroups(tmp_path / "v1", proc_cgroups)
    assert not check.ok and not check.later and "pids" in check.fix
    assert doctor.main([check]) == 1
    assert capsys.readouterr().out.startswith("✗ cgroups")
    (tmp_path / "v2").mkdir()
    (tmp_path / "v2" / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    assert doctor.check_cgroups(tmp_path / "v2", proc_cgroups).ok
    (tmp_path / "v2" / "cgroup.controllers").write_text("cpu io\n")
    assert not doctor.check_cgroups(tmp_path / "v2", proc_cgroups).ok


def test_doctor_fails_a_machine_without_a_namespace(tmp_path, capsys):
    from mini_runtime import doctor

    for kind in ("mnt", "uts", "ipc", "pid"):
        (tmp_path / kind).touch()
    check = doctor.check_namespaces(tmp_path)
    assert not check.ok and not check.later and check.detail == "missing: net cgroup"
    assert doctor.main([check]) == 1
    assert capsys.readouterr().out.startswith("✗ namespaces")
    assert doctor.check_namespaces().ok


# --- chapter 07: -p, /etc files, subnets (no kernel needed) --------------------------------------

from mini_runtime.network import etcfiles, ipam, ports  # noqa: E402
from mini_runtime.errors import Conflict, InvalidParameter, Unavailable  # noqa: E402

B = ports.PortBinding


@pytest.mark.parametrize("spec, want", [
    ("80", [B("", 0, 80, "tcp")]),
    ("8080:80", [B("", 8080, 80, "tcp")]),
    ("127.0.0.1:8080:80", [B("127.0.0.1", 8080, 80, "tcp")]),
    ("127.0.0.1::80", [B("127.0.0.1", 0, 80, "tcp")]),
    ("53:53/udp", [B("", 53, 53, "udp")]),
    ("80/TCP", [B("", 0, 80, "tcp")]),
    ("8000-8001:80-81", [B("", 8000, 80, "tcp"), B("", 8001, 81, "tcp")]),
    ("80-81/udp", [B("", 0, 80, "udp"), B("", 0, 81, "udp")]),
    ("0:80", [B("", 0, 80, "tcp")]),                                  # docker's: any free port
    ("8088-8089:80", [B("", 8088, 80, "tcp", 8089)]),                 # the first free of the range
    ("127.0.0.1:8088-8090:80/udp", [B("127.0.0.1", 8088, 80, "udp", 8090)]),
    ("0-2:80", [B("", 0, 80, "tcp", 2)]),                            # taken; publishing refuses it
    ("0", [B("", 0, 0, "tcp")]), ("80:0", [B("", 80, 0, "tcp")]),     # (as docker's client: hold)
    ("1-2-3:80", [B("", 1, 80, "tcp", 2)]),                          # Go reads two parts of a range
    ("80:80/tcp/udp", [B("", 80, 80, "tcp")]),                       # and the first protocol
    ("[1.2.3.4]:80:80", [B("1.2.3.4", 80, 80, "tcp")]), ("0080:080", [B("", 80, 80, "tcp")]),
])
def test_port_specs_parse_like_docker(spec, want):
    assert ports.parse(spec) == want


@pytest.mark.parametrize("spec, message", [
    ("abc", "Invalid containerPort: abc"), ("70000:80", "Invalid hostPort: 70000"),
    ("80/sctpx", "Invalid proto: sctpx"), ("8080:", "No port specified"),
    ("1.2.3:80:80", "Invalid ip address: 1.2.3"), ("8000-8002:80-81", "Invalid ranges"),
    ("1:2:3:4", "Invalid ip address 1:2: address 1:2:: too many colons in address"),
    ("8080:80-81", "Invalid ranges"), ("80/sctp", "sctp ports: mini publishes tcp and udp only"),
])
def test_bad_port_specs_say_what_is_wrong(spec, message):
    with pytest.raises(InvalidParameter, match=message):
        ports.parse(spec)


@pytest.mark.parametrize("spec, message", [
    ("8000-8002:80-81", "Invalid ranges specified for container and host Ports: 80-81 and 8000-8002"),
    ("8080:80-81/udp", "Invalid ranges specified for container and host Ports: 80-81 and 8080"),
    (" 80", "Invalid containerPort:  80"), ("+80", "Invalid containerPort: +80"),
    ("8_0", "Invalid containerPort: 8_0"), ("\u0668\u0660", "Invalid containerPort: \u0668\u0660"),
    ("80-:80", "Invalid hostPort: 80-"), ("80:80-", "Invalid containerPort: 80-"),
    ("80:0-2", "Invalid ranges specified for container and host Ports: 0-2 and 80"),
    ("1.2.3.4:80:80:80", "Invalid ip address 1.2.3.4:80: address 1.2.3.4:80:: too many colons in address"),
    ("8080:80-81/foo", "Invalid ranges specified for container and host Ports: 80-81 and 8080"),
])
def test_bad_port_specs_in_dockers_words(spec, message):
    """docker's exact words (nat.ParsePortSpec), and its strconv's digits only: Python's int()
    took " 80", "+80", "8_0" (as 80, 80 and 80) and Arabic-Indic digits."""
    with pytest.raises(InvalidParameter) as refused:
        ports.parse(spec)
    assert str(refused.value) == message



DOCKER = "/usr/bin/docker"


@pytest.mark.skipif(not os.access(DOCKER, os.X_OK), reason="needs docker's CLI (provision.sh --test installs docker.io)")
@pytest.mark.parametrize("spec", ["abc", "80:abc", "99999", "70000:80", "80-:80", "80:80-", " 80", "8_0",
                                  "80/xyz", "8000-8002:80-81", "8080:80-81/udp", "8080:", "1.2.3:80:80",
                                  "80:0-2", "1.2.3.4:80:80:80", "8080:80-81/foo"])
def test_bad_port_specs_match_the_docker_20_10_oracle(spec):
    """The reference peer's own words, read from its CLI with no daemon: docker 20.10 parses -p
    before it dials, with go-connections' older messages ("Invalid containerPort", capital I;
    newer releases write "invalid"). docker prints "docker: MESSAGE.", mini "mini: MESSAGE"."""
    import subprocess
    oracle = subprocess.run([DOCKER, "run", "-p", spec, "busybox", "true"], capture_output=True, text=True,
                            env={"DOCKER_HOST": "unix:///nonexistent", "PATH": os.environ["PATH"]}, timeout=30)
    first = oracle.stderr.splitlines()[0]
    assert first.startswith("docker: ") and oracle.returncode == 125, oracle.stderr
    with pytest.raises(InvalidParameter) as refused:
        ports.parse(spec)
    assert str(refused.value) == first.removeprefix("docker: ").removesuffix(".")


@pytest.mark.skipif(not os.access(DOCKER, os.X_OK), reason="needs docker's CLI (provision.sh --test installs docker.io)")
@pytest.mark.parametrize("spec", ["0-2:80", "0", "80:0", "0-1:0-1", "1-2-3:80", "80-81-82", "80:80/tcp/udp",
                                  "[1.2.3.4]:80:80", "1.2.3.4:0-2:80", "0080:080", "::80"])
def test_port_specs_the_docker_20_10_oracle_takes_parse(spec):
    """What docker's client takes (it goes on to dial the daemon), mini's parse takes too; what
    cannot be published (a host range from 0, container port 0) is refused by hold, at start."""
    import subprocess
    oracle = subprocess.run([DOCKER, "create", "-p", spec, "busybox"], capture_output=True, text=True,
                            env={"DOCKER_HOST": "unix:///nonexistent", "PATH": os.environ["PATH"]}, timeout=30)
    assert oracle.stderr.startswith("Cannot connect to the Docker daemon"), oracle.stderr
    assert ports.parse(spec)


@pytest.mark.parametrize("binding, words", [
    (B("", 0, 80, "tcp", 2), "invalid port range: 0-2"),
    (B("", 0, 0, "tcp"), "invalid container port 0 in 0/tcp: "),
    (B("", 8080, 0, "udp"), "invalid container port 0 in 0/udp: "),
])
def test_what_cannot_be_published_is_refused_before_any_port_is_held(binding, words):
    """docker's port allocator refuses a range from 0 at start ("invalid port range: 0-2"); a
    container port 0 is none a program can listen on."""
    with pytest.raises(InvalidParameter) as refused:
        ports.hold([B("127.0.0.1", 0, 80, "tcp"), binding])
    assert str(refused.value).startswith(words)

@pytest.mark.parametrize("subnet, reserved", [
    ("127.0.0.0/8", "127.0.0.0/8"), ("127.3.0.0/24", "127.0.0.0/8"), ("224.0.0.0/24", "224.0.0.0/4"),
    ("239.1.0.0/16", "224.0.0.0/4"), ("0.0.0.0/8", "0.0.0.0/8"), ("0.0.0.0/0", "0.0.0.0/8"),
    ("192.0.0.0/2", "224.0.0.0/4"), ("96.0.0.0/3", "127.0.0.0/8"),
])
def test_a_subnet_that_cannot_carry_containers_is_refused(subnet, reserved):
    with pytest.raises(InvalidParameter, match=f"^invalid subnet {subnet}: it overlaps {reserved}, "):
        ipam.check_usable(ipam.parse_subnet(subnet))


@pytest.mark.parametrize("gateway, message", [
    ("10.1.0.1", "no matching subnet for gateway 10.1.0.1"), ("foo", "no matching subnet for gateway foo"),
    ("10.0.0.0", "invalid gateway 10.0.0.0: the network address of 10.0.0.0/24 is no host's"),
    ("10.0.0.255", "invalid gateway 10.0.0.255: the broadcast address of 10.0.0.0/24 is no host's"),
])
def test_a_gateway_must_be_a_host_of_the_subnet(gateway, message):
    with pytest.raises(InvalidParameter, match=f"^{message}"):
        ipam.check_gateway(ipam.parse_subnet("10.0.0.0/24"), gateway)


@pytest.mark.parametrize("ip_range, message", [
    ("10.1.0.0/25", "no matching subnet for range 10.1.0.0/25"), ("10.0.0.0/23", "no matching subnet for range"),
    ("foo", "no matching subnet for range foo"), ("10.0.0.1/25", "invalid ip-range '10.0.0.1/25': .* host bits"),
    ("10.0.0.254/31", "invalid ip-range 10.0.0.254/31: no address in it for a container"),
])
def test_an_ip_range_must_be_inside_the_subnet_with_room_for_a_container(ip_range, message):
    with pytest.raises(InvalidParameter, match=f"^{message}"):
        ipam.check_range(ipam.parse_subnet("10.0.0.0/24"), ipam.Address("10.0.0.254"), ip_range)


def test_a_pool_with_a_gateway_and_a_range_hands_out_only_the_range(tmp_path, monkeypatch):
    monkeypatch.setenv("MINI_ROOT", str(tmp_path))
    subnet = ipam.parse_subnet("10.0.0.0/24")
    pool = ipam.Pool("minitest", subnet, ipam.Address("10.0.0.254"), ipam.Network("10.0.0.252/30"))
    assert [str(pool.allocate(o)) for o in "ab"] == ["10.0.0.252", "10.0.0.253"]   # not .254, .255
    with pytest.raises(Unavailable, match=r"address pools: minitest \(10.0.0.252/30\)"):
        pool.allocate("c")
    assert str(ipam.Pool("minitest2", subnet, ipam.Address("10.0.0.2")).allocate("a")) == "10.0.0.1"


def test_an_ipv6_subnet_says_networks_are_ipv4_only():
    with pytest.raises(InvalidParameter, match="^invalid subnet 'fd00::/64': mini's networks are IPv4-only"):
        ipam.parse_subnet("fd00::/64")


@pytest.mark.parametrize("subnet", ["10.0.0.0/30", "192.168.7.0/24", "172.16.0.0/12", "169.254.0.0/16",
                                    "198.51.100.0/24", "100.64.0.0/10", "240.0.0.0/24", "255.255.255.0/24"])
def test_a_subnet_that_can_carry_containers_is_usable(subnet):
    assert str(ipam.check_usable(ipam.parse_subnet(subnet))) == subnet


def test_publish_all_adds_the_exposed_ports_not_published_yet():
    got = ports.parse_all(["8080:80"], publish_all=True, exposed={"443/tcp": {}, "80/tcp": {}, "53/udp": {}})
    assert got == [B("", 8080, 80, "tcp"), B("", 0, 53, "udp"), B("", 0, 443, "tcp")]


def test_publish_all_refuses_an_exposed_sctp_port_clearly():
    with pytest.raises(InvalidParameter, match="sctp ports: mini publishes tcp and udp only"):
        ports.parse_all([], publish_all=True, exposed={"80/tcp": {}, "9899/sctp": {}})


def test_a_host_port_range_holds_its_first_free_port_and_records_the_range():
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    port = busy.getsockname()[1]
    try:
        held = ports.hold([B("127.0.0.1", port, 80, "tcp", port + 1)])
        try:
            assert [h.binding for h in held] == [B("127.0.0.1", port + 1, 80, "tcp")]
        finally:
            ports.release(held)
        with pytest.raises(Conflict, match=f"no free host port for 80/tcp in {port}-{port}"):
            ports.hold([B("127.0.0.1", port, 80, "tcp", port)])
    finally:
        busy.close()
    assert ports.port_bindings([B("", 8088, 80, "tcp", 8089)]) == {"80/tcp": [{"HostIp": "", "HostPort": "8088-8089"}]}


@pytest.mark.parametrize("key, message", [
    ("notaport", 'invalid port specification: "notaport"'), ("0/tcp", 'invalid port specification: "0"'),
    ("70000", 'invalid port specification: "70000"'), ("٣/tcp", 'invalid port specification: "٣"'),
    ("80/bogus", "invalid proto: 'bogus'"),
])
def test_publish_all_refuses_an_exposed_port_that_is_no_port(key, message):
    """An image's ExposedPorts are a stranger's: "notaport" gave a ValueError traceback."""
    with pytest.raises(InvalidParameter, match=f"^{message} "):
        ports.parse_all([], publish_all=True, exposed={"80/tcp": {}, key: {}})
    assert ports.parse_all([], publish_all=True, exposed={"80": {}, "80/tcp": {}}) == [B("", 0, 80, "tcp")]
    assert ports.parse_all([], publish_all=True, exposed={"81/UDP": {}}) == [B("", 0, 81, "udp")]  # (docker's
                                                                                # ParseProtocol: any case)


def test_port_views_have_the_engine_api_shape():
    bound = [B("", 32768, 80, "tcp")]
    assert ports.settings(bound, ["443/tcp"]) == {"443/tcp": None,
                                                  "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "32768"}]}
    assert ports.port_bindings([B("", 0, 80, "tcp")]) == {"80/tcp": [{"HostIp": "", "HostPort": ""}]}


def test_local_port_range_is_read_from_the_file(tmp_path):
    source = tmp_path / "range"
    source.write_text("40000\t40010\n")
    assert ports.local_port_range(source) == (40000, 40010)


def test_hosts_file_is_dockers():
    assert etcfiles.hosts("abc", "172.29.0.2", [("172.29.0.3", "web www")]) == (
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
        "ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
        "172.29.0.2\tabc\n172.29.0.3\tweb www\n")


@pytest.mark.parametrize("host, kept, gone", [
    ("nameserver 127.0.0.53\noptions edns0\n", ["nameserver 8.8.8.8", "nameserver 8.8.4.4", "options edns0"],
     ["127.0.0.53"]),
    ("nameserver 10.0.0.2\nnameserver ::1\nnameserver fd00::1\nsearch lan\n", ["nameserver 10.0.0.2", "search lan"],
     ["::1", "fd00::1", "8.8.8.8"]),
    ("", ["nameserver 8.8.8.8"], []),
])
def test_resolv_conf_drops_loopback_nameservers(host, kept, gone):
    text = etcfiles.resolv_conf(host)
    lines = text.splitlines()
    assert all(k in lines for k in kept) and not any(g in text for g in gone)


def test_resolv_conf_overrides_and_host_network():
    text = etcfiles.resolv_conf("nameserver 127.0.0.53\nsearch lan\n", dns=["192.0.2.53"], search=["corp"])
    assert "nameserver 192.0.2.53" in text and "search corp" in text and "search lan" not in text
    assert "nameserver 127.0.0.53" in etcfiles.resolv_conf("nameserver 127.0.0.53\n", own_network=False)


def test_resolved_stub_hosts_use_the_upstream_list(tmp_path):
    stub, upstream = tmp_path / "resolv.conf", tmp_path / "upstream.conf"
    stub.write_text("nameserver 127.0.0.53\n")
    assert etcfiles.host_resolv_source(stub, upstream) == stub          # no upstream file
    upstream.write_text("nameserver 192.0.2.1\n")
    assert etcfiles.host_resolv_source(stub, upstream) == upstream
    stub.write_text("nameserver 192.0.2.9\n")
    assert etcfiles.host_resolv_source(stub, upstream) == stub


def test_subnet_overlap_rules():
    subnet = ipam.parse_subnet("172.29.0.0/16")
    ipam.check_no_overlap(subnet, [("0.0.0.0/0", "eth0"), ("192.0.2.0/24", "eth0"), ("172.29.0.0/16", "mini0")],
                          own_device="mini0")
    for route in ("172.29.4.0/24", "172.16.0.0/12", "172.29.9.9/32"):
        with pytest.raises(Conflict, match=f"overlaps the route {route}"):
            ipam.check_no_overlap(subnet, [(route, "eth1")])
    assert str(ipam.pick_subnet([ipam.parse_subnet("172.30.0.0/24")], [("172.30.1.0/24", "x")])) == "172.30.2.0/24"
    with pytest.raises(InvalidParameter):
        ipam.parse_subnet("172.29.0.1/16")


def test_an_endpoint_survives_the_container_record():
    from pathlib import Path

    from mini_runtime import network
    endpoint = network.Endpoint("c" * 64, "bridge", "/run/mini/netns/x", "mini0", "172.29.0.2", 16,
                                "172.29.0.1", "02:42:ac:1d:00:02", (B("", 8080, 80, "tcp"),),
                                etcfiles.EtcFiles(Path("/h"), Path("/n"), Path("/r")), "id")
    assert network.Endpoint.from_record(json.loads(json.dumps(endpoint.record()))) == endpoint
    shown = network.settings(endpoint, ["443/tcp"])
    assert shown["Networks"]["bridge"]["IPAddress"] == shown["IPAddress"] == "172.29.0.2"
    assert shown["Ports"] == {"443/tcp": None, "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}


def test_rtnetlink_attributes_are_padded_to_four_bytes_and_read_back_nested():
    """rtattr: length (without the padding), type, value; a nested value is attributes again."""
    from mini_runtime.network import rtnetlink as rt
    name = rt.attr(rt.IFLA_IFNAME, "eth0")                    # 4 + "eth0\0" = 9, padded to 12
    assert name == b"\x09\x00\x03\x00eth0\x00\x00\x00\x00"
    assert rt.attr(rt.IFLA_MASTER, 5) == b"\x08\x00\x0a\x00\x05\x00\x00\x00"
    info = rt.attr(rt.IFLA_LINKINFO | 0x8000, rt.attr(rt.IFLA_INFO_KIND, "veth"))  # NLA_F_NESTED
    found = rt.parse_attrs(name + info + rt.attr(rt.IFLA_MASTER, 5))
    assert rt.text(found[rt.IFLA_IFNAME]) == "eth0" and rt.u32(found[rt.IFLA_MASTER]) == 5
    assert rt.text(rt.parse_attrs(found[rt.IFLA_LINKINFO])[rt.IFLA_INFO_KIND]) == "veth"
    assert rt.parse_attrs(b"\x02\x00\x03\x00") == {}     # a length below the header's: stop
    assert rt.text(b"caf\xe9\0junk") == "caf\ufffd"           # a name that is not UTF-8: shown, no crash
    by_name = rt.ifinfo("mini0", up=True)                     # index 0 and the name: the kernel looks it up
    assert rt.IFINFO.unpack_from(by_name)[2:] == (0, rt.IFF_UP, rt.IFF_UP) and by_name.endswith(b"mini0\0\0\0")
    assert rt.IFINFO.unpack_from(rt.ifinfo(7))[2:] == (7, 0, 0)  # up=None: the flag left alone


def test_rtnetlink_a_reply_shorter_than_its_header_is_an_error_not_a_loop():
    """A length below 16 would never move the reader on: refused with EBADMSG."""
    import socket as sockets

    from mini_runtime.network import rtnetlink as rt
    nl = rt.Netlink.__new__(rt.Netlink)
    nl.seq, (nl.sock, kernel) = 0, sockets.socketpair(sockets.AF_UNIX, sockets.SOCK_DGRAM)
    try:
        kernel.send(rt.HEADER.pack(0, rt.NLMSG_ERROR, 0, 7, 0) + bytes(4))  # (another request's)
        with pytest.raises(rt.NetlinkError) as refused:
            nl.exchange(rt.RTM_GETLINK, 0, rt.ifinfo("lo"))
        assert refused.value.errno == errno.EBADMSG
        assert kernel.recv(100)[4:6] == rt.RTM_GETLINK.to_bytes(2, "little")  # the request went out
    finally:
        nl.close()
        kernel.close()


def test_close_other_fds_keeps_only_what_it_is_told() -> None:
    """In a forked child: every fd but the kept ones is closed, also one above 1024 (the old
    /proc-less fallback's limit) and one between two kept fds."""
    from mini_runtime import syscalls

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            opened = [os.open("/dev/null", os.O_RDONLY) for _ in range(6)]
            high = os.dup2(opened[0], 1500)
            keep = (0, 1, 2, write_end, opened[2], opened[4])
            syscalls.close_other_fds(keep)
            left = [fd for fd in [*opened, high, read_end] if _is_open(fd)]
            os.write(write_end, json.dumps([left, [opened[2], opened[4]]]).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        left, expected = json.loads(f.read())
    os.waitpid(pid, 0)
    assert left == expected


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


@pytest.mark.root  # (it mounts a tmpfs)
def test_remove_tree_goes_deep_and_never_out(tmp_path) -> None:
    """`paths.remove_tree`: a tree deeper than Python's recursion limit goes, a symlink goes
    without its target, and a file system mounted inside is not emptied (it stays, busy)."""
    import subprocess

    from mini_runtime import paths

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("host data")
    tree = tmp_path / "tree"
    here = tree
    for _ in range(1200):
        here.mkdir(parents=True)
        (here / "file").write_text("x")
        (here / "link").symlink_to(outside)
        (here / "dirlink").symlink_to(outside, target_is_directory=True)
        here = here / "d"
    try:
        paths.remove_tree(tree)
        assert not tree.exists() and (outside / "keep").read_text() == "host data"
    finally:  # (if it failed, pytest's own clean-up, shutil.rmtree, would recurse too deep)
        subprocess.run(["rm", "-rf", "--one-file-system", str(tree)], check=True)
    mounted = tmp_path / "tree2" / "a" / "mnt"
    mounted.mkdir(parents=True)
    (tmp_path / "tree2" / "a" / "b").mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "minitest", str(mounted)], check=True)
    try:
        (mounted / "inside").write_text("on tmpfs")
        paths.remove_tree(tmp_path / "tree2")
        assert (mounted / "inside").read_text() == "on tmpfs"
        assert sorted(p.name for p in (tmp_path / "tree2" / "a").iterdir()) == ["mnt"]
        with pytest.raises(OSError):
            paths.remove_at(None, str(tmp_path / "tree2"))       # strict: says what it left
    finally:
        subprocess.run(["umount", str(mounted)], check=True)
    paths.remove_at(None, str(tmp_path / "tree2"))
    assert not (tmp_path / "tree2").exists()
    paths.remove_at(None, str(tmp_path / "nothing"))              # rm -rf of nothing: fine


def test_go_zero_time_is_read_as_never() -> None:
    """ZERO_NS (by arithmetic) is what go_parse reads in Go's zero time, which inspect shows for
    "never" (FinishedAt of a container that has not ended): rfc3339_ns gives None for it."""
    assert units.ZERO_NS == units.go_parse(units.ZERO_TIME, units.RFC3339, None)
    assert units.rfc3339_ns(units.ZERO_TIME) is None and units.parse_rfc3339(units.ZERO_TIME) is None
    assert units.rfc3339_ns("0001-01-01T00:00:01Z") == units.ZERO_NS + 10**9


_PASSWD = ("root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\nevil:x:abc:0::/:/bin/sh\n"
           "big:x:99999999999:0::/:/bin/sh\n")
_GROUP = "root:x:0:\nnogroup:x:65534:\nwheel:x:10:nobody\nbad:x:zz:nobody\n"


@pytest.mark.parametrize("spec, want", [
    ("root", (0, 0, [0])), ("", (0, 0, [0])), ("nobody", (65534, 65534, [10, 65534])),
    ("1000", (1000, 0, [0])), ("1000:1000", (1000, 1000, [1000])), ("nobody:wheel", (65534, 10, [10])),
    ("evil", "unable to find user evil"), ("²", "unable to find user ²"), ("1:²", "unable to find group ²"),
    ("big", "uids and gids must be in range 0-2147483647"), ("4294967296", "must be in range"),
    ("1:99999999999", "must be in range"),
])
def test_users_resolve_takes_only_plain_numbers_in_runcs_range(monkeypatch, spec, want):
    """An image's /etc/passwd may hold anything, and -u anything: a uid is ASCII digits up to
    2**31-1 (runc's words beyond), an entry with another uid field is no entry ('²'.isdigit())."""
    from mini_runtime import users
    monkeypatch.setattr(users, "_entries", lambda path: [line.split(":") for line in
                                                         (_PASSWD if path.endswith("passwd") else _GROUP).splitlines()])
    if isinstance(want, tuple):
        assert users.resolve(spec)[:3] == want
    else:
        with pytest.raises(LookupError, match=want):
            users.resolve(spec)


def test_users_resolve_gives_the_home_that_becomes_HOME(monkeypatch):
    """runc's: the entry's home directory; a bare uid (no entry) has `/`."""
    from mini_runtime import users
    monkeypatch.setattr(users, "_entries", lambda path: [line.split(":") for line in
                                                         (_PASSWD if path.endswith("passwd") else _GROUP).splitlines()])
    assert [users.resolve(spec)[3] for spec in ("", "root", "0:10", "nobody", "1000", "1000:1000")] == \
        ["/root", "/root", "/root", "/", "/", "/"]


def test_etc_files_are_parsed_and_bounded(tmp_path):
    """The container's /etc/passwd and /etc/group: a regular file of at most 16 MiB, no line
    over 64 KiB (runc's), or one clear error (the /dev/zero and FIFO cases: test_images)."""
    from mini_runtime import users

    good = tmp_path / "passwd"
    good.write_bytes(b"# comment\nroot:x:0:0:root:/root:/bin/sh\n\nnobody:x:65534:65534::/:/bin/false\n")
    assert [e[0] for e in users._entries(str(good))] == ["root", "nobody"]
    assert users._entries(str(tmp_path / "missing")) == []
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    assert users._entries(str(tmp_path / "dangling")) == []
    huge = tmp_path / "huge"
    with open(huge, "wb") as f:
        f.truncate(users.MAX_FILE + 1)                 # (sparse: nothing is written)
    long = tmp_path / "long"
    long.write_bytes(b"root:x:0:0:" + b"x" * users.MAX_LINE + b"\n")
    for path, words in ((huge, "is larger than 16 MiB"), (long, "has a line longer than 64 KiB"),
                        (tmp_path, "is not a regular file")):
        with pytest.raises(LookupError, match=f"^{path} {words}$"):
            users._entries(str(path))


@pytest.mark.parametrize("pattern, name, expected", [
    ("busybox", "busybox", True), ("busy*", "busybox", True), ("*", "me/app", False),
    ("*/*", "me/app", True), ("b?sybox", "busybox", True), ("me?app", "me/app", False),
    ("[a-c]usybox", "busybox", True), ("[^a-c]usybox", "busybox", False), ("x\\*", "x*", True),
    ("x\\*", "xy", False), ("a-b", "a-b", True), ("[-a]", "-", True), ("mini.*", "minix", False),
])
def test_reference_patterns_are_go_path_match(pattern, name, expected):
    """`images --filter reference=`: Go's path.Match (its `*` stops at `/`), not fnmatch."""
    from mini_runtime.filters import path_match

    assert path_match(pattern, name) is expected


@pytest.mark.parametrize("pattern", ["[", "[a", "x\\", "[z-a]", "[\\]"])
def test_a_bad_reference_pattern_is_docker_s_error(pattern):
    from mini_runtime.errors import InvalidParameter
    from mini_runtime.filters import path_match

    with pytest.raises(InvalidParameter, match="^syntax error in pattern$"):
        path_match(pattern, "x")


def test_label_filters_need_every_label():
    from mini_runtime.filters import labels_match

    labels = {"app": "web", "tier": ""}
    assert labels_match({}, None) and labels_match({"label": ["app", "tier="]}, labels)
    assert not labels_match({"label": ["app=web", "team"]}, labels)
    assert not labels_match({"label": ["app=db"]}, labels) and not labels_match({"label": ["app"]}, None)


# --- image/shellwords.py and image/changes.py (docker's own answers: test_peers) -------------------

def test_dockerfile_words_split_only_where_whitespace_is_not_quoted():
    from mini_runtime.image.shellwords import split_raw, word, words

    env = ["PORTS=80 443", "EMPTY="]
    assert words('$PORTS "a b" \'\' c', env) == ["80", "443", "a b", "", "c"]
    assert word('$PORTS "a b"', env) == "80 443 a b"
    assert word("${EMPTY:-d}|${EMPTY:+x}|${PORTS:+set}|$|a\\", env) == "d||set|$|a"
    assert split_raw('a="x y" b=\'1 2\' c=\\ d') == ['a="x y"', "b='1 2'", "c=\\ d"]
    with pytest.raises(InvalidParameter, match=r'failed to process "\$\{EMPTY:\?\}": EMPTY: '):
        word("${EMPTY:?}", env)


def test_changes_apply_all_or_nothing_and_workdir_is_cleaned():
    from mini_runtime.image import changes

    config = {"Env": ["A=1"], "WorkingDir": "/srv"}
    with pytest.raises(InvalidParameter, match="USER requires exactly one argument"):
        changes.apply(config, ["ENV B=2", "USER"])
    assert config == {"Env": ["A=1"], "WorkingDir": "/srv"}  # untouched, and no half-applied copy
    applied = changes.apply(config, ["WORKDIR a//b/../c/.", "ENV B=$A A=2 C=$A"])
    assert applied["WorkingDir"] == "/srv/a/c"
    assert applied["Env"] == ["A=2", "B=1", "C=1"]  # each value expanded with the env before the line
    assert changes.clean("/../..//x/") == "/x"


def test_a_lone_surrogate_in_a_json_form_becomes_go_s_replacement_character():
    from mini_runtime.image import changes

    # (json.loads keeps "\ud800" as a lone surrogate, which no UTF-8 output can print)
    assert changes.apply({}, ['CMD ["\\ud800", "\\ud83d\\ude00"]'])["Cmd"] == ["\ufffd", "\U0001F600"]


@pytest.mark.parametrize("text, want", [
    ("9223372036854775807ns", (1 << 63) - 1), ("-9223372036854775808ns", -(1 << 63)),
    ("2562047h", 2562047 * 3600 * 10**9), ("1.0000000005s", 10**9),   # Go truncates the rest
])
def test_go_durations_are_exact_up_to_int64_nanoseconds(text, want):
    assert units.go_duration_ns(text) == want


@pytest.mark.parametrize("text", ["9223372036854775808ns", "2562048h", "99999999999999h", "-2562048h"])
def test_a_duration_beyond_int64_nanoseconds_is_invalid_as_in_go(text):
    """Go's time.ParseDuration refuses what overflows an int64 of nanoseconds; a HEALTHCHECK
    --interval of 99999999999999h was stored as 3.6e26 (the Engine API's Interval is an int64)."""
    from mini_runtime.image import changes

    assert units.go_duration_ns(text) is None
    with pytest.raises(InvalidParameter, match=f'^time: invalid duration "{text}"$'):
        changes.apply({}, [f"HEALTHCHECK --interval={text} CMD true"])



def test_resolve_in_root_never_leaves_the_root(tmp_path):
    """rootfs.resolve_in_root, on a directory standing for a container's root: links are
    followed as inside it (absolute from its `/`, `..` stops there), past a missing part the
    rest is kept as written, and a loop or a file in the way are docker's errors."""
    from mini_runtime import rootfs
    from mini_runtime.errors import System

    root = tmp_path / "root"
    (root / "srv" / "app").mkdir(parents=True)
    (root / "srv" / "file").write_text("x")
    for name, target in (("abs", "/srv/app"), ("rel", "srv/app"), ("up", "../../../.."),
                         ("hostetc", "../../../../etc"), ("gone", "/no/such"), ("loop", "loop")):
        (root / name).symlink_to(target)
    for path, want in (("/abs", "/srv/app"), ("/rel/x", "/srv/app/x"), ("/up/up/srv", "/srv"),
                       ("/hostetc/passwd", "/etc/passwd"), ("/gone/a/../b", "/no/such/b"),
                       ("/srv/app/../../abs/..", "/srv"), ("/", "/")):
        assert rootfs.resolve_in_root(str(root), path) == want, path
    for path, words in (("/loop/x", "evalSymlinksInScope: too many links in /loop/x"),
                        ("/srv/file/x", "lstat /srv/file/x: not a directory")):
        with pytest.raises(System, match=words):
            rootfs.resolve_in_root(str(root), path)
