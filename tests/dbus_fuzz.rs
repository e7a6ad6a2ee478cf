//! Every D-Bus method fuzzed against the real daemon on the test desktop (sway, the portal,
//! PipeWire), with real recordings and replays running: `Start`, `Stop`, `Pause`, `Resume`,
//! `Keep`, `SaveReplay`, `ForgetSources`, property gets and sets, `Introspect`/`Ping`, on the
//! manager, on live, finished and removed recording objects and on made-up paths, with random
//! arguments of random types, and raw calls whose signature is wrong (any method, any body).
//! Three callers run at once, so calls also race each other (a Pause while a Stop finalizes).
//!
//! Checked: the daemon never dies (0 crashes) and answers every call within a bound (0 hangs);
//! every error it sends is named `org.zerocast.Error.*` (one of the names the service defines)
//! or a standard `org.freedesktop.DBus.Error.*`; its open fds and threads at the end are those
//! after the warm-up, within a small slack.
//!
//! The calls come from a seeded generator: the seed is printed, and `ZEROCAST_FUZZ_SEED=N`
//! replays the same calls of each caller (their interleaving is up to the scheduler).
//!
//! - CI: `dbus_fuzz_short` (500 calls, a fixed seed unless `ZEROCAST_FUZZ_SEED` says otherwise).
//! - Full: `ZEROCAST_FUZZ_CALLS=10000 cargo test --test dbus_fuzz -- --ignored --nocapture`
//!   (`dbus_fuzz_full`; a random seed unless given).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::daemon::{open_fds, threads, Daemon, MANAGER, NAME, RECORDING};
use zbus::zvariant::{ObjectPath, OwnedObjectPath, Signature, StructureBuilder, Value};
use zerocast_testdesk::{Component, Desktop, DesktopOptions};

/// Callers running at once.
const CALLERS: u64 = 3;
/// Recordings the fuzzer keeps running at most (each encodes 720p on a 2-core machine); a Start
/// beyond them becomes a Stop of one of them.
const MAX_LIVE: usize = 2;
/// A call that does real work (Start waits for the first frame through the portal; Stop,
/// SaveReplay and Keep finish or write a file) must be answered within this; anything else
/// within [`QUICK_BOUND`]. Measured on the loaded 2-core machine: Start ≤ ~3 s, the rest well
/// under 1 s (the summary prints the slowest of each).
const WORK_BOUND: Duration = Duration::from_secs(30);
const QUICK_BOUND: Duration = Duration::from_secs(10);
/// Open fds over the warm-up's count that fail the run. A leak of one fd per recording, per
/// fd passed in a call or per portal session shows as +tens (hundreds in the full run); up to
/// 4 may differ when a stream or portal session closed by the last Stop is still closing.
const FD_SLACK: usize = 4;
/// Threads over the warm-up's count that fail the run. A recording's threads (PipeWire loop,
/// encoder) end with it; tokio's blocking pool (the options parser runs there) keeps idle
/// threads for 10 s, and the end is sampled once they are gone (or after 30 s); a thread
/// leaked per recording would be +tens.
const THREAD_SLACK: usize = 2;

/// The error names `org.zerocast.Error` defines (dbus/src/error.rs).
const ZEROCAST_ERRORS: &[&str] = &[
    "InvalidOption",
    "PortalUnavailable",
    "PortalCancelled",
    "EncoderUnavailable",
    "OutputNotWritable",
    "OutOfDiskSpace",
    "StreamLost",
    "NotRecording",
    "NotPaused",
    "AudioUnavailable",
    "NotReplay",
    "Failed",
];

/// What zbus names the errors of its own argument checks.
const ZBUS_ERROR: &str = "org.freedesktop.zbus.Error";

/// splitmix64: small, seedable, and the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64) / ((1u64 << 53) as f64) < p
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
    /// One of `(weight, item)`.
    fn weighted<T: Copy>(&mut self, v: &[(u32, T)]) -> T {
        let total: u32 = v.iter().map(|(w, _)| w).sum();
        let mut x = self.below(total as usize) as u32;
        for (w, t) in v {
            if x < *w {
                return *t;
            }
            x -= w;
        }
        unreachable!()
    }
}

const WORDS: &[&str] = &[
    "",
    "mkv",
    "mp4",
    "webm",
    "h264",
    "hevc",
    "av1",
    "vp9",
    "auto",
    "software",
    "vaapi",
    "nvenc",
    "hidden",
    "embedded",
    "metadata",
    "monitor",
    "window",
    "virtual",
    "desktop",
    "mic",
    "desktop+mic",
    "none",
    "app:firefox",
    "node:nothing",
    "opus",
    "aac",
    "flac",
    "true",
    "0",
    "-1",
    "1e309",
    "NaN",
    "%",
    "%x",
    "%d-%t",
    "é€😀",
    "a\u{202e}b",
    "\t\n",
    "..",
    "/",
];

