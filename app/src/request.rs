//! [`RecordingRequest`]: what one recording is asked to do, every default filled in and every
//! rule checked — the same for `zerocast record` and D-Bus `Start`. The surfaces only turn
//! their syntax into a [`RawRequest`] (values as given, nothing checked but D-Bus types);
//! [`RawRequest::resolve`] is the one place options are validated.

use std::path::PathBuf;
use std::time::Duration;

use zerocast_portal::{CursorMode, SourceOptions, SourceType};
use zerocast_recorder::audio::{AudioCodec, AudioConfig, AudioError, TrackSpec};
use zerocast_recorder::encode::replay::ReplayLimits;
use zerocast_recorder::{
    encode::Selection, Codec, CodecNotInContainer, Container, EncoderChoice, OutputSize,
    RateControl, RecordingOptions, Region,
};

use crate::options::{choices, spec, OptionSpec, Surface, KEYS};
use crate::path::{check_writable, resolve_path, PathContext, DEFAULT_NAME};

/// Why `cursor=metadata` is refused.
pub const METADATA_CURSOR: &str = "metadata is not supported yet: the compositor would send the \
pointer beside the frames and it would be missing from the recording; use embedded or hidden";

/// A request as a surface gave it: one field per option of [`crate::options::OPTIONS`], `None`
/// when not given. Integers are wide so a negative or huge value reaches the range check (and
/// its message) from every surface.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawRequest {
    pub path: Option<String>,
    pub overwrite: Option<bool>,
    pub container: Option<String>,
    pub codec: Option<String>,
    pub encoder: Option<String>,
    pub framerate: Option<i128>,
    pub bitrate: Option<i128>,
    pub quality: Option<i128>,
    pub cursor: Option<String>,
    pub source: Option<String>,
    pub restore: Option<bool>,
    pub duration: Option<f64>,
    pub stop_on_disconnect: Option<bool>,
    pub notify: Option<bool>,
    /// One entry per audio track (`desktop`, `mic`, `node:…`, `app:…`, `a+b`).
    pub audio: Option<Vec<String>>,
    pub audio_codec: Option<String>,
    pub audio_bitrate: Option<i128>,
    pub replay: Option<f64>,
    pub replay_max_bytes: Option<i128>,
    pub save_on_stop: Option<bool>,
    /// `"X,Y WxH"` or `"X,Y,WxH"`.
    pub region: Option<String>,
    /// `"WxH"`, `"Wx"` or `"xH"`.
    pub size: Option<String>,
    pub scale: Option<f64>,
}

/// A validated recording request: what to ask the portal for and what to tell the recorder.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingRequest {
    /// Expanded, absolute, checked writable (see [`crate::path`]).
    pub path: PathBuf,
    /// An existing file at `path` may be replaced.
    pub overwrite: bool,
    pub container: Container,
    /// `None`: chosen with the encoder ([`crate::select_encoder`]), since the default (hevc
    /// with NVENC) depends on the machine and parsing must not probe it.
    pub codec: Option<Codec>,
    pub encoder: EncoderChoice,
    /// Maximum frames per second; `None` records every frame the compositor sends.
    pub framerate: Option<u32>,
    pub rate: RateControl,
    /// Stop by itself after this long (recorded time).
    pub duration: Option<Duration>,
    pub cursor: CursorMode,
    pub source: SourceType,
    /// Use a stored restore token and keep the new one.
    pub restore: bool,
    /// Stop (and finalize) when the D-Bus client that called `Start` leaves the bus.
    pub stop_on_disconnect: bool,
    /// A desktop notification when the recording ends (saved or failed). The daemon sends it;
    /// an in-process CLI recording reports on its terminal instead.
    pub notify: bool,
    /// Audio tracks (as named; the sources are looked up by [`crate::start_recording`],
    /// before the portal), codec and bitrate. `None`: no audio.
    pub audio: Option<AudioConfig>,
    /// Replay mode (ring length, byte bound, save at stop); `None`: a normal recording.
    pub replay: Option<ReplayLimits>,
    /// Only this part of the desktop (a monitor source).
    pub region: Option<Region>,
    /// The video's size.
    pub output_size: OutputSize,
}

