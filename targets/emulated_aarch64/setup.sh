#!/usr/bin/env bash
# Builds an emulated aarch64 device for the `arm` tests: an aarch64 Python 3.11
# with TVM's runtime, run by qemu-user, that serves TVM RPC on loopback.
#
#   bash targets/emulated_aarch64/setup.sh [ROOT]    (ROOT: $LCNET_TVM_ARM_ROOT or ~/.cache/lcnet_tvm/aarch64)
#
# Installs (Debian/Ubuntu, as root) qemu-user-static and the aarch64 cross g++,
# then makes ROOT/sysroot from Debian's arm64 packages (unpacked, not installed)
# and ROOT/site-packages from PyPI's aarch64 wheels, and writes ROOT/python3,
# an x86 wrapper that runs the aarch64 Python under qemu (TVM's RPC server
# starts workers with sys.executable, so it must be runnable here).
# Emulated timings say nothing about ARM speed: use the device for correctness.
set -euo pipefail

ROOT="${1:-${LCNET_TVM_ARM_ROOT:-$HOME/.cache/lcnet_tvm/aarch64}}"
PYTHON_ABI=3.11
# The same TVM as the host (pyproject.toml); numpy etc. are what TVM's runtime and RPC server import.
WHEELS=(apache-tvm==0.27.0.post1 apache-tvm-ffi==0.1.14.post1 numpy ml_dtypes typing_extensions psutil cloudpickle)

if ! command -v qemu-aarch64-static >/dev/null || ! command -v aarch64-linux-gnu-g++ >/dev/null; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q qemu-user-static g++-aarch64-linux-gnu
fi
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    dpkg --add-architecture arm64
    apt-get update -q
fi

mkdir -p "$ROOT/debs" "$ROOT/sysroot" "$ROOT/wheels"
cd "$ROOT/debs"
# The aarch64 Python and the shared libraries it and TVM's runtime (libstdc++) load.
packages=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
    --no-replaces --no-enhances --no-pre-depends \
    "python${PYTHON_ABI}-minimal:arm64" "libpython${PYTHON_ABI}-stdlib:arm64" libstdc++6:arm64 \
    | grep -E '^[a-z0-9].*:arm64$' | sort -u)
apt-get download $packages
for deb in *.deb; do dpkg -x "$deb" "$ROOT/sysroot"; done

pip download -q --only-binary=:all: --no-deps --python-version "$PYTHON_ABI" \
    --platform manylinux2014_aarch64 --platform manylinux_2_28_aarch64 -d "$ROOT/wheels" "${WHEELS[@]}"
rm -rf "$ROOT/site-packages"
for wheel in "$ROOT"/wheels/*.whl; do python3 -m zipfile -e "$wheel" "$ROOT/site-packages"; done

cat > "$ROOT/python3" <<WRAPPER
#!/bin/sh
# aarch64 Python ${PYTHON_ABI} under qemu-user, with TVM's aarch64 wheels on its path.
export PYTHONPATH="$ROOT/site-packages"
# sys.executable: this wrapper, so the processes Python starts (TVM's RPC workers) are emulated too.
export PYTHONEXECUTABLE="$ROOT/python3"
exec qemu-aarch64-static -L "$ROOT/sysroot" "$ROOT/sysroot/usr/bin/python${PYTHON_ABI}" "\$@"
WRAPPER
chmod +x "$ROOT/python3"

"$ROOT/python3" -c "import platform, sys, tvm; assert sys.executable == '$ROOT/python3'; print('emulated', platform.machine(), 'Python', platform.python_version(), 'TVM', tvm.__version__)"
echo "emulated aarch64 device ready: $ROOT/python3 (set LCNET_TVM_ARM_ROOT=$ROOT if not the default)"
