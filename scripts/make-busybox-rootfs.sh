#!/usr/bin/env bash
# make-busybox-rootfs.sh OUT.tar
#
# A minimal root filesystem for a base image, made from Debian's busybox-static (Docker
# Hub is out of reach here): /bin/busybox with its applet links, /etc/passwd and
# /etc/group (root, app=1000, nobody), /tmp, /root, /home/app. Deterministic: the same
# busybox binary gives the same tar, byte for byte.
set -euo pipefail
export LC_ALL=C
OUT=${1:?usage: make-busybox-rootfs.sh OUT.tar}
BUSYBOX=${BUSYBOX:-/bin/busybox}
[ -x "$BUSYBOX" ] || { echo "make-busybox-rootfs: $BUSYBOX not found (apt-get install busybox-static)" >&2; exit 1; }
R=$(mktemp -d)
trap 'rm -rf "$R"' EXIT
mkdir -p "$R"/{bin,sbin,etc,tmp,root,home/app,dev,proc,sys,var,usr/bin,usr/sbin}
chmod 755 "$R"; chmod 1777 "$R/tmp"; chmod 700 "$R/root"
cp "$BUSYBOX" "$R/bin/busybox"; chmod 755 "$R/bin/busybox"
for a in $("$BUSYBOX" --list); do
  [ "$a" = busybox ] || ln -s busybox "$R/bin/$a"
done
cat > "$R/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
app:x:1000:1000:app:/home/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
P
cat > "$R/etc/group" <<'G'
root:x:0:
app:x:1000:
nogroup:x:65534:
G
echo strata > "$R/etc/hostname"
find "$R" -exec touch -h -d @1704067200 {} +
tar --sort=name --mtime=@1704067200 --owner=0 --group=0 --numeric-owner -C "$R" -cf "$OUT" .
