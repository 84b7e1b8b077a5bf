#!/usr/bin/env bash
# Install what the test run starts by itself: the PostgreSQL server binaries.
# Nothing is started here; the tests own their servers (devtools/postgres.py).
set -euo pipefail
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "installing the PostgreSQL server (apt-get)..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql >/dev/null
fi
