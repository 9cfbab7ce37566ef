#!/usr/bin/env bash
# ensure-docker.sh makes sure a Docker Engine answers on this machine.
#
# If `docker info` already works, it starts nothing. Otherwise, when running
# as root, it installs Debian's docker.io (if dockerd is missing) and starts
# dockerd fully detached (setsid, stdin from /dev/null, output to a log file)
# so that it never holds the caller's stdout/stderr open.
#
# Either way it makes sure `nc` is there (Debian's netcat-openbsd, as root):
# the README's quick start talks to the demo with it.
set -euo pipefail

log=${GANGER_DOCKERD_LOG:-/var/log/ganger-dockerd.log}

# ensure_nc installs netcat-openbsd when nc is missing. Only the quick start
# needs it, so a failure is a warning, never a reason to stop.
ensure_nc() {
  command -v nc >/dev/null 2>&1 && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "ensure-docker: nc is missing (the quick start uses it); install Debian's netcat-openbsd" >&2
    return 0
  fi
  echo "ensure-docker: installing Debian's netcat-openbsd (nc, for the quick start)" >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -qq netcat-openbsd >/dev/null 2>&1 &&
    ! { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq netcat-openbsd >/dev/null 2>&1; }; then
    echo "ensure-docker: could not install netcat-openbsd; install it to follow the quick start" >&2
  fi
}

ensure_nc

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
