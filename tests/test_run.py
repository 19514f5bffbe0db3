"""`mini run` end to end, as root, against the real kernel (chapter 01 acceptance)."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import MINI, container_pid, mini
from mini_runtime import syscalls

pytestmark = [pytest.mark.root, pytest.mark.integration]


def test_echo_hi():
    result = mini("run", "busybox", "echo", "hi")
    assert (result.returncode, result.stdout, result.stderr) == (0, "hi\n", "")


@pytest.mark.parametrize("code", [0, 1, 7, 42, 255])
def test_exit_code_is_the_commands_own(code):
    assert mini("run", "busybox", "sh", "-c", f"exit {code}").returncode == code


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGSEGV])
def test_killed_by_signal_n_gives_128_plus_n(sig):
    # --init: the command is not PID 1, so it can die of its own signal (chapter 03).
    result = mini("run", "--init", "busybox", "sh", "-c", f"kill -{int(sig)} $$")
    assert result.returncode == 128 + sig


def test_sigkill_from_outside_gives_137():
    proc = subprocess.Popen(MINI + ["run", "busybox", "sh", "-c", "echo ready; exec sleep 30"],
                            stdout=subprocess.PIPE, text=True)
    assert select.select([proc.stdout], [], [], 10)[0] and proc.stdout.readline() == "ready\n"
    container = container_pid()
    os.kill(container, signal.SIGKILL)
    assert proc.wait(timeout=10) == 137


def test_unknown_image_is_125_with_one_line():
    result = mini("run", "nosuchimage")
    assert result.returncode == 125
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and "nosuchimage:latest" in result.stderr


def test_invalid_image_name_is_125_with_one_line():
    result = mini("run", "Not/Valid!")
    assert result.returncode == 125 and len(result.stderr.splitlines()) == 1
    assert "invalid reference format" in result.stderr


def test_missing_command_is_127():
    result = mini("run", "--rm", "busybox", "nosuchcmd")
    assert result.returncode == 127
    assert result.stderr == 'mini: exec: "nosuchcmd": executable file not found in $PATH\n'


def test_not_executable_is_126():
    result = mini("run", "--rm", "busybox", "/etc/passwd")
    assert result.returncode == 126
    assert result.stderr == 'mini: exec: "/etc/passwd": permission denied\n'


def test_directory_is_126():
    assert mini("run", "--rm", "busybox", "/etc").returncode == 126


def test_bad_flag_is_125_with_one_line():
    result = mini("run", "--no-such-flag", "busybox")
    assert result.returncode == 125 and len(result.stderr.splitlines()) == 1
    assert "--no-such-flag" in result.stderr


@pytest.mark.parametrize("flags, want", [
    (["-e", "=x"], 'mini: invalid argument "=x" for "-e, --env" flag: invalid environment variable: =x\n'),
    (["-w", "srv"], "mini: the working directory 'srv' is invalid, it needs to be an absolute path\n"),
])
def test_a_bad_env_or_workdir_is_125_and_creates_nothing(state_root, flags, want):
    def records() -> list:  # (the directory appears with the first container: it may not exist yet)
        folder = state_root / "containers"
        return sorted(folder.iterdir()) if folder.exists() else []
    before = records()
    result = mini("run", "--rm", *flags, "busybox", "true")
    assert (result.returncode, result.stderr) == (125, want)
    assert records() == before


@pytest.mark.parametrize("hostname, want", [
    ("h" * 65, f"invalid hostname '{'h' * 65}': 1 to 64 bytes (sethostname(2))"),
    ("a\nb", "invalid hostname 'a\\nb': a host name is letters, digits, '-' and '.'"),   # (a line of
    (b"a\xffb", "invalid hostname 'a\\udcffb': a host name is letters, digits, '-' and '.'"),  # its hosts)
])
def test_a_bad_hostname_is_one_line_and_creates_nothing(state_root, hostname, want):
    folder = state_root / "containers"
    before = sorted(folder.iterdir()) if folder.exists() else []
    result = mini("run", "--rm", "-h", hostname, "busybox", "true")
    assert (result.returncode, result.stderr) == (125, f"mini: {want}\n")
    assert (sorted(folder.iterdir()) if folder.exists() else []) == before


def test_a_user_that_is_no_utf8_is_named_in_the_error():
    """The child's error report held a surrogate and failed to encode: exit 125 and no word."""
    result = mini("run", "--rm", "-u", b"\xff", "busybox", "true")
    assert (result.returncode, result.stderr) == (
        125, "mini: container setup failed: unable to find user \\udcff: no matching entries in passwd file\n")


