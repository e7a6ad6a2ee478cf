//! Audio: PipeWire capture streams (desktop, microphone, a node, an application), a
//! sample-accurate timeline anchored to CLOCK_MONOTONIC (the clock of the compositor's video
//! timestamps), mixing, and the blocks handed to the encoder thread.
//!
//! Data flow (one recording):
//!
//! ```text
//! PipeWire (default daemon, not the portal's remote)
//!   audio PipeWire thread (capture.rs): one capture stream per source, F32 stereo 48 kHz;
//!     RT process callback copies each buffer + its cycle time into a pooled Chunk (no
//!     allocation) and try-sends it; no free chunk = counted loss (a gap the timeline fills)
//!   ──chunks──► audio thread (track.rs): per source a SourceClock (timing.rs) maps capture time
//!     to file position (pauses removed, gaps filled with silence, drift corrected), a track
//!     sums its sources (no normalisation), emits contiguous Blocks
//!   ──EncMsg::Audio──► encoder thread: encode/audio.rs (Opus / AAC / FLAC) → the muxer
//! ```
//!
//! No ScreenCast portal provides audio, so it comes from the user's PipeWire daemon directly.

mod capture;
pub mod ring;
pub mod timing;
pub mod track;

use std::fmt;
use std::str::FromStr;

use crate::Cause;

pub use capture::{list_sources, AudioCapture, AudioEvent, AudioNode, NodeKind, STALL_ENV};
pub use ring::{Block, BlockPool, BlockReturn, Chunk};
pub use track::{AudioSummary, AudioThread, TrackSet};

/// Whether this FFmpeg build has the encoder `name` (for `probe` / Capabilities).
pub fn encoder_present(name: &str) -> bool {
    ffmpeg_next::encoder::find_by_name(name).is_some()
}

/// CLOCK_MONOTONIC in ns: the clock of capture times and of the compositor's video timestamps.
pub fn monotonic_ns() -> i64 {
    crate::clock::monotonic_ns()
}

/// Sample rate of every track (PipeWire's default graph rate; converted by PipeWire otherwise).
pub const RATE: u32 = 48_000;
/// Channels of every track (interleaved FL, FR).
pub const CHANNELS: usize = 2;

/// Where a track's sound comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AudioSource {
    /// What the speakers play: the default sink's monitor (follows default-sink changes).
    Desktop,
    /// The default source (microphone).
    Mic,
    /// A PipeWire node by `node.name` (a sink: its monitor; a source: its output).
    Node(String),
    /// The output streams of an application, by `application.name`, its binary or its stream's
    /// `node.name` (case-insensitive).
    App(String),
}

impl AudioSource {
    /// The name the user typed for it.
    pub fn spec(&self) -> String {
        match self {
            AudioSource::Desktop => "desktop".into(),
            AudioSource::Mic => "mic".into(),
            AudioSource::Node(n) => format!("node:{n}"),
            AudioSource::App(n) => format!("app:{n}"),
        }
    }
}

impl fmt::Display for AudioSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.spec())
    }
}

/// One audio track of the file: one source, or several mixed (`desktop+mic`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TrackSpec {
    pub sources: Vec<AudioSource>,
}

impl fmt::Display for TrackSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.sources.iter().map(AudioSource::spec).collect();
        f.write_str(&parts.join("+"))
    }
}

