#!/usr/bin/env bash
# Set up Titanium on a fresh Debian 12 / Raspberry Pi OS machine and run it, or its tests.
#   ./titanium.sh up [--config FILE]   install what is missing, then stream (prints the URL)
#   ./titanium.sh test [PYTEST ARGS]   install what is missing, then lint, type-check, test
set -euo pipefail
cd "$(dirname "$0")"
here=$(pwd)
venv="$here/.venv"

need_apt() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "titanium: installing Debian packages: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
}

python=${TITANIUM_PYTHON:-python3}

setup_venv() {
    local extra=$1
    if ! "$python" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
        echo "titanium: needs Python 3.11 or newer as $python" >&2
        exit 1
    fi
    if [ ! -x "$venv/bin/python" ]; then
        "$python" -m venv "$venv" || { echo "titanium: python3 -m venv failed (install python3-venv)" >&2; exit 1; }
    fi
    # Reinstall only when the project's dependencies changed.
    local stamp="$venv/.titanium-$extra-$(sha1sum pyproject.toml | cut -c1-12)"
    if [ ! -f "$stamp" ]; then
        "$venv/bin/python" -m pip install -q --upgrade pip
        "$venv/bin/python" -m pip install -q -e ".$extra"
        rm -f "$venv"/.titanium-*
        touch "$stamp"
    fi
}

cmd=${1:-up}
[ $# -gt 0 ] && shift
case "$cmd" in
    up)
        need_apt python3 python3-venv
        setup_venv ""
        exec "$venv/bin/titaniumctl" up "$@"
        ;;
    test)
        # coturn: the STUN server of tests/integration/test_ice_stun.py and the TURN server of
        # tests/integration/test_turn_coturn.py.
        # qemu-system-x86, mmdebstrap, cpio, kmod: the vivid VM (tools/vm/) for tests/hw.
        # nftables, iproute2: the NATs of the remote-viewing tests (tests/integration/nat.py).
        # nginx: the printer UI's proxy in front of Titanium (tests/integration/nginx.py); the
        # tests run their own, on their own port. firefox-esr: the viewer element in Firefox
        # (tests/integration/firefox.py).
        need_apt python3 python3-venv ffmpeg chromium coturn qemu-system-x86 mmdebstrap cpio kmod \
            nftables iproute2 nginx firefox-esr
        setup_venv "[test]"
        # The frontends' own players at the versions they pin (tests/js/package-lock.json:
        # jmuxer as Mainsail's), for the browser tests; node_modules is ignored by git and
        # reinstalled only when the lockfile changes.
        command -v npm >/dev/null || need_apt nodejs npm
        js_stamp="tests/js/node_modules/.titanium-$(sha1sum tests/js/package-lock.json | cut -c1-12)"
        if [ ! -f "$js_stamp" ]; then
            npm ci --prefix tests/js --no-audit --no-fund --loglevel=error
            touch "$js_stamp"
        fi
        echo "== ruff"
        "$venv/bin/ruff" check .
        "$venv/bin/ruff" format --check .
        echo "== mypy"
        "$venv/bin/mypy" common services titanium mirage tests tools $([ -d benchmarks ] && echo benchmarks)
        failed=0
        # Before the host suite, so its test through the VM's port forward runs too. Cached.
        echo "== vivid VM image"
        vm=1
        "$venv/bin/python" tools/vm/vivid_vm.py build || { vm=0; failed=1; }
        echo "== pytest"
        "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@" || failed=1
        if [ $vm = 1 ]; then
            echo "== pytest in the vivid VM: tests/hw on a real V4L2 driver"
            "$venv/bin/python" tools/vm/vivid_vm.py run -- \
                /opt/venv/bin/python -m pytest -q -p no:cacheprovider tests/hw || failed=1
        fi
        exit $failed
        ;;
    *)
        echo "usage: $0 up [--config FILE] | test [PYTEST ARGS]" >&2
        exit 2
        ;;
esac
