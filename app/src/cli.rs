//! The command line's parser: `zerocast record`'s request flags into a [`RawRequest`], then
//! [`RawRequest::resolve`] like every surface. Values are taken as typed (numbers wide, names as
//! strings) so that defaults, ranges and choices are checked — and worded — in one place.

use clap::Args;

use crate::options::{help as table_help, Surface};
use crate::path::PathContext;
use crate::request::{RawRequest, RecordingRequest, RequestError};

/// An option's help as `zerocast record` shows it: flags, and values in the flags' units.
fn help(key: &str) -> String {
    table_help(key, Surface::Cli)
}

/// The recording options of `zerocast record` (flattened into its arguments).
#[derive(Args, Debug, Clone, Default, PartialEq)]
pub struct RequestArgs {
    #[arg(short, long, help = help("path"))]
    pub output: Option<String>,
    #[arg(long, help = help("overwrite"))]
    pub overwrite: bool,
    #[arg(long, help = help("container"))]
    pub container: Option<String>,
    #[arg(long, help = help("codec"))]
    pub codec: Option<String>,
    #[arg(long, help = help("encoder"))]
    pub encoder: Option<String>,
    #[arg(long, visible_alias = "fps", allow_negative_numbers = true, help = help("framerate"))]
    pub framerate: Option<i128>,
    #[arg(long, allow_negative_numbers = true, help = help("bitrate"))]
    pub bitrate: Option<i128>,
    #[arg(long, allow_negative_numbers = true, help = help("quality"))]
    pub quality: Option<i128>,
    #[arg(long, allow_negative_numbers = true, help = help("duration"))]
    pub duration: Option<f64>,
    #[arg(long, help = help("cursor"))]
    pub cursor: Option<String>,
    #[arg(long, help = help("source"))]
    pub source: Option<String>,
    #[arg(long, help = help("restore"))]
    pub no_restore: bool,
    #[arg(long = "audio", value_name = "SOURCE", help = help("audio"))]
    pub audio: Vec<String>,
    #[arg(long, help = help("audio-codec"))]
    pub audio_codec: Option<String>,
    #[arg(long, allow_negative_numbers = true, help = help("audio-bitrate"))]
    pub audio_bitrate: Option<i128>,
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true, help = help("replay"))]
    pub replay: Option<f64>,
    #[arg(long, value_name = "MIB", allow_negative_numbers = true, help = help("replay-max-bytes"))]
    pub replay_max_mb: Option<i128>,
    #[arg(long, help = help("save-on-stop"))]
    pub save_on_stop: bool,
    #[arg(long, value_name = "\"X,Y WxH\"", allow_hyphen_values = true, help = help("region"))]
    pub region: Option<String>,
    #[arg(long, value_name = "WxH", allow_hyphen_values = true, help = help("size"))]
    pub size: Option<String>,
    #[arg(long, allow_negative_numbers = true, help = help("scale"))]
    pub scale: Option<f64>,
}

impl RequestArgs {
    /// Makes a relative `-o` absolute against the current directory ([`crate::path::from_cwd`]).
    pub fn output_from_cwd(&mut self) -> std::io::Result<()> {
        if let Some(p) = &self.output {
            self.output = Some(crate::path::from_cwd(p)?);
        }
        Ok(())
    }

    /// The flags as given.
    pub fn to_raw(&self) -> RawRequest {
        RawRequest {
            path: self.output.clone(),
            overwrite: self.overwrite.then_some(true),
            container: self.container.clone(),
            codec: self.codec.clone(),
            encoder: self.encoder.clone(),
            framerate: self.framerate,
            bitrate: self.bitrate,
            quality: self.quality,
            cursor: self.cursor.clone(),
            source: self.source.clone(),
            restore: self.no_restore.then_some(false),
            duration: self.duration,
            // A CLI recording belongs to its process; there is no bus client to leave.
            stop_on_disconnect: None,
            notify: None,
            audio: (!self.audio.is_empty()).then(|| self.audio.clone()),
            audio_codec: self.audio_codec.clone(),
            audio_bitrate: self.audio_bitrate,
            replay: self.replay,
            // MiB on the command line, bytes in the request (the D-Bus unit).
            replay_max_bytes: self.replay_max_mb.map(|m| m.saturating_mul(1 << 20)),
            save_on_stop: self.save_on_stop.then_some(true),
            region: self.region.clone(),
            size: self.size.clone(),
            scale: self.scale,
        }
    }

    /// Parses and validates against the current environment (filesystem checks included).
    /// Show an error with `render(Surface::Cli)`: it names the flags given here.
    pub fn parse(&self) -> Result<RecordingRequest, RequestError> {
        self.parse_in(&PathContext::from_env())
    }

    /// [`RequestArgs::parse`] with an explicit [`PathContext`].
    pub fn parse_in(&self, ctx: &PathContext) -> Result<RecordingRequest, RequestError> {
        self.to_raw().resolve(ctx)
    }
}
