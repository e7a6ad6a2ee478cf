//! Random `a{sv}` dicts against the options parser: it never panics, and every rejection names
//! a key that is in the dict (the caller can always tell what to fix).

use std::collections::HashMap;

use proptest::prelude::*;
use zbus::zvariant::{OwnedValue, Value};
use zerocast_app::dbus::parse_options_in;
use zerocast_app::{PathContext, RequestError as OptionError, KEYS};

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(KEYS).prop_map(str::to_owned),
        1 => "[a-z-]{1,12}",
        1 => any::<String>(),
    ]
}

fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(
            &[
                "mkv",
                "mp4",
                "webm",
                "h264",
                "hevc",
                "av1",
                "vp9",
                "auto",
                "nvenc",
                "software",
                "hidden",
                "embedded",
                "metadata",
                "monitor",
                "window",
                "virtual",
                "a.mkv",
                "b.mp4",
                "c.webm",
                "d",
                "%d-%t.mkv",
                "%x",
                "%",
                "~/e.mkv",
                "f/",
                "",
                "g.avi",
                "/h.mkv",
                "desktop",
                "mic",
                "desktop+mic",
                "app:firefox",
                "node:x",
                "opus",
                "aac",
                "flac",
            ][..]
        )
        .prop_map(str::to_owned),
        "[a-zA-Z0-9%./~_-]{0,20}",
        any::<String>(),
    ]
}

fn value() -> impl Strategy<Value = OwnedValue> {
    let v = prop_oneof![
        any::<bool>().prop_map(Value::from),
        any::<u8>().prop_map(Value::from),
        any::<i16>().prop_map(Value::from),
        any::<u32>().prop_map(Value::from),
        (0u32..100).prop_map(Value::from),
        any::<i32>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        (-10.0f64..100.0).prop_map(Value::from),
        string().prop_map(Value::from),
        proptest::collection::vec(any::<u32>(), 0..3).prop_map(Value::from),
        proptest::collection::vec(string(), 0..3).prop_map(Value::from),
    ];
    v.prop_map(|v| v.try_to_owned().unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_and_rejections_name_a_given_key(
        entries in proptest::collection::vec((key(), value()), 0..8)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let ctx = PathContext {
            videos_dir: dir.path().join("Videos"),
            home: dir.path().to_owned(),
            date: "2026-08-21".into(),
            time: "14-03-59".into(),
        };
        let mut opts: HashMap<String, OwnedValue> = HashMap::new();
        for (k, v) in entries {
            // Absolute paths stay inside the temp dir: the parser creates and removes a probe.
            let v = match (&*v, k.as_str()) {
                (Value::Str(s), "path") if s.starts_with('/') => {
                    Value::from(format!("{}{}", dir.path().display(), s.as_str())).try_to_owned().unwrap()
                }
                _ => v,
            };
            opts.insert(k, v);
        }
        match parse_options_in(&opts, &ctx) {
            Ok(req) => {
                prop_assert!(req.path.starts_with(dir.path()));
                prop_assert!(!req.path.exists());
            }
            Err(e) => {
                let key = e.key().to_owned();
                // 'path' is named for a default path too, but the default never fails here.
                prop_assert!(opts.contains_key(&key), "{e} names {key}, not in {:?}", opts.keys());
                let msg = e.to_string();
                prop_assert!(msg.contains(&format!("'{key}'")), "message does not quote the key: {msg}");
                if let OptionError::UnknownKey { .. } = e {
                    prop_assert!(!KEYS.contains(&key.as_str()));
                }
            }
        }
    }
}