def test_a_name_too_long_for_the_name_index_is_one_line():
    result = mini("create", "--name", "a" * 5000, "busybox", "true")   # (the engine's refusal: create's 1)
    assert result.returncode == 1 and result.stderr.startswith("mini: Invalid container name (aaaa")
    assert len(result.stderr) < 300 and "at most 200 characters" in result.stderr


def test_a_setup_failure_is_worded_as_go_words_it():
    """The child's OSError, as one line in docker's style: not Python's "[Errno 30] ...". (A file
    in -w's way is docker's own sentence, "Cannot mkdir: P is not a directory", as docker 20.10
    says it: test_lifecycle.)"""
    result = mini("run", "--rm", "-w", "/sys/x", "busybox", "true")   # (sysfs is read-only)
    assert (result.returncode, result.stderr) == (125, "mini: container setup failed: /sys/x: read-only file system\n")


def test_an_int_flag_beyond_64_bits_is_dockers_parse_error():
    result = mini("run", "--rm", "--pids-limit", "9" * 30, "busybox", "true")
    assert result.returncode == 125 and result.stderr == (
        f'mini: invalid argument "{"9" * 30}" for "--pids-limit" flag: strconv.ParseInt: '
        f'parsing "{"9" * 30}": value out of range\n')


def test_tty_flag_without_a_terminal_still_gives_the_container_one():
    # (chapter 06: -t makes a pty for the container even when ours is a pipe; its output comes
    # through the pty's line discipline, so "\n" arrives as "\r\n", as with docker run -t.)
    result = subprocess.run(MINI + ["run", "-t", "--rm", "busybox", "sh", "-c", "[ -t 1 ] && echo terminal"],
                            capture_output=True, timeout=30)
    assert (result.returncode, result.stdout) == (0, b"terminal\r\n")


def test_env_workdir_and_arguments_reach_the_command(state_root):
    result = mini("run", "--rm", "-e", "GREETING=hello world", "-w", "/tmp", "busybox",
                  "sh", "-c", 'echo "$GREETING"; pwd; echo "$#" "$@"', "sh", "a b", "-l")
    lines = result.stdout.splitlines()
    assert result.returncode == 0, result.stderr
    assert lines[0] == "hello world"
    assert lines[1] == "/tmp"
    assert lines[2] == "2 a b -l"


def test_env_without_value_is_taken_from_the_caller():
    result = mini("run", "-e", "FROM_HOST", "busybox", "sh", "-c", 'echo "$FROM_HOST"',
                  env={**__import__("os").environ, "FROM_HOST": "yes"})
    assert result.stdout == "yes\n"


