"""What the user asked for, as one value: the CLI fills it in, a backend runs it.

Each chapter adds the fields for its flags (chapter 02 `read_only`, 04 `memory`, ...).
"""

from __future__ import annotations

import os

from mini_runtime.errors import InvalidParameter
from mini_runtime.tuples import named_tuple

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:
    from typing import Any

#: docker's floor for --memory (linuxMinMemory): below it a container cannot even start.
MIN_MEMORY = 6 * 1024 * 1024
#: The PATH a container gets when neither the image nor -e sets one (docker's, and the images').
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Named tuples rather than dataclasses: same readability, and `mini run` skips importing
# dataclasses (and inspect) at every start.


@named_tuple
class ContainerConfig:
    image: str
    command: tuple[str, ...] | list[str] = ()   # empty: the image's Cmd
    env: tuple[str, ...] | list[str] = ()       # "K=V" from -e
    workdir: str | None = None                  # -w; else the image's WorkingDir
    remove: bool = False                        # --rm
    read_only: bool = False                     # --read-only (chapter 02)
    pivot: bool = True                          # False with --no-pivot: chroot(2) instead (02)
    hostname: str | None = None                 # -h/--hostname; else the short id (03)
    init: bool = False                          # --init: a tiny init as PID 1 (03)
    pid: str | None = None                      # --pid host|container:NAME; else its own (03)
    ipc: str | None = None                      # --ipc private (docker's default)|shareable|none|host|container:NAME (03)
    uts: str | None = None                      # --uts host; else its own, named by -h (03)
    memory: int | None = None                   # -m/--memory, bytes (04)
    memory_swap: int | None = None              # --memory-swap: memory + swap, bytes; -1: no limit (04)
    cpus: float | None = None                   # --cpus (04)
    cpu_shares: int | None = None               # -c/--cpu-shares (04)
    pids_limit: int | None = None               # --pids-limit (04)
    cpuset_cpus: str | None = None              # --cpuset-cpus (04)
    cpu_period: int | None = None               # --cpu-period, µs (exercise 04's extension)
    cpu_quota: int | None = None                # --cpu-quota, µs per period; -1: none (exercise 04's)
    memory_reservation: int | None = None       # --memory-reservation, bytes (exercise 04's)
    cgroupns: str | None = None                 # --cgroupns host|private; docker's default:
                                                # private on cgroup v2, host on v1 (04)
    entrypoint: str | None = None               # --entrypoint: replaces the image's, clears Cmd (05)
    user: str | None = None                     # -u/--user NAME|UID[:GROUP|GID]; else the image's (05)
    name: str | None = None                     # --name (05: diff/commit/export find it by name)
    tty: bool = False                           # -t: a pty is its stdin, stdout, stderr (06)
    open_stdin: bool = False                    # -i: its stdin is a pipe attached clients write to (06)
    stdin_once: bool = False                    # -i, not -d (create too): the first client's EOF closes it (06)
    attached: bool = False                      # not -d (create too): a client shows its output (06)
    network: str | None = None                  # --network bridge|none|host|container:NAME|NAME;
                                                # else $MINI_DEFAULT_NETWORK, else "bridge" (07)
    network_aliases: tuple[str, ...] | list[str] = ()  # --network-alias: more names on a user-defined network (07)
    ip: str | None = None                       # --ip: this address on a user-defined network's --subnet (07)
    connected: tuple | list = ()                # `network connect`'s [network, [aliases], ip], made at each start (07)
    publish: tuple[str, ...] | list[str] = ()   # -p specs as given: [IP:][HOST:]CONTAINER[/PROTO] (07)
    add_hosts: tuple[str, ...] | list[str] = ()  # --add-host NAME:IP as given (exercise 07's extension)
    publish_all: bool = False                   # -P: every ExposedPorts entry of the image (07)
    expose: tuple[str, ...] | list[str] = ()    # --expose: "80/tcp" keys, ranges spelled out (07)
    dns: tuple[str, ...] | list[str] = ()       # --dns: the container's nameservers (07)
    dns_search: tuple[str, ...] | list[str] = ()  # --dns-search: its search domains (07)
    dns_options: tuple[str, ...] | list[str] = ()  # --dns-option: its resolver options (07)
    mac_address: str | None = None              # --mac-address: eth0's, as given (07)
    labels: tuple[str, ...] | list[str] = ()    # -l K=V: over the image's Labels (06)
    stop_signal: str | None = None              # --stop-signal: stop's signal, over the image's (06)
    stop_timeout: int | None = None             # --stop-timeout: stop's seconds without -t (06)
    cidfile: str | None = None                  # --cidfile: where the CLI wrote the id (06)
    attach: tuple[str, ...] | list[str] = ()    # -a stdin|stdout|stderr; none: stdout and stderr (06)
    # Flags whose work is an exercise's extend part (the reference has the plumbing only):
    ulimits: tuple[str, ...] | list[str] = ()   # --ulimit NAME=SOFT[:HARD] (exercise 01)
    tmpfs: tuple[str, ...] | list[str] = ()     # --tmpfs PATH[:OPTIONS] (exercise 02)
    uptime_offset: int | None = None            # --uptime-offset SECONDS (exercise 03)
    restart: str = "no"                         # --restart POLICY: docker's restart policies are
                                                # exercise 06's extension (the reference: "no")

    def namespace_modes(self) -> dict[str, str]:
        """HostConfig's PidMode, IpcMode, UTSMode as docker inspect shows them ("": its own)."""
        return {"PidMode": self.pid or "", "IpcMode": self.ipc or "private", "UTSMode": self.uts or ""}

    @property
    def attach_fields(self) -> dict[str, bool]:
        """Config.AttachStdin/Stdout/Stderr as docker's client sets them: none with -d; else
        -a's streams (stdin with -i too), stdout and stderr when -a is not given."""
        asked = self.attach or ("stdout", "stderr")
        return {"AttachStdin": self.attached and ("stdin" in asked or self.open_stdin),
                "AttachStdout": self.attached and "stdout" in asked,
                "AttachStderr": self.attached and "stderr" in asked}


