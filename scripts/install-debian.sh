#!/usr/bin/env bash
# Installs Debian's packages for the commands given where they are missing
# (each command's package has its name): tmux drives `ccrctl watch` in a
# pane of its own; openssl runs deploy/CERTIFICATES.md's recipes. Run by
# .ci/run; needs root for apt-get.
#   bash scripts/install-debian.sh tmux openssl
set -euo pipefail
missing=()
for command in "$@"; do
    command -v "$command" >/dev/null || missing+=("$command")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
echo "== installing ${missing[*]} (Debian's)"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