/// Why a request was rejected. Every variant names the option ([`RequestError::key`]; the
/// table row where there is one, so each surface can call it by its own name) and the rule.
/// [`RequestError::render`] words it for a surface; `Display` is the D-Bus wording (D-Bus:
/// `InvalidOption`, or `OutputNotWritable` for [`RequestError::NotWritable`] and
/// [`RequestError::Exists`]).
#[derive(Debug, Clone, PartialEq)]
pub enum RequestError {
    /// D-Bus only: a key no option has.
    UnknownKey {
        key: String,
    },
    /// D-Bus only: a value of the wrong type.
    WrongType {
        key: String,
        expected: &'static str,
        got: String,
    },
    /// An enumerated option with a value it does not take.
    NotAChoice {
        option: &'static OptionSpec,
        got: String,
        choices: Vec<&'static str>,
    },
    /// A number outside the option's range (the value in D-Bus units).
    OutOfRange {
        option: &'static OptionSpec,
        got: Number,
    },
    MetadataCursor,
    /// Two options that exclude each other.
    Conflict {
        option: &'static OptionSpec,
        other: &'static OptionSpec,
    },
    /// An option that only means something with another one.
    Needs {
        option: &'static OptionSpec,
        needs: &'static OptionSpec,
    },
    /// The path template or name is malformed.
    BadPath {
        reason: String,
    },
    ContainerMismatch {
        container: Container,
        ext: String,
    },
    CodecNotInContainer(CodecNotInContainer),
    /// The output cannot be created.
    NotWritable {
        path: PathBuf,
        reason: String,
    },
    /// The output exists and `overwrite` was not given.
    Exists {
        path: PathBuf,
    },
    /// An audio option that is malformed or does not fit the container (the recorder's
    /// [`AudioError`] says which; it is also the `source()`).
    Audio {
        option: &'static OptionSpec,
        error: AudioError,
    },
    /// A value that does not have the option's form (`region`, `size`).
    Malformed {
        option: &'static OptionSpec,
        got: String,
        expected: &'static str,
    },
}

/// A number as a surface gave it, kept as given so a message repeats it exactly.
#[derive(Debug, Clone, Copy)]
pub enum Number {
    Int(i128),
    Float(f64),
}

impl PartialEq for Number {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Number::Int(a), Number::Int(b)) => a == b,
            // Bitwise, so the same NaN from two surfaces is the same error.
            (Number::Float(a), Number::Float(b)) => a.to_bits() == b.to_bits(),
            _ => false,
        }
    }
}

impl Number {
    /// The value in a unit `scale` D-Bus units large (`--replay-max-mb`: MiB).
    fn in_unit(self, scale: u64) -> String {
        match self {
            Number::Int(n) if n % scale as i128 == 0 => (n / scale as i128).to_string(),
            Number::Int(n) => (n as f64 / scale as f64).to_string(),
            Number::Float(x) => (x / scale as f64).to_string(),
        }
    }
}

impl From<crate::path::PathError> for RequestError {
    fn from(e: crate::path::PathError) -> Self {
        use crate::path::PathError as P;
        match e {
            P::BadPath { reason } => RequestError::BadPath { reason },
            P::ContainerMismatch { container, ext } => {
                RequestError::ContainerMismatch { container, ext }
            }
            P::NotWritable { path, reason } => RequestError::NotWritable { path, reason },
            P::Exists { path } => RequestError::Exists { path },
        }
    }
}

impl From<CodecNotInContainer> for RequestError {
    fn from(e: CodecNotInContainer) -> Self {
        RequestError::CodecNotInContainer(e)
    }
}

/// The D-Bus wording: what `Start`'s `InvalidOption`/`OutputNotWritable` carry.
impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render(Surface::Dbus))
    }
}