@named_tuple
class ProcessSpec:
    """The process to start inside the container, after the image's defaults are applied."""
    args: list[str]
    env: dict[str, str]
    cwd: str
    user: str = ""     # as given (names are looked up in the container's /etc/passwd, 05)


def daemon_env(hostname: str, tty: bool) -> dict[str, str]:
    """What docker's daemon puts first in every container's and exec's environment
    (CreateDaemonEnvironment): a default PATH, the container's HOSTNAME, and TERM for a
    terminal (less, vi, top need one). The image's variables and -e replace them or follow."""
    env = {"PATH": DEFAULT_PATH, "HOSTNAME": hostname} if hostname else {"PATH": DEFAULT_PATH}
    if tty:
        env["TERM"] = "xterm"
    return env


# >>> process-spec
def process_spec(config: ContainerConfig, image_config: dict[str, Any]) -> ProcessSpec:
    """Merge the image's defaults with the user's flags, as docker does (specs §1.7).

    Entrypoint + Cmd; a command given on the CLI replaces Cmd; --entrypoint replaces Entrypoint
    and drops the image's Cmd. Env: daemon_env's, then the image's, then -e (a later value
    wins). WorkingDir from -w, else the image's, else `/`, cleaned as a path (`/a/../b` is `/b`,
    before any symlink is followed, as docker cleans it). User from -u, else the image's, else root.
    """
    defaults = image_config.get("config") or {}
    if config.entrypoint is not None:
        entrypoint, cmd = ([config.entrypoint] if config.entrypoint else []), list(config.command)
    else:
        entrypoint, cmd = list(defaults.get("Entrypoint") or []), list(config.command or defaults.get("Cmd") or [])
    args = entrypoint + cmd
    if not args:
        raise ValueError("no command specified (the image has no Cmd either)")
    env = daemon_env(config.hostname or "", config.tty)
    for item in list(defaults.get("Env") or []) + list(config.env):
        key, _, value = item.partition("=")
        env[key] = value                            # (a key already there keeps its place)
    cwd = os.path.normpath(config.workdir or defaults.get("WorkingDir") or "/").replace("//", "/", 1)
    return checked(ProcessSpec(args, env, cwd, config.user or defaults.get("User") or ""))
