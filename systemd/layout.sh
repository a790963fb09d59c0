# shellcheck shell=sh disable=SC2034
# Where Convoy lives on a host: the one source of truth for paths, users and
# data dirs. systemd/install.sh sources this file; packaging/build-deb pastes
# it into the Debian packages' maintainer scripts, so both install the same
# layout. POSIX sh (dpkg runs maintainer scripts with /bin/sh). The unit
# files repeat these paths (ExecStart=, StateDirectory=); tests/tests/
# packaging.rs checks that they agree.

CONVOY_BIN_DIR=/usr/bin
CONVOY_UNIT_DIR=/usr/lib/systemd/system
CONVOY_CONF_DIR=/etc/convoy
# + /<package>/README.md (and the Debian copyright and changelog)
CONVOY_DOC_ROOT=/usr/share/doc

# convoy_component agent|control-plane: what one daemon installs.
#   CONVOY_NAME     package, unit and main binary name
#   CONVOY_BINARIES binaries it ships (the operator CLI goes with the control plane)
#   CONVOY_USER     its system user (and group)
#   CONVOY_GROUPS   extra groups of that user (docker: the Engine API socket)
#   CONVOY_DATA     its data dir (0700, the unit's StateDirectory=)
#   CONVOY_CONFIG CONVOY_CONFIG_MODE  its file in CONVOY_CONF_DIR (0640
#                   root:user when it may hold secrets)
#   CONVOY_READY    the file that exists once the data dir is initialised
#                   (the unit's ConditionPathExists=)
#   CONVOY_SETUP    the command that initialises it. The agent enrolls as
#                   its own user, into the data dir the package made; the
#                   control plane's `init` runs as root and makes the data
#                   dir itself (CONVOY_MAKE_DATA=no: it refuses an existing
#                   one, so as never to overwrite a fleet CA), and systemd
#                   hands it to the user on start (StateDirectory=)
convoy_component() {
  case "$1" in
    agent)
      CONVOY_NAME=convoy-agent
      CONVOY_BINARIES="convoy-agent"
      CONVOY_USER=convoy-agent
      CONVOY_GROUPS=docker
      CONVOY_DATA=/var/lib/convoy-agent
      CONVOY_CONFIG=agent.toml
      CONVOY_CONFIG_MODE=0644
      CONVOY_READY=cert.pem
      CONVOY_SETUP="sudo -u convoy-agent convoy-agent enroll --data-dir /var/lib/convoy-agent --server cp.example.com:7443 --token cvjt_..."
      CONVOY_MAKE_DATA=yes
      ;;
    control-plane)
      CONVOY_NAME=convoy-control-plane
      CONVOY_BINARIES="convoy-control-plane convoy"
      CONVOY_USER=convoy
      CONVOY_GROUPS=
      CONVOY_DATA=/var/lib/convoy
      CONVOY_CONFIG=control-plane.toml
      CONVOY_CONFIG_MODE=0640
      CONVOY_READY=ca.pem
      CONVOY_SETUP="sudo convoy-control-plane init --data-dir /var/lib/convoy --fleet prod --server-name cp.example.com"
      CONVOY_MAKE_DATA=no
      ;;
    *)
      echo "convoy_component: unknown component $1" >&2
      return 1
      ;;
  esac
  CONVOY_UNIT="$CONVOY_NAME.service"
  CONVOY_DOC_DIR="$CONVOY_DOC_ROOT/$CONVOY_NAME"
}

# convoy_ensure_user NAME HOME [GROUP]: a system user with its own group and
# no login; added to GROUP when that group exists (warns otherwise).
convoy_ensure_user() {
  if getent passwd "$1" >/dev/null; then
    echo "    user $1 exists"
  else
    useradd --system --user-group --home-dir "$2" --no-create-home \
      --shell /usr/sbin/nologin --comment "Convoy ($1)" "$1"
    echo "    created system user $1"
  fi
  if [ -n "${3:-}" ]; then
    if getent group "$3" >/dev/null; then
      usermod -a -G "$3" "$1"
    else
      echo "    warning: group $3 does not exist (is Docker installed?); add $1 to it once it does" >&2
    fi
  fi
}

# convoy_data_dir DIR USER: the data dir, 0700 and the user's (contents are
# handed over too: an `enroll`/`init` run as root leaves root-owned files).
convoy_data_dir() {
  install -d -m 0700 "$1"
  chown -R "$2:$2" "$1"
}
