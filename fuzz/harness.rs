//! The fuzz harness: fuzz bytes → parser input, the parser, and the invariants it must keep.
//!
//! One file, included with `#[path]` by the `cargo fuzz` targets (fuzz/fuzz_targets/) and by
//! app/tests/fuzz_corpus.rs, which replays every corpus file on the stable toolchain: the
//! corpus keeps being exercised by the normal `cargo test`, with the same assertions.
//!
//! Each function panics when an invariant breaks (that is how libFuzzer sees a failure).

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use zbus::zvariant::serialized::{Context, Data};
use zbus::zvariant::{OwnedValue, Value, LE};
use zerocast_app::dbus::{parse_keep, parse_options_in, parse_save_replay, to_dbus, to_raw};
use zerocast_app::options::Surface;
use zerocast_app::path::{resolve_path, PathError};
use zerocast_app::{PathContext, RequestError, KEYS};
use zerocast_recorder::Container;

/// Words the parsers compare against: a byte picks one, so the fuzzer reaches valid requests
/// (and the checks behind them) without first guessing `"webm"` letter by letter.
const WORDS: &[&str] = &[
    "mkv",
    "mp4",
    "webm",
    "m4v",
    "MKV",
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
    "desktop",
    "mic",
    "desktop+mic",
    "app:firefox",
    "node:42",
    "opus",
    "aac",
    "flac",
    "a.mkv",
    "b.mp4",
    "c.webm",
    "d",
    "%d-%t.mkv",
    "%x",
    "%",
    "%%",
    "~/e.mkv",
    "f/",
    "",
    "g.avi",
    "/h.mkv",
    ".",
    "..",
    "./",
    "~/",
    "x/.",
    "100,50 640x360",
    "0,0,1x1",
    "-10,-20 30x40",
    "1280x720",
    "1280x",
    "x720",
    "3x3",
    "0x0",
    " 2x2 ",
    "seconds",
    "path",
    "overwrite",
    "1e309",
    "-0",
];

/// Reads fuzz bytes as a sequence of small decisions; past the end every read is 0, so any
/// input decodes to something.
pub struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Bytes(data)
    }

    fn byte(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        b
    }

    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for b in &mut out {
            *b = self.byte();
        }
        out
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }

    /// A word from [`WORDS`], raw bytes, or a word with raw bytes after it.
    fn string(&mut self) -> String {
        let sel = self.byte();
        let word = || WORDS[sel as usize % WORDS.len()];
        let raw = |b: &mut Self| {
            let n = b.byte() as usize % 32;
            let bytes: Vec<u8> = (0..n).map(|_| b.byte()).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        };
        match sel >> 6 {
            0 | 1 => word().to_owned(),
            2 => raw(self),
            _ => format!("{}{}", word(), raw(self)),
        }
    }

    fn key(&mut self, keys: &[&str]) -> String {
        let sel = self.byte();
        if sel < 224 {
            keys[sel as usize % keys.len()].to_owned()
        } else {
            self.string()
        }
    }

    /// Any value a D-Bus caller could send in an `a{sv}`, variants inside variants included.
    fn value(&mut self, depth: u8) -> Value<'static> {
        match self.byte() % 16 {
            0 => Value::from(self.byte() & 1 == 1),
            1 => Value::from(self.byte()),
            2 => Value::from(i16::from_le_bytes(self.take())),
            3 => Value::from(u16::from_le_bytes(self.take())),
            4 => Value::from(i32::from_le_bytes(self.take())),
            // Small numbers land in the options' ranges (frame rate, quality, seconds).
            5 | 6 => Value::from(u32::from(self.byte())),
            7 => Value::from(u32::from_le_bytes(self.take())),
            8 => Value::from(i64::from_le_bytes(self.take())),
            9 => Value::from(u64::from_le_bytes(self.take())),
            10 => Value::from(f64::from_le_bytes(self.take())),
            11 => Value::from(f64::from(self.byte()) / 4.0),
            12 | 13 => Value::from(self.string()),
            14 => {
                let n = self.byte() % 4;
                Value::from((0..n).map(|_| self.string()).collect::<Vec<String>>())
            }
            _ if depth < 3 => Value::Value(Box::new(self.value(depth + 1))),
            _ => Value::from(vec![u32::from(self.byte())]),
        }
    }

    /// An `a{sv}`: either built entry by entry (first byte even), or the remaining bytes read
    /// as a D-Bus-serialized `a{sv}` (odd; most are refused by zvariant, the rest reach the
    /// parser with whatever types the wire allows). Keys come mostly from `keys`.
    pub fn dict(&mut self, keys: &[&str]) -> Option<HashMap<String, OwnedValue>> {
        if self.byte() & 1 == 1 {
            let data = Data::new(self.rest(), Context::new_dbus(LE, 0));
            return data
                .deserialize::<HashMap<String, OwnedValue>>()
                .ok()
                .map(|(d, _)| d);
        }
        let n = self.byte() % 10;
        let mut d = HashMap::new();
        for _ in 0..n {
            let k = self.key(keys);
            let v = self.value(0);
            d.insert(k, v.try_to_owned().expect("no fds"));
        }
        Some(d)
    }
}

