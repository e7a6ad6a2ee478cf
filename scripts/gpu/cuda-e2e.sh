#!/usr/bin/env bash
# GPU-machine run of the dmabuf-vulkan-cuda capture path end to end (recorder/tests/cuda.rs):
# a real PipeWire + WirePlumber, the test producer's NVIDIA-tiled Vulkan images (OPAQUE_FD
# stand-ins for dma-bufs), Vulkan import → NV12 → CUDA → GpuEncoder → file, pixels checked.
#
# Build + pack here:  bash scripts/gpu/cuda-e2e.sh --pack /work/main/gpu-carry/cuda-e2e
#   builds the release test binary, packs it with Debian 12's PipeWire daemon, WirePlumber,
#   their modules/plugins/config and the shared libraries all of them need (the ldd closure,
#   minus glibc/libstdc++, which the GPU machine has in newer versions) into one tar.xz.
# Run there:          bash gpu-carry/cuda-e2e/cuda-e2e.sh [--bench]   (repo root, .gl carried)
#   Libraries go to /tmp, never over /. Output is tee'd to $OUT/cuda-e2e.txt.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
arch=/usr/lib/x86_64-linux-gnu

if [ "${1:-}" = "--pack" ]; then
    dest=${2:?destination folder}
    root=$(cd "$here/../.." && pwd)
    set -e
    # The CUDA tests, and explicit sync on the host read-back path (its own process: it turns
    # CUDA off with an environment variable).
    bins=$(cd "$root" && cargo test --release -p zerocast-recorder --test cuda --test sync_host \
        --no-run --message-format=json 2>/dev/null |
        python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m.get("executable") and m["target"]["name"] in ("cuda","sync_host"):
        print(m["target"]["name"], m["executable"])')
    [ "$(echo "$bins" | wc -l)" = 2 ] || { echo "test binaries missing: $bins" >&2; exit 1; }
    rm -rf "$dest" && mkdir -p "$dest"
    cp "$0" "$dest/cuda-e2e.sh"
    tmp=$(mktemp -d)
    p=$tmp/pw
    mkdir -p "$p/bin" "$p/lib" "$p/share"
    echo "$bins" | while read -r name path; do
        cp "$path" "$p/bin/$name-test"
        strip "$p/bin/$name-test" || true
    done
    cp /usr/bin/pipewire /usr/bin/wireplumber "$p/bin/"
    cp -r /usr/share/pipewire /usr/share/wireplumber "$p/share/"
    cp -r "$arch/wireplumber-0.5" "$p/"
    mkdir -p "$p/pipewire-0.3" "$p/spa-0.2"
    # The modules pipewire.conf loads (the rest are optional there and pull in avahi, jack…).
    for m in rt protocol-native profiler metadata spa-device-factory spa-node-factory \
        client-node client-device portal access adapter link-factory session-manager; do
        cp "$arch/pipewire-0.3/libpipewire-module-$m.so" "$p/pipewire-0.3/"
    done
    # Video needs the support plugins and videoconvert; no audio devices here.
    for s in support videoconvert videotestsrc control; do
        [ -d "$arch/spa-0.2/$s" ] && cp -r "$arch/spa-0.2/$s" "$p/spa-0.2/"
    done
    # Modules and plugins are dlopen'ed (WirePlumber's Lua engine too): not in the binaries'
    # ldd, so their closure is taken as well.
    # shellcheck source=lib.sh
    . "$here/lib.sh"
    for f in $(lib_closure $(find "$p/bin" "$p/pipewire-0.3" "$p/spa-0.2" "$p/wireplumber-0.5" -type f)); do
        cp -L "$f" "$p/lib/"
    done
    tar -C "$tmp" -cf - pw | xz -T4 -6 >"$dest/pw.tar.xz"
    rm -rf "$tmp"
    du -sh "$dest"
    exit 0
fi

out=${OUT:-/tmp}
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
p=/tmp/zerocast-pw
rm -rf "$p" && mkdir -p /tmp && xz -dc "$here/pw.tar.xz" | tar -C /tmp -xf - &&
    mv /tmp/pw "$p"
export LD_LIBRARY_PATH=$p/lib
export PATH=$p/bin:$PATH
export SPA_PLUGIN_DIR=$p/spa-0.2
export PIPEWIRE_MODULE_DIR=$p/pipewire-0.3
export PIPEWIRE_CONFIG_DIR=$p/share/pipewire
export WIREPLUMBER_MODULE_DIR=$p/wireplumber-0.5
export WIREPLUMBER_DATA_DIR=$p/share/wireplumber
export WIREPLUMBER_CONFIG_DIR=$p/share/wireplumber
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || true
missing=$(ldd "$p"/bin/* | grep 'not found')
[ -n "$missing" ] && echo "missing libraries: $missing"
args=(--test-threads=1 --nocapture)
[ "${1:-}" = "--bench" ] && args+=(--include-ignored)
cd /tmp || exit 1
"$p/bin/cuda-test" "${args[@]}" 2>&1 | tee "$out/cuda-e2e.txt"
rc=${PIPESTATUS[0]}
"$p/bin/sync_host-test" "${args[@]}" 2>&1 | tee -a "$out/cuda-e2e.txt"
rc2=${PIPESTATUS[0]}
echo "cuda-e2e exit $rc, sync_host exit $rc2"
[ "$rc" = 0 ] && [ "$rc2" = 0 ]
