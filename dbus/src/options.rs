//! The `Start(a{sv})` options: parsed and validated here and nowhere else, so every front end
//! (D-Bus, `zerocast ctl`) rejects the same input with the same words, and every rejection names
//! the offending key.
//!
//! Integer options accept any D-Bus integer type whose value fits (`busctl … framerate i 60`
//! is as good as `u 60`): scripts should not fail over a signedness detail, and a negative value
//! then gets a range error that says what is wrong instead of a type error.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use zbus::zvariant::{OwnedValue, Value};
use zerocast_portal::{CursorMode, SourceOptions, SourceType};
use zerocast_recorder::{Codec, Container, EncoderChoice, RateControl, RecordingOptions};

/// Every key `Start` understands, in the order the docs list them.
pub const KEYS: &[&str] = &[
    "path",
    "container",
    "codec",
    "encoder",
    "framerate",
    "bitrate",
    "quality",
    "cursor",
    "source",
    "restore",
    "duration",
    "stop-on-disconnect",
    "notify",
];

/// Upper bounds that keep values meaningful and arithmetic safe (e.g. `Duration::from_secs_f64`
/// panics on huge values).
const MAX_FRAMERATE: u32 = 1000;
const MAX_BITRATE_KBPS: u32 = 1_000_000;
/// The largest CRF/CQ scale of the codecs we support (AV1: 0–63).
const MAX_QUALITY: u32 = 63;
/// One year: long enough for any recording, small enough for `Duration`.
const MAX_DURATION_S: f64 = 365.0 * 24.0 * 3600.0;

/// A validated `Start` request: what to ask the portal for and what to tell the recorder.
#[derive(Debug, Clone)]
pub struct StartRequest {
    pub recording: RecordingOptions,
    pub source: SourceOptions,
    /// Stop (and finalize) when the D-Bus client that called `Start` leaves the bus.
    pub stop_on_disconnect: bool,
    /// A desktop notification when the recording ends (saved or failed).
    pub notify: bool,
}

impl StartRequest {
    /// The effective options, every default filled in: the `Options` property of a recording.
    /// Feeding it back to [`parse_options`] yields the same request.
    pub fn to_dbus(&self) -> HashMap<String, OwnedValue> {
        let r = &self.recording;
        let mut m: HashMap<String, OwnedValue> = HashMap::new();
        let mut put = |k: &str, v: Value<'_>| {
            // Only basic types here, which always convert.
            m.insert(k.to_owned(), v.try_to_owned().expect("basic value"));
        };
        put("path", Value::from(r.path.to_string_lossy().into_owned()));
        put("container", Value::from(r.container.as_str()));
        put("codec", Value::from(r.codec.as_str()));
        put("encoder", Value::from(r.encoder.as_str()));
        if let Some(fps) = r.max_fps {
            put("framerate", Value::from(fps));
        }
        match r.rate {
            RateControl::Bitrate(b) => put("bitrate", Value::from(b)),
            RateControl::Quality(q) => put("quality", Value::from(q)),
        }
        put("cursor", Value::from(self.source.cursor.as_str()));
        put("source", Value::from(self.source.source.as_str()));
        put("restore", Value::from(self.source.restore));
        if let Some(d) = r.duration {
            put("duration", Value::from(d.as_secs_f64()));
        }
        put("stop-on-disconnect", Value::from(self.stop_on_disconnect));
        put("notify", Value::from(self.notify));
        m
    }
}

/// Why `cursor=metadata` is refused (the CLI says the same).
pub const METADATA_CURSOR: &str = "metadata is not supported yet: the compositor would send the \
pointer beside the frames and it would be missing from the recording; use embedded or hidden";

/// Why an options dict was rejected. Every variant names the key; `Display` is the message the
/// D-Bus error carries.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OptionError {
    #[error("unknown option '{key}' (known: {})", KEYS.join(", "))]
    UnknownKey { key: String },
    #[error("'{key}' must be {expected}, got {got}")]
    WrongType {
        key: String,
        expected: &'static str,
        got: String,
    },
    #[error("'{key}' {reason}")]
    InvalidValue { key: String, reason: String },
    #[error("'{key}' cannot be combined with '{other}'")]
    Conflict { key: String, other: String },
    /// The output cannot be created; a separate D-Bus error (`OutputNotWritable`).
    #[error("'path' {path}: {reason}")]
    NotWritable { path: PathBuf, reason: String },
}

