# Sourced by start.sh and test.sh: create .venv with Python 3.11 and install the pinned
# requirements when they changed since the last install.
set -euo pipefail
PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
if [ ! -x .venv/bin/python ]; then
  echo "riskdesk: creating .venv with $($PY --version)" >&2
  "$PY" -m venv .venv
fi
# shellcheck disable=SC1091
source .venv/bin/activate
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "riskdesk: installing requirements" >&2
  python -m pip install --quiet --upgrade pip
  python -m pip install --quiet -r requirements.txt
  echo "$want" > "$stamp"
fi
