"""Unit tests of chapter 06's self-contained pieces: json-file logs, names, top, Go templates,
and the ps strings. Fast, no root (except nothing): the expected strings come from docker's
documentation, its source's behaviour, or the traces in shared/reference/engine-api/ (named).
"""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import threading
import time

import pytest

from mini_runtime import logs, names, top, units
from mini_runtime.cli import formatting, template
from mini_runtime.errors import ExecError, ImageNotFound, InvalidParameter, NotRunning, System

NOW = units.parse_rfc3339("2026-11-27T17:40:00Z")


# --- logs: the writer -------------------------------------------------------------------------

def written(tmp_path, *chunks: tuple[str, bytes], close: bool = True) -> list[dict]:
    path = tmp_path / "c-json.log"
    writer = logs.LogWriter(str(path))
    for stream, data in chunks:
        writer.write(stream, data)
    if close:
        writer.close()
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_log_lines_are_docker_json_file_entries(tmp_path):
    path = tmp_path / "c-json.log"
    writer = logs.LogWriter(str(path))
    writer.write("stdout", b"hello world\n")
    writer.close()
    line = path.read_text()
    # trace 32: {"log":"hello world\n","stream":"stdout","time":"<RFC3339Nano>"}, keys in this order
    assert line.startswith('{"log":"hello world\\n","stream":"stdout","time":"')
    assert line.endswith('Z"}\n')
    stamp = json.loads(line)["time"]
    assert units.rfc3339_ns(stamp) == pytest.approx(time.time_ns(), abs=5e9)


def test_log_lines_are_cut_at_newlines_and_kept_per_stream(tmp_path):
    entries = written(tmp_path, ("stdout", b"a\nb"), ("stderr", b"err\n"), ("stdout", b"c\n\n"))
    assert [(e["stream"], e["log"]) for e in entries] == [
        ("stdout", "a\n"), ("stderr", "err\n"), ("stdout", "bc\n"), ("stdout", "\n")]


def test_unfinished_line_is_flushed_without_newline_on_close(tmp_path):
    entries = written(tmp_path, ("stdout", b"done\nno newline"), ("stderr", b"e"))
    assert [e["log"] for e in entries] == ["done\n", "no newline", "e"]


def test_line_over_16k_is_split_into_partials_sharing_a_time(tmp_path):
    """moby daemon/logger/copier.go: a 16 KiB buffer without a newline is logged as a partial
    entry (no "\\n"); the rest of the line follows."""
    line = b"x" * (2 * 16384 + 5) + b"\n"
    entries = written(tmp_path, ("stdout", line[:1000]), ("stdout", line[1000:]))
    assert [len(e["log"]) for e in entries] == [16384, 16384, 6]
    assert entries[-1]["log"].endswith("\n") and "\n" not in entries[0]["log"]
    assert len({e["time"] for e in entries}) == 1


def test_newline_right_after_16k_gives_an_empty_last_piece(tmp_path):
    entries = written(tmp_path, ("stdout", b"y" * 16384 + b"\n"))
    assert [e["log"] for e in entries] == ["y" * 16384, "\n"]


@pytest.mark.parametrize("data, want", [
    # Go's encoding of jsonlog: HTML-safe, \t as \u0009, U+2028 escaped
    (b'tab\there "q" \\ <a&b>\r\n', r'"tab\u0009here \"q\" \\ \u003ca\u0026b\u003e\r\n"'),
    (b"\x01\x1f\x7f\n", r'"\u0001\u001f' + "\x7f" + r'\n"'),
    ("é ✓ \u2028\n".encode(), '"é ✓ \\u2028\\n"'),
    # each byte that starts no valid UTF-8 sequence (utf8.DecodeRune size 1) is the escape
    # \ufffd; a real U+FFFD stays as it is
    (b"\xe2\x82A\xff\xc0\x80\xed\xa0\x80\n", r'"\ufffd\ufffdA\ufffd\ufffd\ufffd\ufffd\ufffd\ufffd\n"'),
    ("\ufffd\n".encode(), '"\ufffd\\n"'),
])
def test_log_text_is_escaped_as_docker_writes_it(tmp_path, data, want):
    path = tmp_path / "c-json.log"
    writer = logs.LogWriter(str(path))
    writer.write("stdout", data)
    writer.close()
    assert path.read_text().startswith('{"log":' + want + ',"stream":"stdout"')


def test_rfc3339_nano_trims_trailing_zeros_as_go():
    assert logs.rfc3339_nano(1_795_801_193_640_547_432) == "2026-11-27T17:39:53.640547432Z"
    assert logs.rfc3339_nano(1_795_801_193_640_000_000) == "2026-11-27T17:39:53.64Z"
    assert logs.rfc3339_nano(1_795_801_193_000_000_000) == "2026-11-27T17:39:53Z"


