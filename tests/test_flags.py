"""cli/flags.py parses plain command lines without argparse: on any command line of any command
it must give what argparse gives, or step aside (None) and let argparse decide (and refuse)."""

from __future__ import annotations

import os
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mini_runtime import cli
from mini_runtime.cli import flags
from mini_runtime.errors import UsageError

from conftest import MINI

#: Words a command line is made of: the hot commands' own flags (whole, glued to a value,
#: abbreviated, bundled), values, and what argparse treats specially ("--", "-", "-5", "").
WORDS = ["--rm", "-d", "-i", "-t", "-it", "-dit", "-ti", "-id", "-e", "--env", "--env=A=1", "-e=A",
         "-eA=1", "--name", "--name=web", "--nam", "--net", "--network=none", "--network", "-h",
         "--hostname", "-w", "/tmp", "-u", "1000", "--cgroupns", "host", "private", "bogus",
         "--cgroupns=host", "--restart", "--memory", "-m", "64m", "--memory-swap", "-1", "-5",
         "--help", "--rm=1", "-P", "-p", "80", "8080:80", "--", "-", "", "--detach-keys",
         "ctrl-x", "--init", "--read-only", "--tmpfs", "-x", "--bogus", "A=1", "busybox",
         "sh", "-c", "echo hi", "ls", "-l", "c1", "--user", "--workdir", "--ulimit", "--cpus",
         "0.5", "--interactive", "--tty", "--detach"]

#: ... and the other commands' flags, with values of each kind (a number for `--time`, not one).
OTHER_WORDS = ["-a", "--all", "-f", "--force", "--format", "{{.ID}}", "-q", "--quiet", "-n", "3",
               "-n3", "x3", "--last=2", "--last", "--tail", "all", "-t", "10", "--time", "--time=5",
               "--follow", "--timestamps", "-s", "KILL", "--signal=TERM", "--no-trunc", "--no-stream",
               "-l", "--latest", "--filter", "status=exited", "-o", "out.tar", "--output", "-m",
               "msg", "--author", "-p", "--pause=false", "-H", "--human=false", "--no-stdin",
               "--attach", "c2", "c3", "new_name", "80/tcp", "-aq", "-qa", "-ef", "--since", "-i",
               "ls", "create", "--driver", "bridge", "--subnet", "10.1.0.0/24"]

#: Every command: the fast path is tried for all of them (cli.parse).
COMMANDS = sorted(cli.GROUPS)

command_lines = st.tuples(st.sampled_from(COMMANDS),
                          st.lists(st.sampled_from(WORDS + OTHER_WORDS), max_size=8))


def with_argparse(words: list[str]) -> dict | str:
    try:
        return vars(cli.parse_with_argparse(words, words[0]))
    except UsageError as e:
        return f"refused: {e}"
    except SystemExit:  # --help prints and exits
        return "help"


@settings(max_examples=6000, deadline=None)
@given(command_lines)
def test_the_fast_path_agrees_with_argparse_or_steps_aside(line: tuple[str, list[str]]) -> None:
    command, words = line
    fast = flags.parse(command, words, cli.group_of(command).PARSERS[command])
    if fast is not None:
        assert vars(fast) == with_argparse([command, *words])


