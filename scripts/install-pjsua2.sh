#!/usr/bin/env bash
# Installs pjsua2 (PJSIP's Python binding, the PyPI wheel pjsua2-python)
# where it is missing: the SIP phones of ccr-sipgw's end-to-end test
# (sipgw/tests/phones.py). Run by .ci/run.
set -euo pipefail
if python3 -c "import pjsua2" 2>/dev/null; then
    exit 0
fi
echo "== installing pjsua2-python (PyPI)"
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "pjsua2-python==2.15.1"
