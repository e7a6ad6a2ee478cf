//! The D-Bus surface's parser: `Start(a{sv})` options into a [`RawRequest`], then
//! [`RawRequest::resolve`] like every surface; and back ([`to_dbus`]) for a recording's
//! `Options` property.
//!
//! Integer options accept any D-Bus integer type whose value fits (`busctl … framerate i 60`
//! is as good as `u 60`): scripts should not fail over a signedness detail, and a negative value
//! then gets a range error that says what is wrong instead of a type error.

use std::collections::HashMap;

use zbus::zvariant::{OwnedValue, Value};
use zerocast_recorder::{OutputSize, RateControl};

use crate::options::KEYS;
use crate::path::PathContext;
use crate::request::{Number, RawRequest, RecordingRequest, RequestError};

/// Parses and validates `Start` options against the current environment, including a check
/// that the output file can be created. Touches the filesystem: call it off the async executor.
pub fn parse_options(opts: &HashMap<String, OwnedValue>) -> Result<RecordingRequest, RequestError> {
    parse_options_in(opts, &PathContext::from_env())
}

/// [`parse_options`] with an explicit [`PathContext`].
pub fn parse_options_in(
    opts: &HashMap<String, OwnedValue>,
    ctx: &PathContext,
) -> Result<RecordingRequest, RequestError> {
    to_raw(opts)?.resolve(ctx)
}

/// The options as given: unknown keys and wrong types are refused here (they only exist on
/// D-Bus); values are checked by [`RawRequest::resolve`].
pub fn to_raw(opts: &HashMap<String, OwnedValue>) -> Result<RawRequest, RequestError> {
    // Report unknown keys first and deterministically (HashMap order is random).
    let mut unknown: Vec<&String> = opts
        .keys()
        .filter(|k| !KEYS.contains(&k.as_str()))
        .collect();
    unknown.sort();
    if let Some(key) = unknown.first() {
        return Err(RequestError::UnknownKey {
            key: (*key).clone(),
        });
    }
    let mut raw = RawRequest::default();
    // Table order, so the first bad value reported does not depend on the HashMap.
    for key in KEYS {
        let Some(v) = opts.get(*key) else { continue };
        let v = unwrap_variant(v);
        match *key {
            "path" => raw.path = Some(as_str(key, v)?.to_owned()),
            "overwrite" => raw.overwrite = Some(as_bool(key, v)?),
            "container" => raw.container = Some(as_str(key, v)?.to_owned()),
            "codec" => raw.codec = Some(as_str(key, v)?.to_owned()),
            "encoder" => raw.encoder = Some(as_str(key, v)?.to_owned()),
            "framerate" => raw.framerate = Some(as_uint(key, v)?),
            "bitrate" => raw.bitrate = Some(as_uint(key, v)?),
            "quality" => raw.quality = Some(as_uint(key, v)?),
            "cursor" => raw.cursor = Some(as_str(key, v)?.to_owned()),
            "source" => raw.source = Some(as_str(key, v)?.to_owned()),
            "restore" => raw.restore = Some(as_bool(key, v)?),
            "duration" => raw.duration = Some(as_seconds(key, v)?),
            "stop-on-disconnect" => raw.stop_on_disconnect = Some(as_bool(key, v)?),
            "notify" => raw.notify = Some(as_bool(key, v)?),
            "audio" => raw.audio = Some(as_strings(key, v)?),
            "audio-codec" => raw.audio_codec = Some(as_str(key, v)?.to_owned()),
            "audio-bitrate" => raw.audio_bitrate = Some(as_uint(key, v)?),
            "replay" => raw.replay = Some(as_seconds(key, v)?),
            "replay-max-bytes" => raw.replay_max_bytes = Some(as_uint(key, v)?),
            "save-on-stop" => raw.save_on_stop = Some(as_bool(key, v)?),
            "region" => raw.region = Some(as_str(key, v)?.to_owned()),
            "size" => raw.size = Some(as_str(key, v)?.to_owned()),
            "scale" => raw.scale = Some(as_double(key, v)?),
            // A table row without a parse arm: caught by this module's tests.
            other => {
                return Err(RequestError::UnknownKey {
                    key: other.to_owned(),
                })
            }
        }
    }
    Ok(raw)
}

