"""Docker's table layout, short ids and ps's COMMAND column, for the CLI (sizes, durations,
times and STATUS strings are in `units`: the daemon writes some of them).

They come from the Go code the docker CLI uses (text/tabwriter, strconv.Quote, the CLI's
formatter.Ellipsis): matching them lets scripts written for docker's output read ours.
"""

from __future__ import annotations

import unicodedata

from mini_runtime.units import go_quote  # (also what template_funcs and template_parse use)

#: `docker ps`'s default format and its column titles (the CLI's formatter/container.go); `-q`
#: is "{{.ID}}". For template.render_table.
PS_FORMAT = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
PS_QUIET_FORMAT = "{{.ID}}"
PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND",
              "CreatedAt": "CREATED AT", "RunningFor": "CREATED", "Ports": "PORTS",
              "State": "STATE", "Status": "STATUS", "Size": "SIZE", "Names": "NAMES",
              "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS",
              "LocalVolumes": "LOCAL VOLUMES",
              # {{.Label "com.example.version"}}: a method, titled by the key's last part ("version")
              "Label": lambda key: key.split(".")[-1].replace("-", " ").replace("_", " ")}
#: `docker history`'s (image/formatter_history.go): without -H, .CreatedAt replaces .CreatedSince.
HISTORY_FORMAT = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
HISTORY_HEADERS = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
                   "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"}
#: `docker images`'s default format and column titles (formatter/image.go), for --format.
IMAGES_FORMAT = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
IMAGES_DIGESTS_FORMAT = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
IMAGES_HEADERS = {"ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
                  "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
                  "Containers": "CONTAINERS", "SharedSize": "SHARED SIZE",
                  "UniqueSize": "UNIQUE SIZE", "VirtualSize": "VIRTUAL SIZE"}
#: `docker network ls`'s (network/formatter.go); -q is "{{.ID}}".
NETWORKS_FORMAT = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
NETWORKS_HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "IPv6": "IPV6",
                    "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT",
                    "Label": PS_HEADERS["Label"]}


def natural(text: str) -> list[str | int]:
    """A sort key that orders "net2" before "net10", as Go's sortorder.NaturalLess, which docker
    uses for `port` and `network ls` (re.split with a group alternates text and digits)."""
    import re

    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def tabwriter(text: str, minwidth: int = 10, padding: int = 3) -> str:
    """Go's text/tabwriter (tabwidth 1, padchar ' ', no flags) over `text`: each cell ends with a
    tab, and a column is as wide as its widest cell plus `padding` (at least `minwidth`) over
    each run of consecutive lines that have that column; text after a line's last tab is not a
    cell. docker uses (10, 3) for tables such as ps, and (20, 3) for top."""
    lines = [line.split("\t") for line in text.split("\n")]
    out: list[str] = []

    def block(first: int, end: int, widths: list[int]) -> None:
        column, line = len(widths), first
        while line < end:
            if column >= len(lines[line]) - 1:
                out.append(render(lines[line], widths))
                line += 1
                continue
            start, width = line, minwidth
            while line < end and column < len(lines[line]) - 1:
                width = max(width, len(lines[line][column]) + padding)
                line += 1
            block(start, line, widths + [width])

    def render(cells: list[str], widths: list[int]) -> str:
        return "".join(cell.ljust(widths[i]) if i < len(widths) else cell
                       for i, cell in enumerate(cells))

    block(0, len(lines), [])
    return "\n".join(out)


def table(rows: list[list[str]], minwidth: int = 10) -> str:
    """Rows of cells as docker prints a table: tabwriter(minwidth, padding=3), one line per row;
    the last column is not padded."""
    if not rows:
        return ""
    return tabwriter("".join("\t".join(row) + "\n" for row in rows), minwidth)


def go_time(seconds: float) -> str:
    """A time as Go's Time.String() prints it in the local zone, as {{.CreatedAt}} of `ps` and
    `images` shows: "2026-12-07 01:48:31 +0000 UTC"."""
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S %z %Z", time.localtime(seconds))


def go_rfc3339(seconds: float) -> str:
    """Go's time.Unix(s, 0).Format(time.RFC3339) in the local zone, as {{.CreatedAt}} of
    `history` shows: "2026-12-07T12:00:00Z" (or "…+01:00")."""
    import time

    stamp = time.localtime(seconds)
    offset = time.strftime("%z", stamp)
    return time.strftime("%Y-%m-%dT%H:%M:%S", stamp) + ("Z" if offset == "+0000" else f"{offset[:3]}:{offset[3:]}")


def short_id(image_id: str) -> str:
    """docker's 12-digit form of an id."""
    return image_id.removeprefix("sha256:")[:12]


def display_width(ch: str) -> int:
    """Columns a character takes on a terminal, as the CLI counts them (wide East Asian: 2)."""
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def ellipsis(text: str, width: int) -> str:
    """The CLI's formatter.Ellipsis: at most `width` display columns, the last one "…" when the
    text is cut ("sh -c 'while true; …" for width 20)."""
    if width <= 0:
        return ""
    if width == 1:
        return text[:1]
    if sum(display_width(ch) for ch in text) <= width:
        return text
    used = 0
    for i, ch in enumerate(text):
        used += display_width(ch)
        if used > width - 1:
            return text[:i] + "…"
    return text


def command_column(command: str, truncate: bool = True) -> str:
    """ps's COMMAND column from the Engine API's `Command` (units.command_line): cut to 20
    columns unless --no-trunc, then Go-quoted: "sh -c 'while true; …"."""
    return go_quote(ellipsis(command, 20) if truncate else command)


def ports_column(ports: list[dict]) -> str:
    """docker ps's PORTS: `0.0.0.0:32768->80/tcp`, exposed-only `80/tcp`, sorted by the
    container's port, consecutive ports grouped (`0.0.0.0:8000-8001->80-81/tcp`), joined by ", "."""
    groups: list[list] = []   # [ip, first public, last public, first private, last private, type]
    for p in sorted(ports, key=lambda p: (p["PrivatePort"], p.get("Type", ""), p.get("IP", ""))):
        ip, public, private, kind = p.get("IP"), p.get("PublicPort"), p["PrivatePort"], p.get("Type", "tcp")
        last = groups[-1] if groups else None
        if (last and last[0] == ip and last[5] == kind and last[4] + 1 == private
                and (public is None) == (last[2] is None) and (public is None or last[2] + 1 == public)):
            last[2], last[4] = public, private
        else:
            groups.append([ip, public, public, private, private, kind])
    texts = []
    for ip, first_public, last_public, first, last, kind in groups:
        private = f"{first}-{last}" if last != first else str(first)
        if first_public is None:
            texts.append(f"{private}/{kind}")
        else:
            public = f"{first_public}-{last_public}" if last_public != first_public else str(first_public)
            texts.append(f"{ip}:{public}->{private}/{kind}")
    return ", ".join(texts)
