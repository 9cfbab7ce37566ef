#!/usr/bin/env bash
# ensure-test-deps.sh installs what the test suite runs besides Docker, from
# Debian's packages: docker-registry (a real registry on 127.0.0.1 for pull
# tests), chromium (the status page is checked in a real browser) and
# postgresql (the PostgreSQL store is tested against a real server, which the
# tests initialise and start themselves: no default cluster is wanted);
# busybox-static (the ganger-busybox image that ganger-init's tests run in)
# and the inits ganger-init is measured against: tini, dumb-init, runit and
# s6; etcd-server and etcd-client (discovery's tests start their own etcd,
# so the packaged service is disabled) and haproxy; netcat-openbsd (nc: the
# guides use it, and curl); zsh (the completion's tests) and systemd
# (systemd-analyze verifies the units).
set -euo pipefail
missing=()
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
# Debian's busybox package has /bin/busybox too, but linked dynamically: an
# image FROM scratch needs the static one.
dpkg-query -W -f '${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || missing+=(busybox-static)
command -v tini-static >/dev/null 2>&1 || missing+=(tini)
command -v dumb-init >/dev/null 2>&1 || missing+=(dumb-init)
command -v runsvdir >/dev/null 2>&1 || missing+=(runit)
command -v s6-svscan >/dev/null 2>&1 || missing+=(s6)
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || missing+=(etcd-client)
command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
command -v nc >/dev/null 2>&1 || missing+=(netcat-openbsd)
command -v zsh >/dev/null 2>&1 || missing+=(zsh)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "ensure-test-deps: missing ${missing[*]}; install Debian's packages of those names" >&2
  exit 1
fi
echo "ensure-test-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
case " ${missing[*]} " in
*" postgresql "*)
  # Before the package is configured: do not create (nor start) the default
  # cluster "main". ucf keeps this file as it is (UCF_FORCE_CONFFOLD).
  mkdir -p /etc/postgresql-common
  conf=/etc/postgresql-common/createcluster.conf
  if ! grep -Eq '^[[:space:]]*create_main_cluster[[:space:]]*=[[:space:]]*(false|off)' "$conf" 2>/dev/null; then
    echo 'create_main_cluster = false' >>"$conf"
  fi
  export UCF_FORCE_CONFFOLD=1
  ;;
esac
apt-get update -qq >/dev/null
apt-get install -y -qq "${missing[@]}" >/dev/null
# The registry package enables a registry on :5000; the tests start their own.
systemctl disable --now docker-registry >/dev/null 2>&1 || true
# Likewise etcd (on 127.0.0.1:2379) and haproxy: the tests run their own.
for svc in etcd haproxy; do
  systemctl disable --now "$svc" >/dev/null 2>&1 || true
  # Without systemd the package's init script may have started it.
  if [ -x "/etc/init.d/$svc" ]; then "/etc/init.d/$svc" stop >/dev/null 2>&1 || true; fi
done
# Were a default PostgreSQL cluster made and started all the same, stop it:
# the tests run their own servers.
if command -v pg_lsclusters >/dev/null 2>&1; then
  pg_lsclusters --no-header 2>/dev/null | while read -r version cluster _ status _; do
    if [[ $status == online* ]]; then
      pg_ctlcluster "$version" "$cluster" stop </dev/null >/dev/null 2>&1 || true
    fi
  done
fi
systemctl disable --now postgresql >/dev/null 2>&1 || true