impl OptionError {
    /// The option the error is about.
    pub fn key(&self) -> &str {
        match self {
            OptionError::UnknownKey { key }
            | OptionError::WrongType { key, .. }
            | OptionError::InvalidValue { key, .. }
            | OptionError::Conflict { key, .. } => key,
            OptionError::NotWritable { .. } => "path",
        }
    }

    fn invalid(key: &str, reason: impl Into<String>) -> Self {
        OptionError::InvalidValue {
            key: key.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Where relative paths go and what `%d`/`%t` expand to. Separate from the process
/// environment so the parser is testable.
#[derive(Debug, Clone)]
pub struct PathContext {
    /// Base of relative paths; created if missing (it is the user's videos folder).
    pub videos_dir: PathBuf,
    /// For a leading `~/`.
    pub home: PathBuf,
    /// `%d`, e.g. `2026-08-21`.
    pub date: String,
    /// `%t`, e.g. `14-03-59` (no colons: they upset file managers and other OSes).
    pub time: String,
}

impl PathContext {
    /// Videos folder from `$XDG_VIDEOS_DIR`, xdg-user-dirs' `user-dirs.dirs`, else `~/Videos`;
    /// date and time from the local clock.
    pub fn from_env() -> Self {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| "/".into());
        let videos_dir = videos_dir(&home);
        let (date, time) = local_date_time();
        PathContext {
            videos_dir,
            home,
            date,
            time,
        }
    }
}

/// Parses and validates `Start` options against the current environment, including a check
/// that the output file can be created. Touches the filesystem: call it off the async executor.
pub fn parse_options(opts: &HashMap<String, OwnedValue>) -> Result<StartRequest, OptionError> {
    parse_options_in(opts, &PathContext::from_env())
}

/// [`parse_options`] with an explicit [`PathContext`].
pub fn parse_options_in(
    opts: &HashMap<String, OwnedValue>,
    ctx: &PathContext,
) -> Result<StartRequest, OptionError> {
    // Report unknown keys first and deterministically (HashMap order is random).
    let mut unknown: Vec<&String> = opts
        .keys()
        .filter(|k| !KEYS.contains(&k.as_str()))
        .collect();
    unknown.sort();
    if let Some(key) = unknown.first() {
        return Err(OptionError::UnknownKey {
            key: (*key).clone(),
        });
    }
    let get = |k: &str| opts.get(k).map(|v| unwrap_variant(v));

    let path_template = get("path").map(|v| as_str("path", v)).transpose()?;
    let container = get("container")
        .map(|v| as_enum::<Container>("container", v, "mkv, mp4, webm"))
        .transpose()?;
    let codec = get("codec")
        .map(|v| as_enum::<Codec>("codec", v, "h264, hevc, av1, vp9"))
        .transpose()?;
    let encoder = get("encoder")
        .map(|v| as_enum::<EncoderChoice>("encoder", v, "auto, nvenc, software"))
        .transpose()?
        .unwrap_or_default();
    let framerate = get("framerate")
        .map(|v| as_uint("framerate", v, 1, MAX_FRAMERATE))
        .transpose()?;
    let bitrate = get("bitrate")
        .map(|v| as_uint("bitrate", v, 1, MAX_BITRATE_KBPS))
        .transpose()?;
    let quality = get("quality")
        .map(|v| as_uint("quality", v, 0, MAX_QUALITY))
        .transpose()?;
    let cursor = get("cursor")
        .map(|v| as_enum::<CursorMode>("cursor", v, "hidden, embedded, metadata"))
        .transpose()?
        .unwrap_or_default();
    if cursor == CursorMode::Metadata {
        return Err(OptionError::invalid("cursor", METADATA_CURSOR));
    }
    let source = get("source")
        .map(|v| as_enum::<SourceType>("source", v, "monitor, window, virtual"))
        .transpose()?
        .unwrap_or_default();
    let restore = get("restore")
        .map(|v| as_bool("restore", v))
        .transpose()?
        .unwrap_or(true);
    let duration = get("duration")
        .map(|v| as_duration("duration", v))
        .transpose()?;
    let stop_on_disconnect = get("stop-on-disconnect")
        .map(|v| as_bool("stop-on-disconnect", v))
        .transpose()?
        .unwrap_or(false);
    let notify = get("notify")
        .map(|v| as_bool("notify", v))
        .transpose()?
        .unwrap_or(true);

    let rate = match (bitrate, quality) {
        (Some(_), Some(_)) => {
            return Err(OptionError::Conflict {
                key: "quality".into(),
                other: "bitrate".into(),
            })
        }
        (Some(b), None) => RateControl::Bitrate(b),
        (None, Some(q)) => RateControl::Quality(q),
        (None, None) => RateControl::default(),
    };

    let template = path_template.unwrap_or("zerocast-%d-%t");
    let (path, container) = resolve_path(template, container, ctx)?;
    let codec =
        codec.unwrap_or_else(|| zerocast_recorder::encode::default_codec(container, encoder));
    if !container.supports(codec) {
        return Err(OptionError::invalid(
            "codec",
            format!("{codec} cannot be stored in {container} (webm takes vp9 or av1)"),
        ));
    }
    check_writable(&path, &ctx.videos_dir)?;

    let mut recording = RecordingOptions::new(path);
    recording.container = container;
    recording.codec = codec;
    recording.encoder = encoder;
    recording.max_fps = framerate;
    recording.rate = rate;
    recording.duration = duration;
    Ok(StartRequest {
        recording,
        source: SourceOptions {
            source,
            cursor,
            restore,
        },
        stop_on_disconnect,
        notify,
    })
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

fn wrong_type(key: &str, expected: &'static str, v: &Value<'_>) -> OptionError {
    OptionError::WrongType {
        key: key.to_owned(),
        expected,
        got: describe(v),
    }
}

fn as_str<'a>(key: &str, v: &'a Value<'a>) -> Result<&'a str, OptionError> {
    match v {
        Value::Str(s) => Ok(s.as_str()),
        _ => Err(wrong_type(key, "s (string)", v)),
    }
}

fn as_bool(key: &str, v: &Value<'_>) -> Result<bool, OptionError> {
    match v {
        Value::Bool(b) => Ok(*b),
        _ => Err(wrong_type(key, "b (boolean)", v)),
    }
}

fn as_enum<T>(key: &str, v: &Value<'_>, choices: &str) -> Result<T, OptionError>
where
    T: std::str::FromStr,
{
    let s = as_str(key, v)?;
    s.parse::<T>()
        .map_err(|_| OptionError::invalid(key, format!("must be one of {choices}, got '{s}'")))
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

fn as_uint(key: &str, v: &Value<'_>, min: u32, max: u32) -> Result<u32, OptionError> {
    let n = as_int(v).ok_or_else(|| wrong_type(key, "u (uint32)", v))?;
    if n < i128::from(min) || n > i128::from(max) {
        let lower = if min == 0 {
            ">= 0".to_string()
        } else {
            format!("> {}", min - 1)
        };
        return Err(OptionError::invalid(
            key,
            format!("must be {lower} and <= {max}, got {n}"),
        ));
    }
    Ok(n as u32)
}

fn as_duration(key: &str, v: &Value<'_>) -> Result<Duration, OptionError> {
    let secs = match (v, as_int(v)) {
        (Value::F64(d), _) => *d,
        (_, Some(n)) => n as f64,
        _ => return Err(wrong_type(key, "d (double, seconds)", v)),
    };
    // NaN fails both comparisons, so it lands here too.
    if !(secs > 0.0 && secs <= MAX_DURATION_S) {
        return Err(OptionError::invalid(
            key,
            format!("must be > 0 and <= {MAX_DURATION_S} seconds, got {secs}"),
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Expands the template and settles the container: the extension decides unless `container`
/// is given; a missing extension is added.
fn resolve_path(
    template: &str,
    container: Option<Container>,
    ctx: &PathContext,
) -> Result<(PathBuf, Container), OptionError> {
    if template.is_empty() {
        return Err(OptionError::invalid("path", "must not be empty"));
    }
    let mut expanded = String::with_capacity(template.len() + 16);
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            expanded.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => expanded.push_str(&ctx.date),
            Some('t') => expanded.push_str(&ctx.time),
            Some('%') => expanded.push('%'),
            other => {
                let seq = other
                    .map(|c| format!("%{c}"))
                    .unwrap_or_else(|| "a trailing %".into());
                return Err(OptionError::invalid(
                    "path",
                    format!("has {seq}; the template knows %d (date), %t (time) and %%"),
                ));
            }
        }
    }
    let mut path = if let Some(rest) = expanded.strip_prefix("~/") {
        ctx.home.join(rest)
    } else {
        let p = PathBuf::from(&expanded);
        if p.is_absolute() {
            p
        } else {
            ctx.videos_dir.join(p)
        }
    };
    if expanded.ends_with('/') || path.file_name().is_none() {
        return Err(OptionError::invalid(
            "path",
            "must name a file, not a directory",
        ));
    }

    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_owned);
    let from_ext = Container::from_path(&path);
    let container = match (ext, from_ext, container) {
        (None, _, c) => {
            let c = c.unwrap_or(Container::Mkv);
            let mut name = path.file_name().expect("checked above").to_os_string();
            name.push(".");
            name.push(c.as_str());
            path.set_file_name(name);
            c
        }
        (Some(_), Some(e), None) => e,
        (Some(_), Some(e), Some(c)) if e == c => c,
        (Some(ext), Some(_), Some(c)) => {
            return Err(OptionError::invalid(
                "container",
                format!("is {c} but the path ends in .{ext}"),
            ))
        }
        (Some(ext), None, _) => {
            return Err(OptionError::invalid(
                "path",
                format!("has extension .{ext}; use .mkv, .mp4, .webm or none"),
            ))
        }
    };
    Ok((path, container))
}

/// Fails now, before a portal dialog, if the output cannot be created. Creates the videos
/// folder itself if missing (like other recorders do), but no other directory: a typo in a
/// directory name should be an error, not a new folder.
fn check_writable(path: &Path, videos_dir: &Path) -> Result<(), OptionError> {
    let not_writable = |reason: String| OptionError::NotWritable {
        path: path.to_owned(),
        reason,
    };
    let dir = path.parent().unwrap_or(Path::new("/"));
    if dir == videos_dir && !dir.exists() {
        std::fs::create_dir_all(dir)
            .map_err(|e| not_writable(format!("cannot create {}: {e}", dir.display())))?;
    }
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(not_writable(format!(
                "{} is not a directory",
                dir.display()
            )))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(not_writable(format!(
                "directory {} does not exist",
                dir.display()
            )))
        }
        Err(e) => return Err(not_writable(format!("{}: {e}", dir.display()))),
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Err(not_writable("is a directory".into())),
        // A FIFO or device would block or misbehave; refuse anything but a plain file.
        Ok(m) if !m.is_file() => Err(not_writable("exists and is not a regular file".into())),
        // Existing file: opening for write without truncating proves we may replace it.
        Ok(_) => OpenOptions::new()
            .write(true)
            .open(path)
            .map(drop)
            .map_err(|e| not_writable(e.to_string())),
        // Create and remove it: the only check that is right for ACLs, read-only mounts and
        // root alike (access(2) says yes to root on a read-only sysfs).
        Err(_) => match OpenOptions::new().write(true).create_new(true).open(path) {
            Ok(f) => {
                drop(f);
                let _ = std::fs::remove_file(path);
                Ok(())
            }
            Err(e) => Err(not_writable(e.to_string())),
        },
    }
}

/// `$XDG_VIDEOS_DIR`, else the `XDG_VIDEOS_DIR=` line of `$XDG_CONFIG_HOME/user-dirs.dirs`,
/// else `~/Videos`.
pub fn videos_dir(home: &Path) -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_VIDEOS_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".config"));
    if let Ok(text) = std::fs::read_to_string(config.join("user-dirs.dirs")) {
        if let Some(d) = parse_user_dirs(&text, home) {
            return d;
        }
    }
    home.join("Videos")
}

/// The shell-like format xdg-user-dirs writes: `XDG_VIDEOS_DIR="$HOME/Videos"`.
fn parse_user_dirs(text: &str, home: &Path) -> Option<PathBuf> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("XDG_VIDEOS_DIR="))?;
    let value = line["XDG_VIDEOS_DIR=".len()..].trim_matches('"');
    let path = if let Some(rest) = value.strip_prefix("$HOME") {
        let mut s = home.as_os_str().to_owned();
        s.push(rest);
        PathBuf::from(s)
    } else {
        PathBuf::from(value)
    };
    // xdg-user-dirs uses "$HOME/" to mean "disabled"; fall back then.
    (path.is_absolute() && path != home).then_some(path)
}

