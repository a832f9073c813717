#!/usr/bin/env bash
# Set everything up and run the whole test suite (unit, AppTest, property and browser tests):
#   ./test.sh [pytest options]
set -euo pipefail
cd "$(dirname "$0")"
source scripts/setup.sh
# The browser test drives Debian's Chromium (Playwright cannot download browsers here);
# the CJK fonts make Chinese pages and screenshots readable; Spark (the feature-equality test)
# runs on Java.
if [ ! -x /usr/bin/chromium ] || [ ! -d /usr/share/fonts/opentype/noto ] || ! command -v java >/dev/null; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium fonts-noto-cjk default-jre-headless >/dev/null
fi
exec python -m pytest "$@"
