#!/usr/bin/env bash
# ensure-docker.sh makes sure a Docker Engine answers on this machine.
#
# If `docker info` already works, it does nothing. Otherwise, when running as
# root, it installs Debian's docker.io (if dockerd is missing) and starts
# dockerd fully detached (setsid, stdin from /dev/null, output to a log file)
# so that it never holds the caller's stdout/stderr open.
set -euo pipefail

log=${GANGER_DOCKERD_LOG:-/var/log/ganger-dockerd.log}

if docker info >/dev/null 2>&1; then
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  echo "ensure-docker: no Docker Engine answers and we are not root; start one, or set DOCKER_HOST" >&2
  exit 1
fi

if ! command -v dockerd >/dev/null 2>&1; then
  echo "ensure-docker: installing Debian's docker.io" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq docker.io >/dev/null
fi
if ! command -v docker >/dev/null 2>&1; then
  echo "ensure-docker: no docker client found after install" >&2
  exit 1
fi

echo "ensure-docker: starting dockerd (log: $log)" >&2
setsid dockerd >"$log" 2>&1 </dev/null &
for _ in $(seq 1 120); do
  if docker info >/dev/null 2>&1; then
    echo "ensure-docker: dockerd is up" >&2
    exit 0
  fi
  sleep 0.5
done
echo "ensure-docker: dockerd did not answer within 60s; last lines of $log:" >&2
tail -n 20 "$log" >&2 || true
exit 1