@pytest.mark.parametrize("words", [
    ["run", "--rm", "--network", "none", "busybox", "true"],
    ["run", "-it", "-e", "A=1", "--env=B=2", "--name", "web", "busybox", "sh", "-c", "echo $A"],
    ["run", "-d", "-p", "8080:80", "busybox", "--rm", "-x"],      # after the image: its command
    ["create", "--cgroupns", "host", "-m", "64m", "busybox"],
    ["exec", "-it", "c1", "ls", "-l"],
    ["exec", "-e", "K=V", "-w", "/tmp", "c1", "env"],
    ["ps", "-a"], ["ps", "-aq", "--no-trunc", "-n", "3"], ["ps", "--format", "{{.Names}}"],
    ["rm", "-f", "c1", "c2"], ["logs", "--tail", "5", "c1"], ["logs", "c1", "-f"],
    ["stop", "-t", "1", "c1"], ["inspect", "-f", "{{.State.Pid}}", "c1"], ["version"],
    ["top", "c1", "-ef"], ["port", "c1", "80/tcp"], ["kill", "-s", "TERM", "c1"], ["images", "-q"],
    ["tag", "busybox", "mine:1"], ["stats", "--no-stream"], ["start", "-a", "c1"], ["wait", "c1"],
])
def test_plain_command_lines_take_the_fast_path(words: list[str]) -> None:
    """The lines users type most go without argparse (else the speed is gone unnoticed)."""
    fast = flags.parse(words[0], words[1:], cli.group_of(words[0]).PARSERS[words[0]])
    assert fast is not None and vars(fast) == with_argparse(words)


@pytest.mark.parametrize("words", [["run"], ["run", "--rmx", "busybox"], ["run", "--nam", "x", "busybox"],
                                   ["run", "--cgroupns", "bogus", "busybox"], ["exec", "-h"],
                                   ["run", "--name", "-x", "busybox"], ["run", "-eA=1", "busybox"],
                                   ["rm"], ["rm", "c1", "-f", "c2"], ["stop", "-t", "x", "c1"],
                                   ["ps", "extra"], ["rename", "c1"], ["logs", "c1", "c2"],
                                   ["history", "--human=false", "busybox"],  # (argparse's action)
                                   ["network", "ls"], ["ps", "--", "-a"], ["inspect", "-"]])
def test_what_argparse_must_decide_is_left_to_it(words: list[str]) -> None:
    assert flags.parse(words[0], words[1:], cli.group_of(words[0]).PARSERS[words[0]]) is None


@pytest.mark.parametrize("words, expected", [
    (["rm", "a", "-f", "b"], {"force": True, "containers": ["a", "b"]}),
    (["rm", "a", "b", "--force"], {"force": True, "containers": ["a", "b"]}),
    (["stop", "c1", "-t", "1", "c2"], {"time": 1, "containers": ["c1", "c2"]}),
    (["kill", "c1", "-s", "KILL", "c2"], {"signal": "KILL", "containers": ["c1", "c2"]}),
    (["inspect", "c1", "-f", "{{.Id}}", "c2"], {"format": "{{.Id}}", "names": ["c1", "c2"]}),
    (["history", "busybox", "--human=false"], {"human": False, "image": "busybox"}),
])
def test_flags_may_follow_the_names_as_in_docker(words: list[str], expected: dict) -> None:
    """docker's flags are interspersed (pflag): `docker rm web -f db` removes both, forced."""
    args = vars(cli.parse(words, words[0]))
    assert {key: args[key] for key in expected} == expected and args["command"] == words[0]


@pytest.mark.parametrize("words, attribute, expected", [
    (["run", "busybox", "ls", "-f", "--rm"], "args", ["ls", "-f", "--rm"]),
    (["create", "busybox", "echo", "-d"], "args", ["echo", "-d"]),
    (["exec", "c1", "ls", "-l", "-a"], "cmd", ["ls", "-l", "-a"]),
    (["top", "c1", "-e", "-f"], "ps_args", ["-e", "-f"]),
])
def test_a_containers_command_keeps_its_flags(words: list[str], attribute: str, expected: list) -> None:
    """...but not after the image or container of run, create, exec and top: from there on the
    words are the container's command (docker turns interspersing off for these)."""
    assert getattr(cli.parse(words, words[0]), attribute) == expected
    assert getattr(cli.parse([*words, "-x", "--"], words[0]), attribute) == [*expected, "-x", "--"]


