"""Docker's units, both ways: byte sizes ("64m", "4.26MB"), durations ("2 minutes ago",
"Up 3 seconds"), a container's STATUS and COMMAND as the daemon writes them for `ps`, and
timestamps (RFC 3339 with nanoseconds, as the Engine API writes them; `--since 10m`).

They come from Go libraries docker uses (github.com/docker/go-units, time.Parse, moby's
api/types/time): matching them lets scripts written for docker's output read ours.
"""

from __future__ import annotations

import re
import time

from mini_runtime.errors import InvalidParameter, UsageError


# --- sizes -------------------------------------------------------------------------------------

def parse_bytes(text: str) -> int:
    """docker's RAMInBytes (go-units): "64m", "64MB", "64MiB", "64 m" -> 67108864; the units
    k, m, g, t, p are powers of 1024 whichever way they are spelled."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?) ?([kmgtp]?)i?b?", text.strip().lower())
    if not m:
        raise UsageError(f"invalid size: {text!r} (a number with an optional unit b, k, m, g, t or p)")
    unit = 1024 ** " kmgtp".index(m[2] or " ")
    whole, _, fraction = m[1].partition(".")
    size = int(whole) * unit + int(float(f"0.{fraction or 0}") * unit)   # (exact for whole numbers)
    if size > INT64_MAX:
        raise UsageError(f"invalid size: {text!r} (more than 8 EiB: the kernel's and docker's sizes "
                         "are 64-bit numbers)")
    return size


INT64_MAX = (1 << 63) - 1


def human_size(size: float) -> str:
    """go-units HumanSize: decimal units, three significant digits ("4.26MB")."""
    return _scaled(size, 1000, ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"], 3)


def bytes_size(size: float) -> str:
    """go-units BytesSize: binary units, four significant digits ("23.54GiB", "552KiB")."""
    return _scaled(size, 1024, ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"], 4)


def _scaled(size: float, base: int, units: list[str], digits: int) -> str:
    i = 0
    while size >= base and i < len(units) - 1:
        size /= base
        i += 1
    return f"{size:.{digits}g}{units[i]}"


# --- durations ---------------------------------------------------------------------------------

def human_duration(seconds: float) -> str:
    """go-units HumanDuration: "Less than a second", "About a minute", "3 weeks", ..."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def ago(when: str | float | None, now: float | None = None) -> str:
    """docker's CREATED column: "2 minutes ago"; `when` is an RFC 3339 time or Unix seconds (the
    Engine API's container list gives seconds). "N/A" when the time is unknown."""
    seconds = parse_rfc3339(when) if isinstance(when, str) else when
    if not seconds:
        return "N/A"
    return human_duration((time.time() if now is None else now) - seconds) + " ago"


def up_for(started: str, now: float | None = None) -> str:
    """docker ps's STATUS of a running container: "Up 3 seconds"."""
    return status({"Running": True, "StartedAt": started}, now)


def status(state: dict, now: float | None = None) -> str:
    """The STATUS the daemon writes for `docker ps` (moby container/state.go, State.String):
    "Up 3 seconds", "Up 2 hours (Paused)", "Restarting (1) 5 seconds ago", "Removal In Progress",
    "Dead", "Created", "Exited (0) 2 minutes ago"; `state` is inspect's State."""
    now = time.time() if now is None else now

    def since(key: str) -> str:
        stamp = parse_rfc3339(state.get(key) or "")
        return human_duration(0 if stamp is None else now - stamp)

    if state.get("Running"):
        if state.get("Paused"):
            return f"Up {since('StartedAt')} (Paused)"
        if state.get("Restarting"):
            return f"Restarting ({state.get('ExitCode', 0)}) {since('FinishedAt')} ago"
        health = (state.get("Health") or {}).get("Status")
        if health:
            return f"Up {since('StartedAt')} ({'health: starting' if health == 'starting' else health})"
        return f"Up {since('StartedAt')}"
    if state.get("RemovalInProgress") or state.get("Status") == "removing":
        return "Removal In Progress"
    if state.get("Dead") or state.get("Status") == "dead":
        return "Dead"
    if parse_rfc3339(state.get("StartedAt") or "") is None:
        return "Created"
    if parse_rfc3339(state.get("FinishedAt") or "") is None:
        return ""
    return f"Exited ({state.get('ExitCode', 0)}) {since('FinishedAt')} ago"


