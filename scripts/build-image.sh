#!/usr/bin/env bash
# build-image.sh BINARY TAG: pack a static binary into an image FROM scratch
# with `docker import`, so no registry and no builder are needed (air-gapped
# machines included). The binary is the entrypoint, run as nobody.
set -euo pipefail
bin=$1
tag=$2
name=$(basename "$bin")
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cp "$bin" "$dir/$name"
tar --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$dir" -c "$name" |
  docker import \
    --change "ENTRYPOINT [\"/$name\"]" \
    --change "USER 65534:65534" \
    --change "EXPOSE 7777/tcp" \
    --change "LABEL org.opencontainers.image.title=$name" \
    - "$tag" >/dev/null
echo "image $tag built from $bin"