@pytest.mark.parametrize("words, expected", [
    (["run", "busybox", "--", "echo", "hi"], ["--", "echo", "hi"]),
    (["run", "--", "busybox", "echo", "hi"], ["echo", "hi"]),
    (["run", "--", "busybox", "--", "echo"], ["--", "echo"]),
    (["create", "-t", "busybox", "--"], ["--"]),
    (["run", "-e", "-X", "busybox", "--", "echo"], ["--", "echo"]),      # (argparse's path)
    (["exec", "c1", "--", "ls"], ["--", "ls"]),
    (["exec", "-w", "-x", "c1", "ls", "--"], ["ls", "--"]),
    (["top", "c1", "--", "aux"], ["--", "aux"]),
])
def test_a_double_dash_after_the_image_or_container_is_the_containers_word(words, expected) -> None:
    """pflag drops the "--" that ends docker's own flags, and only that one: after IMAGE (or
    CONTAINER) flag parsing has already stopped, so a "--" there is the command's first word
    (`docker run busybox -- echo hi` asks busybox to run "--", and fails: exit 127). Seen in the
    bodies docker 20.10's client sends: `"Cmd":["--","echo","hi"]`."""
    args = vars(cli.parse(words, words[0]))
    assert (args.get("args") or args.get("cmd") or args.get("ps_args")) == expected


@pytest.mark.parametrize("words, expected", [
    (["run", "-m", "-5m", "busybox"], {"memory": "-5m", "image": "busybox"}),
    (["run", "--name", "-x", "busybox", "true"], {"name": "-x", "args": ["true"]}),
    (["run", "-dm", "-5m", "busybox"], {"detach": True, "memory": "-5m"}),
    (["run", "-e", "-X", "-e", "=x", "--env", "-Y=1", "busybox"], {"env": ["-X", "=x", "-Y=1"]}),
    (["run", "-d", "busybox", "echo", "-m", "-5m"], {"memory": None, "args": ["echo", "-m", "-5m"]}),
    (["exec", "-w", "-x", "c1", "ls", "-e", "-l"], {"workdir": "-x", "cmd": ["ls", "-e", "-l"]}),
    (["logs", "c1", "--tail", "-5"], {"tail": "-5", "container": "c1"}),
    (["network", "create", "--subnet", "-x", "n1"], {"subnet": ["-x"], "name": "n1"}),
    (["run", "-e", "--", "--name", "--", "-l", "--", "busybox", "sh", "--"],
     {"env": ["--"], "name": "--", "label": ["--"], "args": ["sh", "--"]}),
])
def test_a_flags_value_may_start_with_a_dash_as_in_docker(words: list[str], expected: dict) -> None:
    """pflag gives a flag that takes a value the next word, whatever it is: `-m -5m` is refused
    by the size parser, in docker's words, not as a flag without its value (argparse's "expected
    one argument"). The container's own words stay untouched."""
    args = vars(cli.parse(words, words[0]))
    assert {key: args[key] for key in expected} == expected


def test_a_value_of_two_dashes_is_named_as_typed() -> None:
    """argparse would drop "--" even as `--cgroupns=--`: mini keeps it as its own NUL-marked
    word while argparse parses, which no message may show."""
    with pytest.raises(UsageError, match=r"invalid choice: '--' \(choose"):
        cli.parse(["run", "--cgroupns", "--", "busybox"], "run")


def test_an_intermixed_line_is_still_checked() -> None:
    for words in (["rm", "a", "-z", "b"], ["stop", "c1", "-t", "x"], ["ps", "extra", "-a"]):
        with pytest.raises(UsageError):
            cli.parse(words, words[0])