/// Why an audio option or source is not usable, or audio capture could not start. Library
/// errors stay the `source()` (shared through [`Cause`]: the recorder's errors are `Clone`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AudioError {
    #[error("audio source {0:?} is empty; use desktop, mic, node:NAME, app:NAME or a+b")]
    Empty(String),
    #[error(
        "unknown audio source kind {kind:?} in {spec:?}; use desktop, mic, node:NAME or app:NAME"
    )]
    UnknownKind { spec: String, kind: String },
    #[error("no audio source named {name:?}; available: {available}")]
    UnknownSource { name: String, available: String },
    #[error("no audio server: cannot connect to PipeWire ({0})")]
    NoServer(#[source] Cause<pipewire::Error>),
    #[error("no audio server: cannot connect to PipeWire (the PipeWire daemon did not answer within 3 s)")]
    NoAnswer,
    #[error("audio codec {codec} cannot go into {container}; {container} takes {takes}")]
    CodecContainer {
        codec: AudioCodec,
        container: crate::Container,
        takes: String,
    },
    #[error("audio-bitrate {0} kbit/s is out of range (6..=512)")]
    Bitrate(u32),
    #[error("audio: unknown audio codec {0:?}; use opus, aac or flac")]
    UnknownCodec(String),
    #[error("audio: cannot start the audio thread: {0}")]
    Thread(#[source] Cause<std::io::Error>),
    #[error("audio: the audio thread ended early")]
    ThreadEnded,
    /// A capture stream could not be made or connected.
    #[error("audio: audio stream: {0}")]
    Stream(#[source] Cause<pipewire::Error>),
    /// Work moved to a blocking thread (`what`: the source lookup, the start) panicked there.
    #[error("{what}: {source}")]
    Panicked {
        what: &'static str,
        #[source]
        source: Cause<tokio::task::JoinError>,
    },
}

impl FromStr for AudioSource {
    type Err = AudioError;

    /// `desktop`, `mic`, `node:NAME`, `app:NAME`; a bare other word is a node name if one
    /// exists, else an application (resolved by [`resolve`]).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err(AudioError::Empty(s.into()));
        }
        Ok(match s {
            "desktop" | "speakers" | "output" => AudioSource::Desktop,
            "mic" | "microphone" | "input" => AudioSource::Mic,
            _ => match s.split_once(':') {
                Some(("node", n)) if !n.is_empty() => AudioSource::Node(n.into()),
                Some(("app", n)) if !n.is_empty() => AudioSource::App(n.into()),
                Some((kind @ ("node" | "app"), _)) => {
                    return Err(AudioError::Empty(format!("{kind}:")))
                }
                Some((kind, _)) if !kind.contains('.') && !kind.contains('_') => {
                    return Err(AudioError::UnknownKind {
                        spec: s.into(),
                        kind: kind.into(),
                    })
                }
                // PipeWire node names may contain ':' (alsa_output.pci-0000:00:1f.3...).
                _ => AudioSource::Node(s.into()),
            },
        })
    }
}

impl FromStr for TrackSpec {
    type Err = AudioError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let sources = s
            .split('+')
            .map(str::parse)
            .collect::<Result<Vec<AudioSource>, _>>()?;
        Ok(TrackSpec { sources })
    }
}

/// Audio codec of the file's audio tracks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioCodec {
    Opus,
    Aac,
    Flac,
}

impl AudioCodec {
    pub const ALL: &'static [AudioCodec] = &[AudioCodec::Opus, AudioCodec::Aac, AudioCodec::Flac];

    pub fn as_str(self) -> &'static str {
        match self {
            AudioCodec::Opus => "opus",
            AudioCodec::Aac => "aac",
            AudioCodec::Flac => "flac",
        }
    }

    /// FFmpeg encoder name.
    pub fn encoder_name(self) -> &'static str {
        match self {
            AudioCodec::Opus => "libopus",
            AudioCodec::Aac => "aac",
            AudioCodec::Flac => "flac",
        }
    }

    /// The codec when none is asked for: Opus in mkv/webm (best quality per bit, cheap), AAC in
    /// mp4 (what every mp4 player plays).
    pub fn default_for(container: crate::Container) -> AudioCodec {
        match container {
            crate::Container::Mp4 => AudioCodec::Aac,
            crate::Container::Mkv | crate::Container::Webm => AudioCodec::Opus,
        }
    }

    pub fn fits(self, container: crate::Container) -> bool {
        use crate::Container::*;
        matches!(
            (self, container),
            // FFmpeg 5.1 writes Opus and FLAC into mp4 only as "experimental".
            (AudioCodec::Opus, Mkv | Webm) | (AudioCodec::Aac, Mkv | Mp4) | (AudioCodec::Flac, Mkv)
        )
    }

    /// Checks the codec against the container, returning a named error.
    pub fn check(self, container: crate::Container) -> Result<(), AudioError> {
        if self.fits(container) {
            return Ok(());
        }
        let takes: Vec<_> = AudioCodec::ALL
            .iter()
            .filter(|c| c.fits(container))
            .map(|c| c.as_str())
            .collect();
        Err(AudioError::CodecContainer {
            codec: self,
            container,
            takes: takes.join(", "),
        })
    }

    /// Default bitrate in kbit/s (FLAC is lossless: none).
    pub fn default_bitrate(self) -> Option<u32> {
        match self {
            AudioCodec::Opus => Some(128),
            AudioCodec::Aac => Some(160),
            AudioCodec::Flac => None,
        }
    }
}

