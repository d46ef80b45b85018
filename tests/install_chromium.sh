#!/usr/bin/env bash
# Installs Debian's Chromium for the browser tests when it is missing (needs root, as CI has).
# Never downloads a browser of Playwright's own. Without root it says so and the browser tests
# skip locally (under CI=true they fail instead, so CI cannot silently skip them).
set -u
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
    && echo "installed $(/usr/bin/chromium --version)" && exit 0
fi
echo "note: could not install Chromium (needs root and apt-get); browser tests will be skipped" >&2
exit 0
