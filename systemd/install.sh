#!/usr/bin/env bash
# Convoy installer: binaries, systemd units, users, config and data dirs.
#
#   One command per agent host:
#     sudo ./install.sh --agent --server cp.example.com:7443 --token cvjt_...
#   The control plane host:
#     sudo ./install.sh --control-plane --fleet prod --server-name cp.example.com
#
# Idempotent: re-running upgrades the binaries and units in place and
# restarts the services; config files and data dirs are never overwritten.
#
# Options:
#   --agent / --control-plane  what to install (default: every daemon whose
#                              binary is in the binary dir)
#   --bin-dir DIR     where the built binaries are (default: next to this
#                     script, else ../target/release)
#   --server H:P --token T     enroll the agent (skipped if already enrolled)
#   --fleet F --server-name N  initialise the control plane's data dir
#                              (skipped if it exists; prints the admin token)
#   --root DIR        install into DIR instead of / (a throwaway root for
#                     tests and image builds): no useradd, chown or systemctl
#   --no-start        do not enable or start the services
#   --uninstall       stop and remove binaries, units and users; keeps
#                     /etc/convoy and the data dirs
#   --purge           with --uninstall: also remove config and data
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=""
bin_dir=""
want_agent=0
want_cp=0
server=""
token="${CONVOY_JOIN_TOKEN:-}"
fleet=""
server_names=()
no_start=0
uninstall=0
purge=0

die() { echo "install.sh: $*" >&2; exit 1; }
say() { echo "==> $*"; }
usage() { sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --agent) want_agent=1 ;;
    --control-plane) want_cp=1 ;;
    --bin-dir) bin_dir=${2:?--bin-dir needs a value}; shift ;;
    --server) server=${2:?--server needs a value}; shift ;;
    --token) token=${2:?--token needs a value}; shift ;;
    --fleet) fleet=${2:?--fleet needs a value}; shift ;;
    --server-name) server_names+=("${2:?--server-name needs a value}"); shift ;;
    --root) root=${2:?--root needs a value}; shift ;;
    --no-start) no_start=1 ;;
    --uninstall) uninstall=1 ;;
    --purge) purge=1 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done

[ "$purge" = 1 ] && [ "$uninstall" = 0 ] && die "--purge goes with --uninstall"
if [ -n "$root" ]; then
  mkdir -p "$root"
  root=$(cd "$root" && pwd)
  [ "$root" = / ] && root=""
fi
if [ -z "$root" ] && [ "$(id -u)" != 0 ]; then
  die "run as root (or pass --root DIR to install into a directory)"
fi

bin_target="$root/usr/local/bin"
unit_target="$root/etc/systemd/system"
doc_target="$root/usr/local/share/doc/convoy"
conf_dir="$root/etc/convoy"
agent_data="$root/var/lib/convoy-agent"
cp_data="$root/var/lib/convoy"

# In a throwaway root there is no systemd and no user database to change.
systemctl_() {
  if [ -n "$root" ]; then
    echo "    (--root: skipping systemctl $*)"
  else
    systemctl "$@"
  fi
}
chown_() {
  if [ -n "$root" ]; then
    echo "    (--root: skipping chown $*)"
  else
    chown "$@"
  fi
}

ensure_user() { # name home [extra groups]
  local name=$1 home=$2 groups=${3:-}
  if [ -n "$root" ]; then
    echo "    (--root: skipping useradd $name)"
    return
  fi
  if getent passwd "$name" >/dev/null; then
    echo "    user $name exists"
  else
    useradd --system --user-group --home-dir "$home" --no-create-home \
      --shell /usr/sbin/nologin --comment "Convoy ($name)" "$name"
    echo "    created system user $name"
  fi
  if [ -n "$groups" ]; then
    if getent group "$groups" >/dev/null; then
      usermod -a -G "$groups" "$name"
    else
      echo "    warning: group $groups does not exist (is Docker installed?)" >&2
    fi
  fi
}

remove_user() {
  local name=$1
  if [ -n "$root" ]; then
    echo "    (--root: skipping userdel $name)"
  elif getent passwd "$name" >/dev/null; then
    userdel "$name" && echo "    removed user $name"
  fi
}

