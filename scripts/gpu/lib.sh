# Shared by the --pack steps of the GPU scripts (sourced, not run).

# Prints the shared libraries the given ELF files load (their ldd closure), without glibc and
# libstdc++/libgcc: the GPU machine (Ubuntu 24.04) has newer, compatible ones.
lib_closure() {
    for o in "$@"; do ldd "$o" 2>/dev/null | awk '{print $3}' | grep '^/'; done |
        sort -u |
        grep -v -E '/(libc|libm|libpthread|libdl|librt|libgcc_s|ld-linux-x86-64|libstdc\+\+)\.so'
}
