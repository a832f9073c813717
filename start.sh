#!/usr/bin/env bash
# Set everything up and start riskdesk with the demo data loaded: ./start.sh [streamlit options]
set -euo pipefail
cd "$(dirname "$0")"
source scripts/setup.sh
python -m core demo
exec python serve.py "$@"