fn local_date_time() -> (String, String) {
    // SAFETY: time(NULL) has no preconditions; localtime_r writes only into `tm`, which is a
    // plain C struct for which all-zero is a valid value.
    unsafe {
        let t = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return ("0000-00-00".into(), "00-00-00".into());
        }
        (
            format!(
                "{:04}-{:02}-{:02}",
                tm.tm_year + 1900,
                tm.tm_mon + 1,
                tm.tm_mday
            ),
            format!("{:02}-{:02}-{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn defaults_go_to_videos_dir_with_template() {
        let dir = tempfile::tempdir().unwrap();
        let req = parse_options_in(&HashMap::new(), &ctx(dir.path())).unwrap();
        assert_eq!(
            req.recording.path,
            dir.path().join("Videos/zerocast-2026-08-21-14-03-59.mkv")
        );
        assert!(dir.path().join("Videos").is_dir(), "videos dir is created");
        assert!(!req.recording.path.exists(), "the probe file is removed");
        assert_eq!(req.recording.container, Container::Mkv);
        assert_eq!(req.recording.codec, Codec::H264);
        assert!(req.source.restore);
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
        assert_eq!(req.recording.path, p);
        assert_eq!(req.recording.container, Container::Mp4);
        assert_eq!(req.recording.codec, Codec::Hevc);
        assert_eq!(req.recording.encoder, EncoderChoice::Software);
        assert_eq!(req.recording.max_fps, Some(60));
        assert_eq!(req.recording.rate, RateControl::Bitrate(8000));
        assert_eq!(req.recording.duration, Some(Duration::from_millis(2500)));
        assert_eq!(req.source.cursor, CursorMode::Hidden);
        assert_eq!(req.source.source, SourceType::Window);
        assert!(!req.source.restore);
        assert!(req.stop_on_disconnect);
        assert!(!req.notify);
        let again = parse_options_in(&req.to_dbus(), &ctx(dir.path())).unwrap();
        assert_eq!(again.to_dbus(), req.to_dbus());
    }

    #[test]
    fn template_expansion_and_extension() {
        let dir = tempfile::tempdir().unwrap();
        let c = ctx(dir.path());
        let (p, k) = resolve_path("rec-%d_%t%%", Some(Container::Webm), &c).unwrap();
        assert_eq!(p, c.videos_dir.join("rec-2026-08-21_14-03-59%.webm"));
        assert_eq!(k, Container::Webm);
        let (p, _) = resolve_path("~/x.mkv", None, &c).unwrap();
        assert_eq!(p, dir.path().join("x.mkv"));
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
            assert!(matches!(e, OptionError::InvalidValue { .. }), "{e}");
        }
        // Any integer type is fine when it fits.
        let dir = tempfile::tempdir().unwrap();
        let ok = parse_options_in(
            &opts(&[("framerate", Value::from(30i32))]),
            &ctx(dir.path()),
        );
        assert_eq!(ok.unwrap().recording.max_fps, Some(30));

        assert_eq!(err(&[("codec", Value::from("h266"))]).key(), "codec");
        assert_eq!(err(&[("encoder", Value::from("vaapi"))]).key(), "encoder");
        assert_eq!(err(&[("cursor", Value::from(true))]).key(), "cursor");
        // A valid portal mode we cannot record yet is refused by name, not silently dropped.
        let e = err(&[("cursor", Value::from("metadata"))]);
        assert_eq!(e.key(), "cursor");
        assert!(e.to_string().contains("embedded"), "{e}");
        assert_eq!(err(&[("restore", Value::from("yes"))]).key(), "restore");
        assert_eq!(err(&[("notify", Value::from(1u32))]).key(), "notify");
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

    /// A path that cannot be created even by root: sysfs refuses new files.
    pub(crate) fn unwritable_path() -> &'static str {
        "/sys/zerocast-test.mkv"
    }

    #[test]
    fn user_dirs_file() {
        let home = Path::new("/home/u");
        let text = "# comment\nXDG_DESKTOP_DIR=\"$HOME/Desktop\"\nXDG_VIDEOS_DIR=\"$HOME/Filme\"\n";
        assert_eq!(
            parse_user_dirs(text, home),
            Some(PathBuf::from("/home/u/Filme"))
        );
        assert_eq!(parse_user_dirs("XDG_VIDEOS_DIR=\"$HOME/\"", home), None);
        assert_eq!(
            parse_user_dirs("XDG_VIDEOS_DIR=\"/v\"", home),
            Some(PathBuf::from("/v"))
        );
    }
}