fn string(r: &mut Rng) -> String {
    match r.below(4) {
        0 | 1 => (*r.pick(WORDS)).to_owned(),
        2 => (0..r.below(24))
            .map(|_| char::from(b' ' + r.below(95) as u8))
            .collect(),
        // Any non-NUL code point (D-Bus strings can hold no NUL), sometimes long.
        _ => {
            let len = if r.chance(0.1) { 5000 } else { r.below(16) };
            (0..len)
                .map(|_| char::from_u32(1 + r.below(0x2_ffff) as u32).unwrap_or('?'))
                .collect()
        }
    }
}

/// A value for a `path` option. The tests run as root on some machines: never a path outside
/// the fuzzer's directory or the desktop's home (relative paths and `~/` resolve there).
fn path_string(r: &mut Rng, dir: &Path, n: u64) -> String {
    let ext = *r.pick(&["mkv", "mp4", "webm", "avi", ""]);
    let name = format!("f{n}.{ext}");
    match r.below(10) {
        0 => String::new(),
        1 => format!("rel-{n}-%d-%t.{ext}"),
        2 => format!("~/home-{n}.mkv"),
        3 => dir.join("no/such/dir").join(&name).display().to_string(),
        // A directory, a file that exists, an unknown template, a name from any characters.
        4 => dir.display().to_string(),
        5 => dir.join("exists.mkv").display().to_string(),
        6 => dir.join(format!("t-%q-{n}.mkv")).display().to_string(),
        7 => dir
            .join(string(r).replace(['/', '\0'], "_").replace("..", "_"))
            .display()
            .to_string(),
        // /proc takes no new files, not even from root.
        8 => "/proc/zerocast-fuzz.mkv".to_owned(),
        _ => dir.join(name).display().to_string(),
    }
}

/// A value of a random type (nested up to `depth`).
fn value(r: &mut Rng, depth: u32, dir: &Path, n: u64) -> Value<'static> {
    let kinds = if depth == 0 { 15 } else { 18 };
    let any = r.next();
    match r.below(kinds) {
        0 => Value::Bool(r.chance(0.5)),
        1 => Value::U8(r.next() as u8),
        2 => Value::I16(r.next() as i16),
        3 => Value::U16(r.next() as u16),
        4 => Value::I32(*r.pick(&[0, -1, 1, 15, 60, i32::MIN, i32::MAX, any as i32])),
        5 => Value::U32(*r.pick(&[0, 1, 2, 15, 30, 1000, u32::MAX, any as u32])),
        6 => Value::I64(*r.pick(&[0, -5, 3, i64::MIN, i64::MAX, any as i64])),
        7 => Value::U64(*r.pick(&[0, 1, 5, 1 << 40, u64::MAX, any])),
        8 => Value::F64(*r.pick(&[
            0.0,
            -1.0,
            0.5,
            2.0,
            5.0,
            1e-9,
            1e308,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::from_bits(any),
        ])),
        9 | 10 => Value::from(string(r)),
        11 => Value::from(path_string(r, dir, n)),
        12 => Value::from(
            ObjectPath::try_from(*r.pick(&[
                "/",
                MANAGER,
                "/org/zerocast/Recorder1/recording/1",
                "/a/b_c",
            ]))
            .unwrap(),
        ),
        13 => Value::from(Signature::try_from(*r.pick(&["", "s", "a{sv}", "(ii)", "v"])).unwrap()),
        14 => Value::from(
            std::fs::File::open("/dev/null")
                .map(std::os::fd::OwnedFd::from)
                .map(zbus::zvariant::Fd::from)
                .expect("/dev/null"),
        ),
        15 => Value::from((0..r.below(4)).map(|_| string(r)).collect::<Vec<_>>()),
        16 => Value::from(dict(r, depth - 1, dir, n, &[])),
        _ => Value::Value(Box::new(value(r, depth - 1, dir, n))),
    }
}

/// An `a{sv}`: keys mostly from `keys` (the method's own), values of random types; `path`
/// stays inside the fuzzer's directory.
fn dict(
    r: &mut Rng,
    depth: u32,
    dir: &Path,
    n: u64,
    keys: &[&str],
) -> HashMap<String, Value<'static>> {
    let mut m = HashMap::new();
    for _ in 0..r.below(5) {
        let key = if !keys.is_empty() && r.chance(0.8) {
            (*r.pick(keys)).to_owned()
        } else {
            string(r)
        };
        let v = if key == "path" && r.chance(0.8) {
            Value::from(path_string(r, dir, n))
        } else {
            value(r, depth, dir, n)
        };
        m.insert(key, v);
    }
    m
}

