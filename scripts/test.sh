#!/usr/bin/env bash
# `make test`: the host's suite and the cgroup-v2 guest's share, side by side.
#
#   bash scripts/test.sh PYTHON [PYTEST ARGS...]
#
# The guest (user-mode Linux, scripts/v2_guest.py) runs on one CPU and spends most of its time
# waiting on its own page faults, so on a machine with two CPUs or more running it beside the
# host's pytest takes about the longer of the two, not their sum. Its output is kept in a file
# and printed when both have ended; the exit status is non-zero if either failed. An interrupted
# run (ctrl-C) stops the guest too.
set -uo pipefail
python=$1
shift
log=$(mktemp /var/tmp/mini-v2-guest-log.XXXXXX)
"$python" scripts/v2_guest.py >"$log" 2>&1 &
guest=$!
trap 'kill -TERM "$guest" 2>/dev/null; wait "$guest" 2>/dev/null; rm -f "$log"; exit 130' INT TERM
"$python" -m pytest --durations=30 "$@"     # (the slowest 30, for the 20-minute budget)
host=$?
echo "==> the host's tests ended ($host); the cgroup-v2 guest's tests:"
wait "$guest"
status=$?
cat "$log"
rm -f "$log"
trap - INT TERM
[ "$host" -eq 0 ] && [ "$status" -eq 0 ]
