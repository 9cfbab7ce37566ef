#!/usr/bin/env bash
# build-ganger-image.sh VERSION [TAG...]: Ganger's own image FROM scratch,
# made with `docker import` (no registry, no builder image): bin/ganger as
# /ganger (the entrypoint, `serve` by default), bin/ganger-init next to it as
# /ganger-init (init: ganger's default init_binary), Debian's CA certificates
# (registries and tcp+TLS daemons), /tmp, and /var/lib/ganger for state (the
# SQLite store: `store: {path: /var/lib/ganger/ganger.db}`). The config is
# read from $GANGER_CONFIG, /etc/ganger/ganger.yaml: mount it there.
#
# Tags default to ganger:VERSION and ganger:latest; a test passes its own.
# GANGER_BIN (default bin) is where ganger and ganger-init are taken from;
# both must be static (make build: CGO_ENABLED=0).
set -euo pipefail
if [ $# -lt 1 ] || [ -z "$1" ]; then
  echo "usage: build-ganger-image.sh VERSION [TAG...]" >&2
  exit 2
fi
version=$1
shift
tags=("$@")
[ ${#tags[@]} -gt 0 ] || tags=("ganger:$version" "ganger:latest")
bindir=${GANGER_BIN:-bin}
certs=/etc/ssl/certs/ca-certificates.crt

for b in ganger ganger-init; do
  if [ ! -x "$bindir/$b" ]; then
    echo "build-ganger-image: missing $bindir/$b; run make build" >&2
    exit 1
  fi
  # FROM scratch there is no loader: a dynamically linked binary cannot run.
  if LC_ALL=C readelf -l "$bindir/$b" 2>/dev/null | grep -q 'INTERP'; then
    echo "build-ganger-image: $bindir/$b is dynamically linked; build it with CGO_ENABLED=0 (make build)" >&2
    exit 1
  fi
done
if [ ! -s "$certs" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "build-ganger-image: missing $certs; install Debian's ca-certificates" >&2
    exit 1
  fi
  echo "build-ganger-image: installing ca-certificates" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends ca-certificates >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends ca-certificates >/dev/null; }
fi

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cp "$bindir/ganger" "$dir/ganger"
cp "$bindir/ganger-init" "$dir/ganger-init"
chmod 0755 "$dir/ganger" "$dir/ganger-init"
mkdir -p "$dir/etc/ssl/certs" "$dir/etc/ganger" "$dir/var/lib/ganger" "$dir/tmp"
cp -L "$certs" "$dir/etc/ssl/certs/ca-certificates.crt"
chmod 0644 "$dir/etc/ssl/certs/ca-certificates.crt"
chmod 0755 "$dir/etc" "$dir/etc/ssl" "$dir/etc/ssl/certs" "$dir/etc/ganger" "$dir/var" "$dir/var/lib"
chmod 0700 "$dir/var/lib/ganger"
chmod 1777 "$dir/tmp"

created=$(date -u +%Y-%m-%dT%H:%M:%SZ)
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
# Ganger runs as root in its container: it talks to the Docker socket, which
# is root's (see the README, "Ganger in a container"). No VOLUME: each run
# would leave an anonymous volume behind; mount one at /var/lib/ganger.
id=$(tar --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$dir" -c . |
  docker import \
    --change 'ENTRYPOINT ["/ganger"]' \
    --change 'CMD ["serve"]' \
    --change 'ENV GANGER_CONFIG=/etc/ganger/ganger.yaml' \
    --change 'LABEL org.opencontainers.image.title=ganger' \
    --change 'LABEL org.opencontainers.image.description="Ganger: network services in Docker containers on demand"' \
    --change "LABEL org.opencontainers.image.version=$version" \
    --change "LABEL org.opencontainers.image.revision=$revision" \
    --change "LABEL org.opencontainers.image.created=$created" \
    --change 'LABEL org.opencontainers.image.source=https://github.com/ganger-dev/ganger' \
    - "${tags[0]}")
for t in "${tags[@]:1}"; do
  docker tag "$id" "$t"
done
echo "image ${tags[*]} built from $bindir/ganger and $bindir/ganger-init ($version)"