impl RawRequest {
    /// The request as `Start` options: what was given, each under its key with the table's
    /// D-Bus type, so the daemon's parser (the one place that validates) sees what a `busctl`
    /// caller would send. [`to_raw`] takes it back unchanged. A number that the wire type
    /// cannot carry (a negative frame rate) lies outside the option's range too: refused here
    /// with the error the daemon would give.
    pub fn to_dbus(&self) -> Result<HashMap<String, OwnedValue>, RequestError> {
        let mut m: HashMap<String, OwnedValue> = HashMap::new();
        let mut put = |k: &str, v: Value<'_>| {
            // Only basic types here, which always convert.
            m.insert(k.to_owned(), v.try_to_owned().expect("basic value"));
        };
        let strings = [
            ("path", &self.path),
            ("container", &self.container),
            ("codec", &self.codec),
            ("encoder", &self.encoder),
            ("cursor", &self.cursor),
            ("source", &self.source),
            ("audio-codec", &self.audio_codec),
            ("region", &self.region),
            ("size", &self.size),
        ];
        for (k, v) in strings {
            if let Some(v) = v {
                put(k, Value::from(v.as_str()));
            }
        }
        let bools = [
            ("overwrite", self.overwrite),
            ("restore", self.restore),
            ("stop-on-disconnect", self.stop_on_disconnect),
            ("notify", self.notify),
            ("save-on-stop", self.save_on_stop),
        ];
        for (k, v) in bools {
            if let Some(v) = v {
                put(k, Value::from(v));
            }
        }
        let numbers = [
            ("framerate", self.framerate),
            ("bitrate", self.bitrate),
            ("quality", self.quality),
            ("audio-bitrate", self.audio_bitrate),
            ("replay-max-bytes", self.replay_max_bytes),
        ];
        for (k, v) in numbers {
            let Some(n) = v else { continue };
            let option = crate::options::spec(k);
            let out_of_range = || RequestError::OutOfRange {
                option,
                got: Number::Int(n),
            };
            let v = match option.signature {
                "u" => Value::from(u32::try_from(n).map_err(|_| out_of_range())?),
                _ => Value::from(u64::try_from(n).map_err(|_| out_of_range())?),
            };
            put(k, v);
        }
        for (k, v) in [
            ("duration", self.duration),
            ("replay", self.replay),
            ("scale", self.scale),
        ] {
            if let Some(v) = v {
                put(k, Value::from(v));
            }
        }
        if let Some(a) = &self.audio {
            put("audio", Value::from(a.clone()));
        }
        Ok(m)
    }
}

/// Default name of a saved replay clip (the container's extension is added).
pub const REPLAY_NAME: &str = "zerocast-replay-%d-%t";

/// A `SaveReplay` request: where the clip goes and how much of the ring.
#[derive(Debug, Clone, PartialEq)]
pub struct SaveReplayRequest {
    pub path: std::path::PathBuf,
    /// `None`: everything the ring holds.
    pub seconds: Option<f64>,
}

/// Parses `SaveReplay` options (`path` s, `seconds` d, `overwrite` b) for a replay written as
/// `container`: the same path rules as `Start` (templates, `~/`, relative → videos folder, the
/// default name counts up, an existing file needs `overwrite`). Touches the filesystem.
pub fn parse_save_replay(
    options: &HashMap<String, OwnedValue>,
    container: zerocast_recorder::Container,
    ctx: &crate::PathContext,
) -> Result<SaveReplayRequest, RequestError> {
    parse_replay_target(options, REPLAY_NAME, true, container, ctx)
}

/// Parses `Keep` options (`path` s, `overwrite` b; default path: the recording's own, from
/// `Start`), with the same path rules.
pub fn parse_keep(
    options: &HashMap<String, OwnedValue>,
    default_path: &str,
    container: zerocast_recorder::Container,
    ctx: &crate::PathContext,
) -> Result<std::path::PathBuf, RequestError> {
    // The default is a path, not a template: a `%` in it is a `%` (found by fuzz/).
    let default = crate::path::literal(default_path);
    parse_replay_target(options, &default, false, container, ctx).map(|r| r.path)
}

