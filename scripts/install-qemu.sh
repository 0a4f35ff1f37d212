#!/usr/bin/env bash
# Installs qemu-system-arm from Debian's packages when it is missing (the
# firmware tests and `demo --qemu` need it). Usage: scripts/install-qemu.sh
set -euo pipefail
if command -v qemu-system-arm >/dev/null 2>&1; then
  exit 0
fi
echo "installing qemu-system-arm (Debian package, about 10 s)" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends qemu-system-arm >/dev/null
qemu-system-arm --version | head -n 1 >&2
