#!/usr/bin/env bash
# Installs etcd (Debian's etcd-server, 3.4) where it is missing: the
# cluster tests start three members of their own on loopback. Run by
# .ci/run; needs root for apt-get.
set -euo pipefail
if command -v etcd >/dev/null; then
    exit 0
fi
echo "== installing etcd (Debian's etcd-server)"
apt-get update -qq
# The package's service is not started where there is no systemd; the
# tests start their own members.
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends etcd-server >/dev/null
etcd --version | head -1