fn parse_replay_target(
    options: &HashMap<String, OwnedValue>,
    default_template: &str,
    with_seconds: bool,
    container: zerocast_recorder::Container,
    ctx: &crate::PathContext,
) -> Result<SaveReplayRequest, RequestError> {
    let mut path = None;
    let mut seconds = None;
    let mut overwrite = false;
    let mut keys: Vec<&String> = options.keys().collect();
    keys.sort();
    for key in keys {
        let v = unwrap_variant(&options[key]);
        match key.as_str() {
            "path" => path = Some(as_str(key, v)?.to_owned()),
            "overwrite" => overwrite = as_bool(key, v)?,
            "seconds" if with_seconds => {
                let s = as_seconds(key, v)?;
                crate::request::seconds_in(&crate::options::SAVE_REPLAY_SECONDS, Some(s))?;
                seconds = Some(s);
            }
            other => {
                return Err(RequestError::UnknownKey {
                    key: format!(
                        "{other} (takes path{}, overwrite)",
                        if with_seconds { ", seconds" } else { "" }
                    ),
                })
            }
        }
    }
    let template = path.as_deref().unwrap_or(default_template);
    let (mut resolved, _) =
        crate::path::resolve_path(template, Some(container), ctx).map_err(|e| match e {
            // The container is the recording's, not an option of this call: name the option the
            // caller can change (found by fuzz/, target replay_options).
            crate::path::PathError::ContainerMismatch { container, ext } => RequestError::BadPath {
                reason: format!(
                    "ends in .{ext}, but the recording is {container}: \
                         use .{container} or no extension"
                ),
            },
            e => e.into(),
        })?;
    if path.is_none() {
        resolved = crate::path::first_free(resolved);
    }
    crate::path::check_writable(&resolved, overwrite, &ctx.videos_dir)?;
    Ok(SaveReplayRequest {
        path: resolved,
        seconds,
    })
}

/// The effective options, every default filled in: the `Options` property of a recording.
/// Feeding it back to [`parse_options`] yields the same request (`path` is a template that names
/// exactly the file: a `%` in it is doubled). `codec` is absent while the
/// encoder selection has not chosen it yet.
pub fn to_dbus(r: &RecordingRequest) -> HashMap<String, OwnedValue> {
    let mut m: HashMap<String, OwnedValue> = HashMap::new();
    let mut put = |k: &str, v: Value<'_>| {
        // Only basic types here, which always convert.
        m.insert(k.to_owned(), v.try_to_owned().expect("basic value"));
    };
    // A template again, naming exactly the file: `%` doubled, else a `%` in a file name made
    // the property refused when sent back, and a `%d` in one a file of another name (found by
    // fuzz/, target start_options).
    put(
        "path",
        Value::from(crate::path::literal(&r.path.to_string_lossy())),
    );
    put("overwrite", Value::from(r.overwrite));
    put("container", Value::from(r.container.as_str()));
    if let Some(c) = r.codec {
        put("codec", Value::from(c.as_str()));
    }
    put("encoder", Value::from(r.encoder.as_str()));
    if let Some(fps) = r.framerate {
        put("framerate", Value::from(fps));
    }
    match r.rate {
        RateControl::Bitrate(b) => put("bitrate", Value::from(b)),
        RateControl::Quality(q) => put("quality", Value::from(q)),
    }
    put("cursor", Value::from(r.cursor.as_str()));
    put("source", Value::from(r.source.as_str()));
    put("restore", Value::from(r.restore));
    if let Some(d) = r.duration {
        put("duration", Value::from(d.as_secs_f64()));
    }
    put("stop-on-disconnect", Value::from(r.stop_on_disconnect));
    put("notify", Value::from(r.notify));
    if let Some(l) = &r.replay {
        put("replay", Value::from(l.seconds.as_secs_f64()));
        put("replay-max-bytes", Value::from(l.max_bytes));
        put("save-on-stop", Value::from(l.save_on_stop));
    }
    if let Some(g) = &r.region {
        put("region", Value::from(g.to_string()));
    }
    match r.output_size {
        OutputSize::Native => {}
        OutputSize::Fixed { width, height } => {
            let side = |v: Option<u32>| v.map_or(String::new(), |v| v.to_string());
            put(
                "size",
                Value::from(format!("{}x{}", side(width), side(height))),
            );
        }
        OutputSize::Scale(f) => put("scale", Value::from(f)),
    }
    if let Some(a) = &r.audio {
        let tracks: Vec<String> = a.tracks.iter().map(|t| t.to_string()).collect();
        put("audio", Value::from(tracks));
        put("audio-codec", Value::from(a.codec.as_str()));
        if let Some(b) = a.bitrate {
            put("audio-bitrate", Value::from(b));
        }
    }
    m
}

