#!/usr/bin/env bash
# Installs Kamailio 5.6 from Debian's packages where it is missing, with the
# modules deploy/kamailio/kamailio.cfg loads (evapi, jansson, dialog,
# usrloc/registrar, tm/tmx): ccr-sipgw's end-to-end test starts it. Run by
# .ci/run; needs root for apt-get. Debian's package may start a system
# Kamailio on 5060: tests start their own, on other ports.
set -euo pipefail
if command -v kamailio >/dev/null && [ -e /usr/lib/x86_64-linux-gnu/kamailio/modules/evapi.so ]; then
    exit 0
fi
echo "== installing Kamailio (Debian's)"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    kamailio kamailio-extra-modules kamailio-json-modules >/dev/null
kamailio -v | head -1