@pytest.mark.parametrize("words, same", [
    (["image", "ls", "-q"], ["images", "-q"]), (["image", "list"], ["images"]),
    (["image", "rm", "a:1", "b"], ["rmi", "a:1", "b"]), (["image", "tag", "a", "b"], ["tag", "a", "b"]),
    (["container", "ls", "-a"], ["ps", "-a"]), (["container", "rm", "-f", "web"], ["rm", "-f", "web"]),
    (["container", "run", "--rm", "busybox", "ls", "ls"], ["run", "--rm", "busybox", "ls", "ls"]),
    (["container", "exec", "c1", "container", "ls"], ["exec", "c1", "container", "ls"]),
])
def test_dockers_management_commands_are_the_same_commands(words: list[str], same: list[str]) -> None:
    """`docker image ls`, `docker container rm`: the group's verb is the command, and the rest
    of the line (a container's own command included) is left as it is."""
    assert cli.management(words) == same
    assert vars(cli.parse(cli.management(words), same[0])) == vars(cli.parse(same, same[0]))


def test_an_unknown_management_verb_is_a_usage_error() -> None:
    for words in (["container", "bogus"], ["container"], ["image", "bogus"]):
        with pytest.raises(UsageError):
            cli.parse(cli.management(words), words[0])
    assert cli.management(["image", "squash", "a", "b"]) == ["image", "squash", "a", "b"]
    assert cli.management(["run", "busybox", "image", "ls"]) == ["run", "busybox", "image", "ls"]


@pytest.mark.parametrize("words, hint, names", [
    (["network", "create"], "see 'mini network create --help'", ['"mini network create" requires exactly 1 argument']),
    (["network", "prune", "extra"], "see 'mini network --help'", ["extra"]),
    (["image", "squash", "a"], "see 'mini image squash --help'", ["requires exactly 2 arguments"]),
    (["image", "bogus"], "see 'mini image --help'", ["'ls'", "'load'", "'squash'"]),
])
def test_a_groups_error_names_the_help_to_read_and_every_verb(words: list[str], hint: str, names: list[str]) -> None:
    """The `--help` named is the command's own (not `mini network COMMAND create`, nor `mini`),
    and an unknown verb lists them all, the docker names main() rewrites included."""
    with pytest.raises(UsageError) as e:
        cli.parse(cli.management(words), words[0])
    assert hint in str(e.value) and all(name in str(e.value) for name in names), str(e.value)


@pytest.mark.parametrize("words", [["run", "-m"], ["run", "--name"], ["run", "-dm"], ["create", "-e"],
                                   ["ps", "-n"], ["exec", "-w"], ["logs", "--tail"], ["stop", "-t"],
                                   ["run", "--rm", "-p"], ["network", "create", "--subnet"],
                                   ["run", "--na", "xy", "busybox", "true"], ["ps", "--al"], ["logs", "--ti", "x"],
                                   ["rm", "-x", "a"], ["run", "-it", "-x", "busybox"], ["ps", "--bogus=3"],
                                   ["exec", "-x", "c1", "true"], ["network", "create", "--sub", "x", "n1"],
                                   ["ps", "-aZ"], ["run", "--mem", "10m", "busybox"]])
def test_a_flag_without_its_value_is_refused_in_the_docker_clients_words(words, tmp_path):
    """The docker client parses its flags before it talks to a daemon: its first line and exit
    code are the oracle (Debian's client, with no daemon behind it). Also an unknown flag, and
    an abbreviated one: pflag takes no prefix of a flag (argparse did: `--na` was --name, `--pid
    host` a --pids-limit of 'host', `ps --al` ran as --all)."""
    import subprocess

    from peers import DOCKER, need

    need(DOCKER)
    env = {"PATH": "/usr/bin:/bin", "DOCKER_HOST": f"unix://{tmp_path}/none.sock", "DOCKER_CONFIG": str(tmp_path)}
    docker = subprocess.run([str(DOCKER), *words], capture_output=True, text=True, env=env, timeout=30)
    with pytest.raises(UsageError) as refused:
        cli.parse(words, words[0])
    assert docker.returncode == cli.exit_code(words[0], refused.value) == 125
    assert str(refused.value).split(" (see ")[0] == docker.stderr.splitlines()[0]


