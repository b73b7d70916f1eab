#!/usr/bin/env bash
# Install the browser that the browser tests (tests/browser) drive: Debian's `chromium`, through apt-get.
# Idempotent: when Chromium is already there it only says so. Playwright's own browser download
# (`playwright install`) is never used; the tests launch this Chromium via executable_path.
# CI runs this script, then the tests with LABKIT_REQUIRE_BROWSER=1 (so a missing browser fails, not skips).
set -euo pipefail

CHROMIUM=${LABKIT_CHROMIUM:-/usr/bin/chromium}

if [ -x "$CHROMIUM" ]; then
  echo "install-browser: Chromium is already installed: $CHROMIUM ($("$CHROMIUM" --version 2>/dev/null || echo 'version unknown'))"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-browser: no apt-get here; install Chromium with your package manager and set LABKIT_CHROMIUM=/path/to/chromium" >&2
  exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  echo "install-browser: installing Chromium needs root or password-less sudo; run: sudo apt-get install -y chromium" >&2
  exit 1
fi

echo "install-browser: installing Debian's chromium with apt-get (about 350 MB)"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq chromium
if [ ! -x "$CHROMIUM" ]; then
  echo "install-browser: apt-get finished but $CHROMIUM is missing; set LABKIT_CHROMIUM to the installed binary" >&2
  exit 1
fi
echo "install-browser: installed $CHROMIUM ($("$CHROMIUM" --version 2>/dev/null || echo 'version unknown'))"