# --- what to act on -----------------------------------------------------------
if [ -z "$bin_dir" ]; then
  if [ -x "$script_dir/convoy-agent" ] || [ -x "$script_dir/convoy-control-plane" ]; then
    bin_dir=$script_dir
  else
    bin_dir="$script_dir/../target/release"
  fi
fi
if [ "$want_agent" = 0 ] && [ "$want_cp" = 0 ]; then
  if [ -n "$server" ] || [ -n "$token" ]; then
    want_agent=1
  elif [ "$uninstall" = 1 ]; then
    want_agent=1; want_cp=1
  else
    [ -x "$bin_dir/convoy-agent" ] && want_agent=1
    [ -x "$bin_dir/convoy-control-plane" ] && want_cp=1
    [ "$want_agent" = 1 ] || [ "$want_cp" = 1 ] ||
      die "no convoy binaries in $bin_dir (use --bin-dir)"
  fi
fi

# --- uninstall ------------------------------------------------------------------
if [ "$uninstall" = 1 ]; then
  for c in agent control-plane; do
    if [ "$c" = agent ]; then [ "$want_agent" = 1 ] || continue; else [ "$want_cp" = 1 ] || continue; fi
    unit="convoy-$c.service"
    say "removing convoy-$c"
    if [ -z "$root" ] && systemctl cat "$unit" >/dev/null 2>&1; then
      systemctl disable --now "$unit" || true
    elif [ -n "$root" ]; then
      echo "    (--root: skipping systemctl disable --now $unit)"
    fi
    rm -f "$unit_target/$unit" "$bin_target/convoy-$c"
    # Containers are dockerd's: removing the agent never stops a stack.
    if [ "$c" = agent ]; then
      remove_user convoy-agent
      if [ "$purge" = 1 ]; then rm -rf "$agent_data" "$conf_dir/agent.toml"; fi
    else
      rm -f "$bin_target/convoy"
      remove_user convoy
      if [ "$purge" = 1 ]; then rm -rf "$cp_data" "$conf_dir/control-plane.toml"; fi
    fi
  done
  systemctl_ daemon-reload
  if [ ! -e "$bin_target/convoy-agent" ] && [ ! -e "$bin_target/convoy-control-plane" ]; then
    rm -rf "$doc_target"
  fi
  if [ "$purge" = 1 ]; then
    rmdir "$conf_dir" 2>/dev/null || true
  else
    echo "kept: $conf_dir and the data dirs (--purge removes them)"
  fi
  exit 0
fi

# --- install --------------------------------------------------------------------
[ "$want_agent" = 0 ] || [ -x "$bin_dir/convoy-agent" ] || die "$bin_dir/convoy-agent not found"
[ "$want_cp" = 0 ] || [ -x "$bin_dir/convoy-control-plane" ] || die "$bin_dir/convoy-control-plane not found"
if [ -n "$server" ] && [ -z "$token" ]; then die "--server needs --token"; fi
if [ -n "$token" ] && [ -z "$server" ]; then die "--token needs --server"; fi
if [ -n "$fleet" ] && [ "${#server_names[@]}" = 0 ]; then die "--fleet needs --server-name"; fi

unit_src() { # the unit next to this script
  local f="$script_dir/$1"
  [ -f "$f" ] || die "$f not found"
  echo "$f"
}
config_src() { # examples/config/<name> in a checkout, or next to this script
  local f
  for f in "$script_dir/config/$1" "$script_dir/$1" "$script_dir/../examples/config/$1"; do
    [ -f "$f" ] && { echo "$f"; return; }
  done
  die "example config $1 not found next to $0"
}

# Copies to a temp name and renames: a running binary is replaced, never
# written into; identical files are left alone (no needless restarts).
install_file() { # mode src dst
  local mode=$1 src=$2 dst=$3
  if [ -f "$dst" ] && cmp -s "$src" "$dst"; then
    chmod "$mode" "$dst"
    echo "    unchanged $dst"
    return 1
  fi
  install -D -m "$mode" "$src" "$dst.convoy-new"
  mv -f "$dst.convoy-new" "$dst"
  echo "    installed $dst"
  return 0
}

install -d -m 0755 "$bin_target" "$unit_target" "$doc_target" "$conf_dir"
changed=0
if [ -f "$script_dir/../README.md" ]; then
  install_file 0644 "$script_dir/../README.md" "$doc_target/README.md" || true