# --- logs: the reader ---------------------------------------------------------------------------

def log_file(tmp_path, stamps: list[str]) -> str:
    path = tmp_path / "c-json.log"
    path.write_text("".join(json.dumps({"log": f"line {i}\n", "stream": "stdout", "time": t},
                                       separators=(",", ":")) + "\n" for i, t in enumerate(stamps)))
    return str(path)


def test_read_gives_entries_and_tail_the_last_ones(tmp_path):
    path = log_file(tmp_path, [f"2026-11-27T17:39:{s:02d}.5Z" for s in range(50)])
    assert [e.log for e in logs.read(path)][:2] == ["line 0\n", "line 1\n"]
    assert [e.log for e in logs.read(path, tail=2)] == ["line 48\n", "line 49\n"]
    assert list(logs.read(path, tail=0)) == []
    assert len(list(logs.read(path, tail=-1))) == 50 and len(list(logs.read(path, tail=500))) == 50


def test_tail_across_many_blocks_gives_exactly_the_last_lines(tmp_path):
    path = log_file(tmp_path, [f"2026-11-27T17:39:{s % 60:02d}Z" for s in range(6000)])
    assert os.path.getsize(path) > 4 * 64 * 1024
    assert list(logs.read(path, tail=4321)) == list(logs.read(path))[-4321:]


def test_tail_reads_from_the_end_without_parsing_the_rest(tmp_path):
    path = tmp_path / "big-json.log"
    with open(path, "w") as f:
        f.write("not json at all\n" * 20000)  # a reader that parsed this would skip or fail
        f.write('{"log":"last\\n","stream":"stderr","time":"2026-11-27T17:39:53Z"}\n')
    assert list(logs.read(str(path), tail=1)) == [logs.Entry("last\n", "stderr", "2026-11-27T17:39:53Z")]


def test_an_unfinished_last_line_is_not_read_yet(tmp_path):
    path = log_file(tmp_path, ["2026-11-27T17:39:53Z"])
    with open(path, "a") as f:
        f.write('{"log":"half')
    assert [e.log for e in logs.read(path)] == ["line 0\n"]
    assert [e.log for e in logs.read(path, tail=1)] == ["line 0\n"]


def test_since_and_until_filter_by_time(tmp_path):
    path = log_file(tmp_path, ["2026-11-27T17:39:50Z", "2026-11-27T17:39:51.5Z",
                               "2026-11-27T17:39:52.000000001Z", "2026-11-27T17:39:53Z"])
    since = units.timestamp_ns(units.api_timestamp("2026-11-27T17:39:51.5Z"))
    until = units.timestamp_ns(units.api_timestamp("2026-11-27T17:39:52Z"))
    assert [e.log for e in logs.read(path, since=since)] == ["line 1\n", "line 2\n", "line 3\n"]
    assert [e.log for e in logs.read(path, since=since, until=until)] == ["line 1\n"]
    assert [e.log for e in logs.read(path, tail=1, since=since)] == ["line 3\n"]


def test_follow_yields_new_entries_until_stopped_and_drained(tmp_path):
    path = str(tmp_path / "c-json.log")
    writer = logs.LogWriter(path)
    writer.write("stdout", b"old\n")
    done = threading.Event()

    def produce() -> None:
        for i in range(3):
            time.sleep(0.05)
            writer.write("stdout" if i % 2 == 0 else "stderr", b"new %d\n" % i)
        writer.write("stdout", b"unfinished")
        writer.close()
        done.set()

    thread = threading.Thread(target=produce)
    thread.start()
    got = [(e.stream, e.log) for e in logs.follow(path, done.is_set, tail=0, interval=0.01)]
    thread.join()
    assert got == [("stdout", "new 0\n"), ("stderr", "new 1\n"), ("stdout", "new 2\n"),
                   ("stdout", "unfinished")]


def test_follow_of_a_finished_log_ends_at_once(tmp_path):
    path = log_file(tmp_path, ["2026-11-27T17:39:50Z", "2026-11-27T17:39:51Z"])
    assert [e.log for e in logs.follow(path, lambda: True, tail=1)] == ["line 1\n"]
    assert list(logs.follow(str(tmp_path / "missing.log"), lambda: True)) == []


def test_logs_t_prints_nine_fraction_digits():
    """docker logs -t (trace 33, RFC3339NanoFixed): '2026-11-27T17:39:53.640547432Z hello world'."""
    assert logs.render(logs.Entry("hello world\n", "stdout", "2026-11-27T17:39:53.640547432Z"),
                       timestamps=True) == b"2026-11-27T17:39:53.640547432Z hello world\n"
    assert logs.render(logs.Entry("x\n", "stdout", "2026-11-27T17:39:53.64Z"), True) == \
        b"2026-11-27T17:39:53.640000000Z x\n"
    assert logs.render(logs.Entry("x", "stderr", "2026-11-27T17:39:53Z"), True) == \
        b"2026-11-27T17:39:53.000000000Z x"
    assert logs.render(logs.Entry("x\n", "stdout", "2026-11-27T17:39:53Z")) == b"x\n"


