"""How a container is asked to stop (chapter 06): signals by docker's names, and the stop signal
and grace period a container keeps in its record.

`stop` sends a signal the program can handle, waits, then sends SIGKILL. Which signal and how long
are the program's business, not the operator's: nginx finishes its requests on SIGQUIT, a
database may need a minute to flush. So the image (STOPSIGNAL) or `run --stop-signal` and
`--stop-timeout` say it once, in the record's Config, and every `stop` and `restart` without `-t`
obeys (docker's Config.StopSignal and Config.StopTimeout). `kill` and `rm -f` do not ask: SIGKILL.
"""

from __future__ import annotations

import signal as signals

from mini_runtime.errors import InvalidParameter
from mini_runtime.units import go_int

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:
    from typing import Any

    from mini_runtime.config import ContainerConfig

#: docker's grace period before the SIGKILL, when neither `stop -t` nor --stop-timeout says one.
DEFAULT_TIMEOUT = 10


def parse_signal(text: str | int) -> int:
    """A signal as docker's ParseSignal reads it: a number (Go's Atoi), any but 0, or a name of
    its table in any case, with or without SIG: "KILL", "sigkill", the real-time "RTMIN",
    "RTMIN+1" to "RTMIN+15", "RTMAX-14" to "RTMAX-1", "RTMAX". A number is checked later, and
    only where a signal is sent (`supported`): docker's create keeps --stop-signal 65 as given."""
    try:
        number = go_int(str(text))
    except InvalidParameter:
        name = str(text).upper().removeprefix("SIG")
        base, sign, offset = name[:5], name[5:6], name[6:]
        if base in ("RTMIN", "RTMAX") and (sign, offset) != ("", ""):
            step = int(offset) if offset.isascii() and offset.isdigit() and offset[0] != "0" else 0
            if (base, sign) == ("RTMIN", "+") and 1 <= step <= 15:
                return int(signals.SIGRTMIN) + step
            if (base, sign) == ("RTMAX", "-") and 1 <= step <= 14:
                return int(signals.SIGRTMAX) - step
            raise InvalidParameter(f"Invalid signal: {text}") from None
        if not hasattr(signals.Signals, "SIG" + name):
            raise InvalidParameter(f"Invalid signal: {text}") from None
        return int(signals.Signals["SIG" + name])
    if number == 0:
        raise InvalidParameter(f"Invalid signal: {text}")
    return number


def supported(number: int) -> bool:
    """A signal docker's daemon sends (a value of its table): 1-31 and the real-time 34-64.
    Not 32 and 33, which glibc keeps for its threads, nor any number past 64, which is no
    signal of Linux's (kill(2) says EINVAL)."""
    return 1 <= number <= 31 or int(signals.SIGRTMIN) <= number <= int(signals.SIGRTMAX)


def unsupported(number: int) -> str:
    """docker's words for a number `supported` refuses (a negative one as Go's uint64 shows it)."""
    return f"The linux daemon does not support signal {number % (1 << 64)}"


def config_fields(config: ContainerConfig, image_defaults: dict[str, Any]) -> dict[str, Any]:
    """The record's Config.StopSignal (--stop-signal, else the image's STOPSIGNAL) and
    Config.StopTimeout (--stop-timeout), each only when set, as docker's inspect shows them.
    --stop-signal is checked here, at create, as docker's daemon checks it: a typo found now,
    not at the first `stop`. (An image's bad STOPSIGNAL is not refused: stop sends SIGTERM.)"""
    if config.stop_signal:
        parse_signal(config.stop_signal)
    fields: dict[str, Any] = {}
    if config.stop_signal or image_defaults.get("StopSignal"):
        fields["StopSignal"] = config.stop_signal or image_defaults["StopSignal"]
    if config.stop_timeout is not None:
        fields["StopTimeout"] = config.stop_timeout
    return fields


def stop_timeout(record: dict[str, Any]) -> int:
    """The seconds `stop` and `restart` give a container without `-t`: its --stop-timeout, else
    docker's 10 (a negative one waits for good)."""
    timeout = (record.get("Config") or {}).get("StopTimeout")
    return DEFAULT_TIMEOUT if timeout is None else int(timeout)
