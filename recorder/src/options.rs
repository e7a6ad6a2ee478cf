//! What the recorder is asked to do. Requests from the CLI and D-Bus are parsed and validated
//! by the front door (`zerocast-app`, `app/`), which fills these in.

use std::path::PathBuf;
use std::time::Duration;

/// Output container. `Mp4` is written fragmented so a crash leaves a playable file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Container {
    Mkv,
    Mp4,
    Webm,
}

/// Video codec of the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    H264,
    Hevc,
    Av1,
    Vp9,
}

/// Which encoder family to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum EncoderChoice {
    /// Hardware when available, software otherwise (the reason is reported).
    #[default]
    Auto,
    Nvenc,
    Software,
}

/// Rate control. `Quality` is a CRF/CQ-like value (lower is better, codec scale), `Bitrate` kbit/s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateControl {
    Quality(u32),
    Bitrate(u32),
}

impl Default for RateControl {
    fn default() -> Self {
        RateControl::Quality(23)
    }
}

/// Everything the recorder needs to know, independent of the portal.
#[derive(Debug, Clone)]
pub struct RecordingOptions {
    /// Final output path (already expanded and checked writable by the front end).
    pub path: PathBuf,
    pub container: Container,
    pub codec: Codec,
    pub encoder: EncoderChoice,
    /// Maximum frames per second; `None` records every frame the compositor sends (VFR).
    pub max_fps: Option<u32>,
    pub rate: RateControl,
    /// Keyframe interval in frames.
    pub keyint: u32,
    /// Stop by itself after this long (recorded time, pauses excluded).
    pub duration: Option<Duration>,
    /// The encoder the front door selected for this recording (`zerocast-app`, once, before
    /// the portal); the encoder thread then uses it as is. `None`: the recorder applies the
    /// same rule ([`crate::encode::select_encoder`]) itself (library use, tests).
    pub selected: Option<crate::encode::Selection>,
    /// Audio tracks (sources already resolved), codec and bitrate; `None`: no audio.
    pub audio: Option<crate::audio::AudioConfig>,
    /// Replay mode: keep the last seconds in memory, write only on a save (or at stop when
    /// asked); `None`: a normal recording.
    pub replay: Option<crate::encode::replay::ReplayLimits>,
}

impl RecordingOptions {
    pub fn new(path: PathBuf) -> Self {
        let container = Container::from_path(&path).unwrap_or(Container::Mkv);
        RecordingOptions {
            path,
            container,
            codec: Codec::H264,
            encoder: EncoderChoice::Auto,
            max_fps: None,
            rate: RateControl::default(),
            keyint: 250,
            duration: None,
            selected: None,
            audio: None,
            replay: None,
        }
    }
}

use zerocast_strenum::str_enum;
/// Error for an option value that does not parse; says what was expected (the one
/// `str_enum!` error, shared with the portal client's enums).
pub use zerocast_strenum::ParseError as ParseOptionError;

str_enum!(Container, "container", { Mkv => "mkv", Mp4 => "mp4", Webm => "webm" });
str_enum!(Codec, "codec", { H264 => "h264", Hevc => "hevc", Av1 => "av1", Vp9 => "vp9" });
str_enum!(EncoderChoice, "encoder", { Auto => "auto", Nvenc => "nvenc", Software => "software" });

impl Container {
    /// Container implied by a file extension, if it is one we write.
    pub fn from_path(path: &std::path::Path) -> Option<Container> {
        let ext = path.extension()?.to_str()?;
        match ext.to_ascii_lowercase().as_str() {
            "mkv" => Some(Container::Mkv),
            "mp4" | "m4v" => Some(Container::Mp4),
            "webm" => Some(Container::Webm),
            _ => None,
        }
    }

    /// Whether this container can carry `codec` (webm is VP9/AV1 only).
    pub fn supports(self, codec: Codec) -> bool {
        match self {
            Container::Mkv => true,
            Container::Mp4 => matches!(codec, Codec::H264 | Codec::Hevc | Codec::Av1 | Codec::Vp9),
            Container::Webm => matches!(codec, Codec::Av1 | Codec::Vp9),
        }
    }

    /// The codecs this container can carry, in [`Codec::ALL`] order.
    pub fn codecs(self) -> Vec<Codec> {
        Codec::ALL
            .iter()
            .copied()
            .filter(|c| self.supports(*c))
            .collect()
    }

    /// [`Container::supports`] as a `Result` carrying the one wording of the rule.
    pub fn check(self, codec: Codec) -> Result<(), CodecNotInContainer> {
        if self.supports(codec) {
            Ok(())
        } else {
            Err(CodecNotInContainer {
                codec,
                container: self,
            })
        }
    }
}

/// A codec the container cannot carry. The one wording of that rule, for every front end and
/// the recorder alike.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
#[error("'codec' {codec} cannot be stored in {container}; {container} takes {}", join(&container.codecs()))]
pub struct CodecNotInContainer {
    pub codec: Codec,
    pub container: Container,
}

fn join(codecs: &[Codec]) -> String {
    codecs
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_rejects_unknown_and_lists_choices() {
        let err = "h266".parse::<Codec>().unwrap_err();
        assert_eq!(err.what, "codec");
        assert!(err.to_string().contains("h264 hevc av1 vp9"), "{err}");
        assert_eq!("HEVC".parse::<Codec>().unwrap(), Codec::Hevc);
    }

    #[test]
    fn container_from_extension() {
        assert_eq!(
            Container::from_path("a/b.MP4".as_ref()),
            Some(Container::Mp4)
        );
        assert_eq!(Container::from_path("a/b".as_ref()), None);
        assert!(!Container::Webm.supports(Codec::H264));
    }
}
