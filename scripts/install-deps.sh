#!/usr/bin/env bash
# Installs the Debian packages the tests use, when they are missing.
# GNU coreutils (sort) is on every Debian system; iproute2 for network
# namespaces, fio and fuse3 for the burst buffer, awscli, python3-boto3 and
# rclone for the S3 endpoint.
set -euo pipefail
need=()
command -v sort >/dev/null || need+=(coreutils)
command -v ip >/dev/null || need+=(iproute2)
command -v fio >/dev/null && command -v fusermount3 >/dev/null || need+=(fio fuse3)
# Real S3 clients for the S3 endpoint's end-to-end tests (the Debian ones:
# the tests run /usr/bin/aws and /usr/bin/python3, not other installs).
[ -x /usr/bin/aws ] || need+=(awscli)
/usr/bin/python3 -c 'import boto3' 2>/dev/null || need+=(python3-boto3)
command -v rclone >/dev/null || need+=(rclone)
command -v wrk >/dev/null && [ -x /usr/sbin/varnishd ] || need+=(wrk varnish)  # bench/edgebench: the edge cache against Varnish
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-deps: missing ${need[*]}; run as root or install them" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
go mod download
