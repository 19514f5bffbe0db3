"""/etc/hosts, /etc/hostname and /etc/resolv.conf, written per container as docker writes them.

The files live in the container's directory on the host and are bind-mounted over the rootfs
paths, so they are never in the image, never copied up into the container's layer, and never in
`diff` or `commit`. The mount points come from a tiny "init" layer of our own (docker's
`<id>-init` layer): empty files at etc/hosts, etc/hostname, etc/resolv.conf, used as the topmost
lower directory, so the bind mounts never create anything in the upper directory and never
follow a symlink the image may have put there.

resolv.conf starts from the host's, minus loopback nameservers: 127.0.0.53 (systemd-resolved)
on the host is the *container's own* loopback inside, where nothing answers. If no nameserver
is left, docker's defaults (8.8.8.8, 8.8.4.4) are used (but --dns-search or --dns-option
without --dns keep them, as docker 20.10 does: resolv_conf). Where the host uses systemd-resolved's
stub, its upstream list (/run/systemd/resolve/resolv.conf) is the better source. The source is
a parameter: tests hand in a file of their own and never read the machine's resolver.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable
from pathlib import Path

from mini_runtime import syscalls
from mini_runtime.errors import InvalidParameter
from mini_runtime.tuples import named_tuple

#: The lines every container's /etc/hosts starts with (moby's etchosts.defaultContent).
DEFAULT_HOSTS = (("127.0.0.1", "localhost"), ("::1", "localhost ip6-localhost ip6-loopback"),
                 ("fe00::0", "ip6-localnet"), ("ff00::0", "ip6-mcastprefix"),
                 ("ff02::1", "ip6-allnodes"), ("ff02::2", "ip6-allrouters"))
DEFAULT_NAMESERVERS = ("8.8.8.8", "8.8.4.4")
DEFAULT_NAMESERVERS_IPV6 = ("2001:4860:4860::8888", "2001:4860:4860::8844")
HOST_RESOLV = Path("/etc/resolv.conf")
HOST_HOSTS = Path("/etc/hosts")
RESOLVED_UPSTREAM = Path("/run/systemd/resolve/resolv.conf")
NAMES = ("hosts", "hostname", "resolv.conf")


@named_tuple
class EtcFiles:
    """Where a container's three files are on the host (inspect's HostsPath, ...)."""
    hosts: Path
    hostname: Path
    resolv_conf: Path


# >>> hosts-file
def hosts(hostname: str, ip: str | None = None, extra: Iterable[tuple[str, str]] = ()) -> str:
    """The localhost lines, then `<ip>\\t<hostname>`, then other (ip, names) entries: the other
    containers of a user-defined network, --add-host."""
    lines = [f"{address}\t{names}" for address, names in DEFAULT_HOSTS]
    if ip:
        lines.append(f"{ip}\t{hostname}")
    lines += [f"{address}\t{names}" for address, names in extra]
    return "\n".join(lines) + "\n"
# <<< hosts-file


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


def is_address(text: str) -> bool:
    """An IPv4 or IPv6 address (with an IPv6 zone): what resolvconf takes for a nameserver."""
    try:
        ipaddress.ip_address(text.split("%")[0])
        return True
    except ValueError:
        return False


# >>> resolv-conf
#: A nameserver line for a loopback address, and one for an IPv6 address, with the line breaks
#: after it (libnetwork's resolvconf.localhostNSRegexp and nsIPv6Regexp): what is cut out.
#: (Compiled where used, not by every import: `re` caches them.)
LOOPBACK_LINE = r"(?m)^nameserver\s+((127\.([0-9]{1,3}\.){2}[0-9]{1,3})|(::1))\s*\n*"
IPV6_LINE = r"(?m)^nameserver\s+([0-9A-Fa-f]{0,4}:){2,7}([0-9A-Fa-f]{0,4})(%\w+)?\s*\n*"


def resolv_conf(text: str, dns: Iterable[str] = (), search: Iterable[str] = (),
                options: Iterable[str] = (), own_network: bool = True) -> str:
    """docker 20.10's file (libnetwork's setupDNS), two ways. Without --dns, --dns-search or
    --dns-option: the host's file as it is, minus its loopback and IPv6 nameserver lines
    (FilterResolvDNS; its comments and other lines stay where they are); if no nameserver is
    left, docker's defaults appended. With any of the three: a new file of three kinds of lines
    (resolvconf.Build), `search`, `nameserver`s, `options`, each from its flag, else from the
    host's file *unfiltered*: `--dns-search x` alone keeps a loopback nameserver (docker's
    quirk, kept: it is the reference); `--dns-search .` means no search line. With the host's
    network (`own_network=False`) and no flag, the host's file, unchanged."""
    dns, search, options = list(dns), list(search), list(options)
    if dns or search or options:
        search, options = search or resolv_words(text, "search"), options or resolv_words(text, "options")
        lines = [f"search {' '.join(search)}"] if search and " ".join(search).strip() != "." else []
        lines += [f"nameserver {n}" for n in dns or resolv_words(text, "nameserver")]
        lines += [f"options {' '.join(options)}"] if " ".join(options).strip() else []
        return "".join(line + "\n" for line in lines)
    if not own_network:
        return text
    # Two passes, as docker's: at the sandbox's creation (loopback lines out; IPv6 assumed on),
    # then when it joins a network without IPv6 (IPv6 lines out). Defaults if none is left.
    text = re.compile(LOOPBACK_LINE).sub("", text)
    if not resolv_words(text, "nameserver"):
        text += "\n" + "\n".join(f"nameserver {n}" for n in DEFAULT_NAMESERVERS + DEFAULT_NAMESERVERS_IPV6)
    text = re.compile(IPV6_LINE).sub("", text)
    if not resolv_words(text, "nameserver"):
        text += "\n" + "\n".join(f"nameserver {n}" for n in DEFAULT_NAMESERVERS)
    return text


