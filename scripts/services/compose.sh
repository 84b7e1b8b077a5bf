#!/usr/bin/env bash
# Docker Compose, for the local-platform checks (tests/platform): `config` validates the
# compose files of traefik/ and astro/ without a running engine. The `docker compose`
# plugin when present, else Debian's docker-compose (v1, self-contained, no engine).
# openssl runs traefik/make-certs.sh in the same tests.
docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1 \
  || apt_install docker-compose
command -v openssl >/dev/null 2>&1 || apt_install openssl
