//! Compiles `src/pw/golden.c` (libspa's C pod builder) for the pod golden tests in
//! `src/pw/params.rs`. The archive is linked into the library, but nothing outside
//! `#[cfg(test)]` references its symbols, so no binary carries them.

fn main() {
    println!("cargo:rerun-if-changed=src/pw/golden.c");
    // The headers are the ones pipewire-sys's bindings were generated from (libspa-0.2-dev).
    let cflags = std::process::Command::new("pkg-config")
        .args(["--cflags-only-I", "libspa-0.2"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_else(|| "-I/usr/include/spa-0.2".into());
    let mut build = cc::Build::new();
    build
        .file("src/pw/golden.c")
        .flag_if_supported("-Wno-missing-field-initializers");
    for inc in cflags
        .split_whitespace()
        .filter_map(|f| f.strip_prefix("-I"))
    {
        build.include(inc);
    }
    build.compile("zerocast_pod_golden");
}