/// A plausible value for a Start key, so that many Starts record.
fn start_value(r: &mut Rng, key: &str, dir: &Path, n: u64) -> Value<'static> {
    match key {
        "container" => Value::from(*r.pick(&["mkv", "mp4", "webm"])),
        "framerate" => Value::U32(*r.pick(&[5, 10, 15])),
        "duration" => Value::F64(*r.pick(&[0.5, 1.0, 2.0, 4.0])),
        "replay" => Value::F64(*r.pick(&[1.0, 3.0, 8.0])),
        "cursor" => Value::from(*r.pick(&["hidden", "embedded"])),
        "overwrite" | "restore" | "stop-on-disconnect" | "notify" | "save-on-stop" => {
            Value::Bool(r.chance(0.5))
        }
        "path" => Value::from(path_string(r, dir, n)),
        _ => value(r, 1, dir, n),
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Act {
    Start,
    Stop,
    Pause,
    Resume,
    Keep,
    SaveReplay,
    ForgetSources,
    Get,
    GetAll,
    Set,
    Introspect,
    Ping,
    Raw,
}

const ACTS: &[(u32, Act)] = &[
    (5, Act::Start),
    (4, Act::Stop),
    (6, Act::Pause),
    (6, Act::Resume),
    (4, Act::Keep),
    (6, Act::SaveReplay),
    (1, Act::ForgetSources),
    (6, Act::Get),
    (2, Act::GetAll),
    (6, Act::Set),
    (1, Act::Introspect),
    (1, Act::Ping),
    (12, Act::Raw),
];

const MANAGER_PROPS: &[&str] = &["Recordings", "Capabilities", "Version"];
const RECORDING_PROPS: &[&str] = &[
    "State",
    "Path",
    "Duration",
    "Frames",
    "DroppedFrames",
    "Bytes",
    "Encoder",
    "CapturePath",
    "Options",
];
const METHODS: &[&str] = &[
    "Start",
    "ForgetSources",
    "Stop",
    "Pause",
    "Resume",
    "Keep",
    "SaveReplay",
    "Get",
    "GetAll",
    "Set",
    "Introspect",
    "Ping",
    "Nope",
];
const IFACES: &[&str] = &[
    NAME,
    RECORDING,
    "org.freedesktop.DBus.Properties",
    "org.freedesktop.DBus.Introspectable",
    "org.freedesktop.DBus.Peer",
    "org.zerocast.Nope",
];

/// What the callers share: the recordings they know of, and the tallies.
struct World {
    dir: PathBuf,
    pid: u32,
    /// Recordings started by the fuzzer and not yet seen ending.
    live: Mutex<Vec<OwnedObjectPath>>,
    /// Recordings seen ending (some since removed by the daemon: at most 5 ended are kept).
    ended: Mutex<Vec<OwnedObjectPath>>,
    /// Outcome (`ok` or the error's name) → count.
    outcomes: Mutex<BTreeMap<String, u64>>,
    /// Errors with a name outside both families, with their call.
    unnamed: Mutex<Vec<String>>,
    /// The first call and message of each error name (printed with ZEROCAST_FUZZ_VERBOSE=1).
    examples: Mutex<BTreeMap<String, String>>,
    /// Calls not answered within their bound.
    hangs: Mutex<Vec<String>>,
    /// Slowest answer (ms) of the work calls and of the quick ones.
    slowest: Mutex<[(u128, String); 2]>,
    calls: AtomicU64,
    /// Fuzzed Starts that recorded.
    started: AtomicU64,
    crashed: AtomicBool,
    next_file: AtomicU64,
}

impl World {
    fn target(&self, r: &mut Rng) -> OwnedObjectPath {
        let live = self.live.lock().unwrap().clone();
        let ended = self.ended.lock().unwrap().clone();
        let pick = r.below(10);
        if pick < 6 && !live.is_empty() {
            return r.pick(&live).clone();
        }
        if pick < 8 && !ended.is_empty() {
            return r.pick(&ended).clone();
        }
        let p = match r.below(5) {
            0 => "/org/zerocast/Recorder1/recording/0".to_owned(),
            1 => "/org/zerocast/Recorder1/recording/999999".to_owned(),
            2 => "/org/zerocast/Recorder1/recording".to_owned(),
            3 => MANAGER.to_owned(),
            _ => "/".to_owned(),
        };
        OwnedObjectPath::try_from(p).unwrap()
    }

    fn note_ended(&self, obj: &OwnedObjectPath) {
        let mut live = self.live.lock().unwrap();
        if let Some(i) = live.iter().position(|p| p == obj) {
            live.remove(i);
            self.ended.lock().unwrap().push(obj.clone());
        }
    }
}

/// A call's body: every shape the fuzzer sends.
enum Body {
    Unit,
    Dict(HashMap<String, Value<'static>>),
    /// Properties.Get / GetAll / Set.
    Strings(Vec<String>),
    Set(String, String, Value<'static>),
    /// Any signature at all: the fields become the message's arguments.
    Raw(Vec<Value<'static>>),
}

struct Call {
    path: OwnedObjectPath,
    iface: Option<String>,
    member: String,
    body: Body,
    work: bool,
}

impl Call {
    fn describe(&self) -> String {
        let body = match &self.body {
            Body::Unit => "()".to_owned(),
            Body::Dict(d) => format!("({:?})", d.keys().collect::<Vec<_>>()),
            Body::Strings(s) => format!("{s:?}"),
            Body::Set(i, p, v) => format!("({i}, {p}, {})", v.value_signature()),
            Body::Raw(v) => format!(
                "raw({})",
                v.iter()
                    .map(|v| v.value_signature().to_string())
                    .collect::<String>()
            ),
        };
        format!(
            "{} {}.{}{body}",
            self.path.as_str(),
            self.iface.as_deref().unwrap_or("-"),
            self.member
        )
    }

    async fn send(self, conn: &zbus::Connection) -> zbus::Result<zbus::Message> {
        let iface = self.iface.as_deref();
        let (path, member) = (self.path.as_str(), self.member.as_str());
        let dest = Some(NAME);
        match self.body {
            Body::Unit => conn.call_method(dest, path, iface, member, &()).await,
            Body::Dict(d) => conn.call_method(dest, path, iface, member, &(d,)).await,
            Body::Strings(s) => match s.as_slice() {
                [a] => conn.call_method(dest, path, iface, member, &(a,)).await,
                [a, b] => conn.call_method(dest, path, iface, member, &(a, b)).await,
                _ => unreachable!(),
            },
            Body::Set(i, p, v) => {
                conn.call_method(dest, path, iface, member, &(i, p, v))
                    .await
            }
            Body::Raw(fields) if fields.is_empty() => {
                conn.call_method(dest, path, iface, member, &()).await
            }
            Body::Raw(fields) => {
                let s = fields
                    .into_iter()
                    .fold(StructureBuilder::new(), |b, v| b.append_field(v))
                    .build()
                    .expect("structure");
                conn.call_method(dest, path, iface, member, &s).await
            }
        }
    }
}

/// The next call of a caller.
fn next_call(r: &mut Rng, w: &World) -> Call {
    let n = w.next_file.fetch_add(1, Ordering::Relaxed);
    let dir = w.dir.as_path();
    let rec = |member: &str, body: Body, path: OwnedObjectPath, work: bool| Call {
        path,
        iface: Some(RECORDING.to_owned()),
        member: member.to_owned(),
        body,
        work,
    };
    match r.weighted(ACTS) {
        Act::Start => {
            // A Start beyond the live cap stops one instead.
            let live = w.live.lock().unwrap().clone();
            if live.len() >= MAX_LIVE {
                return rec("Stop", Body::Unit, r.pick(&live).clone(), true);
            }
            let mut opts = HashMap::new();
            if r.chance(0.9) {
                // Mostly a recording that starts, sometimes a replay, then random changes.
                opts.insert(
                    "path".to_owned(),
                    Value::from(dir.join(format!("s{n}.mkv")).display().to_string()),
                );
                opts.insert("framerate".to_owned(), Value::U32(10));
                if r.chance(0.4) {
                    opts.insert("replay".to_owned(), Value::F64(3.0));
                }
                for _ in 0..r.below(4) {
                    let key = *r.pick(zerocast_app::KEYS);
                    let v = if r.chance(0.7) {
                        start_value(r, key, dir, n)
                    } else {
                        value(r, 1, dir, n)
                    };
                    opts.insert(key.to_owned(), v);
                }
            } else {
                opts = dict(r, 2, dir, n, zerocast_app::KEYS);
            }
            Call {
                path: OwnedObjectPath::try_from(MANAGER).unwrap(),
                iface: Some(NAME.to_owned()),
                member: "Start".to_owned(),
                body: Body::Dict(opts),
                work: true,
            }
        }
        a @ (Act::Stop | Act::Pause | Act::Resume) => {
            let member = format!("{a:?}");
            rec(&member, Body::Unit, w.target(r), a == Act::Stop)
        }
        Act::Keep => {
            let d = dict(r, 1, dir, n, &["path", "overwrite"]);
            rec("Keep", Body::Dict(d), w.target(r), true)
        }
        Act::SaveReplay => {
            let mut d = dict(r, 1, dir, n, &["path", "seconds", "overwrite"]);
            if r.chance(0.5) {
                d.insert(
                    "path".to_owned(),
                    Value::from(dir.join(format!("clip{n}.mkv")).display().to_string()),
                );
                d.remove("overwrite");
            }
            rec("SaveReplay", Body::Dict(d), w.target(r), true)
        }
        Act::ForgetSources => Call {
            path: OwnedObjectPath::try_from(MANAGER).unwrap(),
            iface: Some(NAME.to_owned()),
            member: "ForgetSources".to_owned(),
            body: Body::Unit,
            work: false,
        },
        a @ (Act::Get | Act::GetAll | Act::Set) => {
            let (path, iface, props) = if r.chance(0.3) {
                (
                    OwnedObjectPath::try_from(MANAGER).unwrap(),
                    NAME,
                    MANAGER_PROPS,
                )
            } else {
                (w.target(r), RECORDING, RECORDING_PROPS)
            };
            let iface = if r.chance(0.85) {
                iface.to_owned()
            } else {
                r.pick(IFACES).to_string()
            };
            let prop = if r.chance(0.85) {
                r.pick(props).to_string()
            } else {
                string(r)
            };
            let body = match a {
                Act::Get => Body::Strings(vec![iface, prop]),
                Act::GetAll => Body::Strings(vec![iface]),
                _ => Body::Set(iface, prop, value(r, 1, dir, n)),
            };
            Call {
                path,
                iface: Some("org.freedesktop.DBus.Properties".to_owned()),
                member: format!("{a:?}"),
                body,
                work: false,
            }
        }
        a @ (Act::Introspect | Act::Ping) => Call {
            path: w.target(r),
            iface: Some(
                if a == Act::Ping {
                    "org.freedesktop.DBus.Peer"
                } else {
                    "org.freedesktop.DBus.Introspectable"
                }
                .to_owned(),
            ),
            member: format!("{a:?}"),
            body: Body::Unit,
            work: false,
        },
        Act::Raw => {
            // Any member of any interface (or none) with 0–4 arguments of any type: mostly
            // the wrong signature for what it names.
            let path = if r.chance(0.3) {
                OwnedObjectPath::try_from(MANAGER).unwrap()
            } else {
                w.target(r)
            };
            let iface = r.chance(0.85).then(|| r.pick(IFACES).to_string());
            let fields = (0..r.below(5)).map(|_| value(r, 2, dir, n)).collect();
            Call {
                path,
                iface,
                member: r.pick(METHODS).to_string(),
                body: Body::Raw(fields),
                // A raw call may be a Start or a Stop with the right signature after all.
                work: true,
            }
        }
    }
}

/// Whether the daemon process is still alive (not gone, not a zombie).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

/// One caller: `calls` calls, one after the other.
async fn caller(conn: zbus::Connection, w: Arc<World>, seed: u64, calls: u64) {
    let mut r = Rng(seed);
    for _ in 0..calls {
        if w.crashed.load(Ordering::Relaxed) {
            return;
        }
        let call = next_call(&mut r, &w);
        let desc = call.describe();
        let (path, member, work) = (call.path.clone(), call.member.clone(), call.work);
        let bound = if work { WORK_BOUND } else { QUICK_BOUND };
        let t0 = Instant::now();
        let res = tokio::time::timeout(bound, call.send(&conn)).await;
        let ms = t0.elapsed().as_millis();
        w.calls.fetch_add(1, Ordering::Relaxed);
        {
            let mut s = w.slowest.lock().unwrap();
            let slot = &mut s[usize::from(!work)];
            if ms > slot.0 {
                *slot = (ms, desc.clone());
            }
        }
        let outcome = match res {
            Err(_) => {
                w.hangs
                    .lock()
                    .unwrap()
                    .push(format!("{desc}: no answer in {bound:?}"));
                "hang".to_owned()
            }
            Ok(Ok(reply)) => {
                if member == "Start" && path.as_str() == MANAGER {
                    if let Ok(obj) = reply.body().deserialize::<OwnedObjectPath>() {
                        w.live.lock().unwrap().push(obj);
                        w.started.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if member == "Stop" {
                    w.note_ended(&path);
                }
                "ok".to_owned()
            }
            Ok(Err(zbus::Error::MethodError(name, msg, _))) => {
                let name = name.to_string();
                w.examples
                    .lock()
                    .unwrap()
                    .entry(name.clone())
                    .or_insert_with(|| format!("{desc}: {msg:?}"));
                let named = match name.strip_prefix("org.zerocast.Error.") {
                    Some(short) => ZEROCAST_ERRORS.contains(&short),
                    None => name.starts_with("org.freedesktop.DBus.Error."),
                };
                // zbus answers arguments it cannot deserialize (a wrong signature, an invalid
                // interface name to Properties) itself, before any of the daemon's code runs,
                // with its own `org.freedesktop.zbus.Error` instead of the standard
                // `InvalidArgs` (zbus_macros: the `#[zbus(error)]` variant's fixed name).
                // Counted apart; any other zbus error is a failure.
                let named = named
                    || name == ZBUS_ERROR
                        && msg.as_deref().is_some_and(|m| {
                            m.starts_with("Signature mismatch")
                                || m.starts_with("Invalid interface name")
                        });
                if !named {
                    w.unnamed
                        .lock()
                        .unwrap()
                        .push(format!("{desc}: {name}: {msg:?}"));
                }
                // An object that says it is over, or is gone, is no longer live.
                if name.ends_with(".NotRecording")
                    && msg.as_deref().is_some_and(|m| m.contains(" has "))
                    || name.ends_with(".UnknownObject")
                {
                    w.note_ended(&path);
                }
                name
            }
            // Not the daemon's answer: the call could not be sent or the reply not read.
            Ok(Err(e)) => format!("client error: {e}"),
        };
        *w.outcomes.lock().unwrap().entry(outcome).or_default() += 1;
        if !alive(w.pid) {
            eprintln!("dbus_fuzz: the daemon died after {desc}");
            w.crashed.store(true, Ordering::Relaxed);
        }
    }
}

/// Decodes every video file under `dirs` (recursively): (files, those that do not decode).
/// A file the daemon started must decode to its end whatever the calls did to its recording.
fn decode_all(dir: &Path, home: &Path) -> (usize, Vec<String>) {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.file_name().is_some_and(|n| n != "exists.mkv")
                && p.extension()
                    .is_some_and(|x| ["mkv", "mp4", "webm"].contains(&&*x.to_string_lossy()))
            {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, &mut files);
    walk(home, &mut files);
    let bad = files
        .iter()
        .filter_map(|f| {
            let o = std::process::Command::new("ffmpeg")
                .args(["-v", "error", "-xerror", "-i"])
                .arg(f)
                .args(["-f", "null", "-"])
                .output()
                .expect("ffmpeg");
            let size = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
            (!o.status.success()).then(|| {
                format!(
                    "{} ({size} bytes): {}",
                    f.display(),
                    String::from_utf8_lossy(&o.stderr).trim()
                )
            })
        })
        .collect();
    (files.len(), bad)
}

/// Waits until fds and threads are within the slack of `base`, or `limit` passed.
fn settle(pid: u32, base: (usize, usize), limit: Duration) -> (usize, usize) {
    let t0 = Instant::now();
    loop {
        let now = (open_fds(pid), threads(pid));
        if (now.0 <= base.0 + FD_SLACK && now.1 <= base.1 + THREAD_SLACK) || t0.elapsed() > limit {
            return now;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn seed_from_env(default: Option<u64>) -> u64 {
    match std::env::var("ZEROCAST_FUZZ_SEED") {
        Ok(s) => s.trim().parse().expect("ZEROCAST_FUZZ_SEED: a number"),
        Err(_) => default.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        }),
    }
}

/// Runs `calls` fuzzed calls against a fresh daemon and checks the run.
/// The portal backend stopped answering D-Bus during a run: what the fuzzer saw, for the log.
struct BackendWedged(String);

/// Whether xdg-desktop-portal-wlr answers a `Peer.Ping` within 5 s. Its single event loop
/// serves D-Bus, Wayland and PipeWire; stuck there, every portal call (and so every `Start`,
/// and the portal's `Close` of a session) waits for xdg-desktop-portal's 25-s timeout.
fn backend_answers(desk: &Desktop) -> bool {
    Command::new("busctl")
        .args([
            "--user",
            "--timeout=5",
            "call",
            "org.freedesktop.impl.portal.desktop.wlr",
            "/org/freedesktop/portal/desktop",
            "org.freedesktop.DBus.Peer",
            "Ping",
        ])
        .env("DBUS_SESSION_BUS_ADDRESS", desk.bus_address())
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Where a process's threads wait: gdb's backtraces when gdb is there, else the kernel's
/// wait channels.
fn stacks_of(pid: u32) -> String {
    let gdb = Command::new("gdb")
        .args([
            "-p",
            &pid.to_string(),
            "-batch",
            "-ex",
            "thread apply all bt",
        ])
        .output();
    match gdb {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| l.starts_with('#') || l.starts_with("Thread"))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => std::fs::read_dir(format!("/proc/{pid}/task"))
            .map(|tasks| {
                tasks
                    .flatten()
                    .map(|t| {
                        let read =
                            |f: &str| std::fs::read_to_string(t.path().join(f)).unwrap_or_default();
                        format!("{}:{}", read("comm").trim(), read("wchan").trim())
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default(),
    }
}

/// One run; `Err` only when calls went unanswered *and* the portal backend itself no longer
/// answers D-Bus (xdg-desktop-portal-wlr 0.7 wedged: seen once in ~40 runs on a loaded
/// machine, with two casts starting at once), which says nothing of the daemon. Every other
/// failure panics.
fn fuzz(calls: u64, seed: u64) -> Result<(), BackendWedged> {
    let t_all = Instant::now();
    println!("dbus_fuzz: seed {seed} (ZEROCAST_FUZZ_SEED={seed} repeats the calls), {calls} calls");
    let desk = Desktop::start(DesktopOptions::default()).expect("test desktop");
    let daemon = Daemon::start(&desk);
    let pid = daemon.pid();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("exists.mkv"), b"not a video").unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let conn = rt.block_on(async {
        zbus::connection::Builder::address(desk.bus_address())
            .unwrap()
            .build()
            .await
            .unwrap()
    });

    // Warm-up: a recording and a replay with a saved clip, started and stopped, so that what
    // the daemon builds once (encoder libraries, the PipeWire context, portal proxies, the
    // restore token) exists before the baseline.
    rt.block_on(async {
        let m = zbus::Proxy::new(&conn, NAME, MANAGER, NAME).await.unwrap();
        for (name, replay) in [("warm.mkv", false), ("warm-replay.mkv", true)] {
            let mut opts: HashMap<&str, Value<'_>> = HashMap::from([
                (
                    "path",
                    Value::from(dir.path().join(name).display().to_string()),
                ),
                ("framerate", Value::U32(10)),
            ]);
            if replay {
                opts.insert("replay", Value::F64(3.0));
            }
            let obj: OwnedObjectPath = m.call("Start", &(opts,)).await.expect("warm-up Start");
            let rec = zbus::Proxy::new(&conn, NAME, obj.as_str(), RECORDING)
                .await
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(20);
            while rec.get_property::<u64>("Frames").await.unwrap_or(0) < 5 {
                assert!(Instant::now() < deadline, "warm-up: no frames");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if replay {
                let clip = dir.path().join("warm-clip.mkv").display().to_string();
                let opts: HashMap<&str, Value<'_>> = HashMap::from([("path", Value::from(clip))]);
                let _: (String, HashMap<String, zbus::zvariant::OwnedValue>) = rec
                    .call("SaveReplay", &(opts,))
                    .await
                    .expect("warm-up SaveReplay");
            }
            let _: String = rec.call("Stop", &()).await.expect("warm-up Stop");
        }
    });
    // Let the last stream and portal session close.
    std::thread::sleep(Duration::from_millis(500));
    let base = (open_fds(pid), threads(pid));

    let w = Arc::new(World {
        dir: dir.path().to_owned(),
        pid,
        live: Mutex::new(Vec::new()),
        ended: Mutex::new(Vec::new()),
        outcomes: Mutex::new(BTreeMap::new()),
        examples: Mutex::new(BTreeMap::new()),
        unnamed: Mutex::new(Vec::new()),
        hangs: Mutex::new(Vec::new()),
        slowest: Mutex::new(Default::default()),
        calls: AtomicU64::new(0),
        started: AtomicU64::new(0),
        crashed: AtomicBool::new(false),
        next_file: AtomicU64::new(0),
    });
    let t0 = Instant::now();
    rt.block_on(async {
        let tasks: Vec<_> = (0..CALLERS)
            .map(|i| {
                let share = calls / CALLERS + u64::from(i < calls % CALLERS);
                let caller_seed = seed ^ (i + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                tokio::spawn(caller(conn.clone(), w.clone(), caller_seed, share))
            })
            .collect();
        for t in tasks {
            t.await.expect("caller panicked");
        }
    });
    let fuzz_s = t0.elapsed().as_secs_f64();
    let crashed = w.crashed.load(Ordering::Relaxed) || !alive(pid);

    // The end: stop what still runs (every recording object the daemon lists), check the
    // daemon still answers, then let fds and threads settle.
    let mut answers = !crashed;
    if !crashed {
        rt.block_on(async {
            let m = zbus::Proxy::new(&conn, NAME, MANAGER, NAME).await.unwrap();
            let objs: Vec<OwnedObjectPath> = m.get_property("Recordings").await.unwrap();
            for obj in objs {
                let _ = tokio::time::timeout(
                    WORK_BOUND,
                    conn.call_method(Some(NAME), obj.as_str(), Some(RECORDING), "Stop", &()),
                )
                .await;
            }
            let ping = conn
                .call_method(
                    Some(NAME),
                    MANAGER,
                    Some("org.freedesktop.DBus.Peer"),
                    "Ping",
                    &(),
                )
                .await;
            let version: Result<String, _> = m.get_property("Version").await;
            answers = ping.is_ok() && version.is_ok();
        });
    }
    let end = settle(pid, base, Duration::from_secs(30));

    let outcomes = w.outcomes.lock().unwrap().clone();
    let unnamed = w.unnamed.lock().unwrap().clone();
    let hangs = w.hangs.lock().unwrap().clone();
    let slowest = w.slowest.lock().unwrap().clone();
    let errors: Vec<String> = outcomes
        .iter()
        .filter(|(k, _)| k.as_str() != "ok")
        .map(|(k, v)| format!("{} {v}", k.trim_start_matches("org.")))
        .collect();
    let made = w.calls.load(Ordering::Relaxed);
    let started = w.started.load(Ordering::Relaxed);
    let (files, undecodable) = decode_all(dir.path(), &desk.dir().join("home"));
    println!(
        "dbus_fuzz: seed {seed}: {made} calls in {fuzz_s:.1} s ({CALLERS} callers), {} crashes, {} \
         hangs, {} unnamed errors; ok {} ({started} recordings started, {} of {files} files \
         decode); errors: {}; slowest: work call {} ms ({}), other {} ms \
         ({}); fds {} → {} (slack {FD_SLACK}), threads {} → {} (slack {THREAD_SLACK}); total \
         {:.1} s",
        u32::from(crashed || !answers),
        hangs.len(),
        unnamed.len(),
        outcomes.get("ok").copied().unwrap_or(0),
        files - undecodable.len(),
        errors.join(", "),
        slowest[0].0,
        slowest[0].1,
        slowest[1].0,
        slowest[1].1,
        base.0,
        end.0,
        base.1,
        end.1,
        t_all.elapsed().as_secs_f64(),
    );
    if std::env::var_os("ZEROCAST_FUZZ_VERBOSE").is_some() {
        for (name, e) in w.examples.lock().unwrap().iter() {
            println!("dbus_fuzz: first {name}: {e}");
        }
    }
    let logs = desk.logs_dir().display().to_string();
    assert!(!crashed, "the daemon died (seed {seed}); its log: {logs}");
    assert!(
        answers,
        "the daemon stopped answering (seed {seed}); log: {logs}"
    );
    if !hangs.is_empty() && !backend_answers(&desk) {
        let stacks = desk.pid(Component::Xdpw).map(stacks_of).unwrap_or_default();
        return Err(BackendWedged(format!(
            "{} calls unanswered while xdg-desktop-portal-wlr answers no D-Bus call (logs: \
             {logs}); its threads: {stacks}; the unanswered calls: {hangs:#?}",
            hangs.len()
        )));
    }
    assert!(
        hangs.is_empty(),
        "unanswered calls (seed {seed}): {hangs:#?}"
    );
    assert!(
        unnamed.is_empty(),
        "unnamed errors (seed {seed}): {unnamed:#?}"
    );
    let client: Vec<_> = outcomes
        .keys()
        .filter(|k| k.starts_with("client"))
        .collect();
    assert!(
        client.is_empty(),
        "calls that failed on the fuzzer's side: {client:?}"
    );
    assert_eq!(made, calls, "every call was made");
    // The run must have reached real recordings, or it tested only the argument checks.
    assert!(
        started >= 1 || calls < 200,
        "no fuzzed Start recorded anything (seed {seed})"
    );
    assert!(
        undecodable.is_empty(),
        "files that do not decode (seed {seed}): {undecodable:#?}"
    );
    assert!(
        end.0 <= base.0 + FD_SLACK,
        "fds {} after the warm-up, {} at the end (seed {seed}): ls -l /proc/{pid}/fd",
        base.0,
        end.0
    );
    assert!(
        end.1 <= base.1 + THREAD_SLACK,
        "threads {} after the warm-up, {} at the end (seed {seed})",
        base.1,
        end.1
    );
    drop(daemon);
    Ok(())
}

/// A run, and once more on a fresh desktop if the portal backend (not the daemon) wedged.
fn fuzz_once_more_if_the_backend_wedged(calls: u64, seed: u64) {
    if let Err(BackendWedged(what)) = fuzz(calls, seed) {
        eprintln!("dbus_fuzz: the portal backend wedged, so the run says nothing of the daemon; once more on a fresh desktop: {what}");
        if let Err(BackendWedged(again)) = fuzz(calls, seed) {
            panic!("the portal backend wedged twice in a row: {again}");
        }
    }
}

/// CI: 500 calls with a fixed seed (another with `ZEROCAST_FUZZ_SEED`).
#[test]
fn dbus_fuzz_short() {
    fuzz_once_more_if_the_backend_wedged(500, seed_from_env(Some(23)));
}

/// `ZEROCAST_FUZZ_CALLS` calls (default 10 000), a random seed unless `ZEROCAST_FUZZ_SEED`.
#[test]
#[ignore = "fuzz, ~10 000 calls: ZEROCAST_FUZZ_CALLS=10000 cargo test --test dbus_fuzz -- --ignored --nocapture"]
fn dbus_fuzz_full() {
    let calls = std::env::var("ZEROCAST_FUZZ_CALLS")
        .ok()
        .map(|s| s.trim().parse().expect("ZEROCAST_FUZZ_CALLS: a number"))
        .unwrap_or(10_000);
    fuzz_once_more_if_the_backend_wedged(calls, seed_from_env(None));
}
