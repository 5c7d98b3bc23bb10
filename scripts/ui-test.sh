#!/usr/bin/env bash
# The web console in headless Chromium (scripts/ui_test.py) against a running cluster — the
# demo's, in scripts/test.sh:
#
#   scripts/ui-test.sh [BASE_URL] [SCREENSHOT_DIR]    default http://127.0.0.1:7001, .drover/ui
#
# DROVER_TOKEN: the admin token, when the cluster has one (typed into the page, as an operator
# would). Chromium and its driver come from Debian (scripts/setup.sh); selenium from PyPI,
# pinned, into a venv of its own under $HOME/.cache/drover.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE=${1:-http://127.0.0.1:7001}
SHOTS=${2:-$PWD/.drover/ui}
VENV=$HOME/.cache/drover/venv-ui
SELENIUM_VERSION=4.50.0

if ! "$VENV/bin/python" -c "import selenium, sys; sys.exit(selenium.__version__ != '$SELENIUM_VERSION')" 2>/dev/null; then
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "selenium==$SELENIUM_VERSION"
fi
exec "$VENV/bin/python" scripts/ui_test.py "$BASE" "$SHOTS" "${DROVER_TOKEN:-}"