def command_line(path: str, args: list[str]) -> str:
    """The Engine API's `Command` of a listed container (moby daemon/list.go): the path and its
    arguments, each argument with a space in single quotes: "sh -c 'while true; do ...'"."""
    return " ".join([path] + [f"'{a}'" if " " in a else a for a in args])


# --- timestamps --------------------------------------------------------------------------------

ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time: "never" in inspect's State


def now_rfc3339() -> str:
    """Now, as the Engine API writes times: RFC 3339 in UTC with nine fraction digits."""
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


def parse_rfc3339(stamp: str) -> float | None:
    """Seconds since the epoch of an RFC 3339 time (fraction and offset kept); None if it is
    unreadable or Go's zero time ("never")."""
    ns = rfc3339_ns(stamp)
    return None if ns is None else ns / 1e9


def rfc3339_ns(stamp: str) -> int | None:
    """Nanoseconds since the epoch of an RFC 3339 time (one without a zone read as UTC); None if
    unreadable or the zero time."""
    try:
        ns = go_parse(stamp, RFC3339, None)
    except ValueError:
        try:
            ns = go_parse(stamp, "2006-01-02T15:04:05", 0)
        except ValueError:
            return None
    return None if ns == ZERO_NS else ns


def civil_seconds(year: int, month: int, day: int, hour: int = 0, minute: int = 0,
                  second: int = 0) -> int:
    """Seconds since the epoch of a UTC date and time, for any year (Go's zero time is year 1,
    where time.mktime and calendar.timegm give up)."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    return days * 86400 + hour * 3600 + minute * 60 + second


# --- Go's time.Parse, for the layouts docker uses ----------------------------------------------

RFC3339 = "2006-01-02T15:04:05Z07:00"
RFC3339_NANO = "2006-01-02T15:04:05.999999999Z07:00"
#: Patterns as text: `re` compiles each on first use and caches it (compiling them all at import
#: would cost every `mini` start, though only `logs --since` and `stop -t` parse these).
LAYOUT_ELEMENT = r"2006|01|02|15|04|05|\.999999999|Z07:00|[^0-9Z.]+"
RANGES = {"01": ("month", 1, 12), "15": ("hour", 0, 23), "04": ("minute", 0, 59),
          "05": ("second", 0, 59)}


#: strconv.Quote's short escapes.
GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
              "\v": "\\v", '"': '\\"', "\\": "\\\\"}


def go_quote(text: str) -> str:
    """Go's strconv.Quote: a double-quoted string, non-printable characters escaped."""
    out = []
    for ch in text:
        if ch in GO_ESCAPES:
            out.append(GO_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


def go_parse(value: str, layout: str, local_offset: int | None) -> int:
    """Go's time.Parse of `value` in `layout` -> nanoseconds since the epoch; a layout without a
    zone reads local time at `local_offset` seconds east of UTC. ValueError carries Go's message:
    'parsing time "2013-13-01" as "2006-01-02": month out of range' (cannot parse ... as ...)."""
    fields = {"2006": 0, "01": 1, "02": 1, "15": 0, "04": 0, "05": 0}
    nanos, offset, rest = 0, local_offset or 0, value

    def fail(element: str, at: str, message: str = "") -> ValueError:
        if message:
            return ValueError(f"parsing time {go_quote(value)}{message}")
        return ValueError(f"parsing time {go_quote(value)} as {go_quote(layout)}: cannot parse "
                          f"{go_quote(at)} as {go_quote(element)}")

    def fraction(text: str) -> tuple[int, str]:
        n = 1
        while n < len(text) and text[n].isdigit():
            n += 1
        return int(text[1:min(n, 10)].ljust(9, "0")), text[n:]

    for element in re.findall(LAYOUT_ELEMENT, layout):
        if element in fields:
            width = 4 if element == "2006" else 2
            digits = rest[:width] if element != "15" else re.match(r"\d{0,2}", rest)[0]
            if not digits or len(digits) < (1 if element == "15" else width) or not digits.isdigit():
                raise fail(element, rest)
            fields[element], rest = int(digits), rest[len(digits):]
            name, low, high = RANGES.get(element, ("", 0, 0))
            if name and not low <= fields[element] <= high:
                raise fail(element, rest, f": {name} out of range")
            if element == "05" and re.match(r"[.,]\d", rest) and ".999999999" not in layout:
                nanos, rest = fraction(rest)
        elif element == ".999999999":
            if re.match(r"[.,]\d", rest):
                nanos, rest = fraction(rest)
        elif element == "Z07:00":
            if rest.startswith("Z"):
                offset, rest = 0, rest[1:]
                continue
            m = re.match(r"([+-])(\d\d):(\d\d)", rest)
            if not m:
                raise fail(element, rest)
            offset = (1 if m[1] == "+" else -1) * (int(m[2]) * 3600 + int(m[3]) * 60)
            rest = rest[6:]
        elif rest.startswith(element):
            rest = rest[len(element):]
        else:
            raise fail(element, rest)
    if rest:
        raise fail("", rest, f": extra text: {go_quote(rest)}")
    year, month, day = fields["2006"], fields["01"], fields["02"]
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if not 1 <= day <= [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]:
        raise fail("", rest, ": day out of range")
    seconds = civil_seconds(year, month, day, fields["15"], fields["04"], fields["05"]) - offset
    return seconds * 10**9 + nanos


ZERO_NS = civil_seconds(1, 1, 1) * 10**9  # ZERO_TIME, by arithmetic: no pattern compiled at import


# --- docker's --since and --until (api/types/time/timestamp.go) ---------------------------------

DURATION = r"([-+]?)((?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+|0)"
DURATION_PART = r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)"
DURATION_UNITS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9,
                  "m": 60 * 10**9, "h": 3600 * 10**9}