# <<< process-spec


def checked(spec: ProcessSpec) -> ProcessSpec:
    """Refuse now, in docker's words, what chdir(2) and execve(2) would refuse in the child
    after everything was made: a relative working directory, a variable with no name (`-e =x`,
    or an image's Env), a NUL byte (a C string ends there; only an image or an API body can
    carry one)."""
    if not spec.cwd.startswith("/"):
        raise ValueError(f"the working directory '{spec.cwd}' is invalid, it needs to be an absolute path")
    for key, value in spec.env.items():
        if not key:
            raise ValueError(f"invalid environment variable: ={value}")
    texts = [*spec.args, *spec.env, *spec.env.values(), spec.cwd, spec.user]
    if any("\0" in text for text in texts):
        raise ValueError("invalid argument: a NUL byte in the command, environment, working "
                         "directory or user (execve(2) takes C strings)")
    return spec


# >>> check-limits
def check_limits(*, memory: int | None, memory_swap: int | None, cpus: float | None,
                 cpuset_cpus: str | None, update: bool = False) -> None:
    """Chapter 04's limits as docker's daemon checks them (verifyPlatformContainerResources), in
    its words: for `run` and `create`, and for `update`, where --memory-swap may come alone (the
    container has a memory limit already). Checked before anything is made or changed."""
    if memory is not None and memory < MIN_MEMORY:
        raise InvalidParameter("Minimum memory limit allowed is 6MB")
    if memory_swap not in (None, -1) and memory is None and not update:
        raise InvalidParameter("You should always set the Memory limit when using Memoryswap limit, see usage")
    if memory_swap not in (None, -1) and memory is not None and memory_swap < memory:
        raise InvalidParameter("Minimum memoryswap limit should be larger than memory limit, see usage")
    available = os.cpu_count() or 1
    if cpus is not None and not 0.01 <= cpus <= available:  # also catches nan
        raise InvalidParameter(f"Range of CPUs is from 0.01 to {available}.00, as there are only "
                               f"{available} CPUs available")
    for part in cpuset_cpus.split(",") if cpuset_cpus else ():  # (docker's parsers.ParseUintList)
        low, dash, high = part.partition("-")
        if not (low.isascii() and low.isdigit() and (not dash or high.isascii() and high.isdigit()
                                                      and int(high) >= int(low))):
            raise InvalidParameter(f"Invalid value {cpuset_cpus} for cpuset cpus")
# <<< check-limits


def check_namespace_modes(*, pid: str | None, ipc: str | None, uts: str | None, hostname: str | None) -> None:
    """--pid, --ipc and --uts as docker checks them (docker-cli's words for --pid and --uts, the
    daemon's for --ipc), before anything is made. Only PID and IPC can be another container's:
    a UTS namespace holds nothing but two names. With the host's UTS namespace, -h would rename
    the host itself: docker refuses the pair."""
    if pid and not (pid == "host" or pid.startswith("container:") and pid[10:]):
        raise InvalidParameter("--pid: invalid PID mode")
    if uts and uts != "host":
        raise InvalidParameter("--uts: invalid UTS mode")
    if ipc and ipc not in IPC_MODES and not (ipc.startswith("container:") and ipc[10:]):
        raise InvalidParameter(f"invalid IPC mode: {ipc}")
    if uts == "host" and hostname:
        raise InvalidParameter("conflicting options: hostname and the UTS mode")


#: --ipc's modes besides container:NAME: a new namespace that others may join (shareable) or not
#: (private, docker's default since 20.10), one without /dev/shm (none), or the host's.
IPC_MODES = ("private", "shareable", "none", "host")