/// A fresh `PathContext` in `dir`: the videos folder and home are inside it.
pub fn context(dir: &Path) -> PathContext {
    PathContext {
        videos_dir: dir.join("Videos"),
        home: dir.to_owned(),
        date: "2026-08-21".into(),
        time: "14-03-59".into(),
    }
}

/// The parsers create (and remove) a probe file where the output would go, and create the
/// videos folder: keep every `path` inside `dir` so the fuzzer never writes elsewhere. An
/// absolute path moves under `dir`; `..` becomes `__` (path_template covers `..` without
/// touching the disk).
fn confine(v: &Value<'_>, dir: &Path) -> Value<'static> {
    match v {
        Value::Value(inner) => Value::Value(Box::new(confine(inner, dir))),
        Value::Str(s) => {
            let s = s.as_str().replace("..", "__");
            let s = if s.starts_with('/') {
                format!("{}{s}", dir.display())
            } else {
                s
            };
            Value::from(s)
        }
        other => other.try_to_owned().expect("no fds").into(),
    }
}

fn confine_paths(d: &mut HashMap<String, OwnedValue>, dir: &Path) {
    if let Some(v) = d.get_mut("path") {
        *v = confine(v, dir).try_to_owned().expect("no fds");
    }
}

/// Every rejection can be acted on: it names a key the caller sent (or, for an unknown key,
/// exactly that key), quotes it in the message, and renders on both surfaces.
fn check_rejection(e: &RequestError, d: &HashMap<String, OwnedValue>) {
    let key = e.key();
    assert!(
        d.contains_key(key),
        "{e} names {key:?}, not in {:?}",
        d.keys()
    );
    let msg = e.to_string();
    assert!(msg.contains(&format!("'{key}'")), "not quoted: {msg}");
    if let RequestError::UnknownKey { .. } = e {
        assert!(!KEYS.contains(&key), "{key} is a known key");
    }
    let _ = e.render(Surface::Cli);
    let _ = e.render(Surface::Dbus);
}

/// `Start(a{sv})`: the options parser never panics; a rejection names a key that was sent; an
/// accepted request writes inside the folder it was given, leaves no probe file behind, has a
/// file extension that is its container's, and its `Options` property (`to_dbus`) parses back
/// to the same request. The raw options travel as `Start` options unchanged (`ctl start`).
pub fn start_options(data: &[u8], dir: &Path) {
    let Some(mut d) = Bytes::new(data).dict(KEYS) else {
        return;
    };
    confine_paths(&mut d, dir);
    let ctx = context(dir);
    if let Ok(raw) = to_raw(&d) {
        if let Ok(sent) = raw.to_dbus() {
            // Debug form: NaN is not equal to itself, but prints the same.
            let back = to_raw(&sent).expect("to_dbus output is valid for to_raw");
            assert_eq!(format!("{back:?}"), format!("{raw:?}"));
        }
    }
    match parse_options_in(&d, &ctx) {
        Ok(req) => {
            assert!(req.path.starts_with(dir), "{} escapes", req.path.display());
            assert!(!req.path.exists(), "probe left at {}", req.path.display());
            assert_eq!(Container::from_path(&req.path), Some(req.container));
            let options = to_dbus(&req);
            let again = parse_options_in(&options, &ctx)
                .unwrap_or_else(|e| panic!("Options property {options:?} refused: {e}"));
            assert_eq!(
                to_dbus(&again),
                options,
                "Options property does not round-trip"
            );
        }
        Err(e) => check_rejection(&e, &d),
    }
}

/// `SaveReplay(a{sv})` and `Keep(a{sv})`: never panic; a rejection names a key sent (an unknown
/// one is named first, with the keys the method takes after it); an accepted path is inside
/// the folder, is free, and has the recording's container.
pub fn replay_options(data: &[u8], dir: &Path) {
    let mut b = Bytes::new(data);
    let container = Container::ALL[b.byte() as usize % Container::ALL.len()];
    let keep = b.byte() & 1 == 1;
    // Keep's default is the recording's own path from `Start`, which may hold a `%`.
    let pct = if b.byte() & 1 == 1 { "-100%d" } else { "" };
    let default = dir.join(format!("rec{pct}.{}", container.as_str()));
    let Some(mut d) = b.dict(&["path", "overwrite", "seconds"]) else {
        return;
    };
    confine_paths(&mut d, dir);
    let ctx = context(dir);
    let result = if keep {
        parse_keep(&d, &default.to_string_lossy(), container, &ctx)
    } else {
        parse_save_replay(&d, container, &ctx).map(|r| {
            if let Some(s) = r.seconds {
                assert!(s.is_finite() && s > 0.0, "seconds {s} accepted");
            }
            r.path
        })
    };
    match result {
        Ok(path) => {
            if keep && !d.contains_key("path") {
                assert_eq!(path, default, "Keep's default is the recording's path");
            }
            assert!(path.starts_with(dir), "{} escapes", path.display());
            assert!(!path.exists(), "probe left at {}", path.display());
            assert_eq!(Container::from_path(&path), Some(container));
        }
        Err(RequestError::UnknownKey { key }) => {
            let first = key.split(" (takes ").next().unwrap_or_default();
            assert!(d.contains_key(first), "{key} names no key sent");
            assert!(!["path", "overwrite"].contains(&first), "{key}");
        }
        Err(e) => check_rejection(&e, &d),
    }
}

/// The template rules' oracle, written another way than the parser: split at `%%`, expand `%d`
/// and `%t` in each piece; a `%` left over is an error.
fn expand_oracle(template: &str, ctx: &PathContext) -> Option<String> {
    let pieces: Option<Vec<String>> = template
        .split("%%")
        .map(|p| {
            let p = p.replace("%d", &ctx.date).replace("%t", &ctx.time);
            (!p.contains('%')).then_some(p)
        })
        .collect();
    pieces.map(|p| p.join("%"))
}

/// Output path templates (`resolve_path`, no disk access): never panics; refuses exactly the
/// templates with an unknown `%` sequence (and empty ones, and directories); an accepted one
/// is the expanded template under its base (`~/` → home, relative → videos folder, absolute →
/// itself), plus the container's extension where it had none; the result names a file, never
/// the base folder or its parent; the container is the given one, or the extension's.
pub fn path_template(data: &[u8]) {
    let mut b = Bytes::new(data);
    let given = match b.byte() % 4 {
        0 => None,
        n => Some(Container::ALL[(n - 1) as usize % Container::ALL.len()]),
    };
    let template = String::from_utf8_lossy(b.rest()).into_owned();
    let ctx = PathContext {
        videos_dir: "/fuzz/home/Videos".into(),
        home: "/fuzz/home".into(),
        date: "2026-08-21".into(),
        time: "14-03-59".into(),
    };
    let expected = expand_oracle(&template, &ctx);
    match resolve_path(&template, given, &ctx) {
        Ok((path, container)) => {
            let expanded = expected.unwrap_or_else(|| panic!("{template:?} has a bad %"));
            if let Some(c) = given {
                assert_eq!(container, c);
            }
            assert_eq!(Container::from_path(&path), Some(container), "{path:?}");
            let (base, rest) = match expanded.strip_prefix("~/") {
                Some(rest) => (ctx.home.clone(), rest),
                None if expanded.starts_with('/') => (PathBuf::from("/"), &expanded[1..]),
                None => (ctx.videos_dir.clone(), expanded.as_str()),
            };
            // `~//x` and `//x`: one folder, as in a shell.
            let rest = rest.trim_start_matches('/');
            let with_ext = format!("{rest}.{}", container.as_str());
            assert!(
                path == base.join(rest) || path == base.join(&with_ext),
                "{template:?} → {path:?}, expected {base:?} + {rest:?} (+ extension)"
            );
            assert!(
                matches!(path.components().next_back(), Some(Component::Normal(_))),
                "{path:?} does not end in a file name"
            );
            // Without `..`, the file is below its base, not the base itself or beside it.
            if !rest.split('/').any(|s| s == "..") {
                assert!(
                    path.starts_with(&base) && path != base,
                    "{template:?} → {path:?} leaves {base:?}"
                );
            }
        }
        Err(PathError::BadPath { .. }) | Err(PathError::ContainerMismatch { .. }) => {}
        Err(e) => panic!("resolve_path touched the disk: {e:?}"),
    }
}

/// The restore-token file (`zerocast_portal::tokens`): a file as found on disk (another
/// version's, hand-edited, cut short) loads without panicking, as one trimmed, non-empty line of
/// token; a token and source record stored load back the same (a record that says nothing as
/// none), and a token that would not (empty, a line break, spaces around it) is refused by
/// `store` instead of being written.
pub fn token_file(data: &[u8], dir: &Path) {
    use zerocast_portal::tokens::{load, store, token_path, SourceRecord};
    use zerocast_portal::SourceType;

    let mut b = Bytes::new(data);
    let source = SourceType::ALL[b.byte() as usize % SourceType::ALL.len()];
    let one_line = |t: &str| !t.is_empty() && t.trim() == t && !t.contains(['\n', '\r']);
    if b.byte() & 1 == 0 {
        std::fs::create_dir_all(dir).expect("state dir");
        std::fs::write(token_path(dir, source), b.rest()).expect("token file");
        // A `\r` inside the first line stays in the token (only `\n` and a final `\r\n` end a
        // line): a token the portal refuses, after which the session asks again.
        if let Some(stored) = load(dir, source) {
            let t = &stored.token;
            assert!(
                !t.is_empty() && t.trim() == t && !t.contains('\n'),
                "loaded {t:?}"
            );
        }
        return;
    }
    let token = b.string();
    let record = (b.byte() & 1 == 1).then(|| {
        let mut flags = b.byte();
        let mut some = || {
            flags >>= 1;
            flags & 1 == 1
        };
        let (k, p, s) = (some(), some(), some());
        SourceRecord {
            kind: k.then(|| SourceType::ALL[b.byte() as usize % SourceType::ALL.len()]),
            position: p.then(|| (i32::from_le_bytes(b.take()), i32::from_le_bytes(b.take()))),
            size: s.then(|| (u32::from_le_bytes(b.take()), u32::from_le_bytes(b.take()))),
        }
    });
    match store(dir, source, &token, record.as_ref()) {
        Ok(()) => {
            assert!(one_line(&token), "stored {token:?}");
            let stored = load(dir, source).expect("a stored token loads");
            assert_eq!(stored.token, token);
            let said = record.filter(|r| *r != SourceRecord::default());
            assert_eq!(stored.source, said);
        }
        Err(e) => {
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
            assert!(!one_line(&token), "{token:?} refused: {e}");
        }
    }
}