// Written by hand rather than with thiserror: the message depends on the surface, which a
// `#[error(...)]` string cannot take.
impl std::error::Error for RequestError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RequestError::Audio { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl RequestError {
    /// The message in `surface`'s words: the CLI names flags and gives values in the flag's
    /// unit (`--replay-max-mb needs --replay`), D-Bus names keys and gives values in its units
    /// (`'replay-max-bytes' needs 'replay'`).
    pub fn render(&self, surface: Surface) -> String {
        let path = spec("path").name(surface);
        match self {
            RequestError::UnknownKey { key } => {
                format!("unknown option '{key}' (known: {})", KEYS.join(", "))
            }
            RequestError::WrongType { key, expected, got } => {
                format!("'{key}' must be {expected}, got {got}")
            }
            RequestError::NotAChoice {
                option,
                got,
                choices,
            } => format!(
                "{} must be one of {}, got '{got}'",
                option.name(surface),
                choices.join(", ")
            ),
            RequestError::OutOfRange { option, got } => format!(
                "{} must be {}, got {}",
                option.name(surface),
                bounds(option, surface),
                got.in_unit(option.scale(surface))
            ),
            RequestError::MetadataCursor => {
                format!("{} {METADATA_CURSOR}", spec("cursor").name(surface))
            }
            RequestError::Conflict { option, other } => format!(
                "{} cannot be combined with {}",
                option.name(surface),
                other.name(surface)
            ),
            RequestError::Needs { option, needs } => {
                let example = match (needs.key, surface) {
                    ("audio", Surface::Cli) => " (e.g. --audio desktop)",
                    ("audio", Surface::Dbus) => " (e.g. --audio desktop, audio=[\"desktop\"])",
                    _ => "",
                };
                format!(
                    "{} needs {}{example}",
                    option.name(surface),
                    needs.name(surface)
                )
            }
            RequestError::Malformed {
                option,
                got,
                expected,
            } => format!("{} must be {expected}, got '{got}'", option.name(surface)),
            RequestError::BadPath { reason } => format!("{path} {reason}"),
            RequestError::ContainerMismatch { container, ext } => {
                let container_name = spec("container").name(surface);
                match surface {
                    Surface::Cli => {
                        format!("{container_name} is {container} but {path} ends in .{ext}")
                    }
                    Surface::Dbus => {
                        format!("{container_name} is {container} but the path ends in .{ext}")
                    }
                }
            }
            RequestError::CodecNotInContainer(e) => {
                let takes: Vec<&str> = e.container.codecs().iter().map(|c| c.as_str()).collect();
                format!(
                    "{} {} cannot be stored in {c}; {c} takes {}",
                    spec("codec").name(surface),
                    e.codec,
                    takes.join(", "),
                    c = e.container,
                )
            }
            RequestError::NotWritable { path: p, reason } => {
                format!("{path} {}: {reason}", p.display())
            }
            RequestError::Exists { path: p } => match surface {
                Surface::Cli => format!(
                    "{path} {} already exists; add --overwrite to replace it",
                    p.display()
                ),
                // Kept word for word: D-Bus clients may match it.
                Surface::Dbus => format!(
                    "{path} {} already exists; set 'overwrite' (--overwrite) to replace it",
                    p.display()
                ),
            },
            RequestError::Audio { option, error } => {
                format!("{} {error}", option.name(surface))
            }
        }
    }

    /// The option the error is about (its D-Bus key).
    pub fn key(&self) -> &str {
        match self {
            RequestError::UnknownKey { key } | RequestError::WrongType { key, .. } => key,
            RequestError::NotAChoice { option, .. }
            | RequestError::OutOfRange { option, .. }
            | RequestError::Conflict { option, .. }
            | RequestError::Needs { option, .. }
            | RequestError::Audio { option, .. }
            | RequestError::Malformed { option, .. } => option.key,
            RequestError::MetadataCursor => "cursor",
            RequestError::BadPath { .. }
            | RequestError::NotWritable { .. }
            | RequestError::Exists { .. } => "path",
            RequestError::ContainerMismatch { .. } => "container",
            RequestError::CodecNotInContainer(_) => "codec",
        }
    }

