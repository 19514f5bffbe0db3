"""The extend part of exercise 07 (11 of 16 points): docker's --add-host, which the reference
runtime parses but leaves to your hook (`extra_hosts`). Graded black-box: real `mini run`
containers on the bridge (inside the check's private namespaces) read their /etc/hosts, reach
the host through `host-gateway`, and refused specs end with docker's line, exit 125 and nothing
left behind."""

from __future__ import annotations

import importlib

from exercises.feedback import clip
from exercises.grading import Chapter, Context

checks = importlib.import_module("exercises_checks_07")   # checks.py, loaded first by the grader
SECTION = "§ /etc/hosts, /etc/hostname and /etc/resolv.conf"


def _name(ctx: Context) -> str:
    return f"h{ctx.rng.randrange(10**6)}.{ctx.rng.choice(['test', 'example', 'internal'])}"


def _hosts_lines(ctx: Context, flags: list[str], script: str = "cat /etc/hosts") -> list[str]:
    result = ctx.mini("run", "--rm", "--network", "bridge", *flags, "busybox", "sh", "-c", script, timeout=60)
    ctx.expect(result.returncode == 0, f"`mini run {' '.join(flags)} ...` to run (exit 0)",
               f"exit {result.returncode}, {clip(checks.last_line(result), 200)!r}")
    return result.stdout.splitlines()


def register(chapter: Chapter) -> None:
    check = chapter.check

    @check("7.4", "--add-host NAME:IP and NAME=IP: /etc/hosts lines as docker writes them", points=4,
           section=SECTION, plug=("extra_hosts",), part="extend", timeout=90)
    def entries(ctx: Context) -> None:
        n = ctx.rng.randrange(1, 200)
        wanted = [(f"192.0.2.{n}", _name(ctx), ":"), (f"10.{n}.{ctx.rng.randrange(256)}.7", _name(ctx), "="),
                  (f"2001:db8::{n:x}", _name(ctx), ":"), (f"2001:db8:1::{n:x}", _name(ctx), "=[")]
        ctx.rng.shuffle(wanted)
        same = wanted[0][1]
        wanted.append((f"198.18.0.{n}", same, ":"))   # a name twice: both lines, in order
        flags = []
        for address, name, form in wanted:
            flags += ["--add-host", f"{name}={address}" if form == "=" else
                      f"{name}=[{address}]" if form == "=[" else f"{name}:{address}"]
        with checks.lab(ctx):
            lines = _hosts_lines(ctx, flags)
        want = [f"{address}\t{name}" for address, name, _ in wanted]
        got = [line for line in lines if line in want or line.split("\t")[-1] in {n for _, n, _ in wanted}]
        ctx.expect(got == want, f"/etc/hosts to have, in this order, {want} (for {' '.join(flags)})",
                   repr(got))
        ctx.expect(lines[:1] == ["127.0.0.1\tlocalhost"], "the localhost lines first, as before",
                   repr(lines[:1]))

    @check("7.5", "--add-host NAME:host-gateway: the bridge's own address, and it answers", points=4,
           section=SECTION, plug=("extra_hosts",), part="extend", timeout=90)
    def host_gateway(ctx: Context) -> None:
        name = _name(ctx)
        with checks.lab(ctx) as net:
            lines = _hosts_lines(ctx, ["--add-host", f"{name}:host-gateway"],
                                 f"cat /etc/hosts; ping -c 1 -W 2 {name} >/dev/null && echo host-answers")
        ctx.expect(f"{net.gateway}\t{name}" in lines,
                   f"`{net.gateway}\\t{name}` in /etc/hosts (host-gateway on a bridge of subnet {net.subnet})",
                   repr([line for line in lines if name in line]))
        ctx.expect("host-answers" in lines, f"`ping {name}` from the container to be answered by the host",
                   repr(lines[-1:]))

    @check("7.6", "--add-host: docker's errors for a bad spec, exit 125, nothing left behind", points=3,
           section=SECTION, plug=("extra_hosts",), part="extend", timeout=90)
    def refused(ctx: Context) -> None:
        n = ctx.rng.randrange(10**4)
        bad_format = ctx.rng.choice([f"box{n}", f":192.0.2.{n % 250}", f"=10.0.0.{n % 250}"])
        bad_ip = ctx.rng.choice([(f"box{n}:192.0.2.{300 + n % 200}", f"192.0.2.{300 + n % 200}"),
                                 (f"box{n}=gateway{n}", f"gateway{n}"),
                                 (f"box{n}:10.{n % 250}.1", f"10.{n % 250}.1")])
        cases = [(bad_format, f'bad format for add-host: "{bad_format}"'),
                 (bad_ip[0], f'invalid IP address in add-host: "{bad_ip[1]}"')]
        with checks.lab(ctx):
            for spec, why in cases:
                message = f'mini: invalid argument "{spec}" for "--add-host" flag: {why}'
                good = f"ok{n}.test:192.0.2.1"
                result = ctx.mini("run", "--rm", "--network", "bridge", "--add-host", good, "--add-host", spec,
                                  "busybox", "true", timeout=60)
                ctx.expect(result.returncode == 125 and checks.last_line(result) == message,
                           f"`--add-host {spec}` to fail with exit 125 and docker's line {message!r}",
                           f"exit {result.returncode}, {clip(checks.last_line(result), 200)!r}")
                left = ctx.mini("ps", "-a", "-q").stdout.split()
                network = checks.leftovers()
                ctx.expect(not left and not network, f"nothing left after `--add-host {spec}` failed",
                           f"containers {left}, network {network}")
