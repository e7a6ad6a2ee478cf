//! Compiles `src/pw/golden.c` (libspa's C pod builder) for the pod golden tests in
//! `src/pw/params.rs`. The archive is linked into the library, but nothing outside
//! `#[cfg(test)]` references its symbols, so no binary carries them.
//!
//! It also turns the FFmpeg version ffmpeg-sys-next found (its `DEP_FFMPEG_FFMPEG_X_Y`
//! variables, one per release the installed libavcodec is at least) into `cfg(ffmpeg_X_Y)`, the
//! same version gates ffmpeg-next itself compiles with, so code that differs between FFmpeg 5.1
//! and 7.1 asks the library's own answer instead of guessing.

fn main() {
    ffmpeg_version_cfgs();
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

/// `cfg(ffmpeg_5_1)`, `cfg(ffmpeg_7_0)`, … for every FFmpeg release the linked libraries are at
/// least; ffmpeg-sys-next (`links = "ffmpeg"`) exports them to its direct dependents.
fn ffmpeg_version_cfgs() {
    let mut known = Vec::new();
    for (name, value) in std::env::vars() {
        let Some(rest) = name.strip_prefix("DEP_FFMPEG_FFMPEG_") else {
            continue;
        };
        let cfg = format!("ffmpeg_{}", rest.to_lowercase());
        if value == "true" {
            println!("cargo:rustc-cfg={cfg}");
        }
        known.push(cfg);
    }
    // The gates the code uses are declared even when this FFmpeg is older than all of them.
    for cfg in ["ffmpeg_5_1", "ffmpeg_7_0", "ffmpeg_8_0"] {
        if !known.iter().any(|k| k == cfg) {
            known.push(cfg.to_string());
        }
    }
    println!("cargo:rustc-check-cfg=cfg({})", known.join(", "));
}