# --- units: --since, STATUS, CREATED, COMMAND ----------------------------------------------------

@pytest.mark.parametrize("value, want", [
    ("10m", "1795800600"), ("1h30m", "1795795800"), ("1.5s", "1795801198"),
    ("0", "0"), ("1733419892", "1733419892"), ("1733419892.5", "1733419892.5"),
    ("2013-01-02T13:23:37Z", "1357133017.000000000"),
    ("2013-01-02T13:23:37.25+01:00", "1357129417.250000000"),
    ("2013-01-02Z", "1357084800.000000000"),
])
def test_since_values_follow_docker_rules(value, want):
    assert units.api_timestamp(value, now=NOW) == want


def test_since_without_a_zone_is_local_time(monkeypatch):
    monkeypatch.setenv("TZ", "UTC-2")  # POSIX: two hours east of UTC
    time.tzset()
    try:
        assert units.api_timestamp("2013-01-02T13:23", now=NOW) == "1357125780.000000000"
        assert units.api_timestamp("2013-01-02", now=NOW) == "1357077600.000000000"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


@pytest.mark.parametrize("value, message", [
    ("foo", 'invalid value for "since": failed to parse value as time or duration: "foo"'),
    ("2013-13-01", 'invalid value for "since": parsing time "2013-13-01": month out of range'),
    ("2013-02-30", 'invalid value for "since": parsing time "2013-02-30": day out of range'),
    ("2013-01-02T25:00Z", 'invalid value for "since": parsing time "2013-01-02T25:00Z": hour out of range'),
    ("2013-1-02", 'invalid value for "since": parsing time "2013-1-02" as "2006-01-02": '
                  'cannot parse "1-02" as "01"'),
])
def test_bad_since_values_fail_with_go_messages(value, message):
    with pytest.raises(InvalidParameter) as e:
        units.api_timestamp(value, now=NOW)
    assert str(e.value) == message


def test_api_timestamps_become_nanoseconds():
    assert units.timestamp_ns("1733419892") == 1733419892 * 10**9
    assert units.timestamp_ns("1733419892.5") == 1733419892_500_000_000
    assert units.timestamp_ns("1.123456789999") == 1_123_456_789
    with pytest.raises(InvalidParameter):
        units.timestamp_ns("1 2")


@pytest.mark.parametrize("state, want", [
    ({"Status": "created", "StartedAt": units.ZERO_TIME}, "Created"),
    ({"Running": True, "StartedAt": "2026-11-27T17:39:59.6Z"}, "Up Less than a second"),
    ({"Running": True, "StartedAt": "2026-11-27T17:39:57Z"}, "Up 3 seconds"),
    ({"Running": True, "StartedAt": "2026-11-27T17:38:00Z"}, "Up 2 minutes"),
    ({"Running": True, "StartedAt": "2026-11-27T16:40:00Z"}, "Up About an hour"),
    ({"Running": True, "Paused": True, "StartedAt": "2026-11-27T14:40:00Z"}, "Up 3 hours (Paused)"),
    ({"Running": False, "ExitCode": 0, "StartedAt": "2026-11-27T17:30:00Z",
      "FinishedAt": "2026-11-27T17:38:00Z"}, "Exited (0) 2 minutes ago"),
    ({"Running": True, "Restarting": True, "ExitCode": 1, "StartedAt": "2026-11-27T17:30:00Z",
      "FinishedAt": "2026-11-27T17:39:55Z"}, "Restarting (1) 5 seconds ago"),
    ({"Status": "dead", "Dead": True, "StartedAt": "2026-11-27T17:30:00Z"}, "Dead"),
    ({"Status": "removing", "StartedAt": "2026-11-27T17:30:00Z"}, "Removal In Progress"),
])
def test_status_strings_are_dockers(state, want):
    """docker ps STATUS (moby container/state.go; traces 23, 24: "Up About a minute",
    "Exited (3) 48 seconds ago")."""
    assert units.status(state, now=NOW) == want


def test_created_column_counts_from_unix_seconds_or_rfc3339():
    # trace 24: "Created": 1795801033 shown as "About a minute ago" 93 s later
    assert units.ago(1795801033, now=1795801033 + 93) == "About a minute ago"
    assert units.ago("2026-11-27T17:38:00Z", now=NOW) == "2 minutes ago"
    assert units.ago(None) == "N/A"


