#!/usr/bin/env bash
# setup.sh — install what Strata and its tests need on Debian 12 (as root), then build.
# Idempotent: safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
PKGS=(
  runc crun                      # OCI runtimes for RUN steps and containers
  busybox-static                 # base images made locally (no Docker Hub here)
  skopeo umoci                   # interop: OCI tools read our store and archives
  docker.io                      # dockerd 20.10 for interop tests (docker load/save/run/push/pull)
  docker-registry apache2-utils  # CNCF distribution registry, htpasswd
  wrk hyperfine                  # benchmarks
  attr                           # setfattr/getfattr: overlay whiteouts and opaque dirs
  slirp4netns iproute2           # container bridge network (userspace, -p publishing), ip netns
  tini                           # run --init: /usr/bin/tini-static bound as /sbin/docker-init
  tar gzip bzip2 xz-utils openssl ca-certificates
)
missing=()
for p in "${PKGS[@]}"; do
  [[ $p == \#* ]] && continue
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's docker.io and docker-registry packages start services; Strata's tests start
# their own private instances on loopback, so the system ones are stopped if running.
systemctl stop docker.service docker.socket docker-registry.service 2>/dev/null || true
for svc in docker docker-registry containerd; do
  [ -x "/etc/init.d/$svc" ] && "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
done
# npm ci first. It refuses this lockfile when the npm registry in use lacks other platforms'
# optional binaries (biome, rollup, esbuild builds for macOS, Windows, musl: the mirror here
# serves only glibc Linux ones, so npm install leaves them out of the lock). Then npm install,
# which installs exactly the locked versions and leaves package-lock.json as it is.
if ! npm ci --no-audit --no-fund --loglevel=error 2>/dev/null; then
  echo "setup: npm ci refused the lockfile (optional packages of other platforms missing); npm install with the same lock" >&2
  npm install --no-audit --no-fund --loglevel=error
  git diff --quiet -- package-lock.json 2>/dev/null || { echo "setup: npm install changed package-lock.json" >&2; exit 1; }
fi
npm run build --silent
