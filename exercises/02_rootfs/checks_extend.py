"""The extend part of exercise 02 (15 of 25 points): docker's `--tmpfs PATH[:OPTIONS]`, which the
reference runtime parses and mounts through your hooks (`parse_tmpfs`, `mount_tmpfs`). Graded
black-box: real `mini run` containers read their own mount table, write, run a script, and
refused values end with docker's message, exit 125 and nothing left."""

from __future__ import annotations

from exercises.grading import Chapter, Context

SECTION = "§ /proc, /dev and /sys"
HOOKS = ("parse_tmpfs", "mount_tmpfs")


def _last(result) -> str:  # noqa: ANN001 - a CompletedProcess
    return (result.stderr.strip().splitlines() or [""])[-1]


def _mount(ctx: Context, path: str, *flags: str, script: str = "") -> tuple[list[str], list[str]]:
    """(mount options, super options) of the mount at `path` in a container run with FLAGS,
    and the lines `script` printed after the mountinfo."""
    result = ctx.mini("run", "--rm", *flags, "busybox", "sh", "-c", f"cat /proc/self/mountinfo; echo ---; {script}")
    ctx.expect(result.returncode == 0, f"`mini run {' '.join(flags)} ...` to exit 0",
               f"exit {result.returncode}, {_last(result)[:200]!r}")
    table, _, rest = result.stdout.partition("---\n")
    found = [line.split() for line in table.splitlines() if line.split()[4:5] == [path]]
    ctx.expect(bool(found) and found[-1][-3] == "tmpfs", f"a tmpfs mounted at {path} (in /proc/self/mountinfo)",
               repr(found[-1][-3:] if found else "no mount there"))
    fields = found[-1]
    return fields[5].split(","), fields[-1].split(","), rest.splitlines()


def register(chapter: Chapter) -> None:
    check = chapter.check

    @check("2.10", "--tmpfs PATH: a tmpfs, docker's noexec,nosuid,nodev, writable, made if missing",
           points=6, section=SECTION, plug=HOOKS, part="extend", timeout=60)
    def tmpfs(ctx: Context) -> None:
        ctx.private_state_root()
        path = f"/{ctx.rng.choice(['run', 'data', 'scratch'])}{ctx.rng.randrange(10**6)}"
        word = f"w{ctx.rng.randrange(10**9)}"
        options, _, out = _mount(ctx, path, "--tmpfs", path, "--tmpfs", "/tmp",
                                 script=f"echo {word} > {path}/f && cat {path}/f; grep ' /tmp ' /proc/self/mountinfo "
                                        "| grep -c tmpfs")
        ctx.expect({"rw", "nosuid", "nodev", "noexec"} <= set(options),
                   f"`--tmpfs {path}`: mounted rw,nosuid,nodev,noexec (docker's defaults)", ",".join(options))
        ctx.expect(out[:2] == [word, "1"], f"{path} writable ({word!r} read back) and /tmp a tmpfs too "
                   "(an existing directory)", repr(out[:2]))

    @check("2.11", "--tmpfs PATH:OPTIONS: size, mode, exec and ro as mount(2) takes them",
           points=5, section=SECTION, plug=HOOKS, part="extend", timeout=60)
    def options(ctx: Context) -> None:
        ctx.private_state_root()
        size, mode = ctx.rng.randrange(1, 64), ctx.rng.choice(["700", "755", "1770", "711"])  # (1777 is the default: not shown)
        path = f"/t{ctx.rng.randrange(10**6)}"
        flags, data, out = _mount(ctx, path, "--tmpfs", f"{path}:size={size}m,mode={mode},exec",
                                  script=f"printf '#!/bin/sh\\necho ran\\n' > {path}/s; chmod +x {path}/s; {path}/s")
        ctx.expect(f"size={size * 1024}k" in data and f"mode={mode}" in data,
                   f"`--tmpfs {path}:size={size}m,mode={mode},exec`: tmpfs data size={size * 1024}k and "
                   f"mode={mode}", ",".join(data))
        ctx.expect("noexec" not in flags and out[:1] == ["ran"],
                   "`exec` to undo docker's default noexec (a script there runs)",
                   f"options {','.join(flags)}, output {out[:1]}")
        flags, _, out = _mount(ctx, path, "--tmpfs", f"{path}:ro", script=f"touch {path}/x 2>&1 || echo refused")
        ctx.expect("ro" in flags and out[-1:] == ["refused"], f"`--tmpfs {path}:ro`: a read-only tmpfs",
                   f"options {','.join(flags)}, output {out[-1:]}")

    @check("2.12", "--tmpfs with --read-only: / refuses writes, the tmpfs takes them", points=2,
           section="§ A read-only root", plug=HOOKS, part="extend", timeout=60)
    def with_read_only(ctx: Context) -> None:
        ctx.private_state_root()
        path = f"/run{ctx.rng.randrange(10**6)}"
        _, _, out = _mount(ctx, path, "--read-only", "--tmpfs", path,
                           script=f"touch /x 2>/dev/null && echo root-writable; touch {path}/x && echo tmpfs-writable")
        ctx.expect(out == ["tmpfs-writable"], f"`--read-only --tmpfs {path}`: / read-only, {path} writable",
                   repr(out))

    @check("2.13", "--tmpfs: docker's errors, exit 125, nothing created", points=2, section=SECTION,
           plug=HOOKS, part="extend", timeout=60)
    def refused(ctx: Context) -> None:
        ctx.private_state_root()
        name = f"dir{ctx.rng.randrange(10**6)}"
        option = ctx.rng.choice(["nodiratime", "foo", "sizes", "uid2"])
        cases = [(name, f"invalid mount path: '{name}' mount path must be absolute"),
                 (f"{name}/x:size=1m", f"invalid mount path: '{name}/x' mount path must be absolute"),
                 (f"/{name}:size=1m,{option}=1", f'Invalid tmpfs option ["{option}"]'),
                 (f"/{name}:{option}", f'Invalid tmpfs option ["{option}"]')]
        for value, message in ctx.rng.sample(cases, 3):
            result = ctx.mini("run", "--tmpfs", value, "busybox", "true")
            ctx.expect(result.returncode == 125 and _last(result) == f"mini: {message}",
                       f"`--tmpfs {value}`: exit 125 and 'mini: {message}'",
                       f"exit {result.returncode}, {_last(result)[:200]!r}")
        left = ctx.mini("ps", "-a", "-q").stdout.split()
        ctx.expect(not left, "no container left after the refused runs", f"containers {left}")
