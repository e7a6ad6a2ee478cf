#!/usr/bin/env bash
# GPU-machine check + benchmark of the NVENC path (issue #6): interop NV12 → FFmpeg CUDA hw
# frames on our context/stream, NVENC open + reason, auto fallback to libx264 from GPU NV12.
#
# Pack here:   bash scripts/gpu/nvenc-check.sh --pack /work/main/gpu-carry/nvenc
#              builds the binary (cargo build --release -p zerocast-recorder --features gpu-checks
#              --bin nvenc-check; the feature keeps it out of the shipped build; NVENC_CHECK_BIN
#              names a prebuilt one instead), copies it and this script, packs the FFmpeg
#              libraries it needs (the ldd closure of libavcodec/libavformat/libavutil/libswscale/
#              libswresample, from this Debian 12 machine) into libs.tar.xz, and builds tiny
#              stand-ins for libraries the binary lists but does not use (libavdevice: only
#              avdevice_register_all, a no-op for us; libavfilter, libpostproc, libpipewire: no
#              symbols) so their large closures (SDL, JACK, tesseract, flite…) need not travel.
#              Keep the carry under 64 MiB.
# Run there:   bash gpu-carry/nvenc/nvenc-check.sh [--bench]   (from the repo root, .gl carried)
#              The GPU machine (Ubuntu 24.04) has no FFmpeg; libraries are unpacked into /tmp,
#              never over /. Logs and the fallback's .mkv go to $OUT.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)

if [ "${1:-}" = "--pack" ]; then
    dest=${2:?destination folder}
    root=$(cd "$here/../.." && pwd)
    set -e
    bin=${NVENC_CHECK_BIN:-}
    if [ -z "$bin" ]; then
        (cd "$root" && cargo build --release -p zerocast-recorder --features gpu-checks \
            --bin nvenc-check)
        bin=$root/target/release/nvenc-check
    fi
    rm -rf "$dest" && mkdir -p "$dest"
    cp "$bin" "$dest/nvenc-check"
    strip "$dest/nvenc-check" || true
    cp "$0" "$dest/nvenc-check.sh"
    tmp=$(mktemp -d)
    mkdir -p "$tmp/lib"
    stubs="libavdevice.so.59 libavfilter.so.8 libpostproc.so.56 libpipewire-0.3.so.0"
    # The binary must not use anything from the stand-ins but avdevice_register_all.
    if nm -D --undefined-only "$bin" | grep -E '@LIBAVFILTER|@LIBPOSTPROC|@LIBAVDEVICE' |
        grep -v avdevice_register_all@; then
        echo "binary uses symbols of stubbed libraries" >&2
        exit 1
    fi
    echo 'void avdevice_register_all(void) {}' >"$tmp/avdevice.c"
    echo 'LIBAVDEVICE_59 { global: avdevice_register_all; local: *; };' >"$tmp/avdevice.map"
    gcc -shared -fPIC -o "$tmp/lib/libavdevice.so.59" -Wl,-soname,libavdevice.so.59 \
        -Wl,--version-script="$tmp/avdevice.map" "$tmp/avdevice.c"
    echo '' >"$tmp/empty.c"
    for s in libavfilter.so.8 libpostproc.so.56 libpipewire-0.3.so.0; do
        gcc -shared -fPIC -o "$tmp/lib/$s" -Wl,-soname,"$s" "$tmp/empty.c"
    done
    # shellcheck source=lib.sh
    . "$here/lib.sh"
    libs=""
    for l in libavutil.so.57 libavformat.so.59 libswscale.so.6 libavcodec.so.59 libswresample.so.4; do
        libs="$libs /lib/x86_64-linux-gnu/$l"
    done
    # shellcheck disable=SC2086 # a list of paths
    for f in $(printf '%s\n' $libs $(lib_closure $libs) | sort -u); do
        case " $stubs " in *" $(basename "$f") "*) continue ;; esac
        cp -L "$f" "$tmp/lib/"
    done
    tar -C "$tmp" -cf - lib | xz -T2 -6 >"$dest/libs.tar.xz"
    rm -rf "$tmp"
    du -sh "$dest"
    exit 0
fi

out=${OUT:-/tmp}
# Vulkan loader + glvnd (the NVIDIA ICD needs libGLdispatch), as in interop-check.sh.
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
prefix=/tmp/zerocast-ffmpeg
mkdir -p "$prefix" && xz -dc "$here/libs.tar.xz" | tar -C "$prefix" -xf -
export LD_LIBRARY_PATH=$prefix/lib
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
missing=$(ldd "$here/nvenc-check" | grep 'not found')
[ -n "$missing" ] && echo "missing libraries: $missing"
OUT=$out "$here/nvenc-check" "$@" 2>&1 | tee "$out/nvenc-check.txt"
rc=${PIPESTATUS[0]}
echo "nvenc-check exit $rc"
exit "$rc"
