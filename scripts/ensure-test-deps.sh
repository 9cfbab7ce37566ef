#!/usr/bin/env bash
# ensure-test-deps.sh installs what the test suite runs besides Docker, from
# Debian's packages: docker-registry (a real registry on 127.0.0.1 for pull
# tests) and chromium (the status page is checked in a real browser).
set -euo pipefail
missing=()
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "ensure-test-deps: missing ${missing[*]}; install Debian's packages of those names" >&2
  exit 1
fi
echo "ensure-test-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq "${missing[@]}" >/dev/null
# The registry package enables a registry on :5000; the tests start their own.
systemctl disable --now docker-registry >/dev/null 2>&1 || true