def resolv_words(text: str, kind: str) -> list[str]:
    """What a resolv.conf says of one kind, as resolvconf reads it (comments cut, from `#` or
    `;`): every nameserver address; the words of the last `search` or `options` line."""
    found: list[str] = []
    for line in text.splitlines():
        words = line.partition("#")[0].partition(";")[0].split()
        if kind == "nameserver" and words[:1] == [kind] and len(words) == 2 and is_address(words[1]):
            found.append(words[1])
        elif kind != "nameserver" and words[:1] == [kind]:
            found = words[1:]
    return found
# <<< resolv-conf


def resolv_source() -> Path:
    """`$MINI_RESOLV_CONF` if set (the tests' own file: they never hand a container the
    machine's resolvers), else the host's (host_resolv_source)."""
    override = os.environ.get("MINI_RESOLV_CONF")
    return Path(override) if override else host_resolv_source()


def host_resolv_source(default: Path = HOST_RESOLV, upstream: Path = RESOLVED_UPSTREAM) -> Path:
    """The host file to start from: systemd-resolved's upstream list when the host's own
    file points only at the local stub, else /etc/resolv.conf."""
    try:
        servers = [line.split()[1] for line in default.read_text().splitlines()
                   if line.startswith("nameserver") and len(line.split()) > 1]
    except OSError:
        return default
    if servers and all(is_loopback(s) for s in servers) and upstream.exists():
        return upstream
    return default


def hosts_source() -> Path:
    """`$MINI_HOSTS_FILE` if set (the tests' own file), else the host's /etc/hosts."""
    return Path(os.environ.get("MINI_HOSTS_FILE") or HOST_HOSTS)


def host_hosts(extra: list[tuple[str, str]]) -> str | None:
    """With the host's network, docker's /etc/hosts is a copy of the host's (the host's name
    resolves there, as on the host), unless --add-host asks for entries: then its own."""
    if extra:
        return None
    try:
        return hosts_source().read_text()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise InvalidParameter(f"cannot read {hosts_source()}: {e.strerror}") from None


def write(directory: Path, hostname: str, ip: str | None, resolv_source: Path,
          extra: Iterable[tuple[str, str]] = (), dns: Iterable[str] = (),
          search: Iterable[str] = (), options: Iterable[str] = (), own_network: bool = True) -> EtcFiles:
    """The three files of one container, in its directory (`own_network=False`: the host's
    network, whose /etc/hosts is the host's)."""
    extra = list(extra)
    try:
        source_text = resolv_source.read_text()
    except FileNotFoundError:
        source_text = ""
    except OSError as e:
        raise InvalidParameter(f"cannot read {resolv_source}: {e.strerror}") from None
    files = EtcFiles(directory / "hosts", directory / "hostname", directory / "resolv.conf")
    directory.mkdir(parents=True, exist_ok=True)
    copied = None if own_network else host_hosts(extra)
    rewrite(files.hosts, copied if copied is not None else hosts(hostname, ip, extra))
    rewrite(files.hostname, hostname + "\n")
    rewrite(files.resolv_conf, resolv_conf(source_text, dns, search, options, own_network))
    return files


def rewrite(path: Path, content: str) -> None:
    """Replace the content *in place*: a bind mount pins the inode, so a rename (an atomic write)
    would leave the container looking at the old file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w") as f:
        f.write(content)
        f.truncate()


def init_layer(directory: Path) -> Path:
    """The container's init layer: etc/ with the three empty mount points. Use it as the
    topmost overlay lower directory."""
    layer = directory / "init"
    (layer / "etc").mkdir(parents=True, exist_ok=True)
    for name in NAMES:
        (layer / "etc" / name).touch()
    return layer


# >>> bind-etc-files
def bind(files: EtcFiles, root: str | Path) -> None:
    """In the child, after the overlay is mounted and before pivot_root: each file over its
    place in the rootfs (a regular file there, from the init layer; never a symlink)."""
    for source, name in zip(files, NAMES):
        target = Path(root) / "etc" / name
        if target.is_symlink() or not target.is_file():
            raise InvalidParameter(f"/etc/{name} in the container is not a regular file")
        syscalls.mount(str(source), str(target), None, syscalls.MS_BIND)
# <<< bind-etc-files