@pytest.mark.parametrize("path, args, trunc, want", [
    # trace 24 (ps -a): the daemon's Command, then the CLI's column
    ("sh", ["-c", "while true; do echo hello world; sleep 1; done"], True, '"sh -c \'while true; …"'),
    ("httpd", ["-f", "-p", "80"], True, '"httpd -f -p 80"'),
    ("sh", [], True, '"sh"'),
    ("sh", ["-c", "echo \"hi\"\tthere"], False, '"sh -c \'echo \\"hi\\"\\tthere\'"'),
    ("echo", ["日本語のテキストです"], True, '"echo 日本語のテキス…"'),
])
def test_command_column_is_quoted_and_cut_as_docker(path, args, trunc, want):
    assert formatting.command_column(units.command_line(path, args), trunc) == want


def test_default_ps_table_is_dockers():
    """Trace 23 (docker ps, CLI 28.2.2), from the rows' fields as the CLI computes them."""
    rows = [{"ID": "eb6e0cc1e1dd", "Image": "busybox", "Command": '"httpd -f -p 80"',
             "RunningFor": "29 seconds ago", "Status": "Up 28 seconds",
             "Ports": "0.0.0.0:32768->80/tcp, [::]:32768->80/tcp", "Names": "hungry_mahavira"},
            {"ID": "c8a2e152be3b", "Image": "busybox", "Command": '"httpd -f -p 80"',
             "RunningFor": "32 seconds ago", "Status": "Up 32 seconds",
             "Ports": "0.0.0.0:8080->80/tcp, [::]:8080->80/tcp", "Names": "web"},
            {"ID": "5da91b989347", "Image": "busybox", "Command": '"sh"',
             "RunningFor": "About a minute ago", "Status": "Up About a minute", "Ports": "",
             "Names": "vigilant_golick"}]
    assert template.render_table(formatting.PS_FORMAT, rows, formatting.PS_HEADERS, CTX) == (
        "CONTAINER ID   IMAGE     COMMAND            CREATED              STATUS              PORTS                                       NAMES\n"
        "eb6e0cc1e1dd   busybox   \"httpd -f -p 80\"   29 seconds ago       Up 28 seconds       0.0.0.0:32768->80/tcp, [::]:32768->80/tcp   hungry_mahavira\n"
        "c8a2e152be3b   busybox   \"httpd -f -p 80\"   32 seconds ago       Up 32 seconds       0.0.0.0:8080->80/tcp, [::]:8080->80/tcp     web\n"
        "5da91b989347   busybox   \"sh\"               About a minute ago   Up About a minute                                               vigilant_golick\n")
    assert template.render_table(formatting.PS_FORMAT, [], formatting.PS_HEADERS, CTX) == (
        "CONTAINER ID   IMAGE     COMMAND   CREATED   STATUS    PORTS     NAMES\n")


def test_top_table_is_dockers():
    """Trace 28 (docker top web): tabwriter with minwidth 20."""
    row = ["root", "4046", "4026", "0", "17:38", "?", "00:00:00", "httpd -f -p 80"]
    assert formatting.table([top.TITLES, row], minwidth=20) == (
        "UID                 PID                 PPID                C                   STIME               TTY                 TIME                CMD\n"
        "root                4046                4026                0                   17:38               ?                   00:00:00            httpd -f -p 80\n")


def test_tabwriter_aligns_blocks_like_go():
    assert formatting.tabwriter("a\tb\tc\nlonger text\tb\nx\n\ty\tz\n") == (
        "a             b         c\nlonger text   b\nx\n          y         z\n")
    # docker top's table: minwidth 20 (trace 28)
    assert formatting.table([top.TITLES[:2], ["root", "4046"]], minwidth=20) == \
        "UID                 PID\nroot                4046\n"


# --- names ----------------------------------------------------------------------------------------

def test_generated_names_are_adjective_underscore_surname():
    name = names.generate(lambda n: False)
    adjective, surname = name.split("_")
    assert adjective in names.ADJECTIVES and surname in names.SURNAMES
    assert names.validate(name) == name


def test_a_taken_name_is_drawn_again_with_a_digit_then_falls_back():
    tried: list[str] = []
    name = names.generate(lambda n: tried.append(n) or len(tried) < 3)
    assert name == tried[-1] and len(tried) == 3 and name[-1].isdigit()
    tried.clear()
    assert names.generate(lambda n: tried.append(n) or True, fallback="0123456789ab") == "0123456789ab"
    assert len(tried) == 6


@pytest.mark.parametrize("name", ["web", "/web", "a1", "my_app.v2-blue", "9lives"])
def test_valid_names(name):
    assert names.validate(name) == name.removeprefix("/")


@pytest.mark.parametrize("name", ["a", "-web", "_x", "my app", "web!", "é1", "web\n", ""])
def test_invalid_names_give_dockers_message(name):
    with pytest.raises(InvalidParameter) as e:
        names.validate(name)
    assert str(e.value) == f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"


# --- top ------------------------------------------------------------------------------------------

