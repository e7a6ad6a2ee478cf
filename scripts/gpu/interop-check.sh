#!/usr/bin/env bash
# GPU-machine check + benchmark of the interop crate (issue #3).
#
# Pack here:    bash scripts/gpu/interop-check.sh --pack /work/main/gpu-carry
#               builds the binary (cargo build --release -p zerocast-interop --features gpu-checks
#               --bin interop-check; the feature keeps it out of the shipped build) and copies it
#               and this script into the gpu-carry/ folder of the checkout that the device `run`
#               tool ships. Carry .gl/ too (Debian's libvulkan1, libglvnd0, libglx0, libgl1,
#               libegl1, libgles2, libopengl0 .debs: the GPU machine has no Vulkan loader).
# Run there:    bash gpu-carry/interop-check.sh          (from the repo root)
# It prints (a) the NVIDIA modifiers for XR24/AR24, (b) the per-modifier import → NV12 → CUDA
# byte comparisons, then the --bench figures. Logs go to $OUT (or /tmp).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)

if [ "${1:-}" = "--pack" ]; then
    dest=${2:?destination folder}
    root=$(cd "$here/../.." && pwd)
    set -e
    (cd "$root" && cargo build --release -p zerocast-interop --features gpu-checks \
        --bin interop-check)
    mkdir -p "$dest"
    cp "$root/target/release/interop-check" "$dest/interop-check"
    strip "$dest/interop-check" || true
    cp "$0" "$dest/interop-check.sh"
    du -sh "$dest/interop-check"
    exit 0
fi

bin=${INTEROP_CHECK_BIN:-$here/interop-check}
out=${OUT:-/tmp}

# The NVIDIA ICD (libGLX_nvidia) needs glvnd's libGLdispatch: carry libglvnd0 and friends too.
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
"$bin" 2>&1 | tee "$out/interop-check.txt"
check=${PIPESTATUS[0]}
"$bin" --bench 2>&1 | tee "$out/interop-bench.txt"
bench=${PIPESTATUS[0]}
echo "interop-check exit $check, bench exit $bench"
[ "$check" = 0 ] && [ "$bench" = 0 ]
