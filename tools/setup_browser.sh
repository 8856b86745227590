#!/usr/bin/env bash
# Install the headless browser that tests/test_web_demo.py drives: Debian's chromium and its chromedriver.
#
#   bash tools/setup_browser.sh        # idempotent: does nothing when both are on PATH; needs root (or sudo) and apt
#
# Only the system's package manager is used (no browser downloads of its own); the Python side (selenium) comes
# from requirements/pinned.txt. Without apt or root it says so and exits 0: the browser test then skips with
# its reason.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }
if have chromium && have chromedriver; then
  echo "[setup_browser] chromium and chromedriver present: $(chromium --version 2>/dev/null | head -n1)"
  exit 0
fi
if ! have apt-get; then
  echo "[setup_browser] no apt-get: install chromium and chromedriver yourself for tests/test_web_demo.py" >&2
  exit 0
fi
SUDO=()
if [ "$(id -u)" != 0 ]; then
  if have sudo && sudo -n true 2>/dev/null; then SUDO=(sudo -n); else
    echo "[setup_browser] not root and no sudo: skipping chromium (tests/test_web_demo.py will skip)" >&2
    exit 0
  fi
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null
echo "[setup_browser] installed: $(chromium --version 2>/dev/null | head -n1); $(chromedriver --version 2>/dev/null | head -n1)"