elif [ -f "$script_dir/README.md" ]; then
  install_file 0644 "$script_dir/README.md" "$doc_target/README.md" || true
fi

if [ "$want_cp" = 1 ]; then
  say "control plane"
  ensure_user convoy "/var/lib/convoy"
  install_file 0755 "$bin_dir/convoy-control-plane" "$bin_target/convoy-control-plane" && changed=1
  if [ -x "$bin_dir/convoy" ]; then
    install_file 0755 "$bin_dir/convoy" "$bin_target/convoy" || true
  fi
  install_file 0644 "$(unit_src convoy-control-plane.service)" \
    "$unit_target/convoy-control-plane.service" && changed=1
  if [ -e "$conf_dir/control-plane.toml" ]; then
    echo "    kept $conf_dir/control-plane.toml"
  else
    # May hold secrets (git token, webhook secret): root and the daemon only.
    install -m 0640 "$(config_src control-plane.toml)" "$conf_dir/control-plane.toml"
    chown_ root:convoy "$conf_dir/control-plane.toml"
    echo "    created $conf_dir/control-plane.toml"
  fi
  if [ -n "$fleet" ]; then
    if [ -e "$cp_data/ca.pem" ]; then
      echo "    $cp_data is initialised; --fleet ignored"
    else
      args=(init --data-dir "$cp_data" --fleet "$fleet")
      for n in "${server_names[@]}"; do args+=(--server-name "$n"); done
      if [ -d "$cp_data" ]; then rmdir "$cp_data" 2>/dev/null || true; fi
      "$bin_target/convoy-control-plane" "${args[@]}"
    fi
  fi
  install -d -m 0700 "$cp_data"
  chown_ -R convoy:convoy "$cp_data"
fi

if [ "$want_agent" = 1 ]; then
  say "agent"
  ensure_user convoy-agent "/var/lib/convoy-agent" docker
  install_file 0755 "$bin_dir/convoy-agent" "$bin_target/convoy-agent" && changed=1
  install_file 0644 "$(unit_src convoy-agent.service)" \
    "$unit_target/convoy-agent.service" && changed=1
  if [ -e "$conf_dir/agent.toml" ]; then
    echo "    kept $conf_dir/agent.toml"
  else
    install -m 0644 "$(config_src agent.toml)" "$conf_dir/agent.toml"
    echo "    created $conf_dir/agent.toml"
  fi
  install -d -m 0700 "$agent_data"
  if [ -n "$server" ]; then
    if [ -e "$agent_data/cert.pem" ]; then
      echo "    already enrolled ($agent_data/cert.pem); --server/--token ignored"
    else
      # Enrolled as root, then handed to the agent user below.
      CONVOY_JOIN_TOKEN="$token" "$bin_target/convoy-agent" enroll \
        --server "$server" --data-dir "$agent_data"
    fi
  fi
  chown_ -R convoy-agent:convoy-agent "$agent_data"
fi

# --- services -------------------------------------------------------------------
summary() {
  if [ "$changed" = 1 ]; then
    say "done (binaries or units changed)"
  else
    say "done (already up to date)"
  fi
}
systemctl_ daemon-reload
if [ "$no_start" = 1 ]; then
  echo "--no-start: services not enabled or started"
  summary
  exit 0
fi
for c in agent control-plane; do
  if [ "$c" = agent ]; then [ "$want_agent" = 1 ] || continue; else [ "$want_cp" = 1 ] || continue; fi
  unit="convoy-$c.service"
  if [ "$c" = agent ] && [ ! -e "$agent_data/cert.pem" ]; then
    echo "$unit: not enrolled yet; enable it after 'convoy-agent enroll' (or re-run with --server/--token)"
    systemctl_ enable "$unit"
    continue
  fi
  if [ "$c" = control-plane ] && [ ! -e "$cp_data/ca.pem" ]; then
    echo "$unit: data dir not initialised; re-run with --fleet/--server-name"
    systemctl_ enable "$unit"
    continue
  fi
  systemctl_ enable "$unit"
  # restart starts a stopped unit and picks up upgraded binaries.
  systemctl_ restart "$unit"
done
summary