@pytest.mark.parametrize("words", [["run"], ["exec", "c1"], ["logs", "a", "b"], ["ps", "extra"], ["port"],
                                   ["port", "a", "80", "x"], ["wait"], ["tag", "busybox"], ["rename", "a"],
                                   ["network", "create"], ["rm"], ["images", "a", "b"], ["history"], ["top"]])
def test_too_few_or_too_many_arguments_are_the_docker_clients_words_and_exit_1(words, tmp_path, capsys):
    """cobra checks the count of arguments after the flags: its line, less its final period, and
    its exit 1 (not a bad flag's 125). (mini said 125, and argparse's "unrecognized arguments")."""
    import subprocess

    from peers import DOCKER, need

    need(DOCKER)
    env = {"PATH": "/usr/bin:/bin", "DOCKER_HOST": f"unix://{tmp_path}/none.sock", "DOCKER_CONFIG": str(tmp_path)}
    docker = subprocess.run([str(DOCKER), *words], capture_output=True, text=True, env=env, timeout=30)
    code = cli.main(words)                              # (each is refused before it acts)
    said = capsys.readouterr().err.removeprefix("mini: ").split(" (see ")[0].rstrip("\n")
    assert docker.returncode == code == 1
    assert said.replace('"mini', '"docker') + "." == docker.stderr.splitlines()[0]


@pytest.mark.parametrize("group", ["image", "container", "network"])
def test_a_management_command_alone_prints_its_usage_and_exits_0_as_dockers(group, tmp_path, capsys):
    """`docker network` lists its verbs on stdout and exits 0 (mini said "accepts no
    arguments" with 1, "requires exactly 1 argument" with 1, or "needs a command" with 125)."""
    import subprocess

    from peers import DOCKER, need

    need(DOCKER)
    env = {"PATH": "/usr/bin:/bin", "DOCKER_HOST": f"unix://{tmp_path}/none.sock", "DOCKER_CONFIG": str(tmp_path)}
    docker = subprocess.run([str(DOCKER), group], capture_output=True, text=True, env=env, timeout=30)
    code = cli.main([group])
    out = capsys.readouterr()
    said = (docker.stdout + docker.stderr).strip()     # (cobra's stream for it varies by version)
    assert docker.returncode == code == 0 and said.startswith(f"Usage:  docker {group} COMMAND")
    assert out.out.startswith(f"usage: mini {group} COMMAND") and out.err == ""


@pytest.mark.parametrize("words", [["bogus"], ["inspect", "--type", "bogus", "x"], ["rm", ""],
                                   ["container", "bogus"], ["image", "bogus"]])
def test_an_unknown_command_or_value_is_the_docker_clients_exit_1(words, tmp_path, capsys):
    """docker's client refuses these before it asks a daemon, with exit 1 (mini said 125 and
    argparse's "invalid choice", or looked for a container named "")."""
    import subprocess

    from peers import DOCKER, need

    need(DOCKER)
    env = {"PATH": "/usr/bin:/bin", "DOCKER_HOST": f"unix://{tmp_path}/none.sock", "DOCKER_CONFIG": str(tmp_path)}
    docker = subprocess.run([str(DOCKER), *words], capture_output=True, text=True, env=env, timeout=30)
    code = cli.main(words)
    said = capsys.readouterr().err.splitlines()[0]
    assert docker.returncode == code == 1
    if words[0] not in ("container", "image"):            # (docker prints its usage there)
        assert said.removeprefix("mini: " * (words != ["bogus"])).replace("mini", "docker") == \
            docker.stderr.splitlines()[0]


#: Flags that take a value, and words argparse would not take for one.
VALUE_FLAGS = ["-e", "--env", "--name", "-w", "-m", "-l", "--cgroupns", "-n", "--tail", "-t", "--format",
               "-f", "--subnet", "-u", "-p", "--cpus", "create", "busybox", "c1"]