def go_duration_ns(text: str) -> int | None:
    """Go's time.ParseDuration ("10m", "1h30m", "1.5h", "-2s", "0") in nanoseconds; None if
    `text` is not a duration, or one that overflows Go's int64 of nanoseconds."""
    m = re.fullmatch(DURATION, text)
    if not m:
        return None
    total = 0
    for number, unit in re.findall(DURATION_PART, m[2]):
        whole, _, fraction = number.partition(".")
        scale = DURATION_UNITS[unit]  # exact, and truncated as Go does (a float would round)
        total += int(whole or 0) * scale + int(fraction or 0) * scale // 10 ** len(fraction)
    if total > (1 << 63) - (m[1] != "-"):
        return None                   # beyond int64 nanoseconds (~292 years): Go says "invalid"
    return -total if m[1] == "-" else total


def go_duration(text: str) -> int:
    """go_duration_ns, or InvalidParameter in time.ParseDuration's words."""
    nanoseconds = go_duration_ns(text)
    if nanoseconds is not None:
        return nanoseconds
    number = r"[-+]?(?:\d+\.?\d*|\.\d+)"
    if re.fullmatch(DURATION, text):     # well formed, but too long
        raise InvalidParameter(f"time: invalid duration {go_quote(text)}")
    if re.fullmatch(number, text):
        raise InvalidParameter(f"time: missing unit in duration {go_quote(text)}")
    unit = re.fullmatch(number + r"([^\d.]+)", text)
    if unit:
        raise InvalidParameter(f"time: unknown unit {go_quote(unit[1])} in duration {go_quote(text)}")
    raise InvalidParameter(f"time: invalid duration {go_quote(text)}")


