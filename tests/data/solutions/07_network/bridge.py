"""Model solution of exercise 07's extension (instructors only: learners never see this file).
`exercises.parts.model_source` appends it to mini_runtime/network/bridge.py; the honesty tests
grade the result (full marks). docker's rules are the docker CLI's opts/hosts.go
(ValidateExtraHost) and its flag errors (pflag: `invalid argument "V" for "--add-host" flag`);
host-gateway is the daemon's HostGatewayIP, by default the default bridge's own address."""

import ipaddress

from mini_runtime.errors import UsageError

HOST_GATEWAY = "host-gateway"


def extra_hosts(specs: list[str]) -> list[tuple[str, str]]:
    """NAME:IP, NAME=IP (`=` first: then an IPv6 address needs no care), an IP in [brackets],
    or host-gateway; docker's two errors, each as pflag reports a bad flag value."""
    from mini_runtime.network import ipam

    entries = []
    for spec in specs:
        name, sep, value = spec.partition("=")
        if not sep:
            name, sep, value = spec.partition(":")   # the first colon: IPv6 keeps the others
        if not sep or not name or ":" in name:
            raise UsageError(f'invalid argument "{spec}" for "--add-host" flag: bad format for add-host: "{spec}"')
        if value == HOST_GATEWAY:
            value = str(next(ipam.default_subnet().hosts()))
        else:
            if len(value) > 2 and value.startswith("[") and value.endswith("]"):
                value = value[1:-1]
            try:
                ipaddress.ip_address(value)             # written as given
            except ValueError:
                raise UsageError(f'invalid argument "{spec}" for "--add-host" flag: '
                                 f'invalid IP address in add-host: "{value}"') from None
        entries.append((value, name))
    return entries
