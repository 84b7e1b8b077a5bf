#!/usr/bin/env bash
# Install the system packages the test run needs, one script per service in
# scripts/services/. Each is a no-op when its package is present. Nothing is started
# here: the tests own their servers (devtools/).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
_apt_updated=""
apt_install() {
  if [ -z "$_apt_updated" ]; then apt-get update -qq; _apt_updated=1; fi
  echo "installing $* (apt-get)..." >&2
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
export -f apt_install 2>/dev/null || true
for script in "$(dirname "$0")"/services/*.sh; do
  # shellcheck source=/dev/null
  source "$script"
done
