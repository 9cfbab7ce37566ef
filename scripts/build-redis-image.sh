#!/usr/bin/env bash
# build-redis-image.sh TAG: a Redis server image FROM scratch, made from
# Debian's redis-tools package (its redis-check-rdb is the redis-server
# binary, which picks its role from its name) and the shared libraries it
# links, so no registry is needed. It runs as nobody and keeps no data on
# disk: `redis-server --port 6379 --save "" --appendonly no`.
set -euo pipefail
tag=${1:-ganger-redis:latest}
bin=/usr/bin/redis-check-rdb
if [ ! -x "$bin" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "build-redis-image: missing $bin; install Debian's redis-tools" >&2
    exit 1
  fi
  echo "build-redis-image: installing redis-tools" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends redis-tools >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends redis-tools >/dev/null; }
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cp "$bin" "$dir/redis-server"
# The loader and every library the binary links, at their own paths.
for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
  mkdir -p "$dir$(dirname "$lib")"
  cp -L "$lib" "$dir$lib"
done
mkdir -p "$dir/tmp"
chmod 1777 "$dir/tmp"
tar --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$dir" -c . |
  docker import \
    --change 'ENTRYPOINT ["/redis-server"]' \
    --change 'CMD ["--port", "6379", "--save", "", "--appendonly", "no", "--protected-mode", "no", "--dir", "/tmp"]' \
    --change "USER 65534:65534" \
    --change "EXPOSE 6379/tcp" \
    --change "LABEL org.opencontainers.image.title=redis-server" \
    - "$tag" >/dev/null
echo "image $tag built from $(basename "$bin") ($(dpkg-query -W -f '${Version}' redis-tools 2>/dev/null || echo '?'))"