impl fmt::Display for AudioCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AudioCodec {
    type Err = AudioError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "opus" => Ok(AudioCodec::Opus),
            "aac" => Ok(AudioCodec::Aac),
            "flac" => Ok(AudioCodec::Flac),
            _ => Err(AudioError::UnknownCodec(s.to_owned())),
        }
    }
}

/// Bitrate range accepted for `audio-bitrate` (kbit/s).
pub const BITRATE_RANGE: std::ops::RangeInclusive<u32> = 6..=512;

/// What the encoder thread needs to open the file's audio tracks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioConfig {
    pub tracks: Vec<TrackSpec>,
    pub codec: AudioCodec,
    /// kbit/s per track; `None` = the codec's default.
    pub bitrate: Option<u32>,
}

impl AudioConfig {
    /// Validates codec/container and bitrate (no PipeWire involved).
    pub fn check(&self, container: crate::Container) -> Result<(), AudioError> {
        self.codec.check(container)?;
        if let Some(b) = self.bitrate {
            if !BITRATE_RANGE.contains(&b) {
                return Err(AudioError::Bitrate(b));
            }
        }
        Ok(())
    }
}

/// Checks that every source of `tracks` exists on the PipeWire daemon (the default remote),
/// before anything else starts. Desktop and mic need a default sink/source; `node:` a node of
/// that name; `app:` an application stream of that name playing now. A bare word that was
/// parsed as a node name matches an application too.
pub fn resolve(tracks: &[TrackSpec]) -> Result<Vec<TrackSpec>, AudioError> {
    let nodes = list_sources()?;
    let mut out = Vec::with_capacity(tracks.len());
    for t in tracks {
        let mut sources = Vec::with_capacity(t.sources.len());
        for s in &t.sources {
            sources.push(resolve_one(s, &nodes)?);
        }
        out.push(TrackSpec { sources });
    }
    Ok(out)
}