DASHY = ["--", "-", "-x", "-5m", "-1", "-e", "=x"]


@settings(max_examples=3000, deadline=None)
@given(st.tuples(st.sampled_from(["run", "create", "exec", "ps", "logs", "stop", "network", "rm"]),
                 st.lists(st.sampled_from(VALUE_FLAGS + DASHY), max_size=6)))
def test_every_parsed_flag_has_its_kind_of_value(line: tuple[str, list[str]]) -> None:
    """Whatever the words (a "--" where a value goes, a value that looks like a flag), a line is
    refused in one line or each flag holds what its handler expects: a store flag one word (or
    its type), an append flag a list of words. (argparse gave `-e --` an empty list once.)"""
    command, words = line
    try:
        args = vars(cli.parse([command, *words], command))
    except (UsageError, SystemExit):
        return
    record = flags.Recorder()
    cli.group_of(command).PARSERS[command](record)
    for flag in {id(f): f for f in record.options.values()}.values():
        if flag["dest"] not in args and "verb" in args:     # (a flag of the group's other verbs)
            continue
        value = args.get(flag["dest"])
        if flag["action"] == "append":
            assert isinstance(value, list) and all(isinstance(v, str) for v in value), flag
        elif flag["action"] == "store" and value is not None:
            assert isinstance(value, (str, int, float)) and value != cli.DASHES, flag


DOCKER = "/usr/bin/docker"


@pytest.mark.skipif(not os.access(DOCKER, os.X_OK), reason="needs docker's CLI (provision.sh --test installs docker.io)")
@pytest.mark.parametrize("words", [
    ["run", "-m", "lots"], ["run", "--memory-swap", "x"], ["run", "--memory-reservation", "1q"],
    ["run", "--cpus", "abc"], ["run", "--cpus", "nan"], ["run", "--cpus", "1/2"], ["run", "--cpus", "1e-10"],
    ["run", "-c", "x"], ["run", "--pids-limit", "0x10"], ["run", "--pids-limit", "010"], ["run", "--pids-limit", "08"],
    ["run", "--pids-limit", "1_0"], ["run", "--pids-limit", "1__0"], ["run", "--pids-limit", "0b2"],
    ["run", "--pids-limit", "99999999999999999999"], ["create", "--cpu-shares", "-0x1"],
    ["stop", "-t", "08"], ["stop", "-t", "0x_1"], ["stop", "-t", " 7"], ["restart", "--time", "9e9"],
])
def test_a_flags_bad_value_is_pflags_line_as_the_docker_20_10_oracle_says(words, tmp_path):
    """pflag parses a flag's value before docker dials its daemon, so the CLI with no daemon is
    the oracle: its line for a value that is not of the flag's kind (every int flag is Go's
    ParseInt base 0: 0x10 is 16, 010 is 8, 08 is no number; --cpus is a big.Rat: 1/2 is half a
    CPU), or "Cannot connect" for one it took, which mini must take too."""
    oracle = subprocess.run([DOCKER, *words, *(["busybox"] if words[0] in ("run", "create") else ["nosuch"])],
                            capture_output=True, text=True, timeout=30,
                            env={"DOCKER_HOST": "unix:///nonexistent", "PATH": os.environ["PATH"]})
    first = oracle.stderr.splitlines()[0].removeprefix("docker: ")
    env = {**os.environ, "MINI_ROOT": str(tmp_path / "lib"), "MINI_RUN": str(tmp_path / "run")}
    ours = subprocess.run([*MINI, *words, "nosuch-image-or-container:0"], capture_output=True, text=True,
                          env=env, timeout=30)
    if first.startswith("Cannot connect"):
        assert "flag" not in ours.stderr, ours.stderr            # taken: refused later, for the name
    else:
        assert oracle.returncode == 125 and ours.returncode == 125
        assert ours.stderr.startswith("mini: " + first.removesuffix(".")), (ours.stderr, first)