@pytest.fixture
def sleepers():
    """Processes of ours to look at: plain, with runs of spaces, and with a pty as terminal."""
    while time.localtime().tm_sec > 56:  # STIME is to the minute: stay clear of a boundary
        time.sleep(0.5)
    master, slave = pty.openpty()
    procs = [subprocess.Popen(["sleep", "60"]),
             subprocess.Popen(["sh", "-c", "sleep 60;   echo  'a  b'"], start_new_session=True),
             subprocess.Popen(["setsid", "-c", "sleep", "60"], stdin=slave)]  # setsid execs
    os.close(slave)
    time.sleep(0.2)
    yield procs
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, 9) if p.args[0] == "sh" else p.kill()
        p.wait()
    os.close(master)


def test_top_default_columns_match_the_hosts_ps_ef(sleepers):
    pids = [p.pid for p in sleepers]  # idle: C and TIME cannot tick between the two reads
    titles, rows = top.top(pids)
    assert titles == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    ps_titles, ps_rows = top.ps_table(pids, "-ef")  # the host's ps, docker's way
    assert (titles, rows) == (ps_titles, ps_rows)
    assert rows[1][7] == "sh -c sleep 60; echo 'a b'"  # docker joins ps's fields with one space
    assert rows[2][5].startswith("pts/")


def test_top_skips_a_process_that_is_gone(sleepers):
    sleepers[0].kill()
    sleepers[0].wait()
    _, rows = top.top([p.pid for p in sleepers])
    assert [r[1] for r in rows] == [str(p.pid) for p in sleepers[1:]]


def test_top_with_ps_options_keeps_only_the_containers_rows(sleepers):
    titles, rows = top.top([sleepers[0].pid], "aux")
    assert titles[:2] == ["USER", "PID"] and titles[-1] == "COMMAND"
    assert [r[1] for r in rows] == [str(sleepers[0].pid)] and rows[0][-1] == "sleep 60"


def test_top_errors_are_dockers(sleepers):
    with pytest.raises(System, match="^Couldn't find PID field in ps output$"):
        top.top([sleepers[0].pid], "-o comm")
    with pytest.raises(InvalidParameter, match='^specifying "user=PID" is not allowed$'):
        top.top([sleepers[0].pid], "-o user=PID")
    # ps itself refuses the options: its first line of stderr, as docker's "ps: ..." (it was
    # lost, and the empty output said "Couldn't find PID field", which sends you the wrong way)
    with pytest.raises(System, match="^ps: error: unknown gnu long option$"):
        top.top([sleepers[0].pid], "--bogus")
    with pytest.raises(System, match="^ps: error: unknown user-defined format specifier"):
        top.top([sleepers[0].pid], "-o nosuchfield")


def test_ps_output_parsing_follows_docker():
    output = ("UID PID PPID CMD\nroot 10 1 sh -c  x\nroot 11 10 other\nroot - - thread\n"
              "root 12 1 mine\nroot - - its thread\n")
    assert top.parse_ps_output(output, [10, 12]) == (
        ["UID", "PID", "PPID", "CMD"],
        [["root", "10", "1", "sh -c x"], ["root", "12", "1", "mine"], ["root", "-", "-", "its thread"]])


# --- templates ----------------------------------------------------------------------------------

INSPECT = {"Id": "c8a2e152be3b", "Name": "/web", "Args": ["-f", "-p", "80"],
           "State": {"Status": "running", "Running": True, "Pid": 4046, "ExitCode": 0,
                     "Health": None},
           "Config": {"Cmd": ["httpd", "-f"], "Labels": {"b": "2", "a": "x<y>"}, "Tty": False,
                      "ExposedPorts": {"80/tcp": {}}},
           "HostConfig": {"NanoCpus": 1.5e9, "Ratio": 0.25}}


