#!/usr/bin/env bash
# demo.sh — the main job on the embedded defaults: make a busybox base image from Debian's
# busybox-static, build the example web app (examples/hello) with `strata build`, run it as
# a container with a published port and fetch its page, then save and load the image.
# Uses its own store under /tmp unless STRATA_ROOT is set; PORT (default 8000) is the host port.
set -euo pipefail
cd "$(dirname "$0")/.."
export STRATA_ROOT=${STRATA_ROOT:-/tmp/strata-demo}
S="bin/strata"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "+ making the base image busybox:local"
scripts/make-busybox-rootfs.sh "$work/rootfs.tar"
$S import -m "busybox base" "$work/rootfs.tar" busybox:local
echo "+ strata build -t hello:1 examples/hello"
$S build -t hello:1 examples/hello
echo "+ strata images"; $S images
echo "+ strata history hello:1"; $S history hello:1
echo "+ strata inspect --format '{{json .Config.Cmd}} as {{.Config.User}}' hello:1"
$S inspect --format '{{json .Config.Cmd}} as {{.Config.User}}' hello:1
echo "+ strata build -o type=local,dest=<dir> examples/hello   (the image's files)"
$S build -q -o "type=local,dest=$work/out" examples/hello >/dev/null
cat "$work/out/www/index.html"
PORT=${PORT:-8000}
echo "+ strata run -d --name strata-demo-web -p $PORT:8000 hello:1"
$S rm -f strata-demo-web >/dev/null 2>&1 || true
$S run -d --name strata-demo-web -p "$PORT:8000" hello:1
for _ in $(seq 50); do busybox wget -qO- "http://127.0.0.1:$PORT/" >/dev/null 2>&1 && break; sleep 0.1; done
echo "+ fetch http://127.0.0.1:$PORT/"
busybox wget -qO- "http://127.0.0.1:$PORT/"
echo "+ strata ps"; $S ps
echo "+ strata logs strata-demo-web"; $S logs strata-demo-web
echo "+ strata stop strata-demo-web && strata rm strata-demo-web"
$S stop strata-demo-web
$S rm strata-demo-web
echo "+ strata save -o hello.tar hello:1 && strata rmi hello:1 && strata load -i hello.tar"
$S save -o "$work/hello.tar" hello:1
$S rmi hello:1
$S load -i "$work/hello.tar"