    /// The output cannot be written (D-Bus `OutputNotWritable`), as opposed to a bad option.
    pub fn is_not_writable(&self) -> bool {
        matches!(
            self,
            RequestError::NotWritable { .. } | RequestError::Exists { .. }
        )
    }
}

/// `> 0 and <= 1000`, `>= 1 and <= 262144 MiB`: an option's range in `surface`'s unit.
fn bounds(option: &OptionSpec, surface: Surface) -> String {
    let r = option
        .range_in(surface)
        .expect("numeric options have a range");
    let unit = option
        .unit(surface)
        .map(|u| format!(" {u}"))
        .unwrap_or_default();
    let lower = if r.min_exclusive {
        format!("> {}", r.min)
    } else if r.min == 0.0 || option.unit.is_some() {
        format!(">= {}", r.min)
    } else {
        // A count that starts at n: "> n-1" (a frame rate "> 0"), as D-Bus clients have
        // always read it.
        format!("> {}", r.min - 1.0)
    };
    format!("{lower} and <= {}{unit}", r.max)
}

fn choice<T: std::str::FromStr>(
    key: &'static str,
    v: Option<&str>,
) -> Result<Option<T>, RequestError> {
    v.map(|s| {
        s.parse::<T>().map_err(|_| RequestError::NotAChoice {
            option: spec(key),
            got: s.to_owned(),
            choices: choices(key).unwrap_or_default(),
        })
    })
    .transpose()
}

/// Checks `v` against the option's range in the table.
fn in_range(key: &'static str, v: Option<i128>) -> Result<Option<u32>, RequestError> {
    let Some(n) = v else { return Ok(None) };
    let option = spec(key);
    let r = option.range.expect("numeric options have a range");
    if (n as f64) < r.min || (n as f64) > r.max {
        return Err(RequestError::OutOfRange {
            option,
            got: Number::Int(n),
        });
    }
    Ok(Some(n as u32))
}

/// Checks a duration in seconds against `option`'s range (exclusive minimum).
pub(crate) fn seconds_in(
    option: &'static OptionSpec,
    v: Option<f64>,
) -> Result<Option<Duration>, RequestError> {
    let Some(secs) = v else { return Ok(None) };
    let r = option.range.expect("duration has a range");
    // NaN fails both comparisons, so it lands here too.
    let out_of_range = || RequestError::OutOfRange {
        option,
        got: Number::Float(secs),
    };
    if !(secs > r.min && secs <= r.max) {
        return Err(out_of_range());
    }
    let d = Duration::from_secs_f64(secs);
    // Under half a nanosecond rounds to nothing: `> 0` must hold for the duration used, not
    // only for the number given (found by fuzz/: a 1e-300 s replay was a zero-length ring, and
    // its `Options` property was refused when sent back).
    if r.min_exclusive && d.as_secs_f64() <= r.min {
        return Err(out_of_range());
    }
    Ok(Some(d))
}

fn seconds(key: &'static str, v: Option<f64>) -> Result<Option<Duration>, RequestError> {
    seconds_in(spec(key), v)
}

impl RawRequest {
    /// Applies the defaults and every rule, including the output-path rules and the check that
    /// the output can be written. Touches the filesystem (call it off an async executor), never
    /// a GPU library.
    pub fn resolve(&self, ctx: &PathContext) -> Result<RecordingRequest, RequestError> {
        let container = choice::<Container>("container", self.container.as_deref())?;
        let codec = choice::<Codec>("codec", self.codec.as_deref())?;
        let encoder =
            choice::<EncoderChoice>("encoder", self.encoder.as_deref())?.unwrap_or_default();
        let framerate = in_range("framerate", self.framerate)?;
        let bitrate = in_range("bitrate", self.bitrate)?;
        let quality = in_range("quality", self.quality)?;
        let cursor = match self.cursor.as_deref() {
            // A valid portal mode we cannot record yet: refused by name, not silently dropped.
            Some(s) if s.parse::<CursorMode>() == Ok(CursorMode::Metadata) => {
                return Err(RequestError::MetadataCursor)
            }
            c => choice::<CursorMode>("cursor", c)?.unwrap_or_default(),
        };
        let source = choice::<SourceType>("source", self.source.as_deref())?.unwrap_or_default();
        let duration = seconds("duration", self.duration)?;
        let rate = match (bitrate, quality) {
            (Some(_), Some(_)) => {
                return Err(RequestError::Conflict {
                    option: spec("quality"),
                    other: spec("bitrate"),
                })
            }
            (Some(b), None) => RateControl::Bitrate(b),
            (None, Some(q)) => RateControl::Quality(q),
            (None, None) => RateControl::default(),
        };

        let template = self.path.as_deref().unwrap_or(DEFAULT_NAME);
        let (mut path, container) = resolve_path(template, container, ctx)?;
        if self.path.is_none() {
            // The default name has one-second resolution: a second recording within the same
            // second (a quick stop and start from a tray or a shortcut) gets `-2`, `-3`, …
            // rather than an "already exists" error the user never chose a name for.
            path = crate::path::first_free(path);
        }
        if let Some(codec) = codec {
            container.check(codec)?;
        }
        let audio = self.audio_config(container)?;
        let replay = self.replay_limits()?;
        let region = match self.region.as_deref() {
            None => None,
            Some(_) if source == SourceType::Window => {
                return Err(RequestError::Conflict {
                    option: spec("region"),
                    other: spec("source"),
                })
            }
            Some(s) => Some(parse_region(s).ok_or_else(|| RequestError::Malformed {
                option: spec("region"),
                got: s.to_owned(),
                expected: REGION_FORM,
            })?),
        };
        let output_size = self.output_size()?;
        let overwrite = self.overwrite.unwrap_or(false);
        check_writable(&path, overwrite, &ctx.videos_dir)?;

        Ok(RecordingRequest {
            path,
            overwrite,
            container,
            codec,
            encoder,
            framerate,
            rate,
            duration,
            cursor,
            source,
            restore: self.restore.unwrap_or(true),
            stop_on_disconnect: self.stop_on_disconnect.unwrap_or(false),
            notify: self.notify.unwrap_or(true),
            audio,
            replay,
            region,
            output_size,
        })
    }

