#!/usr/bin/env bash
# demo.sh — the main job on the embedded defaults: make a busybox base image, import it,
# tag, inspect, save, remove and load it back. Uses its own store under /tmp unless
# STRATA_ROOT is set.
set -euo pipefail
cd "$(dirname "$0")/.."
export STRATA_ROOT=${STRATA_ROOT:-/tmp/strata-demo}
S="node dist/bin/main.js"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "+ making a busybox root filesystem"
scripts/make-busybox-rootfs.sh "$work/rootfs.tar"
echo "+ strata import rootfs.tar demo/busybox:1"
$S import -c 'CMD ["sh", "-c", "echo hello from strata"]' -m "busybox base" "$work/rootfs.tar" demo/busybox:1
$S tag demo/busybox:1 demo/busybox:latest
echo "+ strata images"; $S images
echo "+ strata inspect --format '{{json .Config.Cmd}}' demo/busybox:1"; $S inspect --format '{{json .Config.Cmd}}' demo/busybox:1
echo "+ strata history demo/busybox:1"; $S history demo/busybox:1
echo "+ strata save -o busybox.tar demo/busybox:1 && strata rmi ... && strata load -i busybox.tar"
$S save -o "$work/busybox.tar" demo/busybox:1
$S rmi demo/busybox:1 demo/busybox:latest
$S load -i "$work/busybox.tar"
$S images