/// `busctl … path v s /x` wraps once more; take the inner value.
fn unwrap_variant<'a>(v: &'a Value<'a>) -> &'a Value<'a> {
    let mut v = v;
    while let Value::Value(inner) = v {
        v = inner;
    }
    v
}

/// Human form of a D-Bus signature for error messages.
fn describe(v: &Value<'_>) -> String {
    let sig = v.value_signature().to_string();
    let name = match sig.as_str() {
        "y" => "byte",
        "b" => "boolean",
        "n" => "int16",
        "q" => "uint16",
        "i" => "int32",
        "u" => "uint32",
        "x" => "int64",
        "t" => "uint64",
        "d" => "double",
        "s" => "string",
        "o" => "object path",
        "g" => "signature",
        "h" => "file descriptor",
        _ => "",
    };
    if name.is_empty() {
        sig
    } else {
        format!("{sig} ({name})")
    }
}

fn wrong_type(key: &str, expected: &'static str, v: &Value<'_>) -> RequestError {
    RequestError::WrongType {
        key: key.to_owned(),
        expected,
        got: describe(v),
    }
}

fn as_str<'a>(key: &str, v: &'a Value<'a>) -> Result<&'a str, RequestError> {
    match v {
        Value::Str(s) => Ok(s.as_str()),
        _ => Err(wrong_type(key, "s (string)", v)),
    }
}

/// `as`; one `s` is taken as a one-element array (`busctl … audio s desktop`).
fn as_strings(key: &str, v: &Value<'_>) -> Result<Vec<String>, RequestError> {
    match v {
        Value::Str(s) => Ok(vec![s.to_string()]),
        Value::Array(a) => a
            .iter()
            .map(|x| match unwrap_variant(x) {
                Value::Str(s) => Ok(s.to_string()),
                _ => Err(wrong_type(key, "as (array of strings)", v)),
            })
            .collect(),
        _ => Err(wrong_type(key, "as (array of strings)", v)),
    }
}

fn as_bool(key: &str, v: &Value<'_>) -> Result<bool, RequestError> {
    match v {
        Value::Bool(b) => Ok(*b),
        _ => Err(wrong_type(key, "b (boolean)", v)),
    }
}

/// Any integer type, as i128 so every D-Bus integer fits.
fn as_int(v: &Value<'_>) -> Option<i128> {
    Some(match *v {
        Value::U8(x) => x.into(),
        Value::I16(x) => x.into(),
        Value::U16(x) => x.into(),
        Value::I32(x) => x.into(),
        Value::U32(x) => x.into(),
        Value::I64(x) => x.into(),
        Value::U64(x) => x.into(),
        _ => return None,
    })
}

fn as_uint(key: &str, v: &Value<'_>) -> Result<i128, RequestError> {
    as_int(v).ok_or_else(|| wrong_type(key, "u (uint32)", v))
}

/// `d`, or an integer taken as its value.
fn as_double(key: &str, v: &Value<'_>) -> Result<f64, RequestError> {
    as_f64(key, v, "d (double)")
}

fn as_seconds(key: &str, v: &Value<'_>) -> Result<f64, RequestError> {
    as_f64(key, v, "d (double, seconds)")
}

fn as_f64(key: &str, v: &Value<'_>, expected: &'static str) -> Result<f64, RequestError> {
    match (v, as_int(v)) {
        (Value::F64(d), _) => Ok(*d),
        (_, Some(n)) => Ok(n as f64),
        _ => Err(wrong_type(key, expected, v)),
    }
}