fn resolve_one(s: &AudioSource, nodes: &[AudioNode]) -> Result<AudioSource, AudioError> {
    let available = || {
        let mut names: Vec<String> = vec!["desktop".into(), "mic".into()];
        names.extend(nodes.iter().map(|n| match n.kind {
            NodeKind::App => format!("app:{}", n.app.as_deref().unwrap_or(&n.name)),
            _ => format!("node:{}", n.name),
        }));
        names.dedup();
        names.join(", ")
    };
    let unknown = |name: &str| AudioError::UnknownSource {
        name: name.into(),
        available: available(),
    };
    match s {
        AudioSource::Desktop => {
            if nodes.iter().any(|n| n.kind == NodeKind::Sink) {
                Ok(s.clone())
            } else {
                Err(unknown("desktop"))
            }
        }
        AudioSource::Mic => {
            if nodes
                .iter()
                .any(|n| matches!(n.kind, NodeKind::Source | NodeKind::Sink))
            {
                Ok(s.clone())
            } else {
                Err(unknown("mic"))
            }
        }
        AudioSource::Node(name) => {
            if nodes
                .iter()
                .any(|n| n.kind != NodeKind::App && &n.name == name)
            {
                Ok(s.clone())
            } else if nodes
                .iter()
                .any(|n| n.kind == NodeKind::App && n.matches_app(name))
            {
                Ok(AudioSource::App(name.clone()))
            } else {
                Err(unknown(name))
            }
        }
        AudioSource::App(name) => {
            if nodes
                .iter()
                .any(|n| n.kind == NodeKind::App && n.matches_app(name))
            {
                Ok(s.clone())
            } else {
                Err(unknown(&format!("app:{name}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Container;

    #[test]
    fn source_specs_parse() {
        assert_eq!(
            "desktop".parse::<AudioSource>().unwrap(),
            AudioSource::Desktop
        );
        assert_eq!("mic".parse::<AudioSource>().unwrap(), AudioSource::Mic);
        assert_eq!(
            "app:firefox".parse::<AudioSource>().unwrap(),
            AudioSource::App("firefox".into())
        );
        assert_eq!(
            "alsa_output.pci-0000:00:1f.3.analog-stereo"
                .parse::<AudioSource>()
                .unwrap(),
            AudioSource::Node("alsa_output.pci-0000:00:1f.3.analog-stereo".into())
        );
        assert!(matches!(
            "foo:bar".parse::<AudioSource>(),
            Err(AudioError::UnknownKind { .. })
        ));
        assert!(matches!(
            "app:".parse::<AudioSource>(),
            Err(AudioError::Empty(_))
        ));
        let t: TrackSpec = "desktop+mic".parse().unwrap();
        assert_eq!(t.sources, vec![AudioSource::Desktop, AudioSource::Mic]);
        assert_eq!(t.to_string(), "desktop+mic");
        assert!("desktop+".parse::<TrackSpec>().is_err());
    }

    /// The messages read as the strings built before the causes were typed; the cause stays.
    #[test]
    fn error_messages_unchanged() {
        use std::error::Error as _;
        assert_eq!(
            AudioError::NoAnswer.to_string(),
            "no audio server: cannot connect to PipeWire (the PipeWire daemon did not answer within 3 s)"
        );
        let e = "mp3".parse::<AudioCodec>().unwrap_err();
        assert_eq!(
            crate::RecorderError::from(e).to_string(),
            "audio: audio: unknown audio codec \"mp3\"; use opus, aac or flac"
        );
        let e = AudioError::Stream(Cause::new(pipewire::Error::CreationFailed));
        assert_eq!(e.to_string(), "audio: audio stream: Creation failed");
        let cause = e.source().expect("a cause");
        assert!(cause.is::<Cause<pipewire::Error>>(), "{cause:?}");
        let e = AudioError::NoServer(Cause::new(pipewire::Error::NoMemory));
        assert_eq!(
            e.to_string(),
            "no audio server: cannot connect to PipeWire (No memory)"
        );
    }

    #[test]
    fn codecs_and_containers() {
        assert_eq!(AudioCodec::default_for(Container::Mp4), AudioCodec::Aac);
        assert_eq!(AudioCodec::default_for(Container::Webm), AudioCodec::Opus);
        assert_eq!(AudioCodec::default_for(Container::Mkv), AudioCodec::Opus);
        let e = AudioCodec::Aac.check(Container::Webm).unwrap_err();
        assert_eq!(
            e.to_string(),
            "audio codec aac cannot go into webm; webm takes opus"
        );
        assert!(AudioCodec::Flac.check(Container::Mkv).is_ok());
        let cfg = AudioConfig {
            tracks: vec![],
            codec: AudioCodec::Opus,
            bitrate: Some(1000),
        };
        assert_eq!(cfg.check(Container::Mkv), Err(AudioError::Bitrate(1000)));
    }

    #[test]
    fn resolution_names_what_exists() {
        let nodes = vec![
            AudioNode {
                id: 1,
                serial: 1,
                name: "test-speakers".into(),
                description: None,
                app: None,
                binary: None,
                kind: NodeKind::Sink,
            },
            AudioNode {
                id: 2,
                serial: 2,
                name: "beeper-out".into(),
                description: None,
                app: Some("Beeper".into()),
                binary: Some("beep".into()),
                kind: NodeKind::App,
            },
        ];
        assert_eq!(
            resolve_one(&AudioSource::Node("beeper".into()), &nodes).unwrap(),
            AudioSource::App("beeper".into())
        );
        assert!(resolve_one(&AudioSource::App("beep".into()), &nodes).is_ok());
        let e = resolve_one(&AudioSource::Node("nope".into()), &nodes).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no audio source named \"nope\"; available: desktop, mic, node:test-speakers, app:Beeper"
        );
    }
}
