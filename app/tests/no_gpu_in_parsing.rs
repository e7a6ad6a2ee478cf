//! Option parsing touches no GPU library; the encoder selection probes NVENC once per process.
//! Its own test binary (process): the NVENC probe counter and the loaded libraries are
//! per process, and `ZEROCAST_NO_CUDA` must be unset so nothing is skipped on purpose.

use std::collections::HashMap;

use zbus::zvariant::{OwnedValue, Value};
use zerocast_app::cli::RequestArgs;
use zerocast_app::PathContext;
use zerocast_recorder::encode::nvenc_probe_count;

/// GPU driver libraries mapped into this process.
fn gpu_libraries() -> Vec<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let mut libs: Vec<String> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| {
            ["libcuda.so", "libnvidia-", "libvulkan.so", "libnvcuvid"]
                .iter()
                .any(|n| p.contains(n))
        })
        .map(str::to_owned)
        .collect();
    libs.dedup();
    libs
}

#[test]
fn parsing_probes_nothing_and_a_recording_probes_once() {
    // SAFETY-free in edition 2021; nothing else runs in this process yet.
    std::env::remove_var("ZEROCAST_NO_CUDA");
    let dir = tempfile::tempdir().unwrap();
    let ctx = PathContext {
        videos_dir: dir.path().join("Videos"),
        home: dir.path().to_owned(),
        date: "2026-08-21".into(),
        time: "14-03-59".into(),
    };
    let before = gpu_libraries();

    // Every encoder choice, with and without a codec (the default codec is the one that
    // depends on NVENC), through both parsers.
    let mut requests = Vec::new();
    for encoder in ["auto", "nvenc", "software"] {
        for codec in [None, Some("h264"), Some("hevc"), Some("av1")] {
            let args = RequestArgs {
                encoder: Some(encoder.into()),
                codec: codec.map(Into::into),
                ..Default::default()
            };
            requests.push(args.parse_in(&ctx).unwrap());
            let mut dict: HashMap<String, OwnedValue> = HashMap::new();
            dict.insert(
                "encoder".into(),
                Value::from(encoder).try_to_owned().unwrap(),
            );
            if let Some(c) = codec {
                dict.insert("codec".into(), Value::from(c).try_to_owned().unwrap());
            }
            let r = zerocast_app::dbus::parse_options_in(&dict, &ctx).unwrap();
            assert_eq!(r, requests[requests.len() - 1]);
        }
    }
    assert_eq!(nvenc_probe_count(), 0, "option parsing probed NVENC");
    assert_eq!(
        gpu_libraries(),
        before,
        "option parsing loaded a GPU library"
    );

    // The composition's selection, as for three recordings of the default request: NVENC is
    // probed once (hevc, for the default codec), then the cached answer is used.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let default = RequestArgs::default().parse_in(&ctx).unwrap();
    let mut chosen = Vec::new();
    for _ in 0..3 {
        chosen.push(rt.block_on(zerocast_app::select_encoder(&default)).unwrap());
    }
    assert_eq!(nvenc_probe_count(), 1, "one probe per process");
    assert!(chosen.windows(2).all(|w| w[0] == w[1]), "{chosen:?}");
    let (codec, sel) = &chosen[0];
    if sel.nvenc {
        assert_eq!(codec.as_str(), "hevc");
    } else {
        // No NVENC here: H.264 in software, and the reason is kept for the log.
        assert_eq!((codec.as_str(), sel.name), ("h264", "libx264"));
        assert!(sel.fallback_reason.is_some());
        eprintln!("NVENC unavailable here: {:?}", sel.fallback_reason);
    }
}
