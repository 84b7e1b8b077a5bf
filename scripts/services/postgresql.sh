#!/usr/bin/env bash
# The PostgreSQL server binaries (initdb, pg_ctl); the tests start their own cluster.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || apt_install postgresql
