//! [`RecordingRequest`]: what one recording is asked to do, every default filled in and every
//! rule checked — the same for `zerocast record` and D-Bus `Start`. The surfaces only turn
//! their syntax into a [`RawRequest`] (values as given, nothing checked but D-Bus types);
//! [`RawRequest::resolve`] is the one place options are validated.

use std::path::PathBuf;
use std::time::Duration;

use zerocast_portal::{CursorMode, SourceOptions, SourceType};
use zerocast_recorder::audio::{AudioCodec, AudioConfig, TrackSpec};
use zerocast_recorder::encode::replay::ReplayLimits;
use zerocast_recorder::{
    encode::Selection, Codec, CodecNotInContainer, Container, EncoderChoice, RateControl,
    RecordingOptions,
};

use crate::options::{choices, spec, KEYS};
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
}

/// Why a request was rejected. Every variant names the option ([`RequestError::key`]) and the
/// rule; `Display` is the message both surfaces show (D-Bus: `InvalidOption`, or
/// `OutputNotWritable` for [`RequestError::NotWritable`] and [`RequestError::Exists`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RequestError {
    /// D-Bus only: a key no option has.
    #[error("unknown option '{key}' (known: {})", KEYS.join(", "))]
    UnknownKey { key: String },
    /// D-Bus only: a value of the wrong type.
    #[error("'{key}' must be {expected}, got {got}")]
    WrongType {
        key: String,
        expected: &'static str,
        got: String,
    },
    /// An enumerated option with a value it does not take.
    #[error("'{key}' must be one of {}, got '{got}'", choices.join(", "))]
    NotAChoice {
        key: &'static str,
        got: String,
        choices: Vec<&'static str>,
    },
    /// A number outside the option's range.
    #[error("'{key}' must be {bounds}, got {got}")]
    OutOfRange {
        key: &'static str,
        bounds: String,
        got: String,
    },
    #[error("'cursor' {METADATA_CURSOR}")]
    MetadataCursor,
    /// Two options that exclude each other.
    #[error("'{key}' cannot be combined with '{other}'")]
    Conflict {
        key: &'static str,
        other: &'static str,
    },
    /// An option that only means something with another one.
    #[error("'{key}' needs '{needs}'")]
    Needs {
        key: &'static str,
        needs: &'static str,
    },
    /// The path template or name is malformed.
    #[error("'path' {reason}")]
    BadPath { reason: String },
    #[error("'container' is {container} but the path ends in .{ext}")]
    ContainerMismatch { container: Container, ext: String },
    #[error(transparent)]
    CodecNotInContainer(#[from] CodecNotInContainer),
    /// The output cannot be created.
    #[error("'path' {path}: {reason}")]
    NotWritable { path: PathBuf, reason: String },
    /// The output exists and `overwrite` was not given.
    #[error("'path' {path} already exists; set 'overwrite' (--overwrite) to replace it")]
    Exists { path: PathBuf },
    /// An audio option that is malformed, does not fit the container, or comes without
    /// `audio`.
    #[error("'{key}' {reason}")]
    Audio { key: &'static str, reason: String },
}

impl RequestError {
    /// The option the error is about.
    pub fn key(&self) -> &str {
        match self {
            RequestError::UnknownKey { key } | RequestError::WrongType { key, .. } => key,
            RequestError::NotAChoice { key, .. }
            | RequestError::OutOfRange { key, .. }
            | RequestError::Conflict { key, .. }
            | RequestError::Needs { key, .. }
            | RequestError::Audio { key, .. } => key,
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

fn choice<T: std::str::FromStr>(
    key: &'static str,
    v: Option<&str>,
) -> Result<Option<T>, RequestError> {
    v.map(|s| {
        s.parse::<T>().map_err(|_| RequestError::NotAChoice {
            key,
            got: s.to_owned(),
            choices: choices(key).unwrap_or_default(),
        })
    })
    .transpose()
}

/// Checks `v` against the option's range in the table.
fn in_range(key: &'static str, v: Option<i128>) -> Result<Option<u32>, RequestError> {
    let Some(n) = v else { return Ok(None) };
    let r = spec(key).range.expect("numeric options have a range");
    if (n as f64) < r.min || (n as f64) > r.max {
        let lower = if r.min == 0.0 {
            ">= 0".to_string()
        } else {
            format!("> {}", r.min - 1.0)
        };
        return Err(RequestError::OutOfRange {
            key,
            bounds: format!("{lower} and <= {}", r.max),
            got: n.to_string(),
        });
    }
    Ok(Some(n as u32))
}

fn seconds(key: &'static str, v: Option<f64>) -> Result<Option<Duration>, RequestError> {
    let Some(secs) = v else { return Ok(None) };
    let r = spec(key).range.expect("duration has a range");
    // NaN fails both comparisons, so it lands here too.
    if !(secs > r.min && secs <= r.max) {
        return Err(RequestError::OutOfRange {
            key,
            bounds: format!("> {} and <= {} seconds", r.min, r.max),
            got: secs.to_string(),
        });
    }
    Ok(Some(Duration::from_secs_f64(secs)))
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
                    key: "quality",
                    other: "bitrate",
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
        })
    }

    /// The replay options: the ring's seconds and byte bound; the other two need `replay`.
    fn replay_limits(&self) -> Result<Option<ReplayLimits>, RequestError> {
        let seconds = seconds("replay", self.replay)?;
        let max_bytes = match self.replay_max_bytes {
            None => None,
            Some(n) => {
                let r = spec("replay-max-bytes").range.expect("has a range");
                if (n as f64) < r.min || (n as f64) > r.max {
                    return Err(RequestError::OutOfRange {
                        key: "replay-max-bytes",
                        bounds: format!(">= {} and <= {} bytes", r.min, r.max),
                        got: n.to_string(),
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
                key,
                needs: "replay",
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
                    s.parse::<TrackSpec>().map_err(|e| RequestError::Audio {
                        key: "audio",
                        reason: e.to_string(),
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
                return Err(RequestError::Audio {
                    key,
                    reason: "needs 'audio' (e.g. --audio desktop, audio=[\"desktop\"])".into(),
                });
            }
        };
        let codec = codec.unwrap_or_else(|| AudioCodec::default_for(container));
        codec.check(container).map_err(|e| RequestError::Audio {
            key: "audio-codec",
            reason: e.to_string(),
        })?;
        Ok(Some(AudioConfig {
            tracks,
            codec,
            bitrate,
        }))
    }
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
        o
    }
}
