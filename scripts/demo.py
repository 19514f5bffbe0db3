#!/usr/bin/env python3
"""`make demo`: a narrated tour of what mini can do so far, on the built-in busybox image.

Each chapter adds a stop to the tour. Every command is really run; the tour fails (exit 1) if
something does not behave as narrated. It leaves nothing behind: its containers run with --rm,
but for the first one and chapter 05's, which chapter 05 removes with `mini rm`, and chapter 06's
detached one, which it removes with `mini rm` (`rm -f` if the tour fails half-way); its image is
removed with `mini rmi`.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MINI = [str(Path(sys.executable).parent / "mini")]
BOLD, DIM, RESET = ("\033[1m", "\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "", "")
KEPT: list[str] = []   # ids of the containers the tour keeps (no --rm), removed in chapter 05
# The tour of chapters 01-06 lives in chapter 03's network world: containers with an empty
# network namespace, so that it never makes a bridge, NAT rules or a forwarding sysctl on the
# machine it runs on. Chapter 07's web server needs a bridge, NAT and a published port: it gets
# the machine's network only where MINI_DEMO_NETWORK=1 says that is fine (the course VM: the
# Vagrantfile sets it, and forwards the host's 127.0.0.1:8080 to the VM's 8080); anywhere else
# (a CI host, the test suite) that stop runs in a network namespace of its own, made here and
# gone with it, whose only link is its loopback.
os.environ.setdefault("MINI_DEFAULT_NETWORK", "none")
OWN_NETWORK = os.environ.get("MINI_DEMO_NETWORK") == "1"
WEB_PORT = 8080


def say(text: str) -> None:
    print(f"\n{BOLD}{text}{RESET}")


def show(args: list[str], expect_code: int = 0, stdin: str | None = None, root: str | None = None) -> str:
    """Run `mini ARGS`, print it and its output; `root`: another state root (MINI_ROOT) for it."""
    env = None if root is None else dict(os.environ, MINI_ROOT=f"{root}/lib", MINI_RUN=f"{root}/run")
    print(f"{DIM}${RESET} {'' if root is None else f'MINI_ROOT={root}/lib '}mini {shlex.join(args)}")
    result = subprocess.run(MINI + args, input=stdin, capture_output=True, text=True, timeout=60, env=env)
    for line in (result.stdout + result.stderr).splitlines()[:20]:
        print(f"  {line}")
    print(f"  {DIM}(exit {result.returncode}){RESET}")
    if result.returncode != expect_code:
        raise SystemExit(f"demo: expected exit {expect_code}, got {result.returncode}")
    return result.stdout


def chapter_01() -> None:
    say("Chapter 01 — a container is a process: fork, execve, waitpid.")
    say("The built-in image is made locally from Debian's busybox-static, as an OCI image:")
    show(["images"])
    say("Run a command from the image's files:")
    from mini_runtime import container

    before = set(container.containers_dir().glob("*"))
    show(["run", "busybox", "echo", "hi"])
    KEPT.extend(d.name for d in set(container.containers_dir().glob("*")) - before
                if (d / "container.json").is_file() and container.load(d)["Args"] == ["hi"])
    say("The container's exit code is mini's exit code...")
    show(["run", "--rm", "busybox", "sh", "-c", "exit 7"], expect_code=7)
    say("...and a death by signal N is reported as 128 + N (SIGKILL = 9: 137, the OOM killer's number):")
    show(["run", "--rm", "busybox", "sh", "-c", 'sleep 30 & kill -9 $!; wait $!; echo "sleep ended with $?"'])
    say("Docker's codes when the runtime or the command fails: 125, 127, 126:")
    show(["run", "--rm", "nosuchimage"], expect_code=125)
    show(["run", "--rm", "busybox", "nosuchcmd"], expect_code=127)
    show(["run", "--rm", "busybox", "/etc/passwd"], expect_code=126)
    say("Flags like docker's: -e sets the environment, -w the working directory; stdin passes through:")
    show(["run", "--rm", "-e", "WHO=world", "-w", "/tmp", "busybox", "sh", "-c", 'echo "hello $WHO from $(pwd)"'])
    show(["run", "--rm", "busybox", "wc", "-l"], stdin="one\ntwo\n")


def chapter_02() -> None:
    say("Chapter 02 — the image's files become the container's whole world (pivot_root).")
    say("`ls /` lists the image, not the host; the host's files are out of reach:")
    show(["run", "--rm", "busybox", "ls", "/"])
    show(["run", "--rm", "busybox", "ls", "/work", "/boot"], expect_code=1)
    say("The mount table starts from scratch: the image, a fresh /proc, a tmpfs /dev, a read-only /sys:")
    out = show(["run", "--rm", "busybox", "sh", "-c", "cut -d' ' -f5,6 /proc/self/mountinfo"])
    etc = {"/etc/hosts", "/etc/hostname", "/etc/resolv.conf"}  # (chapter 07's files, bind-mounted)
    later = {"/dev/mqueue", "/sys/fs/cgroup"}  # (chapter 03's message queues; 04's cgroup, on v2)
    assert {line.split()[0] for line in out.splitlines()} - later - etc == \
        {"/", "/proc", "/dev", "/dev/pts", "/dev/shm", "/sys"}
    say("Only the devices a container may use, made by mknod on that tmpfs:")
    show(["run", "--rm", "busybox", "ls", "/dev"])
    say("--read-only makes the root read-only (like docker):")
    show(["run", "--rm", "--read-only", "busybox", "touch", "/x"], expect_code=1)
    say("Each container's writes are its own (a copy of the image here; chapter 05's overlay since):")
    show(["run", "--rm", "busybox", "sh", "-c", "rm /bin/ls && echo removed"])
    show(["run", "--rm", "busybox", "ls", "/bin/ls"])


def chapter_03() -> None:
    say("Chapter 03 — namespaces: the container's own PID 1, hostname, IPC and network.")
    say("The command is PID 1, and ps sees only the container:")
    show(["run", "--rm", "busybox", "sh", "-c", "echo \"I am PID $$\"; sleep 1 & ps; kill $!"])
    say("Its own hostname (the short container id by default, or -h NAME); the host's is untouched:")
    show(["run", "--rm", "busybox", "hostname"])
    show(["run", "--rm", "-h", "demo-box", "busybox", "hostname"])
    say("An empty network namespace (--network none, chapter 07 adds the others): only lo, and it is up:")
    show(["run", "--rm", "--network", "none", "busybox", "ip", "-o", "link"])
    say("pid, uts, ipc, net and mnt differ from the host's (cgroup too on cgroup v2, chapter 04; time, user: not yet):")
    show(["run", "--rm", "busybox", "ls", "-l", "/proc/self/ns/"])
    say("The PID-1 surprise: the kernel drops signals PID 1 has no handler for, even SIGKILL from inside:")
    show(["run", "--rm", "busybox", "sh", "-c", "kill -9 $$; echo still here"])
    say("--init puts a tiny init at PID 1 that reaps orphans and passes signals on; the command is PID 2:")
    show(["run", "--rm", "--init", "busybox", "sh", "-c", "echo \"I am PID $$\"; kill -9 $$"], expect_code=137)


def chapter_04() -> None:
    say("Chapter 04 — cgroups: limits, priority, accounting and control.")
    say("The container joins a cgroup of its own under `mini/` before it runs anything (--cgroupns host "
        "shows the host's path; by default on cgroup v2 the container sees its own cgroup as `/`):")
    show(["run", "--rm", "--cgroupns", "host", "--memory", "64m", "busybox", "cat", "/proc/self/cgroup"])
    say("Memory cannot be taken back, so the kernel kills: 128 MiB in a 64 MiB container is 137:")
    show(["run", "--rm", "--memory", "64m", "--memory-swap", "64m", "busybox",
          "dd", "if=/dev/zero", "of=/dev/null", "bs=128M", "count=1"], expect_code=137)
    say("A process limit stops a fork loop (EAGAIN) and leaves the host alone:")
    show(["run", "--rm", "--pids-limit", "8", "busybox", "sh", "-c",
          '(for i in 1 2 3 4 5 6 7 8 9 10; do sleep 1 & done) 2>/tmp/err; read -r line </tmp/err; echo "$line"'])
    say("CPU time can be withheld instead: --cpus 0.5 is 50 ms of every 100 ms period.")
    say("Read from the host, in the container's cgroup while it runs:")
    from mini_runtime import cgroups

    print(f"{DIM}${RESET} mini run --rm --cpus 0.5 busybox sleep 2   (in the background)")
    proc = subprocess.Popen(MINI + ["run", "--rm", "--cpus", "0.5", "busybox", "sh", "-c", "echo ready; exec sleep 2"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    pid = open(f"/proc/{proc.pid}/task/{proc.pid}/children").read().split()[0]
    for line in open(f"/proc/{pid}/cgroup"):
        number, controllers, path = line.strip().split(":", 2)
        if cgroups.mode() == "v2" or "cpu" in controllers.split(","):
            base = cgroups.ROOT / ("" if cgroups.mode() == "v2" else "cpu") / path.lstrip("/")
            for name in ("cpu.max", "cpu.cfs_quota_us", "cpu.cfs_period_us"):
                if (base / name).exists():
                    print(f"  {base / name}: {(base / name).read_text().strip()}")
            break
    proc.wait(timeout=30)


def chapter_05() -> None:
    say("Chapter 05 — images: layers unpacked once and shared; each container writes to its own upper dir.")
    name, image = f"tour-{secrets.token_hex(3)}", f"tour-{secrets.token_hex(3)}:v1"
    try:
        say("Two containers from one image: the first one's writes are not the second one's:")
        show(["run", "--name", name, "busybox", "sh", "-c", "echo hello > /greeting && rm /bin/ls && echo changed"])
        out = show(["run", "--rm", "busybox", "sh", "-c", "cat /greeting; ls /bin/ls"])
        assert out == "/bin/ls\n", out
        say("Without --rm a container is kept after it exits, as docker keeps it; `mini diff` lists what it "
            "changed, read from its upper dir (A added, C changed, D deleted):")
        out = show(["diff", name])
        assert {"A /greeting", "D /bin/ls"} <= set(out.splitlines()), out
        say("`mini commit` makes those changes a layer on top of busybox's: a new image, which runs:")
        show(["commit", "-m", "a greeting", name, image])
        show(["run", "--rm", image, "sh", "-c", "cat /greeting; ls /bin/ls"], expect_code=1)
        say("`mini history`: one line per layer, newest first:")
        show(["history", image])
        with tempfile.TemporaryDirectory(prefix="mini-tour-") as tmp:
            say("`mini save` writes the image as one tar (docker's and OCI's layout: `docker load` reads it too); "
                "`mini load` reads it into another store, here a temporary one, where it runs:")
            show(["save", "-o", f"{tmp}/image.tar", image])
            show(["load", "-i", f"{tmp}/image.tar"], root=tmp)
            out = show(["run", "--rm", image, "cat", "/greeting"], root=tmp)
            assert out == "hello\n", out
        say("`mini rm` removes a kept container, `mini rmi` an image (and the layers no other image has):")
        show(["rm", name])
        show(["rmi", image])
        if KEPT:
            say("The tour's first container, `mini run busybox echo hi`, ran without --rm: it is still here, "
                "exited, until `mini rm` removes it:")
            for kept in KEPT:
                show(["rm", kept[:12]])
            KEPT.clear()
    finally:  # if the tour failed half-way: nothing left behind all the same
        for args in (["rm", name], ["rmi", image]):
            subprocess.run(MINI + args, capture_output=True, timeout=60)


def chapter_06() -> None:
    say("Chapter 06 — lifecycle: a container that outlives its command line, with a monitor process of its own.")
    name = f"tour-{secrets.token_hex(3)}"
    try:
        say("`run -d` prints the container's id and returns at once; the container runs on (the seed's loop):")
        show(["run", "-d", "--name", name, "busybox", "sh", "-c", "while true; do echo hello world; sleep 1; done"])
        say("`ps` lists the running containers, with docker's columns:")
        show(["ps", "--filter", f"name={name}"])
        lines = wait_for_lines(name, 3)
        say("Its monitor keeps what it prints in docker's json-file log; `logs -t --tail 2` shows the last two "
            "lines, with their times:")
        show(["logs", "-t", "--tail", "2", name])
        say("`top` lists its processes as the host numbers them (inside, the shell is PID 1):")
        show(["top", name])
        say("`inspect -f` picks one field with a Go template: the host pid of its PID 1...")
        pid = show(["inspect", "-f", "{{.State.Pid}}", name]).strip()
        say("...and `exec` runs one more process inside it, in its namespaces and cgroup: this `ps` sees the "
            "container's processes only, the loop as PID 1:")
        out = show(["exec", name, "ps", "-o", "pid,ppid,args"])
        assert re.search(r"^\s*1\s+0\s+sh -c while true", out, re.M), out
        assert os.readlink(f"/proc/{pid}/ns/pid") != os.readlink("/proc/self/ns/pid")
        say("`stats --no-stream`: what its cgroup counts (chapter 04), once:")
        show(["stats", "--no-stream", name])
        say("A second container with the same `--name` is refused with docker's conflict message (125), "
            "and the first one runs on:")
        out = show(["run", "-d", "--name", name, "busybox", "true"], expect_code=125)
        assert out == "", out
        out = show(["ps", "--filter", f"name={name}"])
        assert " Up " in out, out
        say("`pause` freezes every process of the container (the cgroup freezer of chapter 04); `ps` says so:")
        show(["pause", name])
        show(["ps", "--filter", f"name={name}"])
        time.sleep(0.3)
        lines = wait_for_lines(name, 0)
        time.sleep(1.5)
        assert wait_for_lines(name, 0) == lines, "the log grew while the container was paused"
        print(f"  {DIM}(1.5 s later, still {lines} lines in its log){RESET}")
        say("`unpause` thaws it, and the loop goes on:")
        show(["unpause", name])
        wait_for_lines(name, lines + 1)
        say("`stop` sends SIGTERM, which a shell that is PID 1 without a handler never gets (the kernel's rule "
            "for a namespace's init), then SIGKILL after `-t` seconds (10 by default; 2 here): 137.")
        show(["stop", "-t", "2", name])
        out = show(["ps", "-a", "--filter", f"name={name}"])
        assert "Exited (137)" in out, out
        say("`rm` removes the container, its files and its log:")
        show(["rm", name])
    finally:  # if the tour failed half-way: nothing left behind all the same
        subprocess.run(MINI + ["rm", "-f", name], capture_output=True, timeout=60)


def chapter_07() -> None:
    say("Chapter 07 — the network: a bridge, a veth pair per container, NAT, and published ports.")
    if OWN_NETWORK:
        say("This is the course VM (MINI_DEMO_NETWORK=1): the web server is published on the VM's port 8080.")
        web_server()
        return
    say("Not in the course VM: this stop runs in a network namespace the tour makes, with only its loopback.")
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            from mini_runtime import namespaces, syscalls

            syscalls.unshare(syscalls.CLONE_NEWNET)     # this process and what it starts: a private network
            namespaces.bring_up_loopback()
            web_server()
            code = 0
        except SystemExit as e:
            print(e, file=sys.stderr)
        finally:
            sys.stdout.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit("demo: chapter 07 failed")


def web_server() -> None:
    """The seed's web server: busybox httpd, detached, its port 80 published on 8080."""
    import urllib.request

    name = f"demo-web-{secrets.token_hex(3)}"
    page = "<h1>hello from a mini container</h1>"
    try:
        say("A detached web server; -p 8080:80 publishes its port 80 on the host's port 8080:")
        show(["run", "-d", "--name", name, "--network", "bridge", "-p", f"{WEB_PORT}:80", "busybox", "sh", "-c",
              f"mkdir -p /www && echo '{page}' > /www/index.html && exec httpd -f -p 80 -h /www"])
        say("`port` and `ps` show where it is published:")
        show(["port", name])
        show(["ps", "--filter", f"name={name}"])
        say(f"An HTTP GET from the host to 127.0.0.1:{WEB_PORT} (served by the userland proxy) returns the page:")
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{WEB_PORT}/", timeout=2) as answer:
                    body = answer.read().decode().strip()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("demo: the web server did not answer") from None
                time.sleep(0.2)
        print(f"  {body}")
        if body != page:
            raise SystemExit(f"demo: expected {page!r}, got {body!r}")
        if OWN_NETWORK:
            say(f"On your computer, http://localhost:{WEB_PORT} shows it too (Vagrant forwards that port), "
                "for as long as such a container runs.")
        say("`rm -f` ends it; its address, veth pair, NAT rules and proxy go with it:")
        show(["rm", "-f", name])
        say("The bridge mini0 and its rules stay for the next container, as docker0 does; "
            "`network prune` takes them down when no container is on it:")
        show(["network", "prune", "-f"])
    finally:
        subprocess.run(MINI + ["rm", "-f", name], capture_output=True, timeout=60)
        subprocess.run(MINI + ["network", "prune", "-f"], capture_output=True, timeout=60)


def wait_for_lines(name: str, at_least: int) -> int:
    """How many lines the container has logged, once there are `at_least` (at most 10 s)."""
    deadline = time.monotonic() + 10
    while True:
        count = len(subprocess.run(MINI + ["logs", name], capture_output=True, text=True, timeout=30).stdout.splitlines())
        if count >= at_least or time.monotonic() > deadline:
            return count
        time.sleep(0.1)


def main() -> int:
    print(f"{BOLD}mini_runtime tour{RESET} (each line below is a real command and its real output)")
    try:
        chapter_01()
        chapter_02()
        chapter_03()
        chapter_04()
        chapter_05()
        chapter_06()
        chapter_07()
    finally:  # a tour that failed half-way leaves nothing behind either
        for kept in KEPT:
            subprocess.run(MINI + ["rm", kept], capture_output=True, timeout=60)
    say("End of the tour so far. Try `mini run -it busybox sh` in a terminal (ctrl-P ctrl-Q detaches, `mini attach` "
        "comes back, `mini exec -it NAME sh` joins it); next: chapter 08, security (coming).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