    /// `size` or `scale` (not both).
    fn output_size(&self) -> Result<OutputSize, RequestError> {
        let scale = match self.scale {
            None => None,
            Some(f) => {
                let option = spec("scale");
                let r = option.range.expect("scale has a range");
                if !(f > r.min && f <= r.max) {
                    return Err(RequestError::OutOfRange {
                        option,
                        got: Number::Float(f),
                    });
                }
                Some(f)
            }
        };
        match (self.size.as_deref(), scale) {
            (Some(_), Some(_)) => Err(RequestError::Conflict {
                option: spec("scale"),
                other: spec("size"),
            }),
            (Some(s), None) => parse_size(s).ok_or_else(|| RequestError::Malformed {
                option: spec("size"),
                got: s.to_owned(),
                expected: SIZE_FORM,
            }),
            (None, Some(f)) => Ok(OutputSize::Scale(f)),
            (None, None) => Ok(OutputSize::Native),
        }
    }

    /// The replay options: the ring's seconds and byte bound; the other two need `replay`.
    fn replay_limits(&self) -> Result<Option<ReplayLimits>, RequestError> {
        let seconds = seconds("replay", self.replay)?;
        let max_bytes = match self.replay_max_bytes {
            None => None,
            Some(n) => {
                let option = spec("replay-max-bytes");
                let r = option.range.expect("has a range");
                if (n as f64) < r.min || (n as f64) > r.max {
                    return Err(RequestError::OutOfRange {
                        option,
                        got: Number::Int(n),
                    });
                }
                Some(n as u64)
            }
        };
        let Some(seconds) = seconds else {
            let key = match (max_bytes, self.save_on_stop) {
                (Some(_), _) => "replay-max-bytes",
                (None, Some(_)) => "save-on-stop",
                (None, None) => return Ok(None),
            };
            return Err(RequestError::Needs {
                option: spec(key),
                needs: spec("replay"),
            });
        };
        Ok(Some(ReplayLimits {
            seconds,
            max_bytes: max_bytes.unwrap_or(crate::options::DEFAULT_REPLAY_BYTES),
            save_on_stop: self.save_on_stop.unwrap_or(false),
        }))
    }

