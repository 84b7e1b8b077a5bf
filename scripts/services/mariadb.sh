#!/usr/bin/env bash
# The MariaDB server binaries (mariadbd, mariadb-install-db); the tests start their own server.
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || apt_install mariadb-server
