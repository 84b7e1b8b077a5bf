#!/usr/bin/env bash
# Prometheus and its Pushgateway for the metrics checks (tests/observability/test_metrics.py):
# the tests start both as plain processes on free 127.0.0.1 ports with a temp config
# (devtools/prometheus.py). Installing them in a container starts no server.
_prom_missing=()
command -v prometheus >/dev/null 2>&1 || _prom_missing+=(prometheus)
command -v prometheus-pushgateway >/dev/null 2>&1 || _prom_missing+=(prometheus-pushgateway)
if [ "${#_prom_missing[@]}" -gt 0 ]; then apt_install "${_prom_missing[@]}"; fi
unset _prom_missing
