#!/usr/bin/env bash
# Certificates for the local platform, made with openssl:
#   ca.crt, ca.key              a local certificate authority (kept when it exists: trust it once)
#   localhost.crt, localhost.key  the server certificate Traefik serves (traefik/dynamic/tls.yml),
#                               SAN *.localhost, localhost and each platform host by name
#                               (browsers do not accept a wildcard directly under `localhost`)
#
# Usage: traefik/make-certs.sh [OUT_DIR]        (default: traefik/certs, git-ignored)
# Extra names: CERT_HOSTS="a.localhost b.localhost" traefik/make-certs.sh
set -euo pipefail

out="${1:-$(cd "$(dirname "$0")" && pwd)/certs}"
hosts="traefik.localhost registry.localhost airflow.localhost ${CERT_HOSTS:-}"
days=825   # the longest validity macOS and iOS accept for a server certificate

command -v openssl >/dev/null || { echo "make-certs: openssl is not installed" >&2; exit 1; }
mkdir -p "$out"
umask 077
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

san="DNS:*.localhost,DNS:localhost"
for host in $hosts; do san="$san,DNS:$host"; done
san="$san,IP:127.0.0.1,IP:::1"

cat > "$work/openssl.cnf" <<CNF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = tenant-runner local platform
[ca_ext]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = $san
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF

if [[ -s "$out/ca.crt" && -s "$out/ca.key" ]]; then
  echo "make-certs: reusing the local CA in $out (already trusted: nothing to redo)" >&2
else
  openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days 3650 \
    -config "$work/openssl.cnf" -extensions ca_ext \
    -subj "/CN=tenant-runner local CA" \
    -keyout "$out/ca.key" -out "$out/ca.crt" 2>/dev/null
  echo "make-certs: new local CA $out/ca.crt (trust it once: docs/local-platform.md)" >&2
fi

openssl req -new -newkey rsa:2048 -nodes -sha256 -config "$work/openssl.cnf" \
  -subj "/CN=*.localhost" -keyout "$work/localhost.key" -out "$work/localhost.csr" 2>/dev/null
openssl x509 -req -sha256 -days "$days" -in "$work/localhost.csr" \
  -CA "$out/ca.crt" -CAkey "$out/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
  -extfile "$work/openssl.cnf" -extensions server_ext -out "$work/localhost.crt" 2>/dev/null
mv "$work/localhost.key" "$out/localhost.key"
mv "$work/localhost.crt" "$out/localhost.crt"
chmod 644 "$out/ca.crt" "$out/localhost.crt"
echo "make-certs: $out/localhost.crt for $san" >&2
