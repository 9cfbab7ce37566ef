#!/usr/bin/env bash
# run-guide.sh GUIDE.md: runs a guide's commands as a reader would, in a
# fresh directory: every ```sh block in order, in one bash with -euo
# pipefail; then every ```sh cleanup block, whatever happened. Other
# blocks (yaml, console, text) are shown to the reader, not run. The
# binaries are the repository's bin/ (make build), first on PATH.
#
# If the guide fails, the end of every *.log file it made (ganger.log, a
# server's log) is printed before its directory is removed; with
# GUIDE_KEEP=1 the directory is kept. SIGTERM or SIGINT (the test's
# timeout) stops the guide's commands and still runs its cleanup.
set -uo pipefail
guide=$(realpath "$1")
name=$(basename "$guide")
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/ganger-guide.XXXXXX)
# A reader's directory: others (a server run as its own user) may enter it.
chmod 755 "$work"
extract() { # extract KIND: the blocks whose info string is exactly KIND
  awk -v kind="$1" '
    /^```/ { if (inblock) { inblock = 0; print ""; next } info = substr($0, 4); sub(/[ \t]+$/, "", info); if (info == kind) { inblock = 1; print "# --- block " ++n " (line " NR ")" } ; next }
    inblock { print }' "$guide"
}
extract sh >"$work/.run.sh"
extract "sh cleanup" >"$work/.cleanup.sh"
if [ ! -s "$work/.run.sh" ]; then
  echo "guide $name: no \`\`\`sh block" >&2
  rm -rf "$work"
  exit 2
fi
export PATH="$repo/bin:$PATH" GANGER_REPO="$repo"
cd "$work"
echo "guide $name: running in $work" >&2
started=$SECONDS

# The guide runs in the background so that a signal to this script can stop
# it (its process group) and still run the cleanup.
stop() {
  echo "guide $name: interrupted" >&2
  kill -TERM -- "-$pid" 2>/dev/null
}
trap stop TERM INT
set -m # the guide in a process group of its own
bash -euo pipefail -x "$work/.run.sh" </dev/null &
pid=$!
set +m
wait "$pid"
rc=$?
while kill -0 "$pid" 2>/dev/null; do wait "$pid"; rc=$?; done # wait returns early on a trapped signal
trap - TERM INT
echo "guide $name: its commands ended with status $rc after $((SECONDS - started))s" >&2

bash -x "$work/.cleanup.sh" </dev/null || echo "guide $name: its cleanup failed" >&2
echo "guide $name: done after $((SECONDS - started))s" >&2

if [ "$rc" != 0 ]; then
  for log in $(find "$work" -name '*.log' -type f 2>/dev/null | sort); do
    echo "guide $name: --- the end of ${log#"$work"/} ---" >&2
    tail -n 60 "$log" >&2
  done
fi
cd /
if [ "${GUIDE_KEEP:-}" = 1 ]; then
  echo "guide $name: kept $work (GUIDE_KEEP=1)" >&2
else
  rm -rf "$work"
fi
exit $rc