    /// The audio options: tracks parsed, codec defaulted by the container and checked against
    /// it, bitrate in range. Whether the sources exist is asked of PipeWire later, once, before
    /// the portal (parsing never talks to a daemon).
    fn audio_config(&self, container: Container) -> Result<Option<AudioConfig>, RequestError> {
        let codec = choice::<AudioCodec>("audio-codec", self.audio_codec.as_deref())?;
        let bitrate = in_range("audio-bitrate", self.audio_bitrate)?;
        let tracks = match self.audio.as_deref() {
            Some(specs) if !specs.is_empty() => specs
                .iter()
                .map(|s| {
                    s.parse::<TrackSpec>().map_err(|error| RequestError::Audio {
                        option: spec("audio"),
                        error,
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => {
                // Name the key that was given (every rejection names one of the caller's keys).
                let key = match (codec, bitrate) {
                    (Some(_), _) => "audio-codec",
                    (None, Some(_)) => "audio-bitrate",
                    (None, None) => return Ok(None),
                };
                return Err(RequestError::Needs {
                    option: spec(key),
                    needs: spec("audio"),
                });
            }
        };
        let codec = codec.unwrap_or_else(|| AudioCodec::default_for(container));
        codec
            .check(container)
            .map_err(|error| RequestError::Audio {
                option: spec("audio-codec"),
                error,
            })?;
        Ok(Some(AudioConfig {
            tracks,
            codec,
            bitrate,
        }))
    }
}

/// What `region` takes.
const REGION_FORM: &str = "\"X,Y WxH\" or \"X,Y,WxH\" (e.g. \"100,50 640x360\")";
/// What `size` takes.
const SIZE_FORM: &str = "WxH, Wx or xH with even sides from 2 to 16384 (e.g. 1280x720, 1280x)";

/// `X,Y WxH` (slurp's output) or `X,Y,WxH`; X and Y may be negative (a monitor left of or above
/// the primary one), W and H are at least 1.
fn parse_region(s: &str) -> Option<Region> {
    let s = s.trim();
    let (xy, wh) = s.split_once(' ').or_else(|| {
        let (x, rest) = s.split_once(',')?;
        let (y, wh) = rest.split_once(',')?;
        Some((&s[..x.len() + 1 + y.len()], wh))
    })?;
    let (x, y) = xy.trim().split_once(',')?;
    let (w, h) = wh.trim().split_once('x')?;
    let region = Region {
        x: x.trim().parse().ok()?,
        y: y.trim().parse().ok()?,
        width: w.trim().parse().ok()?,
        height: h.trim().parse().ok()?,
    };
    (region.width > 0 && region.height > 0).then_some(region)
}

/// `WxH`, `Wx` or `xH`; each side given is even and within 2..=16384 (what encoders take).
fn parse_size(s: &str) -> Option<OutputSize> {
    let (w, h) = s.trim().split_once('x')?;
    let side = |v: &str| -> Option<Option<u32>> {
        if v.is_empty() {
            return Some(None);
        }
        let n: u32 = v.parse().ok()?;
        ((2..=16384).contains(&n) && n.is_multiple_of(2)).then_some(Some(n))
    };
    let (width, height) = (side(w)?, side(h)?);
    (width.is_some() || height.is_some()).then_some(OutputSize::Fixed { width, height })
}

impl RecordingRequest {
    /// What to ask the portal for.
    pub fn source_options(&self) -> SourceOptions {
        SourceOptions {
            source: self.source,
            cursor: self.cursor,
            restore: self.restore,
        }
    }

    /// What to tell the recorder, with the encoder [`crate::select_encoder`] chose.
    pub fn recording_options(&self, codec: Codec, selected: Selection) -> RecordingOptions {
        let mut o = RecordingOptions::new(self.path.clone());
        o.container = self.container;
        o.codec = codec;
        o.encoder = self.encoder;
        o.max_fps = self.framerate;
        o.rate = self.rate;
        o.duration = self.duration;
        o.selected = Some(selected);
        o.audio = self.audio.clone();
        o.replay = self.replay;
        o.region = self.region;
        o.output_size = self.output_size;
        o
    }
}
