#!/usr/bin/env bash
# Installs tmux (Debian's) where it is missing: the test of `ccrctl watch`
# drives the full-screen view in a tmux pane of its own. Run by .ci/run;
# needs root for apt-get.
set -euo pipefail
if command -v tmux >/dev/null; then
    exit 0
fi
echo "== installing tmux (Debian's)"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends tmux >/dev/null
tmux -V
