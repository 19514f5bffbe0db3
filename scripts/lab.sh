#!/usr/bin/env bash
# JupyterLab for the course notebooks, as root (the notebooks drive a container runtime).
#
#   scripts/lab.sh                    run JupyterLab here and print its URL (ctrl-c stops it);
#                                     if the lab service already runs, just print the URL
#   scripts/lab.sh --install-service  install, enable and start the systemd unit
#                                     mini-runtime-jupyter.service instead (what the VM uses)
#   scripts/lab.sh --foreground       always run the server (what the unit runs)
#
# Port 8888 on all of the machine's interfaces, behind a token (/etc/mini_runtime/jupyter_token,
# mode 0600) and a Host-header check that accepts only localhost / 127.0.0.1: reach it through
# Vagrant's forward to the host's 127.0.0.1 or `ssh -L 8888:127.0.0.1:8888`. A Jupyter session
# here is a root shell on this machine: keep the token secret and the port off public networks.
#
# The lab's settings (scripts/lab-overrides.json, copied into the virtualenv's JupyterLab
# settings on every start): a double-click on a chapter opens it rendered, not in the editor, and
# JupyterLab neither asks to fetch news nor checks for updates. The notebooks run on the one
# kernel the virtualenv has, "python3" (this virtualenv's Python, which the server runs on).
# The server logs warnings only, and the URL is printed again once it listens.
#
# Environment: MINI_VENV (default: .venv in the checkout) is the virtualenv with JupyterLab
# (`scripts/provision.sh --lab` makes it). JUPYTER_ALLOW_REMOTE=1 drops the Host-header check,
# for browsing to the VM's own address (Multipass); the token is then the only barrier.
# MINI_LAB_PORT, MINI_LAB_IP and MINI_LAB_TOKEN_FILE move the port (8888), the address (all
# interfaces) and the token file (tests/test_lab.py runs a private lab on a loopback port).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
venv=${MINI_VENV:-$here/.venv}
port=${MINI_LAB_PORT:-8888}
ip=${MINI_LAB_IP:-0.0.0.0}
token_file=${MINI_LAB_TOKEN_FILE:-/etc/mini_runtime/jupyter_token}
unit=mini-runtime-jupyter.service
unit_file=/etc/systemd/system/$unit

mode=run
for arg in "$@"; do
  case $arg in
    --install-service) mode=service ;;
    --foreground) mode=foreground ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "lab.sh: unknown option $arg (try --help)" >&2; exit 2 ;;
  esac
done

if [ "$(id -u)" -ne 0 ]; then
  echo "lab.sh: run me as root (the notebooks start containers: sudo $0 $*)" >&2
  exit 1
fi

# systemd is PID 1 exactly when this directory exists (sd_booted(3)).
have_systemd() { [ -d /run/systemd/system ]; }

if [ $mode = service ] && ! have_systemd; then
  echo "lab.sh: systemd is not PID 1 here, so no lab service; 'make lab' runs JupyterLab in the foreground."
  exit 0
fi

if [ ! -x "$venv/bin/jupyter-lab" ] || [ ! -x "$venv/bin/jupyter" ]; then
  echo "lab.sh: no JupyterLab in $venv; run 'make lab' (or: scripts/provision.sh --lab)" >&2
  exit 1
fi

