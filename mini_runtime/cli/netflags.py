"""Chapter 07's flags of `run` and `create` that docker's client checks before it sends anything:
--dns, --dns-search, --dns-option, --expose, refused in its words (docker-cli's opts package and
go-connections' nat), and handed on as docker's client sends them: addresses in their canonical
form, search domains without a final dot, exposed ports as ExposedPorts keys ("80/tcp")."""

from __future__ import annotations

import re

from mini_runtime.errors import InvalidParameter, UsageError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:
    import argparse

#: docker's domainRegexp (opts/opts.go), as written there: its `(:?` groups (meant as `(?:`)
#: let a colon in, and Go's `\s` and `$` are spelled out (Python's match more). Compiled on
#: first use (re keeps it), not by every `mini run` that imports this module (~0.5 ms).
DOMAIN = (r"(:?(:?[a-zA-Z0-9]|(:?[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9]))"
          r"(:?\.(:?[a-zA-Z0-9]|(:?[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9])))*)\.?[\t\n\f\r ]*\Z")


def add_network_flags(run: argparse.ArgumentParser) -> None:
    run.add_argument("--dns", action="append", default=[], metavar="IP",
                     help="a nameserver for the container's /etc/resolv.conf (instead of the host's)")
    run.add_argument("--dns-search", action="append", default=[], metavar="DOMAIN",
                     help="a search domain for its /etc/resolv.conf ('.': none)")
    run.add_argument("--dns-option", action="append", default=[], metavar="OPTION",
                     help="a resolver option for its /etc/resolv.conf (e.g. ndots:2)")
    run.add_argument("--mac-address", metavar="MAC",
                     help="the container's eth0 MAC address (e.g. 02:42:ac:11:00:02)")
    run.add_argument("--expose", action="append", default=[], metavar="PORT[/PROTO]",
                     help="expose a port or a range of ports (7000-7002) without publishing them (-P does)")


def ip_address(text: str) -> str:
    """--dns: docker's ValidateIPAddress (Go's net.ParseIP, then its String())."""
    import ipaddress
    try:
        if "%" in text:                             # (Python takes a zone; Go's ParseIP does not)
            raise ValueError
        address = ipaddress.ip_address(text.strip(" \t\n\r\v\f"))
    except ValueError:
        raise UsageError(f'invalid argument "{text}" for "--dns" flag: {text} is not an ip address') from None
    mapped = getattr(address, "ipv4_mapped", None)  # (Go shows ::ffff:1.2.3.4 as 1.2.3.4)
    return str(mapped or address)


def search_domain(text: str) -> str:
    """--dns-search: docker's ValidateDNSSearch: "." (no search line), or a domain name."""
    value = text.strip(" ")
    if value == ".":
        return value
    found = re.match(DOMAIN, value) if re.search("[a-zA-Z]", value) else None
    if found is None or len(found[1]) >= 255:
        raise UsageError(f'invalid argument "{text}" for "--dns-search" flag: {value} is not a valid domain')
    return found[1]


def dns_options(options: list[str]) -> list[str]:
    """--dns-option: docker's client takes any text; a line break in it would add a line of the
    user's choice (a nameserver) to resolv.conf behind the flags' backs. One line each."""
    for option in options:
        if not option.isprintable():
            raise UsageError(f'invalid argument {option!r} for "--dns-option" flag: an option is one line '
                             "of printable characters")
    return options


def mac_address(text: str | None) -> str | None:
    """--mac-address: the forms Go's net.ParseMAC reads (6, 8 or 20 bytes: aa:bb:..., aa-bb-...,
    aabb.ccdd....), in docker's client's words; kept as given (inspect's Config.MacAddress).
    Whether a veth can take it (6 bytes, unicast) the network package says."""
    if not text:
        return None                                 # docker: an empty one is none
    value = text.strip(" \t\n\r\v\f")
    sep = value[2:3] if value[2:3] in (":", "-") else value[4:5]
    groups = value.split(sep) if sep in (":", "-", ".") else []
    width = 4 if sep == "." else 2
    if not (len(groups) * width // 2 in (6, 8, 20)
            and all(len(g) == width and all(c in "0123456789abcdefABCDEF" for c in g) for g in groups)):
        raise InvalidParameter(f"{text} is not a valid mac address")
    return text


def go_uint16(text: str) -> int:
    """strconv.ParseUint(text, 10, 16), its errors in its words."""
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f'strconv.ParseUint: parsing "{text}": invalid syntax')
    if int(text) > 65535:
        raise ValueError(f'strconv.ParseUint: parsing "{text}": value out of range')
    return int(text)


# >>> expose-flag
def exposed_ports(specs: list[str]) -> list[str]:
    """--expose PORT[/PROTO] or FIRST-LAST[/PROTO], as docker's client reads it: each port of
    the range an ExposedPorts key ("7000/tcp"), tcp unless said. Exposing publishes nothing; it
    says which ports the container serves on, for -P (and for whoever reads inspect). So docker
    checks only the numbers' syntax: port 0 and a protocol it does not know (`80/foo`, kept as
    written, as `80/UDP` is) are recorded; only -P would have to make something of them."""
    keys: dict[str, None] = {}
    for spec in specs:
        if ":" in spec:
            raise InvalidParameter(f"invalid port format for --expose: {spec}")
        parts = spec.split("/")
        port, proto = (parts[0], (parts[1:2] or ["tcp"])[0] or "tcp") if parts[0] else ("", "")
        try:
            if not port:
                raise ValueError("Empty string specified for ports.")
            first, dash, rest = port.partition("-")
            low, high = go_uint16(first), go_uint16(rest.split("-")[0]) if dash else go_uint16(first)
            if high < low:
                raise ValueError(f"Invalid range specified for the Port: {port}")
        except ValueError as e:
            raise InvalidParameter(f"invalid range format for --expose: {spec}, error: {e}") from None
        keys.update(dict.fromkeys(f"{number}/{proto}" for number in range(low, high + 1)))
    return list(keys)
# <<< expose-flag
