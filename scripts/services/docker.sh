#!/usr/bin/env bash
# The Docker engine (dockerd and a BuildKit-capable client at /usr/bin/docker), the image
# registry (Debian's docker-registry) and debootstrap for the local base image. The tests
# start their own dockerd and registry (devtools/docker.py); nothing is started here.
# kubectl (for `kubectl kustomize` in the Kubernetes tests) is usually on the machine;
# Debian's kubernetes-client is the fallback.
_docker_missing=()
{ [ -x /usr/sbin/dockerd ] || [ -x /usr/bin/dockerd ]; } || _docker_missing+=(docker.io)
command -v docker-registry >/dev/null 2>&1 || _docker_missing+=(docker-registry)
command -v debootstrap >/dev/null 2>&1 || _docker_missing+=(debootstrap)
command -v kubectl >/dev/null 2>&1 || _docker_missing+=(kubernetes-client)
if [ "${#_docker_missing[@]}" -gt 0 ]; then apt_install "${_docker_missing[@]}"; fi
unset _docker_missing