@pytest.mark.parametrize("format, want", [
    ("{{.State.Pid}}", "4046"),
    ("{{.Name}} {{.State.Status}} {{.Config.Tty}}", "/web running false"),
    ("{{json .Config}}", '{"Cmd":["httpd","-f"],"Labels":{"b":"2","a":"x<y>"},"Tty":false,'
                         '"ExposedPorts":{"80/tcp":{}}}'),
    ("{{.Config.Labels}}", "map[a:x<y> b:2]"),
    ("{{.Args}} {{.State.Health}} {{.Nope}}", "[-f -p 80] <nil> <no value>"),
    ('{{index .Config.Labels "b"}}{{index .Args 2}}', "280"),
    ("{{range .Args}}[{{.}}]{{end}}", "[-f][-p][80]"),
    ("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}},{{end}}", "a=x<y>,b=2,"),
    ("{{range $i, $a := .Args}}{{if $i}} {{end}}{{$a}}{{end}}", "-f -p 80"),
    ("{{range .Nope}}x{{else}}none{{end}}", "none"),
    ("{{if .State.Running}}up{{else if .State.Paused}}paused{{else}}down{{end}}", "up"),
    ("{{with .State}}{{.Status}}{{end}}{{with .Nope}}x{{else}}-{{end}}", "running-"),
    ('{{upper .Name}} {{lower "AB"}} {{join .Config.Cmd ","}} {{title "hello world"}}',
     "/WEB ab httpd,-f Hello World"),
    ("{{println .Name}}", "/web\n"),
    ("{{.Name | json}} {{.Args | len}}", '"/web" 3'),
    ("x  {{- .Name -}}  \n y", "x/weby"),
    ('{{$n := .Name}}{{range .Args}}{{$n}}{{.}}{{end}}', "/web-f/web-p/web80"),
    ("{{.HostConfig.NanoCpus}} {{.HostConfig.Ratio}} {{json .HostConfig}}",
     '1.5e+09 0.25 {"NanoCpus":1500000000,"Ratio":0.25}'),
    ('{{printf "%s:%05d" .Name .State.Pid}} {{print 1 2 "a" 3}}', "/web:04046 1 2a3"),
    ('{{if and .State.Running (eq .State.Pid 4046)}}yes{{end}}', "yes"),
    ("{{/* a comment */}}ok", "ok"),
])
def test_templates_print_as_docker(format, want):
    assert template.render(format, INSPECT) == want


@pytest.mark.parametrize("format, error", [
    ("{{.Nope}}", 'template: :1:2: executing "" at <.Nope>: map has no entry for key "Nope"'),
    ("x{{.State.status}}", 'template: :1:3: executing "" at <.State.status>: map has no entry for key "status"'),
    ("{{.config.Cmd}}", 'template: :1:2: executing "" at <.config.Cmd>: map has no entry for key "config"'),
])
def test_inspect_refuses_a_field_dockers_type_has_not(format, error):
    """docker's inspect runs the template on its typed struct, then on the raw JSON with
    missingkey=error: a name that is no field of ContainerJSON, or a field in the wrong case (Go's
    are capitalised), is an error there, not a quiet "<no value>" (mini's, before). A field of the
    type that mini's record lacks, or a map's missing key, still prints "<no value>"."""
    fields = frozenset(INSPECT) | {"Mounts"}
    with pytest.raises(template.TemplateError) as refused:
        template.render(format, INSPECT, fields=fields)
    assert str(refused.value) == f"template parsing error: {error}"
    assert template.render("{{.Mounts}} {{.Config.Labels.c}} {{.State.Health}}", INSPECT,
                           fields=fields) == "<no value> <no value> <nil>"


def test_inspect_reads_the_go_field_id_as_the_json_key_id():
    """ContainerJSON's, ImageInspect's and NetworkResource's field ID is the JSON key Id: docker's
    typed run takes `{{.ID}}`, its raw fallback `{{.Id}}`; mini's JSON-only run refused `.ID`."""
    fields = frozenset(INSPECT) | {"Mounts"}
    assert template.render("{{.ID}} {{.Id}}", INSPECT, fields=fields) == f"{INSPECT['Id']} {INSPECT['Id']}"
    assert template.render("{{.ID}}", INSPECT) == "<no value>"           # (an untyped map: no such rule)
    assert template.render("{{.State.ID}}", INSPECT, fields=fields) == "<no value>"   # (only the top)


@pytest.mark.parametrize("format, want", [
    # recorded from docker CLI 28.2.2 (`docker version -f FORMAT`: Go's own text/template)
    ("{{.A }", 'unexpected "}" in operand'),
    ("{{.A}", "bad character U+007D '}'"),
    ("{{.A", "unclosed action"),
    ("{{if .A}}x", "unexpected EOF"),
    ("{{end}}", "unexpected {{end}}"),
    ("{{foo}}", 'function "foo" not defined'),
    ("{{}}", "missing value for command"),
    ("{{1 | 2}}", "non executable command in pipeline stage 2"),
    ("{{range $i, $j, $k := .}}{{end}}", "too many declarations in range"),
    ('{{$x := 1}}{{if 1}}{{$y := 2}}{{end}}{{$y}}', 'undefined variable "$y"'),
    ("{{(.A}}", "unclosed left paren"),
    ('{{"abc}}', "unterminated quoted string"),
    ("{{3x}}", 'bad number syntax: "3x"'),
    ("{{.A.}}", "unexpected <.> in operand"),
    ('{{"x".B}}', 'unexpected . after term "\\"x\\""'),
    ("{{/* x */ .A}}", "comment ends before closing delimiter"),
    ("{{range .A}}{{else}}{{else}}{{end}}", "expected end; found {{else}}"),
    ("{{break}}", "{{break}} outside {{range}}"),
    ("{{ .A := 1}}", 'unexpected ":=" in operand'),
    ("{{- .A -}", 'illegal number syntax: "-"'),
])
def test_template_parse_errors_are_gos(format, want):
    with pytest.raises(InvalidParameter) as e:
        template.render(format, INSPECT)
    assert str(e.value) == f"template parsing error: template: :1: {want}"