# --- the token: random, mode 0600, and no trailing newline (with one, Jupyter answers 403) ----
ensure_token() {
  local tok=""
  install -d -m 0700 "$(dirname "$token_file")"
  [ -f "$token_file" ] && tok=$(cat "$token_file")
  if [ -z "$tok" ] || [ "$(wc -c < "$token_file")" -ne ${#tok} ]; then
    [ -n "$tok" ] || tok=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
    (umask 077 && printf '%s' "$tok" > "$token_file.tmp")
    mv -f "$token_file.tmp" "$token_file"
  fi
  chmod 0600 "$token_file"
}

url() { printf 'http://127.0.0.1:%s/lab?token=%s' "$port" "$(cat "$token_file")"; }

print_url() {
  echo "JupyterLab (as root): $(url)"
  echo "  From a Vagrant host: if Vagrant moved port $port, 'vagrant port' shows the host port."
}

# --- one kernel: the virtualenv's "python3", which the notebooks name ----------------------
# Earlier versions registered a second, named kernel ("Python 3 (mini_runtime, root)") that no
# notebook used: two identical choices. Remove it where it is left over.
remove_old_kernel() {
  local old="$venv/share/jupyter/kernels/mini_runtime"
  if [ -d "$old" ]; then rm -rf "$old"; fi
}

# --- the lab's settings (see the header) -----------------------------------------------------
ensure_settings() {
  local dest="$venv/share/jupyter/lab/settings/overrides.json"
  cmp -s "$here/scripts/lab-overrides.json" "$dest" ||
    install -D -m 0644 "$here/scripts/lab-overrides.json" "$dest"
}

ensure_token
remove_old_kernel
ensure_settings

# --- the systemd unit ----------------------------------------------------------------------
if [ $mode = service ]; then
  # The checkout may be a Vagrant synced folder, mounted only after boot: until it appears the
  # unit fails and is retried every 5 s (StartLimitIntervalSec=0: never give up).
  unit_text="[Unit]
Description=JupyterLab for the mini_runtime notebooks (root; token in $token_file)
After=network.target
StartLimitIntervalSec=0

[Service]
Type=simple
User=root
Environment=HOME=/root
Environment=\"MINI_VENV=$venv\"${JUPYTER_ALLOW_REMOTE:+
Environment=JUPYTER_ALLOW_REMOTE=$JUPYTER_ALLOW_REMOTE}
WorkingDirectory=/
ExecStart=/bin/bash \"$here/scripts/lab.sh\" --foreground
Restart=on-failure
RestartSec=5

[Install]
WantedBy=multi-user.target"
  if [ "$(cat "$unit_file" 2>/dev/null)" != "$unit_text" ]; then
    printf '%s\n' "$unit_text" > "$unit_file.tmp"
    mv -f "$unit_file.tmp" "$unit_file"
    systemctl daemon-reload
    systemctl enable --quiet "$unit"
    systemctl restart "$unit"
  else
    systemctl enable --quiet "$unit"
    systemctl is-active --quiet "$unit" || systemctl start "$unit"
  fi
  # JupyterLab takes a few seconds to listen; wait for it, but a slow start is not an error.
  for _ in $(seq 30); do
    ss -Hltn "sport = :$port" 2>/dev/null | grep -q . && break
    if systemctl is-failed --quiet "$unit"; then
      echo "lab.sh: $unit failed to start; see: journalctl -u $unit" >&2
      exit 1
    fi
    sleep 1
  done
  print_url
  echo "  Service: systemctl status $unit; logs: journalctl -u $unit"
  exit 0
fi

# --- the server in this terminal -----------------------------------------------------------
if [ $mode = run ] && have_systemd && systemctl is-active --quiet "$unit"; then
  print_url
  echo "  (served by $unit; to run it in this terminal instead: systemctl stop $unit)"
  exit 0
fi

args=(--allow-root --no-browser --ip="$ip" --port="$port" --ServerApp.port_retries=0
      --ServerApp.root_dir="$here" --ServerApp.log_level=WARN --LabApp.log_level=WARN)
[ "${JUPYTER_ALLOW_REMOTE:-}" = 1 ] || args+=(--ServerApp.allow_remote_access=False)

# The URL once now, and again, framed, once the server listens: its start-up lines would
# otherwise push the first one out of sight. The announcer is a grandchild that init adopts, so
# the server (exec'd below, in this process) never has a child of ours to reap.
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  echo "lab.sh: port $port is in use already (another JupyterLab? ss -ltnp 'sport = :$port')" >&2
  exit 1
fi
print_url
announce() {
  for _ in $(seq 120); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      printf '\n%s\n' "================================================================"
      print_url
      echo "  (ctrl-c stops the server; only its warnings are shown)"
      printf '%s\n\n' "================================================================"
      return
    fi
    sleep 0.5
  done
}
( announce & )
export JUPYTER_TOKEN_FILE=$token_file MINI_VENV=$venv PATH="$venv/bin:$PATH"
exec "$venv/bin/jupyter" lab "${args[@]}"
