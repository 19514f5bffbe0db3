#!/usr/bin/env bash
# One setup for the learner VM, CI and any fresh Debian 12 / Ubuntu 24.04 machine. Run as root.
# Idempotent: a second run checks and returns in about a second.
#
#   scripts/provision.sh           runtime + tests: apt packages, a virtualenv, the package in it
#   scripts/provision.sh --test    also the tools only the project's own tests use (vagrant,
#                                  user-mode-linux, docker.io, skopeo; JupyterLab, Chromium and
#                                  Selenium for the browser test of the lab)
#   scripts/provision.sh --lab     also JupyterLab and a `mini` command on PATH
#   scripts/provision.sh --bench   also the peers `make bench` measures against (runc, crun,
#                                  podman, docker.io; never started as services) and matplotlib
#   scripts/provision.sh --lab --service
#                                  also an always-on JupyterLab service (what the Vagrant VM runs)
#
# Environment: MINI_VENV (default: .venv in the checkout) moves the virtualenv, e.g. off a
# synced folder in the VM.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
venv=${MINI_VENV:-$here/.venv}
want_test=0 want_lab=0 want_service=0 want_bench=0
for arg in "$@"; do
  case $arg in
    --test) want_test=1 ;;
    --lab) want_lab=1 ;;
    --service) want_service=1 ;;
    --bench) want_bench=1 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "provision.sh: unknown option $arg (try --help)" >&2; exit 2 ;;
  esac
done

if [ "$(id -u)" -ne 0 ]; then
  echo "provision.sh: run me as root (containers need root: sudo $0 $*)" >&2
  exit 1
fi

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# --- apt packages -------------------------------------------------------------------------
# Chapter by chapter: 01 busybox-static (the base image), python3-venv; 02-03 util-linux and
# procps (unshare, nsenter, ps for the experiments); 02 gcc and libc6-dev (a static chroot-
# breakout program, examples/chroot-escape.c); make and git for the course tooling; 07 nftables
# and python3-nftables (NAT rules as JSON through libnftables; the venv sees the binding because
# it is made with --system-site-packages; `nft -j` is the fallback).
pkgs=(busybox-static iproute2 python3-venv python3-pip util-linux procps make git gcc libc6-dev python3-zstandard
      nftables python3-nftables)
# Tests only: vagrant (validates the Vagrantfile) and user-mode-linux (a cgroup-v2-only kernel
# that boots as a process: `make test-v2`) with kmod (modprobe loads its overlay module); docker.io and skopeo, the real peers of chapter 05's
# image tests (tests/test_peers.py starts its own private dockerd; it needs no system one).
[ $want_test = 1 ] && pkgs+=(vagrant user-mode-linux kmod docker.io skopeo)
# Tests only: Node.js runs Mermaid's own parser on every figure (tests/test_figures.py). Debian's
# npm comes apart from nodejs; a Node.js from elsewhere (nodesource) brings its own npm.
[ $want_test = 1 ] && ! command -v npm >/dev/null && pkgs+=(nodejs npm)
# chromium and chromium-driver: tests/test_lab.py drives JupyterLab in headless Chromium (the
# driver is Debian's, matched to the browser: Selenium downloads nothing). Debian only: Ubuntu's
# chromium package is a stand-in for a snap, and the test skips there (outside CI).
os_id=$(. /etc/os-release 2>/dev/null && echo "${ID:-}")
[ $want_test = 1 ] && [ "$os_id" = debian ] && pkgs+=(chromium chromium-driver)
# Bench only: the peers of `make bench` (bench/README.md). The harness runs each privately:
# its own state roots, a private dockerd, podman with private storage.
[ $want_bench = 1 ] && pkgs+=(runc crun podman conmon docker.io)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "apt: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # --no-install-recommends keeps vagrant lean (without it, 260 packages come along).
  # docker.io must not start (or later boot) a system dockerd: it would add a bridge and
  # firewall rules to the machine. The tests run their own, privately. policy-rc.d stops the
  # package from starting it now; disabling the units keeps it off after a reboot.
  guard=""
  if [[ " ${missing[*]} " == *" docker.io "* ]] && [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && guard=1
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ -n "$guard" ] && rm -f /usr/sbin/policy-rc.d
  if [[ " ${missing[*]} " == *" docker.io "* ]] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl disable -q --now docker.socket docker.service containerd.service 2>/dev/null || true
  fi
  # podman enables its API socket on install: nothing here uses it.
  if [[ " ${missing[*]} " == *" podman "* ]] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl disable -q --now podman.socket podman.service 2>/dev/null || true
  fi
fi

# --- the virtualenv -----------------------------------------------------------------------
# From the distribution's interpreter (fast start-up; apt's python3-nftables importable).
extras=test
[ $want_lab = 1 ] && extras=test,lab
[ $want_test = 1 ] && extras=test,lab,browser   # the browser test starts the lab
stamp="$venv/.mini-provisioned"
fingerprint=$(cat "$here/pyproject.toml" "$0" | sha256sum | cut -c1-16)-$extras
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$fingerprint" ]; then
  say "virtualenv: $venv (extras: $extras)"
  [ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv --system-site-packages "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  # compat: a plain path entry; the default editable finder costs ~20 ms at every start.
  # setuptools deprecates compat, so pyproject.toml caps setuptools at a tested version (see
  # there). "strict" is fast too, but links the files that exist at install time: a module added
  # later (by a git pull) would stay invisible until the next provisioning.
  "$venv/bin/python" -m pip install -q -e "$here[$extras]" --config-settings editable_mode=compat
  echo "$fingerprint" > "$stamp"
fi

# Mermaid's parser for tests/test_figures.py, at the versions its lock file pins, beside the
# virtualenv's packages (kept out of the checkout: ~180 MB of node_modules).
if [ $want_test = 1 ]; then
  figures=$venv/mermaid
  lock=$(sha256sum < "$here/tests/figures/package-lock.json" | cut -c1-16)
  if [ "$(cat "$figures/.mini-provisioned" 2>/dev/null)" != "$lock" ]; then
    say "npm: mermaid's parser in $figures (tests/test_figures.py)"
    mkdir -p "$figures"
    cp "$here/tests/figures/package.json" "$here/tests/figures/package-lock.json" "$figures/"
    npm ci --prefix "$figures" --no-audit --no-fund --loglevel=error >/dev/null
    echo "$lock" > "$figures/.mini-provisioned"
  fi
fi

# Byte-code ahead of time: `mini run` starts faster, also where PYTHONDONTWRITEBYTECODE is set.
"$venv/bin/python" -m compileall -q "$here/mini_runtime" "$here/exercises" >/dev/null || true

# The `mini` command: pip's script replaced by one that starts python with -S and sets the paths
# `site` would have added (scripts/launcher.py says why: no .pth file runs at every start).
"$venv/bin/python" "$here/scripts/launcher.py" "$venv/bin/mini"

# The bench's chart. From PyPI rather than apt: Debian's python3-matplotlib brings ~60
# packages (scipy, sympy, tk) with it; the wheels are a handful. Only `make bench` imports it.
if [ $want_bench = 1 ] && ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
  say "pip: matplotlib (the chart of make bench)"
  "$venv/bin/python" -m pip install -q 'matplotlib>=3.6'
fi

if [ $want_lab = 1 ]; then
  ln -sf "$venv/bin/mini" /usr/local/bin/mini
fi
if [ $want_service = 1 ]; then
  MINI_VENV=$venv bash "$here/scripts/lab.sh" --install-service
fi
say "ready: $venv/bin/mini ($("$venv/bin/mini" --version))"
