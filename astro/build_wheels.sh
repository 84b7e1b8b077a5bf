#!/usr/bin/env bash
# Make what the Astro image takes from this repository (both git-ignored):
#   astro/wheels/              tenant-runner's wheel (dag_factory, datakits, runners) and the
#                              wheels of its dependencies for the runtime's Python and CPU,
#                              pinned by constraints.txt; the Dockerfile installs them offline
#   astro/include/warehouses/  the tenants' files (warehouse.yaml, defaults.yaml, dbt projects)
# Re-run after changing the code or a tenant, then `astro dev start` / `astro dev restart`.
#
#   astro/build_wheels.sh
#   ASTRO_ARCH=aarch64 astro/build_wheels.sh   # the image's CPU when it is not this machine's
#
# Environment: PYTHON (default .venv/bin/python), ASTRO_PYTHON (default: RUNTIME_PYTHON in
# astro/Dockerfile), ASTRO_ARCH (default: uname -m), ASTRO_OUT (default: astro/),
# ASTRO_WHEELS_DEPS=0 to build only the project's wheel (no package index needed).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
out="${ASTRO_OUT:-$here}"
python="${PYTHON:-$repo/.venv/bin/python}"
[[ -x "$python" ]] || python="$(command -v python3)"

runtime_python="$(sed -n 's/^ARG RUNTIME_PYTHON=//p' "$here/Dockerfile")"
astro_python="${ASTRO_PYTHON:-$runtime_python}"
case "${ASTRO_ARCH:-$(uname -m)}" in
  x86_64 | amd64) arch=x86_64 ;;
  aarch64 | arm64) arch=aarch64 ;;
  *) echo "build_wheels: unsupported CPU ${ASTRO_ARCH:-$(uname -m)} (x86_64 or aarch64)" >&2; exit 2 ;;
esac

wheels="$out/wheels"
rm -rf "$wheels"
mkdir -p "$wheels"

# The project itself: pure Python, one py3-none-any wheel, built from a clean copy of the
# working tree (setuptools' build/ folder in the repository could carry deleted modules).
src="$(mktemp -d)"
trap 'rm -rf "$src"' EXIT
tar -C "$repo" --exclude='__pycache__' -cf - pyproject.toml README.md datakits runners dag_factory \
  | tar -C "$src" -xf -
"$python" -m pip wheel --quiet --no-deps --no-build-isolation -w "$wheels" "$src"
project_wheel="$(ls "$wheels"/tenant_runner-*.whl)"

# Its dependencies, as binary wheels for the image (not for this machine), at the versions
# of constraints.txt. Packages the runtime already has at a satisfying version stay as
# they are when the image installs (pip keeps what satisfies a requirement).
if [[ "${ASTRO_WHEELS_DEPS:-1}" != 0 ]]; then
  platforms=()
  for tag in manylinux2014 manylinux_2_17 manylinux_2_27 manylinux_2_28 manylinux_2_34; do
    platforms+=(--platform "${tag}_${arch}")
  done
  "$python" -m pip download --quiet --disable-pip-version-check -d "$wheels" \
    -c "$repo/constraints.txt" --only-binary=:all: \
    --implementation cp --python-version "$astro_python" "${platforms[@]}" \
    "$project_wheel"
fi
echo "$astro_python $arch" > "$wheels/TARGET"

# Each tenant's compiled dbt graph (warehouses/<tenant>/compiled/): the DAG file reads it for
# one task per dbt model, and the Docker executor needs it to name the tenant's own dbt image
# (`make images` builds them). ASTRO_COMPILE=0 copies whatever graphs are there already.
if [[ "${ASTRO_COMPILE:-1}" != 0 ]]; then
  "$(dirname "$python")/dag-factory" dbt compile --warehouses "$repo/warehouses"
fi

# The tenants' files, as the DAG file and the runner's argv expect them:
# include/warehouses/<tenant>/... (so the dbt project path stays warehouses/<tenant>/dbt).
rm -rf "$out/include/warehouses"
mkdir -p "$out/include"
tar -C "$repo" --exclude='target' --exclude='logs' --exclude='dbt_packages' \
  --exclude='*.duckdb' --exclude='*.duckdb.wal' --exclude='__pycache__' \
  -cf - warehouses | tar -C "$out/include" -xf -

echo "build_wheels: $(ls "$wheels" | grep -c '\.whl$') wheels for Python $astro_python/$arch in $wheels;" \
  "tenants in $out/include/warehouses" >&2
