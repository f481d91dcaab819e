#!/usr/bin/env bash
# `make audit`: pip-audit over the Python packages installed in the project's venv (the image installs the same
# ones, see docker/install.sh). Exit 0: every package audited, no known vulnerability. Exit 1: vulnerabilities
# (listed above the last line). Exit 3: the audit could not be done here, because pip-audit could not reach its
# advisory database (the PyPI JSON API, or api.osv.dev with AUDIT_SERVICE=osv): an unaudited package is never
# reported as clean. The project itself (installed editable, not on PyPI) is skipped.
set -uo pipefail
VENV=${VENV:-.venv}
SERVICE=${AUDIT_SERVICE:-pypi}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
nice -n 10 "$VENV/bin/pip-audit" --strict --skip-editable --progress-spinner off -s "$SERVICE" "$@" >"$out" 2>&1
rc=$?
cat "$out"
if grep -qE "could not be audited|ConnectionError|NameResolutionError|Max retries exceeded" "$out"; then
  echo "audit: NOT DONE: pip-audit could not reach its advisory database ($SERVICE service; this machine reaches" \
       "only a package mirror, not the PyPI JSON API or api.osv.dev). Run it where those answer, e.g. in CI."
  exit 3
fi
[ "$rc" = 0 ] && echo "audit: no known vulnerabilities in the installed packages" || echo "audit: FAILED (rc $rc)"
exit "$rc"