def go_int(text: str, bits: int = 64, base: int = 10) -> int:
    """Go's strconv.ParseInt(text, base, bits), or InvalidParameter in its words. Base 10: ASCII
    digits after an optional sign (Python's int() also takes "1_0", " 7" and "٣"). Base 0, which
    pflag uses for every int flag of docker's: Go's integer literals, so `--pids-limit 0x10` is
    16 and `010` is 8 (octal), with "_" between digits."""
    sign, body = (text[0], text[1:]) if text[:1] in ("+", "-") else ("", text)
    radix, digits = 10, body
    if base == 0 and body[:2].lower() in ("0x", "0o", "0b"):
        radix, digits = {"x": 16, "o": 8, "b": 2}[body[1].lower()], body[2:]
    elif base == 0 and len(body) > 1 and body[0] == "0":
        radix, digits = 8, body[1:]
    allowed = "0123456789abcdef"[:radix] + ("_" if base == 0 else "")
    if not digits or any(c not in allowed for c in digits.lower()) or base == 0 and not _underscores_ok(body):
        raise InvalidParameter(f"strconv.ParseInt: parsing {go_quote(text)}: invalid syntax")
    value = int(sign + digits.replace("_", ""), radix)
    if not -(1 << bits - 1) <= value < 1 << bits - 1:
        raise InvalidParameter(f"strconv.ParseInt: parsing {go_quote(text)}: value out of range")
    return value


def _underscores_ok(body: str) -> bool:
    """Go's rule for "_" in a literal: only between digits, or after a base prefix."""
    previous = "0" if body[:2].lower() in ("0x", "0o", "0b") else "^"
    for c in body[2:] if previous == "0" else body:
        if c == "_":
            if previous != "0":
                return False
            previous = "_"
        else:
            previous = "0"
    return previous != "_"


def api_timestamp(value: str, flag: str = "since", now: float | None = None) -> str:
    """What the docker client sends for `--since`/`--until` (GetTimestamp): a duration counts back
    from now ("10m" -> Unix seconds); an RFC 3339 time or a date without a zone is local time;
    a Unix timestamp passes unchanged. Returns "seconds[.nanoseconds]" for `timestamp_ns`."""
    now = time.time() if now is None else now
    duration = go_duration_ns(value)
    if value != "0" and duration is not None:
        return str((int(now * 10**9) - duration) // 10**9)
    local = not any(c in value for c in "zZ+") and value.count("-") != 3
    if "." in value:
        layout = "2006-01-02T15:04:05.999999999" if local else RFC3339_NANO
    elif "T" in value:
        colons = value.count(":")
        if not local and "z" not in value.lower() and colons:
            colons -= 1  # the zone's own colon
        layouts = (["2006-01-02T15", "2006-01-02T15:04", "2006-01-02T15:04:05"] if local else
                   ["2006-01-02T15Z07:00", "2006-01-02T15:04Z07:00", RFC3339])
        layout = layouts[min(colons, 2)]
    else:
        layout = "2006-01-02" if local else "2006-01-02Z07:00"
    try:
        ns = go_parse(value, layout, time.localtime(now).tm_gmtoff if local else None)
    except ValueError as e:
        if "-" in value:
            raise InvalidParameter(f'invalid value for "{flag}": {e}') from None
        try:
            timestamp_ns(value)
        except InvalidParameter:
            raise InvalidParameter(f'invalid value for "{flag}": failed to parse value as time '
                                   f'or duration: "{value}"') from None
        return value
    return f"{ns // 10**9}.{ns % 10**9:09d}"


def timestamp_ns(value: str) -> int:
    """The daemon's side (ParseTimestamps): "seconds[.fraction]" -> nanoseconds since the epoch."""
    seconds, dot, fraction = value.partition(".")
    for number in [seconds] + ([fraction] if dot else []):
        if not re.fullmatch(r"[+-]?\d+", number):
            raise InvalidParameter(f'strconv.ParseInt: parsing "{number}": invalid syntax')
    nanos = int(float(int(fraction)) * 10.0 ** (9 - len(fraction))) if dot else 0
    return int(seconds) * 10**9 + nanos  # Go's time.Unix(sec, nsec): "-5.5" is -4.5 s
