#!/usr/bin/env bash
# Runs inside a fresh copy of a clean Debian root (scripts/test-deb.sh): lintian of that
# release on every package in /debs. Prints lintian's tags; fails only if lintian cannot run.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
apt-get install -y -qq --no-install-recommends lintian >/tmp/lintian-install.log 2>&1 ||
  { tail -20 /tmp/lintian-install.log >&2; exit 1; }
echo "lintian $(dpkg-query -W -f '${Version}' lintian)" >&2
lintian --tag-display-limit 0 /debs/*.deb 2>&1 | grep -v 'running with root privileges' || true
