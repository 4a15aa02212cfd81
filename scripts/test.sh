#!/usr/bin/env bash
# Run the whole test suite on a fresh Debian machine: install what the tests need (Debian and
# PyPI packages, PostgreSQL), start PostgreSQL on a unix socket, then run pytest inside a network
# namespace with no route out (only loopback and the test hosts the tests create).
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

need_apt=()
for bin in sshd:openssh-server rsync:rsync ip:iproute2 nft:nftables podman:podman runc:runc \
  docker-registry:docker-registry debootstrap:debootstrap rclone:rclone fusermount3:fuse3 \
  git:git npm:npm haproxy:haproxy wrk:wrk; do
  command -v "${bin%%:*}" >/dev/null 2>&1 || need_apt+=("${bin#*:}")
done
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
# podman's helpers for the container tests: host networking needs no bridge (none is made).
[ -x /usr/libexec/podman/catatonit ] || need_apt+=(catatonit)
[ -d /usr/lib/cni ] || need_apt+=(containernetworking-plugins)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "Installing Debian packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

bash scripts/install.sh "test,runtime,aws,kubernetes,gcp,azure"
py="$root/.venv/bin/python"

# A wheelhouse of the runtime (Ray and Styx's dependencies) for the SSH test hosts, which have
# no route out: built here, before entering the network namespace.
wheels="$root/.wheelhouse"
ray_version="$("$py" -c 'import ray; print(ray.__version__)')"
if [ ! -f "$wheels/.complete-$ray_version" ]; then
  echo "Building the runtime wheelhouse in $wheels (ray $ray_version)..."
  deps="$("$py" -c 'import tomllib; print(" ".join(tomllib.load(open("pyproject.toml","rb"))["project"]["dependencies"]))')"
  # shellcheck disable=SC2086
  if "$py" -m pip download -q -d "$wheels" "ray[client]==$ray_version" psutil $deps; then
    touch "$wheels/.complete-$ray_version"
  else
    echo "WARNING: could not build the wheelhouse; the SSH cluster tests will be skipped." >&2
  fi
fi
export STYX_TEST_WHEELHOUSE="$wheels"

# The Kubernetes stand-in's image without Python (a Debian minbase root), built from the apt
# mirror before the tests lose their route out; cached in /var/cache/styx-testworld.
bash scripts/testimages.sh || echo "WARNING: no test images; the tests that need one will skip." >&2

# Azurite, the Azure Blob stand-in, from the npm registry (tests/testworld/azurite.py), before
# the tests lose their route out; it is always started with its telemetry off.
azurite_dir=/var/cache/styx-testworld/azurite
if [ ! -x "$azurite_dir/node_modules/.bin/azurite-blob" ]; then
  mkdir -p "$azurite_dir"
  npm install --silent --no-audit --no-fund --prefix "$azurite_dir" azurite@3.35.0 >/dev/null ||
    echo "WARNING: no Azurite; the Azure Blob tests will skip." >&2
fi

pgdir="${STYX_TEST_PG_DIR:-/tmp/styx-ci-pg}"
pg_url="$(bash scripts/postgres.sh start "$pgdir" | tail -n 1)"
cleanup() {
  bash scripts/postgres.sh stop "$pgdir" >/dev/null 2>&1 || true
  [ -n "${made_ns:-}" ] && ip netns delete styx-ci 2>/dev/null || true
}
trap cleanup EXIT

echo "== lint"
"$py" -m ruff check src tests bench
"$py" -m ruff format --check src tests bench
"$py" -m mypy
"$root/.venv/bin/lint-imports"  # the design's layers: [tool.importlinter] in pyproject.toml

# Two workers (pytest-xdist), a test file each at a time: the cluster scenarios mostly wait, so
# the suite takes about half as long; leak checks count only their own worker's processes
# (tests/leaks.py). STYX_TEST_WORKERS=1 runs it in one process; -n in the arguments wins.
workers="${STYX_TEST_WORKERS:-2}"
parallel=()
case " $* " in
  *" -n "* | *" -n"[0-9]* | *" --numprocesses"*) ;;
  *) if [ "$workers" -gt 1 ]; then parallel=(-n "$workers" --dist loadfile); fi ;;
esac
run=("$py" -m pytest "${parallel[@]}" "$@")
export STYX_TEST_PG_URL="$pg_url"
if [ "$(id -u)" = 0 ] && ip netns list >/dev/null 2>&1; then
  if ! ip netns list | grep -qw styx-ci; then ip netns add styx-ci; made_ns=1; fi
  ip -n styx-ci link set lo up
  echo "== tests (inside network namespace styx-ci: loopback only)"
  ip netns exec styx-ci "${run[@]}"
else
  echo "== tests (WARNING: not root, so not inside a network namespace)"
  "${run[@]}"
fi
