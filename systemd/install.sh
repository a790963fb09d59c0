#!/usr/bin/env bash
# Convoy installer: binaries, systemd units, users, config and data dirs —
# the same layout as the Debian packages (systemd/layout.sh says where).
#
#   One command per agent host:
#     sudo ./install.sh --agent --server cp.example.com:7443 --token cvjt_...
#   The control plane host:
#     sudo ./install.sh --control-plane --fleet prod --server-name cp.example.com
#
# Idempotent: re-running upgrades the binaries and units in place and
# restarts the services; config files and data dirs are never overwritten.
# On a host where the Debian package is installed, use the package instead.
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
usage() { sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; }

[ -f "$script_dir/layout.sh" ] || die "$script_dir/layout.sh not found (it ships next to this script)"
# shellcheck source-path=SCRIPTDIR source=layout.sh
. "$script_dir/layout.sh"

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

bin_target="$root$CONVOY_BIN_DIR"
unit_target="$root$CONVOY_UNIT_DIR"
conf_dir="$root$CONVOY_CONF_DIR"

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
ensure_user() { # name home [extra group]
  if [ -n "$root" ]; then
    echo "    (--root: skipping useradd $1)"
  else
    convoy_ensure_user "$@"
  fi
}
data_dir() { # dir user
  if [ -n "$root" ]; then
    install -d -m 0700 "$1"
    echo "    (--root: skipping chown $2 $1)"
  else
    convoy_data_dir "$1" "$2"
  fi
}
remove_user() {
  if [ -n "$root" ]; then
    echo "    (--root: skipping userdel $1)"
  elif getent passwd "$1" >/dev/null; then
    userdel "$1" && echo "    removed user $1"
  fi
}
# The Debian package owns these files there: two installers would fight.
refuse_if_packaged() {
  [ -z "$root" ] || return 0
  command -v dpkg-query >/dev/null || return 0
  if dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; then
    die "$1 is installed from its Debian package: upgrade or remove it with apt/dpkg"
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
components=()
[ "$want_agent" = 1 ] && components+=(agent)
[ "$want_cp" = 1 ] && components+=(control-plane)
for c in "${components[@]}"; do
  convoy_component "$c"
  refuse_if_packaged "$CONVOY_NAME"
done

# Before this layout (binaries in /usr/local/bin, units in /etc/systemd/system)
# install.sh put its files elsewhere: an old unit there would shadow the new
# one, so remove what it left (only files carrying its marker).
migrate_old_layout() {
  local unit=$1; shift
  local old="$root/etc/systemd/system/$unit"
  if [ -f "$old" ] && grep -q "Installed by systemd/install.sh" "$old"; then
    rm -f "$old"
    for b in "$@"; do rm -f "$root/usr/local/bin/$b"; done
    rm -rf "$root/usr/local/share/doc/convoy"
    echo "    removed the old layout's $old and /usr/local/bin/{$*}"
  fi
}

# --- uninstall ------------------------------------------------------------------
if [ "$uninstall" = 1 ]; then
  for c in "${components[@]}"; do
    convoy_component "$c"
    say "removing $CONVOY_NAME"
    if [ -z "$root" ] && systemctl cat "$CONVOY_UNIT" >/dev/null 2>&1; then
      systemctl disable --now "$CONVOY_UNIT" || true
    elif [ -n "$root" ]; then
      echo "    (--root: skipping systemctl disable --now $CONVOY_UNIT)"
    fi
    rm -f "$unit_target/$CONVOY_UNIT"
    # shellcheck disable=SC2086 # a list of names
    for b in $CONVOY_BINARIES; do rm -f "$bin_target/$b"; done
    rm -rf "${root}$CONVOY_DOC_DIR"
    # Containers are dockerd's: removing the agent never stops a stack.
    remove_user "$CONVOY_USER"
    if [ "$purge" = 1 ]; then rm -rf "${root}${CONVOY_DATA:?}" "$conf_dir/${CONVOY_CONFIG:?}"; fi
  done
  systemctl_ daemon-reload
  if [ "$purge" = 1 ]; then
    rmdir "$conf_dir" 2>/dev/null || true
  else
    echo "kept: $conf_dir and the data dirs (--purge removes them)"
  fi
  exit 0
fi

# --- install --------------------------------------------------------------------
for c in "${components[@]}"; do
  convoy_component "$c"
  # shellcheck disable=SC2086
  for b in $CONVOY_BINARIES; do
    # The CLI is optional in a release dir; the daemon is not.
    [ "$b" = "$CONVOY_NAME" ] || continue
    [ -x "$bin_dir/$b" ] || die "$bin_dir/$b not found"
  done
done
if [ -n "$server" ] && [ -z "$token" ]; then die "--server needs --token"; fi
if [ -n "$token" ] && [ -z "$server" ]; then die "--token needs --server"; fi
if [ -n "$fleet" ] && [ "${#server_names[@]}" = 0 ]; then die "--fleet needs --server-name"; fi

config_src() { # examples/config/<name> in a checkout, or next to this script
  local f
  for f in "$script_dir/config/$1" "$script_dir/$1" "$script_dir/../examples/config/$1"; do
    [ -f "$f" ] && { echo "$f"; return; }
  done
  die "example config $1 not found next to $0"
}
readme_src() {
  local f
  for f in "$script_dir/../README.md" "$script_dir/README.md"; do
    [ -f "$f" ] && { echo "$f"; return; }
  done
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

install -d -m 0755 "$bin_target" "$unit_target" "$conf_dir"
changed=0
readme=$(readme_src)

for c in "${components[@]}"; do
  convoy_component "$c"
  say "$CONVOY_NAME"
  ensure_user "$CONVOY_USER" "$CONVOY_DATA" "$CONVOY_GROUPS"
  # shellcheck disable=SC2086
  migrate_old_layout "$CONVOY_UNIT" $CONVOY_BINARIES
  # shellcheck disable=SC2086
  for b in $CONVOY_BINARIES; do
    [ -x "$bin_dir/$b" ] || continue
    if install_file 0755 "$bin_dir/$b" "$bin_target/$b"; then
      [ "$b" = "$CONVOY_NAME" ] && changed=1
    fi
  done
  [ -f "$script_dir/$CONVOY_UNIT" ] || die "$script_dir/$CONVOY_UNIT not found"
  install_file 0644 "$script_dir/$CONVOY_UNIT" "$unit_target/$CONVOY_UNIT" && changed=1
  if [ -n "$readme" ]; then
    install_file 0644 "$readme" "${root}$CONVOY_DOC_DIR/README.md" || true
  fi
  if [ -e "$conf_dir/$CONVOY_CONFIG" ]; then
    echo "    kept $conf_dir/$CONVOY_CONFIG"
  else
    install -m "$CONVOY_CONFIG_MODE" "$(config_src "$CONVOY_CONFIG")" "$conf_dir/$CONVOY_CONFIG"
    # 0640 files may hold secrets (git token, webhook secret): root and the daemon only.
    [ "$CONVOY_CONFIG_MODE" = 0640 ] && chown_ "root:$CONVOY_USER" "$conf_dir/$CONVOY_CONFIG"
    echo "    created $conf_dir/$CONVOY_CONFIG"
  fi
  data="${root}$CONVOY_DATA"
  if [ "$c" = control-plane ] && [ -n "$fleet" ]; then
    if [ -e "$data/ca.pem" ]; then
      echo "    $data is initialised; --fleet ignored"
    else
      args=(init --data-dir "$data" --fleet "$fleet")
      for n in "${server_names[@]}"; do args+=(--server-name "$n"); done
      if [ -d "$data" ]; then rmdir "$data" 2>/dev/null || true; fi
      "$bin_target/convoy-control-plane" "${args[@]}"
    fi
  fi
  if [ "$c" = agent ] && [ -n "$server" ]; then
    install -d -m 0700 "$data"
    if [ -e "$data/cert.pem" ]; then
      echo "    already enrolled ($data/cert.pem); --server/--token ignored"
    else
      # Enrolled as root, then handed to the agent user below.
      CONVOY_JOIN_TOKEN="$token" "$bin_target/convoy-agent" enroll \
        --server "$server" --data-dir "$data"
    fi
  fi
  data_dir "$data" "$CONVOY_USER"
done

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
for c in "${components[@]}"; do
  convoy_component "$c"
  systemctl_ enable "$CONVOY_UNIT"
  if [ ! -e "${root}$CONVOY_DATA/$CONVOY_READY" ]; then
    # The unit's ConditionPathExists= would skip it anyway.
    if [ "$c" = agent ]; then
      echo "$CONVOY_UNIT: not enrolled yet; run 'convoy-agent enroll' (or re-run with --server/--token), then systemctl start $CONVOY_UNIT"
    else
      echo "$CONVOY_UNIT: data dir not initialised; re-run with --fleet/--server-name"
    fi
    continue
  fi
  # restart starts a stopped unit and picks up upgraded binaries.
  systemctl_ restart "$CONVOY_UNIT"
done
summary
