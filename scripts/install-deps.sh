#!/usr/bin/env bash
# Installs the Debian packages the tests use, when they are missing.
# GNU coreutils (sort) is on every Debian system; the others are for later
# parts of the engine's test suite.
set -euo pipefail
need=()
command -v sort >/dev/null || need+=(coreutils)
command -v ip >/dev/null || need+=(iproute2)
command -v fio >/dev/null && command -v fusermount3 >/dev/null || need+=(fio fuse3)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-deps: missing ${need[*]}; run as root or install them" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
go mod download