/// The capability tables as `Capabilities` entries: `codecs` as, `containers` a{sas} (each
/// container with the codecs it carries), `encoder-choices` as, `options` as (every `Start`
/// key), `ranges` a{s(dd)} (numeric options: minimum, maximum; a duration must exceed its
/// minimum).
pub fn capability_tables() -> Vec<(&'static str, OwnedValue)> {
    use crate::caps;
    let own = |v: Value<'_>| v.try_to_owned().expect("basic value");
    let strs = |v: Vec<&str>| v.into_iter().map(str::to_owned).collect::<Vec<String>>();
    let containers: HashMap<String, Vec<String>> = caps::containers()
        .into_iter()
        .map(|(c, codecs)| {
            (
                c.as_str().to_owned(),
                strs(codecs.iter().map(|c| c.as_str()).collect()),
            )
        })
        .collect();
    let ranges: HashMap<String, (f64, f64)> = caps::ranges()
        .into_iter()
        .map(|(k, r)| (k.to_owned(), (r.min, r.max)))
        .collect();
    vec![
        (
            "codecs",
            own(Value::from(strs(
                caps::codecs().iter().map(|c| c.as_str()).collect(),
            ))),
        ),
        ("containers", own(Value::from(containers))),
        (
            "encoder-choices",
            own(Value::from(strs(
                caps::encoder_choices().iter().map(|c| c.as_str()).collect(),
            ))),
        ),
        ("options", own(Value::from(strs(KEYS.to_vec())))),
        ("ranges", own(Value::from(ranges))),
    ]
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::RequestError as OptionError;
    use std::path::Path;
    use std::time::Duration;
    use zerocast_portal::{CursorMode, SourceType};
    use zerocast_recorder::{Codec, Container, EncoderChoice};

    fn ctx(dir: &Path) -> PathContext {
        PathContext {
            videos_dir: dir.join("Videos"),
            home: dir.to_owned(),
            date: "2026-08-21".into(),
            time: "14-03-59".into(),
        }
    }

    fn opts(items: &[(&str, Value<'_>)]) -> HashMap<String, OwnedValue> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.try_to_owned().unwrap()))
            .collect()
    }

    fn err(items: &[(&str, Value<'_>)]) -> OptionError {
        let dir = tempfile::tempdir().unwrap();
        parse_options_in(&opts(items), &ctx(dir.path())).unwrap_err()
    }

    #[test]
    fn raw_requests_travel_as_start_options() {
        let raw = RawRequest {
            path: Some("/v/a.mkv".into()),
            overwrite: Some(true),
            container: Some("mkv".into()),
            codec: Some("h264".into()),
            encoder: Some("software".into()),
            framerate: Some(30),
            bitrate: Some(4000),
            quality: Some(20),
            cursor: Some("hidden".into()),
            source: Some("window".into()),
            restore: Some(false),
            duration: Some(1.5),
            stop_on_disconnect: Some(true),
            notify: Some(false),
            audio: Some(vec!["desktop".into(), "mic".into()]),
            audio_codec: Some("opus".into()),
            audio_bitrate: Some(96),
            replay: Some(30.0),
            replay_max_bytes: Some(5 << 20),
            save_on_stop: Some(true),
            region: Some("10,20 640x480".into()),
            size: Some("320x".into()),
            scale: Some(0.5),
        };
        let sent = raw.to_dbus().unwrap();
        assert_eq!(to_raw(&sent).unwrap(), raw);
        // Every key the table has, with the table's type.
        let mut keys: Vec<&str> = sent.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut all = KEYS.to_vec();
        all.sort_unstable();
        assert_eq!(keys, all);
        for (k, v) in &sent {
            let signature = crate::options::spec(k).signature;
            assert_eq!(v.value_signature().to_string(), signature, "{k}");
        }
        assert!(RawRequest::default().to_dbus().unwrap().is_empty());
    }

    #[test]
    fn numbers_the_wire_cannot_carry_are_the_range_error() {
        let dir = tempfile::tempdir().unwrap();
        for raw in [
            RawRequest {
                framerate: Some(-1),
                ..RawRequest::default()
            },
            RawRequest {
                bitrate: Some(1 << 40),
                ..RawRequest::default()
            },
            RawRequest {
                replay: Some(5.0),
                replay_max_bytes: Some(-(1 << 20)),
                ..RawRequest::default()
            },
        ] {
            let resolved = raw.resolve(&ctx(dir.path())).unwrap_err();
            assert_eq!(raw.to_dbus().unwrap_err(), resolved, "{raw:?}");
        }
    }

    #[test]
    fn defaults_go_to_videos_dir_with_template() {
        let dir = tempfile::tempdir().unwrap();
        let req = parse_options_in(&HashMap::new(), &ctx(dir.path())).unwrap();
        assert_eq!(
            req.path,
            dir.path().join("Videos/zerocast-2026-08-21-14-03-59.mkv")
        );
        assert!(dir.path().join("Videos").is_dir(), "videos dir is created");
        assert!(!req.path.exists(), "the probe file is removed");
        assert_eq!(req.container, Container::Mkv);
        // The default codec depends on NVENC: chosen with the encoder, not by parsing.
        assert_eq!(req.codec, None);
        assert!(req.restore);
        assert!(!req.stop_on_disconnect);
        assert!(req.notify);
    }

    #[test]
    fn full_options_round_trip_through_to_dbus() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.mp4");
        let o = opts(&[
            ("path", Value::from(p.to_str().unwrap())),
            ("codec", Value::from("hevc")),
            ("encoder", Value::from("software")),
            ("framerate", Value::from(60u32)),
            ("bitrate", Value::from(8000u32)),
            ("cursor", Value::from("hidden")),
            ("source", Value::from("window")),
            ("restore", Value::from(false)),
            ("duration", Value::from(2.5f64)),
            ("stop-on-disconnect", Value::from(true)),
            ("notify", Value::from(false)),
        ]);
        let req = parse_options_in(&o, &ctx(dir.path())).unwrap();
        assert_eq!(req.path, p);
        assert_eq!(req.container, Container::Mp4);
        assert_eq!(req.codec, Some(Codec::Hevc));
        assert_eq!(req.encoder, EncoderChoice::Software);
        assert_eq!(req.framerate, Some(60));
        assert_eq!(req.rate, RateControl::Bitrate(8000));
        assert_eq!(req.duration, Some(Duration::from_millis(2500)));
        assert_eq!(req.cursor, CursorMode::Hidden);
        assert_eq!(req.source, SourceType::Window);
        assert!(!req.restore);
        assert!(req.stop_on_disconnect);
        assert!(!req.notify);
        let again = parse_options_in(&to_dbus(&req), &ctx(dir.path())).unwrap();
        assert_eq!(to_dbus(&again), to_dbus(&req));
    }

    #[test]
    fn each_failure_names_its_key() {
        let e = err(&[("fps", Value::from(30u32))]);
        assert_eq!(e.key(), "fps");
        assert!(e.to_string().starts_with("unknown option 'fps'"), "{e}");

        let e = err(&[("framerate", Value::from("60"))]);
        assert_eq!(
            e.to_string(),
            "'framerate' must be u (uint32), got s (string)"
        );

        for bad in [Value::from(0u32), Value::from(-5i32), Value::from(5000u32)] {
            let e = err(&[("framerate", bad)]);
            assert_eq!(e.key(), "framerate", "{e}");
            assert!(matches!(e, OptionError::OutOfRange { .. }), "{e}");
        }
        // Any integer type is fine when it fits.
        let dir = tempfile::tempdir().unwrap();
        let ok = parse_options_in(
            &opts(&[("framerate", Value::from(30i32))]),
            &ctx(dir.path()),
        );
        assert_eq!(ok.unwrap().framerate, Some(30));

        assert_eq!(err(&[("codec", Value::from("h266"))]).key(), "codec");
        assert_eq!(err(&[("encoder", Value::from("vaapi"))]).key(), "encoder");
        assert_eq!(err(&[("cursor", Value::from(true))]).key(), "cursor");
        // A valid portal mode we cannot record yet is refused by name, not silently dropped.
        let e = err(&[("cursor", Value::from("metadata"))]);
        assert_eq!(e.key(), "cursor");
        assert!(e.to_string().contains("embedded"), "{e}");
        assert_eq!(err(&[("restore", Value::from("yes"))]).key(), "restore");
        assert_eq!(err(&[("duration", Value::from(0.0f64))]).key(), "duration");
        assert_eq!(
            err(&[("duration", Value::from(f64::NAN))]).key(),
            "duration"
        );
        assert_eq!(err(&[("duration", Value::from(-1.0f64))]).key(), "duration");
        assert_eq!(
            err(&[("duration", Value::from(1e300f64))]).key(),
            "duration"
        );
        let e = err(&[
            ("bitrate", Value::from(100u32)),
            ("quality", Value::from(20u32)),
        ]);
        assert!(matches!(e, OptionError::Conflict { .. }), "{e}");
        assert_eq!(
            err(&[
                ("path", Value::from("/tmp/a.mp4")),
                ("container", Value::from("mkv"))
            ])
            .key(),
            "container"
        );
        assert_eq!(err(&[("path", Value::from("/tmp/a.avi"))]).key(), "path");
        assert_eq!(err(&[("path", Value::from("a-%x"))]).key(), "path");
        assert_eq!(err(&[("path", Value::from(""))]).key(), "path");
        assert_eq!(
            err(&[
                ("path", Value::from("/tmp/a.webm")),
                ("codec", Value::from("h264"))
            ])
            .key(),
            "codec"
        );
    }

    #[test]
    fn unwritable_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let c = ctx(dir.path());
        let missing = dir.path().join("no/such/dir/a.mkv");
        let e = parse_options_in(
            &opts(&[("path", Value::from(missing.to_str().unwrap()))]),
            &c,
        )
        .unwrap_err();
        assert!(matches!(e, OptionError::NotWritable { .. }), "{e}");
        assert!(e.to_string().contains("does not exist"), "{e}");

        let as_dir = dir.path().join("d.mkv");
        std::fs::create_dir(&as_dir).unwrap();
        let e = parse_options_in(
            &opts(&[("path", Value::from(as_dir.to_str().unwrap()))]),
            &c,
        )
        .unwrap_err();
        assert!(matches!(e, OptionError::NotWritable { .. }), "{e}");

        let e =
            parse_options_in(&opts(&[("path", Value::from(unwritable_path()))]), &c).unwrap_err();
        assert!(matches!(e, OptionError::NotWritable { .. }), "{e}");
    }

    #[test]
    fn percent_in_a_file_name_survives_options_and_keep() {
        let dir = tempfile::tempdir().unwrap();
        let c = ctx(dir.path());
        let req = parse_options_in(&opts(&[("path", Value::from("100%%-%%d"))]), &c).unwrap();
        assert_eq!(req.path, c.videos_dir.join("100%-%d.mkv"));
        let options = to_dbus(&req);
        let again = parse_options_in(&options, &c).unwrap();
        assert_eq!(again.path, req.path);
        let kept = parse_keep(
            &HashMap::new(),
            &req.path.to_string_lossy(),
            Container::Mkv,
            &c,
        );
        assert_eq!(kept.unwrap(), req.path);
    }

    #[test]
    fn seconds_that_round_to_zero_are_refused() {
        for key in ["duration", "replay"] {
            let e = err(&[(key, Value::from(1e-300f64))]);
            assert!(matches!(e, OptionError::OutOfRange { .. }), "{key}: {e}");
            assert_eq!(e.key(), key);
        }
        // One nanosecond is the shortest that stays a duration.
        let dir = tempfile::tempdir().unwrap();
        let req = parse_options_in(
            &opts(&[("duration", Value::from(1e-9f64))]),
            &ctx(dir.path()),
        );
        assert_eq!(req.unwrap().duration, Some(Duration::from_nanos(1)));
    }

    #[test]
    fn replay_path_of_another_container_names_path() {
        let dir = tempfile::tempdir().unwrap();
        let o = opts(&[("path", Value::from("clip.mkv"))]);
        let e = parse_save_replay(&o, Container::Webm, &ctx(dir.path())).unwrap_err();
        assert_eq!(e.key(), "path", "{e}");
        assert_eq!(
            e.to_string(),
            "'path' ends in .mkv, but the recording is webm: use .webm or no extension"
        );
        let e = parse_keep(&o, "rec.webm", Container::Webm, &ctx(dir.path())).unwrap_err();
        assert_eq!(e.key(), "path", "{e}");
    }

    /// A path that cannot be created even by root: sysfs refuses new files.
    pub(crate) fn unwritable_path() -> &'static str {
        "/sys/zerocast-test.mkv"
    }
}
