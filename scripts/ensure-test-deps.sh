#!/usr/bin/env bash
# ensure-test-deps.sh installs what the test suite runs besides Docker:
# Debian's docker-registry (a real registry on 127.0.0.1 for pull tests).
set -euo pipefail
if command -v docker-registry >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "ensure-test-deps: docker-registry is missing; install Debian's docker-registry" >&2
  exit 1
fi
echo "ensure-test-deps: installing Debian's docker-registry" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq docker-registry >/dev/null
# The package enables a registry on :5000; the tests start their own.
systemctl disable --now docker-registry >/dev/null 2>&1 || true
