#!/usr/bin/env bash
# A real kube-apiserver and kube-controller-manager for `make test-k8s` (no cluster can be
# had here; see tests/lakehouse/test_spark_k8s.py): Debian's `kubernetes` source package
# (1.20), built offline from its vendored modules into $1 (default .data/kube-build).
# About 10 minutes on 2 cores the first time; a no-op once both binaries exist.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
dest="$(realpath -m "${1:-.data/kube-build}")"
bin_glob="$dest/kubernetes-*/_output/local/bin/linux/amd64"
if compgen -G "$bin_glob/kube-apiserver" >/dev/null && compgen -G "$bin_glob/kube-controller-manager" >/dev/null; then
  exit 0
fi
need=()
command -v go >/dev/null || need+=(golang-go)
command -v etcd >/dev/null || need+=(etcd-server)
command -v dpkg-source >/dev/null || need+=(dpkg-dev)
# `apt-get source` needs the deb-src entries of the machine's own sources
sources=/etc/apt/sources.list.d/debian.sources
if [ -f "$sources" ] && ! grep -q "deb-src" "$sources"; then
  sed -i 's/^Types: deb$/Types: deb deb-src/' "$sources"
fi
apt-get update -qq
if [ ${#need[@]} -gt 0 ]; then
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
mkdir -p "$dest"
cd "$dest"
compgen -G "kubernetes-*/Makefile" >/dev/null || apt-get source -qq kubernetes
cd kubernetes-*/
export GOPATH="$dest/gopath" GOPROXY=off GOFLAGS=-mod=vendor
echo "building kube-apiserver and kube-controller-manager in $PWD (~10 min)..." >&2
make WHAT=cmd/kube-apiserver >"$dest/build.log" 2>&1
make WHAT=cmd/kube-controller-manager >"$dest/build-cm.log" 2>&1
