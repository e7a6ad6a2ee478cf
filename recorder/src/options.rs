//! What the recorder is asked to do. Requests from the CLI and D-Bus are parsed and validated
//! by the front door (`zerocast-app`, `app/`), which fills these in.

use std::fmt;
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

/// A part of the desktop to record, in desktop-logical coordinates (what `slurp` prints).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub x: i32,
    pub y: i32,
    pub width: u32,
    pub height: u32,
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{} {}x{}", self.x, self.y, self.width, self.height)
    }
}

impl Region {
    /// The part of `self` inside `other`, if any.
    pub fn intersect(&self, other: &Region) -> Option<Region> {
        let x0 = self.x.max(other.x) as i64;
        let y0 = self.y.max(other.y) as i64;
        let x1 = (self.x as i64 + self.width as i64).min(other.x as i64 + other.width as i64);
        let y1 = (self.y as i64 + self.height as i64).min(other.y as i64 + other.height as i64);
        (x1 > x0 && y1 > y0).then(|| Region {
            x: x0 as i32,
            y: y0 as i32,
            width: (x1 - x0) as u32,
            height: (y1 - y0) as u32,
        })
    }
}

/// The size of the file's picture, from the size recorded (the monitor, window or region).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum OutputSize {
    /// As recorded.
    #[default]
    Native,
    /// A width, a height or both; a missing side follows the recorded aspect. With both, a
    /// picture of another aspect is fitted inside with black bars (never stretched).
    Fixed {
        width: Option<u32>,
        height: Option<u32>,
    },
    /// Both sides times this factor.
    Scale(f64),
}

impl OutputSize {
    /// The picture size for a recorded `w`×`h`: that for `Native` (the encoders deal with odd
    /// sizes as they always did), else even (4:2:0) and at least 2×2.
    pub fn apply(&self, w: u32, h: u32) -> (u32, u32) {
        let (w64, h64) = (w.max(1) as f64, h.max(1) as f64);
        let (ow, oh) = match *self {
            OutputSize::Native => return (w, h),
            OutputSize::Fixed {
                width: Some(ow),
                height: Some(oh),
            } => (ow as f64, oh as f64),
            OutputSize::Fixed {
                width: Some(ow),
                height: None,
            } => (ow as f64, ow as f64 * h64 / w64),
            OutputSize::Fixed {
                width: None,
                height: Some(oh),
            } => (oh as f64 * w64 / h64, oh as f64),
            OutputSize::Fixed {
                width: None,
                height: None,
            } => (w64, h64),
            OutputSize::Scale(f) => (w64 * f, h64 * f),
        };
        let even = |v: f64| ((v.round().min(u32::MAX as f64) as u32) & !1).max(2);
        (even(ow), even(oh))
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
    /// Record only this part of the desktop (a monitor cast); `None`: all of the source.
    pub region: Option<Region>,
    /// The file's picture size.
    pub output_size: OutputSize,
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
            region: None,
            output_size: OutputSize::Native,
        }
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;

    #[test]
    fn output_sizes_are_even_and_keep_the_aspect_unless_both_sides_are_given() {
        let fixed = |width, height| OutputSize::Fixed { width, height };
        assert_eq!(OutputSize::Native.apply(1281, 721), (1281, 721));
        assert_eq!(OutputSize::Scale(0.5).apply(1280, 720), (640, 360));
        assert_eq!(OutputSize::Scale(0.5).apply(1366, 768), (682, 384));
        assert_eq!(fixed(Some(640), None).apply(1280, 720), (640, 360));
        assert_eq!(fixed(None, Some(480)).apply(1280, 720), (852, 480));
        assert_eq!(fixed(Some(640), Some(480)).apply(1280, 720), (640, 480));
        assert_eq!(fixed(Some(641), Some(3)).apply(1280, 720), (640, 2));
        assert_eq!(OutputSize::Scale(0.001).apply(1280, 720), (2, 2));
    }

    #[test]
    fn regions_intersect() {
        let r = |x, y, width, height| Region {
            x,
            y,
            width,
            height,
        };
        let monitor = r(0, 0, 1280, 720);
        assert_eq!(
            r(100, 50, 640, 360).intersect(&monitor),
            Some(r(100, 50, 640, 360))
        );
        assert_eq!(
            r(-10, 700, 100, 100).intersect(&monitor),
            Some(r(0, 700, 90, 20))
        );
        assert_eq!(r(1280, 0, 10, 10).intersect(&monitor), None);
        assert_eq!(
            r(2000, 0, 10, 10).intersect(&r(1280, 0, 1920, 1080)),
            Some(r(2000, 0, 10, 10))
        );
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

/// An option the recorder refuses (`RecorderError::InvalidOption`): the request's parser
/// checks most, these need the encoder table or the monitor the user picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    #[error(transparent)]
    CodecNotInContainer(#[from] CodecNotInContainer),
    #[error("the region {region} lies outside the recorded monitor ({},{} {}x{})", position.0, position.1, size.0, size.1)]
    RegionOutside {
        region: Region,
        position: (i32, i32),
        size: (u32, u32),
    },
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
    fn region_outside_message() {
        let e = crate::RecorderError::from(OptionError::RegionOutside {
            region: Region {
                x: 10,
                y: 20,
                width: 100,
                height: 50,
            },
            position: (1920, 0),
            size: (1280, 1024),
        });
        assert_eq!(
            e.to_string(),
            "invalid option: the region 10,20 100x50 lies outside the recorded monitor (1920,0 1280x1024)"
        );
    }

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
