#!/usr/bin/env bash
# The README's test command: installs what the tests need (Debian and PyPI
# packages, via .ci/install-deps), makes sure the Docker engine answers
# (.ci/docker-check), then runs every test of the workspace. Arguments go to
# `cargo test` (e.g. `./test.sh -p convoy-tests --test e2e`). CI runs
# exactly this (from .ci/run, with --locked).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
bash .ci/install-deps
bash .ci/docker-check
exec cargo test --workspace "$@"
