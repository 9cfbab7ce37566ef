#!/usr/bin/env bash
# build-busybox-image.sh INIT TAG: an image FROM scratch holding Debian's
# static busybox (/bin/busybox and a symlink for each of its applets) and
# ganger-init at /ganger-init, its entrypoint, built with `docker import` so
# no registry is needed. ganger-init's tests and benchmarks run in it: a
# shell, ps, sleep, kill and seq are all a PID 1 needs around it.
#
# It runs as root unless told otherwise (--user 65534 is nobody, in its
# /etc/passwd); /tmp is world-writable, /run is root's only (so a control
# socket there is out of reach for nobody, as on a read-only root).
set -euo pipefail
init=${1:-bin/ganger-init}
tag=${2:-ganger-busybox:latest}
busybox=/bin/busybox
# Debian's busybox package has a /bin/busybox too, linked dynamically: it
# would not run FROM scratch.
if ! dpkg-query -W -f '${Status}' busybox-static 2>/dev/null | grep -q 'ok installed'; then
  echo "build-busybox-image: no static $busybox; install Debian's busybox-static (make test-deps)" >&2
  exit 1
fi
if [ ! -x "$init" ]; then
  echo "build-busybox-image: no $init; run make build" >&2
  exit 1
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir"/{bin,etc,proc,sys,dev,run,tmp,etc/service}
cp "$busybox" "$dir/bin/busybox"
# One relative symlink per applet: `busybox --install -s` would point them
# at the host's path of the binary, and needs root to do it in a chroot.
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -s busybox "$dir/bin/$applet"
done
ln -s bin "$dir/sbin"
mkdir -p "$dir/usr"
ln -s ../bin "$dir/usr/bin"
ln -s ../bin "$dir/usr/sbin"
cp "$init" "$dir/ganger-init"
chmod 0755 "$dir/ganger-init"
chmod 1777 "$dir/tmp"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$dir/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$dir/etc/group"
tar --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$dir" -c . |
  docker import \
    --change 'ENTRYPOINT ["/ganger-init"]' \
    --change 'ENV PATH=/bin' \
    --change "LABEL org.opencontainers.image.title=ganger-busybox" \
    - "$tag" >/dev/null
version=$(dpkg-query -W -f '${Version}' busybox-static 2>/dev/null || echo '?')
echo "image $tag built from $init and busybox-static $version"
