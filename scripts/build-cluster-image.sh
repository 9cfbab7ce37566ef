#!/usr/bin/env bash
# build-cluster-image.sh TAG: the image mode: cluster's tests run, FROM
# scratch, made from Debian's packages with the shared libraries they link:
# etcd and etcdctl (etcd-server, etcd-client), redis-server and redis-cli
# (redis-tools: its redis-check-rdb is the server, which picks its role
# from its name) and a static busybox for /bin/sh. It has no entrypoint:
# each cluster's ganger-init config says what runs. It runs as nobody.
set -euo pipefail
tag=${1:-ganger-cluster:latest}
need=()
[ -x /usr/bin/etcd ] || need+=(etcd-server)
[ -x /usr/bin/etcdctl ] || need+=(etcd-client)
[ -x /usr/bin/redis-check-rdb ] && [ -x /usr/bin/redis-cli ] || need+=(redis-tools)
[ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "build-cluster-image: missing ${need[*]}; install Debian's packages of those names" >&2
    exit 1
  fi
  echo "build-cluster-image: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }
  # etcd-server's own service is not wanted: tests start their own etcds.
  systemctl disable --now etcd >/dev/null 2>&1 || true
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/bin" "$dir/usr/bin" "$dir/tmp" "$dir/data" "$dir/conf"
chmod 1777 "$dir/tmp" "$dir/data" "$dir/conf"
cp /usr/bin/etcd /usr/bin/etcdctl /usr/bin/redis-cli "$dir/usr/bin/"
cp /usr/bin/redis-check-rdb "$dir/usr/bin/redis-server"
cp /bin/busybox "$dir/bin/busybox"
for app in sh cat echo sleep ls test grep; do ln -s busybox "$dir/bin/$app"; done
# The loader and every library the binaries link, at their own paths.
for bin in /usr/bin/etcd /usr/bin/etcdctl /usr/bin/redis-cli /usr/bin/redis-check-rdb; do
  for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
    mkdir -p "$dir$(dirname "$lib")"
    cp -L "$lib" "$dir$lib"
  done
done
tar --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$dir" -c . |
  docker import \
    --change 'CMD ["/bin/sh"]' \
    --change 'ENV PATH=/usr/bin:/bin' \
    --change "USER 65534:65534" \
    --change "LABEL org.opencontainers.image.title=ganger-cluster-test" \
    - "$tag" >/dev/null
echo "image $tag built: etcd $(dpkg-query -W -f '${Version}' etcd-server 2>/dev/null || echo '?'), redis $(dpkg-query -W -f '${Version}' redis-tools 2>/dev/null || echo '?')"
