"""Model solution of exercise 06's extension, `--restart` (instructors only: see
exercises/INSTRUCTORS.md). Appended to mini_runtime/monitor.py by exercises.parts.model_source."""

from __future__ import annotations

import re

#: moby's restartmanager: the first wait, its growth, its ceiling, and the run that resets it.
FIRST_WAIT, LONGEST_WAIT, STEADY_RUN = 0.1, 60.0, 10.0
#: The last wait, beside the record, from one restart to the next (docker keeps it in memory).
BACKOFF_FILE = "restart-backoff"


def parse_restart(value: str, auto_remove: bool) -> tuple[str, int]:
    """docker's opts.ParseRestartPolicy, the CLI's --rm conflict, then the daemon's
    ValidateRestartPolicy, in that order."""
    name, colon, count_text = value.partition(":")
    if colon and not name:
        raise ValueError("invalid restart policy format: no policy provided before colon")
    count = 0
    if count_text:
        if not re.fullmatch(r"[+-]?[0-9]+", count_text):
            raise ValueError("invalid restart policy format: maximum retry count must be an integer")
        count = int(count_text)
    if auto_remove and name not in ("", "no"):
        raise ValueError("conflicting options: cannot specify both --restart and --rm")
    if name in ("no", "always", "unless-stopped"):
        if count:
            why = "invalid restart policy: maximum retry count can only be used with 'on-failure'"
            raise ValueError(why + (" and cannot be negative" if count < 0 else ""))
    elif name == "on-failure":
        if count < 0:
            raise ValueError("invalid restart policy: maximum retry count cannot be negative")
    else:
        raise ValueError(f"invalid restart policy: unknown policy '{name}'; use one of 'no', 'always', "
                         "'on-failure', or 'unless-stopped'")
    return name, count


def next_wait(directory, ran_for: float) -> float:
    """The backoff: 100 ms, doubled at each restart up to a minute, back to 100 ms after a run
    of ten seconds or more."""
    try:
        last = float((directory / BACKOFF_FILE).read_text())
    except (ValueError, OSError):                     # none yet: the first restart
        last = 0.0
    if ran_for >= STEADY_RUN:
        last = 0.0
    wait = FIRST_WAIT if last <= 0 else min(last * 2, LONGEST_WAIT)
    (directory / BACKOFF_FILE).write_text(repr(wait))
    return wait


def policy_applies(policy: dict, exit_code: int, restarts: int) -> bool:
    name, most = policy.get("Name", "no"), policy.get("MaximumRetryCount", 0)
    if name in ("always", "unless-stopped"):
        return True
    return name == "on-failure" and exit_code != 0 and (most == 0 or restarts < most)


def set_state(here, count: int | None = None, **state) -> bool:
    """Change the container's State (and RestartCount) under the records' lock; False if `rm -f`
    removed it meanwhile (saving would make its directory again)."""
    from mini_runtime import container

    lock = container.record_lock()
    with lock:
        if not here.is_dir():
            return False
        latest = container.load(here)
        latest["State"] = {**latest["State"], **state}
        if count is not None:
            latest["RestartCount"] = count
        container.save(here, latest)
    return True


def restart_after(directory, exit_code: int) -> bool:
    """docker's handleContainerExit: decide, count, say "restarting", wait; `stop`, `kill` or
    `rm -f` meanwhile (the `stopped` file, or the directory gone) end it as exited."""
    from mini_runtime import container
    from mini_runtime.units import parse_rfc3339

    here = directory
    try:
        ended = container.load(here)
    except OSError:
        return False                                    # removed (rm -f) as it ended
    times = [parse_rfc3339(ended["State"].get(key) or "") or 0.0 for key in ("StartedAt", "FinishedAt")]
    wait = next_wait(here, times[1] - times[0])
    restarts = ended.get("RestartCount", 0)
    if (here / "stopped").exists() or not policy_applies(ended["HostConfig"]["RestartPolicy"],
                                                         exit_code, restarts):
        return False
    if not set_state(here, restarts + 1, Status="restarting", Running=True, Restarting=True, Pid=0):
        return False
    deadline = time.monotonic() + wait
    while here.is_dir():
        if (here / "stopped").exists():
            set_state(here, Status="exited", Running=False, Restarting=False)
            return False
        if time.monotonic() >= deadline:
            return True
        time.sleep(min(0.02, max(deadline - time.monotonic(), 0)))
    return False
