#!/usr/bin/env bash
# Debian's chromium for the UI checks (tests/realtime/test_ui.py): the tests start it
# headless with a throwaway profile and drive it over the DevTools protocol
# (devtools/browser.py). Playwright's own browser download is not reachable here.
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
  || apt_install chromium