def test_env_file_is_read_as_dockers_client_reads_it(tmp_path):
    """opts.ParseEnvFile: a BOM and leading blanks dropped, #comments and blank lines skipped, a
    value kept exactly (quotes and all), a bare KEY from the caller or dropped; -e comes after."""
    env_file = tmp_path / "app.env"
    env_file.write_bytes(b'\xef\xbb\xbfA=1\n  # a comment\n\n\tB="q x" \r\nFROM_HOST\nUNSET_HERE\nC=file\n')
    result = mini("run", "--rm", "--env-file", str(env_file), "-e", "C=flag", "busybox", "env",
                  env={**__import__("os").environ, "FROM_HOST": "yes"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line for line in lines if line[:2] in ("A=", "B=", "C=") or line.startswith("FROM_HOST")] == \
        ["A=1", 'B="q x" ', "FROM_HOST=yes", "C=flag"]
    assert not any(line.startswith("UNSET_HERE") for line in lines)


@pytest.mark.parametrize("content, want", [
    (None, "mini: open {path}: no such file or directory\n"),
    (b"MY VAR=1\n", "mini: poorly formatted environment: variable 'MY VAR' contains whitespaces\n"),
    (b"A=1\n=x\n", "mini: poorly formatted environment: no variable name on line '=x'\n"),
    (b"A=1\nB=\xff\n", "mini: env file {path} contains invalid utf8 bytes at line 2: [66 61 255]\n"),
])
def test_a_bad_env_file_is_125_and_creates_nothing(state_root, tmp_path, content, want):
    path = tmp_path / "bad.env"
    if content is not None:
        path.write_bytes(content)
    folder = state_root / "containers"
    before = sorted(folder.iterdir()) if folder.exists() else []
    result = mini("create", "--env-file", str(path), "busybox", "true")
    assert (result.returncode, result.stderr) == (125, want.format(path=path))
    assert (sorted(folder.iterdir()) if folder.exists() else []) == before


def test_an_env_file_without_line_ends_is_read_no_further_than_a_line():
    result = mini("run", "--rm", "--env-file", "/dev/zero", "busybox", "true")   # (not all of memory)
    assert result.returncode == 125
    assert result.stderr == "mini: /dev/zero: line 1 is longer than 64 KiB (docker's: bufio.Scanner: token too long)\n"
    labels = mini("run", "--rm", "--label-file", "/dev/zero", "busybox", "true")
    assert (labels.returncode, labels.stderr) == (125, result.stderr)


def test_the_environment_is_dockers_path_hostname_then_home():
    """docker's daemon puts PATH and HOSTNAME first (TERM with -t), runc adds the user's HOME
    from the container's /etc/passwd when nobody set it: `docker run busybox env`."""
    plain = mini("run", "--rm", "--hostname", "envhost", "busybox", "env")
    assert plain.stdout.splitlines() == [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=envhost", "HOME=/root"]
    nobody = mini("run", "--rm", "-t", "-u", "nobody", "-e", "A=1", "busybox", "env")
    assert nobody.stdout.splitlines()[1:] == [f"HOSTNAME={nobody.stdout.split('HOSTNAME=')[1][:12]}",
                                              "TERM=xterm", "A=1", "HOME=/home"]   # (-t: "\r\n" lines)
    own = mini("run", "--rm", "-u", "4242", "-e", "HOME=/mine", "-e", "HOSTNAME=set", "busybox", "env")
    assert own.stdout.splitlines()[1:] == ["HOSTNAME=set", "HOME=/mine"]
    bare_uid = mini("run", "--rm", "-u", "4242", "busybox", "sh", "-c", 'echo "$HOME"')
    assert bare_uid.stdout == "/\n"


def test_the_image_env_sets_path_and_nothing_leaks_from_the_host():
    result = mini("run", "busybox", "env", env={**__import__("os").environ, "SECRET": "x"})
    assert "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in result.stdout
    assert "SECRET" not in result.stdout


def test_hostname_and_home_are_set_as_docker_sets_them():
    """docker 20.10's daemon adds HOSTNAME after PATH, and runc HOME from the user's passwd
    entry ("/" without one), to run's and exec's processes alike; the image's Env and -e win,
    and neither goes into Config.Env. (mini gave only PATH: `cd` alone stayed put, $HOME was
    empty in `exec -it c sh`.)"""
    cid = mini("run", "-d", "--hostname", "walkhost", "busybox", "sleep", "60").stdout.strip()
    try:
        path = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        assert mini("exec", cid, "env").stdout.splitlines() == [path, "HOSTNAME=walkhost", "HOME=/root"]
        assert mini("exec", "-u", "nobody", cid, "sh", "-c", "cd; pwd; echo $HOME").stdout == "/home\n/home\n"
        assert mini("exec", "-u", "1234", cid, "sh", "-c", "echo $HOME").stdout == "/\n"
        assert mini("exec", "-e", "HOME=/x", "-e", "HOSTNAME=h", cid, "env").stdout.splitlines() == \
            [path, "HOSTNAME=h", "HOME=/x"]
        assert mini("inspect", "-f", "{{json .Config.Env}}", cid).stdout == f'["{path}"]\n'
    finally:
        mini("rm", "-f", cid)
    ran = mini("run", "--rm", "-t", "-u", "nobody", "busybox", "env").stdout.splitlines()
    assert [line.split("=")[0] for line in ran] == ["PATH", "HOSTNAME", "TERM", "HOME"], ran
    assert "HOME=/home" in ran and len(ran[1]) == len("HOSTNAME=") + 12   # the short id
    assert mini("run", "--rm", "-e", "HOME=/y", "busybox", "sh", "-c", "echo $HOME").stdout == "/y\n"


def test_default_command_is_the_images_cmd():
    result = mini("run", "-i", "busybox", input="echo from-sh; exit 3\n")
    assert (result.returncode, result.stdout) == (3, "from-sh\n")


def test_stdin_passes_through_with_i_only():
    """docker's: stdin reaches the container with -i; without, it reads /dev/null (mini's
    foreground run handed it the terminal, so `echo x | mini run busybox cat` printed x)."""
    assert mini("run", "-i", "busybox", "cat", input="piped\n").stdout == "piped\n"
    without = mini("run", "busybox", "sh", "-c", "cat; readlink /proc/self/fd/0", input="piped\n")
    assert (without.returncode, without.stdout) == (0, "/dev/null\n")


def test_sigpipe_is_default_inside():
    """Python ignores SIGPIPE; the container must not inherit that (yes | head must end)."""
    result = mini("run", "busybox", "sh", "-c", "yes | head -n 2; echo done", timeout=10)
    assert result.stdout == "y\ny\ndone\n"


def test_only_std_fds_reach_the_container():
    result = mini("run", "busybox", "ls", "/proc/self/fd")
    assert sorted(result.stdout.split()) == ["0", "1", "2", "3"]  # 3 is ls's own directory fd


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signals_to_mini_are_forwarded(sig):
    name = signal.Signals(sig).name[3:]
    script = f'trap "echo got-{name}; kill \\$!; exit 3" {name}; echo ready; sleep 30 & wait'
    proc = subprocess.Popen(MINI + ["run", "busybox", "sh", "-c", script],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert select.select([proc.stdout], [], [], 10)[0]
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (proc.returncode, out) == (3, f"got-{name}\n")


def test_the_command_ignores_no_signal_that_mini_ignored():
    """Ignored stays ignored across execve: Python's SIGPIPE and SIGXFSZ, SIGHUP under
    `nohup mini run`, the C library's 32 and 33 under `make`. The command starts with none
    ignored, as a docker container's does, so its shell can still trap SIGHUP."""
    def as_nohup() -> None:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        for sig in (32, 33):                                # as `make` does
            syscalls.set_disposition(sig, ignore=True)

    result = subprocess.run(MINI + ["run", "busybox", "grep", "SigIgn", "/proc/self/status"],
                            capture_output=True, text=True, timeout=60, preexec_fn=as_nohup)
    assert result.stdout.split() == ["SigIgn:", "0" * 16], result.stderr


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (its children, theirs, ...)."""
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        for child in open(f"/proc/{pid}/task/{task}/children").read().split():
            found += [int(child), *_descendants(int(child))]
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("flags", [[], ["-u", "65534"], ["--init"], ["--init", "-u", "65534"]],
                         ids=["root", "user", "init", "init-user"])
def test_killing_mini_kills_the_container(flags):
    """No orphans: the container dies with its parent (PR_SET_PDEATHSIG): a foreground `mini run`
    is its container's monitor (a detached one's monitor: test_lifecycle.py). setuid/setgid (-u,
    or the image's User) clear the parent-death signal: it is armed again."""
    proc = subprocess.Popen(MINI + ["run", "--rm", *flags, "busybox", "sh", "-c", "echo ready; exec sleep 77"],
                            stdout=subprocess.PIPE, text=True)
    assert select.select([proc.stdout], [], [], 10)[0] and proc.stdout.readline() == "ready\n"
    inside = _descendants(proc.pid)
    assert len(inside) == (2 if "--init" in flags else 1)
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in inside) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [pid for pid in inside if _alive(pid)]
    for pid in left:                      # (so that a failure leaves nothing behind either)
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)            # (an orphan: it came to pytest, the subreaper)
    # The killed mini could not remove the container's files; the next run does.
    assert mini("run", "busybox", "true").returncode == 0
    assert not left, f"container processes {left} still running after mini was killed"


def _uid_line(pid: int) -> str:
    try:
        return next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                    if line.startswith("Uid:"))
    except (OSError, StopIteration):
        return ""