@pytest.mark.parametrize("format, missing_error, want", [
    ("{{.Nope}}", True, ':1:2: executing "" at <.Nope>: map has no entry for key "Nope"'),
    ("{{.State.Health.Status}}", False,
     ':1:2: executing "" at <.State.Health.Status>: nil pointer evaluating interface {}.Status'),
    ("x\n {{index .Args 5}}", False,
     ':2:3: executing "" at <index .Args 5>: error calling index: index out of range: 5'),
    ("{{join .Args}}", False, ':1:2: executing "" at <join>: wrong number of args for join: want 2 got 1'),
    ("{{upper .State.Pid}}", False,
     ':1:2: executing "" at <upper>: wrong type for value; expected string; got int'),
    ("{{.Name.X}}", False, ':1:2: executing "" at <.Name.X>: can\'t evaluate field X in type string'),
])
def test_template_execution_errors_are_gos(format, missing_error, want):
    with pytest.raises(InvalidParameter) as e:
        template.render(format, INSPECT, missing_key_error=missing_error)
    assert str(e.value) == "template parsing error: template: " + want


@pytest.mark.parametrize("format", ["{{if 1}}" * 3000 + "x" + "{{end}}" * 3000,
                                    "{{" + "(" * 3000 + "1" + ")" * 3000 + "}}",
                                    "{{range .Args}}" * 3000 + "{{end}}" * 3000,
                                    "{{with .State}}" * 400 + "{{.Pid}}" + "{{end}}" * 400])
def test_a_template_nested_too_deep_is_one_error_not_a_traceback(format):
    """Go's parser and executor have depth limits; ours is Python's stack, a few hundred levels:
    deeper is refused with Go's words, never a RecursionError."""
    with pytest.raises(InvalidParameter) as e:
        template.render(format, INSPECT)
    assert str(e.value) in ("template parsing error: template: :1: max expression depth exceeded",
                            "template parsing error: template: :1: exceeded maximum template depth")
    assert template.render("{{if 1}}" * 50 + "x" + "{{end}}" * 50, INSPECT) == "x"


def test_a_template_run_out_of_stack_is_one_error_too():
    """The executor's own guard: a tree parsed fine, run where little stack is left."""
    import sys

    format = "{{with .}}" * 100 + "x" + "{{end}}" * 100
    tree = template.parse_format(format)

    def deep(n: int) -> str:
        return template.Executor(format, tree, INSPECT).run() if n == 0 else deep(n - 1)

    with pytest.raises(InvalidParameter, match="exceeded maximum template depth"):
        deep(sys.getrecursionlimit() - 150)
    assert deep(10) == "x"


def test_table_format_has_a_header_and_aligned_columns():
    rows = [{"ID": "eb6e0cc1e1dd", "Names": "hungry_mahavira", "Status": "Up 28 seconds"},
            {"ID": "c8a2e152be3b", "Names": "web", "Status": "Up 32 seconds"}]
    headers = {"ID": "CONTAINER ID", "Names": "NAMES", "Status": "STATUS"}
    assert template.render_table(r"table {{.ID}}\t{{.Names}}\t{{.Status}}", rows, headers, CTX) == (
        "CONTAINER ID   NAMES             STATUS\n"
        "eb6e0cc1e1dd   hungry_mahavira   Up 28 seconds\n"
        "c8a2e152be3b   web               Up 32 seconds\n")
    assert template.render_table("table {{.ID}}", [], headers, CTX) == "CONTAINER ID\n"
    assert template.render_table("{{.Names}}", rows, headers, CTX) == "hungry_mahavira\nweb\n"
    assert template.render_table("table {{upper .Names}}", rows[1:], headers, CTX) == "NAMES\nWEB\n"


def test_ps_label_is_a_method_with_a_header_of_its_own():
    """As docker 20.10 answers (probed on a private dockerd): the header is the key's last part."""
    labels = {"com.example.version": "1.0", "tier": "web"}
    rows = [{"ID": "eb6e0cc1e1dd", "Labels": "", "Label": lambda key: labels.get(key, "")}]
    table = template.render_table(r'table {{.ID}}\t{{.Label "com.example.version"}}\t{{"tier" | .Label}}'
                                  r'\t{{.Label "none"}}.', rows, formatting.PS_HEADERS, CTX)
    assert table == "CONTAINER ID   version   tier      none.\neb6e0cc1e1dd   1.0       web       .\n"
    for format, message in [("{{.Label}}", "wrong number of args for Label: want 1 got 0"),
                            ('{{.Label "a" "b"}}', "wrong number of args for Label: want 1 got 2"),
                            ("{{.Label 1}}", 'executing "" at <1>: expected string; found 1'),
                            ('{{.ID "a"}}', "ID is not a method but has arguments")]:
        with pytest.raises(InvalidParameter, match=re.escape(message)):
            template.render_table(format, rows, formatting.PS_HEADERS, CTX)
    assert template.render_table("{{json .}}", rows, formatting.PS_HEADERS, CTX) == \
        '{"ID":"eb6e0cc1e1dd","Labels":""}\n'  # a method is no field of the JSON


