#!/usr/bin/env bash
# demo.sh — the main job on the embedded defaults: make a busybox base image from Debian's
# busybox-static, build the example web app (examples/hello) with `strata build`, look at it,
# save and load it back. Uses its own store under /tmp unless STRATA_ROOT is set.
set -euo pipefail
cd "$(dirname "$0")/.."
export STRATA_ROOT=${STRATA_ROOT:-/tmp/strata-demo}
S="node dist/bin/main.js"
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
echo "+ strata save -o hello.tar hello:1 && strata rmi hello:1 && strata load -i hello.tar"
$S save -o "$work/hello.tar" hello:1
$S rmi hello:1
$S load -i "$work/hello.tar"