def test_a_child_whose_mini_died_during_setup_never_runs_its_command():
    """The window the parent-death signal cannot cover: mini dies after "go", while setup
    changes the child's identity (which clears the signal). The child must notice and leave."""
    from mini_runtime import process
    from mini_runtime.config import ProcessSpec

    def setup() -> None:
        os.setgid(65534)
        os.setuid(65534)   # clears PR_SET_PDEATHSIG
        time.sleep(0.5)    # meanwhile, mini dies

    report_read, report_write = os.pipe()
    fake_mini = os.fork()
    if fake_mini == 0:
        try:
            child = process.spawn(ProcessSpec(["sleep", "30"], {"PATH": "/usr/bin:/bin"}, "/"), "/", setup)
            os.write(report_write, str(child.pid).encode())
            os.write(child.go, process.GO)   # go; die once setup has changed the child's
            deadline = time.monotonic() + 5     # identity (before that, PDEATHSIG kills it)
            while time.monotonic() < deadline and "\t65534\t" not in _uid_line(child.pid):
                time.sleep(0.005)
        finally:
            os._exit(0)
    os.close(report_write)
    pid = int(os.read(report_read, 32))
    os.close(report_read)
    os.waitpid(fake_mini, 0)
    deadline = time.monotonic() + 5   # the orphan comes to pytest, a child subreaper
    while (reaped := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    if reaped[0] == 0:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the child ran its command although its mini was gone")
    assert os.waitstatus_to_exitcode(reaped[1]) == 125


def test_concurrent_first_runs_build_the_image_once(tmp_path):
    env = {**__import__("os").environ, "MINI_ROOT": str(tmp_path / "root")}
    procs = [subprocess.Popen(MINI + ["run", "busybox", "true"], env=env) for _ in range(4)]
    assert [p.wait(timeout=60) for p in procs] == [0] * 4
    assert len([d for d in (tmp_path / "root" / "layers").iterdir() if d.name != "l"]) == 1  # unpacked once


def test_help_everywhere():
    for args in (["--help"], ["run", "--help"], ["images", "--help"], ["doctor", "--help"]):
        result = mini(*args)
        assert result.returncode == 0 and "usage" in result.stdout.lower(), args


def test_version():
    result = mini("--version")
    assert result.returncode == 0 and result.stdout.startswith("mini version ")


def test_python_dash_m_is_the_same_command():
    import sys

    result = subprocess.run([sys.executable, "-m", "mini_runtime", "run", "busybox", "echo", "hi"],
                            capture_output=True, text=True, timeout=30)
    assert result.stdout == "hi\n"


NOT_ON_THE_START_PATH = {"argparse", "shutil", "tempfile", "lzma", "bz2", "threading", "hashlib",
                         "tarfile", "typing", "locale", "subprocess", "mini_runtime.views",
                         "mini_runtime.update", "mini_runtime.cli.update"}


@pytest.mark.parametrize("flags", [[], ["-l", "a=b", "-e", "X=1", "--memory", "64m"]])
def test_a_plain_run_imports_nothing_it_does_not_need(flags):
    """Chapter 01's 'Why mini starts fast' names what a plain `mini run` never imports: a
    module imported by the way on the start path (a helper's import at the top of a function
    every run calls) costs every run of every class, and no timing test would notice."""
    import sys

    assert mini("run", "--rm", "busybox", "true").returncode == 0   # (the first builds the image)
    done = subprocess.run([sys.executable, "-S", "-X", "importtime", *MINI, "run", "--rm", *flags,
                           "busybox", "true"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    imported = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:") and "imported package" not in line}
    assert "mini_runtime.runtime" in imported           # (the parse read the whole pipeline)
    assert imported & NOT_ON_THE_START_PATH == set()


def test_images_lists_the_builtin_busybox():
    result = mini("images")
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    row = next(line.split() for line in lines[1:] if line.split()[:2] == ["busybox", "latest"])
    assert len(row[2]) == 12    # (newest first, as docker: other tests' images may come before)


def test_doctor_prints_one_line_per_requirement():
    result = mini("doctor")
    names = ["root", "kernel", "not in a container", "cgroups", "overlayfs", "namespaces",
             "user namespaces", "nftables", "busybox-static", "python"]
    assert result.returncode == 0, result.stdout   # this machine runs containers (the tests do)
    assert len(result.stdout.splitlines()) == len(names)
    for line, name in zip(result.stdout.splitlines(), names):
        assert line[0] in "✓✗!" and name in line


#: Watches a `mini` for writes of a container's record: one line on stderr per write.
RECORD_WRITES = """
import sys
from mini_runtime import container, paths
write = paths.atomic_write
def counted(path, *args, **kwargs):
    if path.name == container.RECORD:
        sys.stderr.write("record written\\n")
    return write(path, *args, **kwargs)
paths.atomic_write = counted
from mini_runtime.cli import command
sys.argv[0] = "mini"
command()
"""


@pytest.mark.parametrize("flags, writes", [(["--rm"], 3), ([], 5)])
def test_a_plain_run_writes_its_record_only_when_it_changes(flags, writes):
    """Each write of a record is a new file renamed over the old (~0.4 ms on ext4): a run writes
    it when it is made (its LogPath in it already), when its network is recorded, when it runs,
    and, unless --rm, when its network is undone and when it has ended. An --rm record is
    removed at the end: it is not told its network is gone first."""
    import sys

    done = subprocess.run([sys.executable, "-c", RECORD_WRITES, "run", *flags, "--name", "counted",
                           "busybox", "true"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("record written\n") == writes, done.stderr
    mini("rm", "counted")


#: Tells which of mini's modules call re.compile, one line on stderr each.
PATTERNS_COMPILED = """
import re, sys
compile = re.compile
def told(*args, **kwargs):
    caller = sys._getframe(1).f_globals.get("__name__", "")
    if caller.startswith("mini_runtime"):
        sys.stderr.write(f"compiled by {caller}\\n")
    return compile(*args, **kwargs)
re.compile = told
from mini_runtime.cli import command
sys.argv[0] = "mini"
command()
"""


def test_a_plain_run_compiles_only_the_patterns_it_uses():
    """A pattern compiled when its module is imported costs every run (0.1-1 ms each, docker's
    big ones the most), used or not. Every run parses an image reference and looks up names;
    other patterns are compiled on first use (re's own cache keeps them), e.g. --dns-search's."""
    import sys

    assert mini("run", "--rm", "busybox", "true").returncode == 0   # (the first builds the image)
    done = subprocess.run([sys.executable, "-c", PATTERNS_COMPILED, "run", "--rm", "busybox", "true"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    compiled = {line.removeprefix("compiled by ") for line in done.stderr.splitlines()}
    # (and etcfiles: the host's resolv.conf names a loopback stub, as the tests' does, and a
    # container's own network filters it out with docker's pattern)
    assert compiled <= {"mini_runtime.image.reference", "mini_runtime.names",
                        "mini_runtime.network.etcfiles"}, done.stderr