CTX = "*formatter.ContainerContext"


def test_a_field_a_ps_row_does_not_have_is_an_error_as_in_docker():
    """A row is docker's ContainerContext, a struct: no "<no value>" for a field it lacks; a
    header with no rows is a map, as docker's, so it still prints "<no value>"."""
    rows = [{"ID": "eb6e0cc1e1dd", "Names": "web"}]
    with pytest.raises(InvalidParameter) as e:
        template.render_table("{{.Names}} {{.Nope}}", rows, {}, CTX)
    assert str(e.value) == ('template parsing error: template: :1:13: executing "" at <.Nope>: '
                            "can't evaluate field Nope in type *formatter.ContainerContext")
    assert template.render_table("table {{.Nope}}", [], {}, CTX) == "<no value>\n"
    assert template.render_table("{{with .}}{{.ID}}{{end}}", rows, {}, CTX) == "eb6e0cc1e1dd\n"


@pytest.mark.parametrize("text, number", [("KILL", 9), ("sigterm", 15), ("usr1", 10), ("9", 9),
                                          ("RTMIN", 34), ("RTMIN+3", 37), ("SIGRTMIN+15", 49),
                                          ("rtmax-1", 63), ("RTMAX-14", 50), ("RTMAX", 64)])
def test_signals_by_docker_names_real_time_ones_too(text, number):
    from mini_runtime.lifecycle import parse_signal
    assert parse_signal(text) == number


@pytest.mark.parametrize("text", ["RTMIN+16", "RTMIN-1", "RTMAX+1", "RTMIN+", "RTMIN+03", "NOPE", "0", "-0",
                                  "UNUSED", "9x", " 9", "9_0", "\u0669", "99999999999999999999"])
def test_a_signal_docker_does_not_name_is_refused(text):
    from mini_runtime.lifecycle import parse_signal
    with pytest.raises(InvalidParameter, match=f"^Invalid signal: {re.escape(text)}$"):
        parse_signal(text)


@pytest.mark.parametrize("text, number", [("65", 65), ("256", 256), ("-1", -1), ("+9", 9), ("032", 32),
                                          ("CLD", 17), ("poll", 29), ("SIGIOT", 6), ("stkflt", 16)])
def test_a_number_is_any_but_zero_as_dockers_parse_signal(text, number):
    """docker's ParseSignal takes any number Atoi reads but 0: 65 is refused only where it would
    be sent (kill), as docker's daemon refuses it; a name of its table in any case."""
    from mini_runtime.lifecycle import parse_signal
    assert parse_signal(text) == number


@pytest.mark.parametrize("number, words", [(65, "65"), (255, "255"), (32, "32"), (33, "33"), (0, "0"),
                                           (-1, "18446744073709551615")])
def test_the_daemon_sends_only_the_signals_of_its_table(number, words):
    from mini_runtime.stopping import supported, unsupported
    assert not supported(number)
    assert unsupported(number) == f"The linux daemon does not support signal {words}"
    assert all(supported(n) for n in [*range(1, 32), *range(34, 65)])


# --- kill: the container named in its error, whatever kind of error it is -------------------

@pytest.mark.parametrize("error", [ExecError("exec: \"x\": not found", 127), ImageNotFound("gone:1"),
                                   NotRunning("c0ffee"), System("the monitor ended")],
                         ids=["ExecError", "ImageNotFound", "NotRunning", "System"])
def test_kill_says_which_container_for_any_kind_of_error(monkeypatch, error):
    """kill wraps any failure in docker's "Cannot kill container: NAME: ..." keeping its kind
    (HTTP status, exit code); a kind whose constructor takes no plain message must not break it."""
    from mini_runtime import container, lifecycle

    def failing(text: str):
        raise error
    monkeypatch.setattr(container, "find", failing)
    with pytest.raises(type(error)) as caught:
        lifecycle.kill("web", "KILL")
    assert str(caught.value) == f"Cannot kill container: web: {error}"
    assert getattr(caught.value, "exit_code", None) == getattr(error, "exit_code", None)


def test_not_running_is_docker_s_conflict():
    assert (str(NotRunning("c0ffee")), NotRunning("c0ffee").http_status) == ("Container c0ffee is not running", 409)
