#!/usr/bin/env bash
# dist.sh: release tarballs, static, one per architecture:
#   $DIST_DIR/ganger-$VERSION-linux-$ARCH.tar.gz and $DIST_DIR/SHA256SUMS
# each holding ganger-$VERSION-linux-$ARCH/ with bin/ganger, bin/ganger-init,
# examples/ (ganger.yaml, systemd/), completion/ (ganger.bash, _ganger for
# zsh) and README.md.
#
# Environment (make dist sets the first three):
#   VERSION      default: git describe --always --dirty, else dev
#   GO_LDFLAGS   default: -s -w and -X main.version, main.commit, main.buildDate
#                (not LDFLAGS: build environments set that one for C)
#   GO           default: go
#   DIST_DIR     default: dist
#   DIST_ARCHES  default: "amd64 arm64"
#   SOURCE_DATE_EPOCH  the build date and the files' times (default: now,
#                and the last commit's time); set, the tarballs are
#                reproducible.
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
VERSION=${VERSION:-$(git describe --always --dirty 2>/dev/null || echo dev)}
if [[ ! $VERSION =~ ^[A-Za-z0-9][A-Za-z0-9._+-]*$ ]]; then
  echo "dist: VERSION $VERSION: want letters, digits, . _ + -" >&2
  exit 2
fi
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
if [[ -z ${GO_LDFLAGS:-} ]]; then
  built=$(date -u -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}" +%Y-%m-%dT%H:%M:%SZ)
  GO_LDFLAGS="-s -w -X main.version=$VERSION -X main.commit=$(git rev-parse HEAD 2>/dev/null || true) -X main.buildDate=$built"
fi
out=${DIST_DIR:-dist}
mkdir -p "$out"
out=$(cd "$out" && pwd)
arches=${DIST_ARCHES:-amd64 arm64}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export CGO_ENABLED=0

# The completion scripts, from a ganger for this machine (the scripts are
# the same for every architecture).
GOOS= GOARCH= "$GO" build -trimpath -o "$tmp/host-ganger" ./cmd/ganger

tarballs=()
for arch in $arches; do
  name=ganger-$VERSION-linux-$arch
  stage=$tmp/$name
  mkdir -p "$stage/bin" "$stage/examples/systemd" "$stage/completion"
  for cmd in ganger ganger-init; do
    GOOS=linux GOARCH=$arch "$GO" build -trimpath -ldflags "$GO_LDFLAGS" -o "$stage/bin/$cmd" "./cmd/$cmd"
    # Static: no program interpreter (a dynamic loader) to ask for.
    if ! command -v readelf >/dev/null; then
      echo "dist: readelf (binutils) missing: $cmd for $arch not checked to be static" >&2
    elif LC_ALL=C readelf -l "$stage/bin/$cmd" | grep -q INTERP; then
      echo "dist: $cmd for $arch is dynamically linked" >&2
      exit 1
    fi
  done
  install -m 0644 examples/ganger.yaml "$stage/examples/"
  install -m 0644 examples/systemd/* "$stage/examples/systemd/"
  install -m 0644 README.md "$stage/"
  [[ -f LICENSE ]] && install -m 0644 LICENSE "$stage/"
  "$tmp/host-ganger" completion bash > "$stage/completion/ganger.bash"
  "$tmp/host-ganger" completion zsh > "$stage/completion/_ganger"
  chmod -R u=rwX,go=rX "$stage"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
    -C "$tmp" -cf - "$name" | gzip -9 -n > "$out/$name.tar.gz"
  tarballs+=("$name.tar.gz")
  echo "dist: $out/$name.tar.gz"
done
(cd "$out" && sha256sum "${tarballs[@]}" > SHA256SUMS)
echo "dist: $out/SHA256SUMS"
