//! The option table: every recording option once, with its D-Bus type, its `zerocast record`
//! flag, its help and its range. Both parsers, the docs' wording, `ctl`'s help and D-Bus
//! `Capabilities` read it; adding an option is one row here, one field of
//! [`crate::RawRequest`] and [`crate::RecordingRequest`], and one parse arm per surface.

use zerocast_portal::{CursorMode, SourceType};
use zerocast_recorder::audio::{AudioCodec, BITRATE_RANGE};
use zerocast_recorder::{Codec, Container, EncoderChoice};

/// One recording option.
#[derive(Debug, Clone, Copy)]
pub struct OptionSpec {
    /// The D-Bus key; also the name error messages use (`'framerate' must be …`).
    pub key: &'static str,
    /// The D-Bus type (`s`, `u`, `d`, `b`, `as`).
    pub signature: &'static str,
    /// The `zerocast record` flag, if the CLI has the option.
    pub flag: Option<&'static str>,
    /// What it does and its default (choices and range are added by [`help`]).
    pub help: &'static str,
    /// Inclusive bounds of a numeric option; `min_exclusive` when 0 itself is not allowed
    /// (a duration must be > 0).
    pub range: Option<Range>,
}

/// Bounds of a numeric option.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    pub min: f64,
    pub max: f64,
    /// The minimum itself is excluded (`> 0`), as for a duration.
    pub min_exclusive: bool,
}

/// Upper bounds that keep values meaningful and arithmetic safe (e.g. `Duration::from_secs_f64`
/// panics on huge values).
pub const MAX_FRAMERATE: u32 = 1000;
pub const MAX_BITRATE_KBPS: u32 = 1_000_000;
/// The largest CRF/CQ scale of the codecs we support (AV1: 0–63).
pub const MAX_QUALITY: u32 = 63;
/// One year: long enough for any recording, small enough for `Duration`.
pub const MAX_DURATION_S: f64 = 365.0 * 24.0 * 3600.0;
/// A replay's longest ring: an hour.
pub const MAX_REPLAY_S: f64 = 3600.0;
/// A replay's byte bound: at least 1 MiB, at most 256 GiB.
pub const MIN_REPLAY_BYTES: u64 = 1 << 20;
pub const MAX_REPLAY_BYTES: u64 = 256 << 30;
/// Default byte bound of a replay (30 s of 4K at 60 Mbit/s is ~225 MB).
pub const DEFAULT_REPLAY_BYTES: u64 = 512 << 20;

const fn int_range(min: u32, max: u32) -> Option<Range> {
    Some(Range {
        min: min as f64,
        max: max as f64,
        min_exclusive: false,
    })
}

/// Every option, in the order the docs list them.
pub const OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        key: "path",
        signature: "s",
        flag: Some("--output"),
        help: "Output file or template: %d date, %t time, %%; ~/ is home, a relative path goes to \
               the videos folder ($XDG_VIDEOS_DIR, else ~/Videos); no extension: the container's \
               is added. Default: zerocast-%d-%t",
        range: None,
    },
    OptionSpec {
        key: "overwrite",
        signature: "b",
        flag: Some("--overwrite"),
        help: "Replace the output file if it exists (default: refuse)",
        range: None,
    },
    OptionSpec {
        key: "container",
        signature: "s",
        flag: Some("--container"),
        help: "Container (default: from the extension, else mkv)",
        range: None,
    },
    OptionSpec {
        key: "codec",
        signature: "s",
        flag: Some("--codec"),
        help: "Video codec (default: vp9 in webm, hevc with NVENC, else h264)",
        range: None,
    },
    OptionSpec {
        key: "encoder",
        signature: "s",
        flag: Some("--encoder"),
        help: "Encoder (default: auto — NVENC when it works, else software)",
        range: None,
    },
    OptionSpec {
        key: "framerate",
        signature: "u",
        flag: Some("--framerate"),
        help: "Maximum frames per second (default: every frame the compositor sends)",
        range: int_range(1, MAX_FRAMERATE),
    },
    OptionSpec {
        key: "bitrate",
        signature: "u",
        flag: Some("--bitrate"),
        help: "Bitrate in kbit/s (instead of quality)",
        range: int_range(1, MAX_BITRATE_KBPS),
    },
    OptionSpec {
        key: "quality",
        signature: "u",
        flag: Some("--quality"),
        help: "Constant quality, codec scale, lower is better (default 23; instead of bitrate)",
        range: int_range(0, MAX_QUALITY),
    },
    OptionSpec {
        key: "cursor",
        signature: "s",
        flag: Some("--cursor"),
        help: "Cursor (default: embedded; metadata is refused: the pointer would be missing \
               from the file)",
        range: None,
    },
    OptionSpec {
        key: "source",
        signature: "s",
        flag: Some("--source"),
        help: "What to record (default: monitor)",
        range: None,
    },
    OptionSpec {
        key: "restore",
        signature: "b",
        flag: Some("--no-restore"),
        help: "Reuse and keep the remembered source (default: true; --no-restore asks every time)",
        range: None,
    },
    OptionSpec {
        key: "duration",
        signature: "d",
        flag: Some("--duration"),
        help: "Stop by itself after this many recorded seconds",
        range: Some(Range {
            min: 0.0,
            max: MAX_DURATION_S,
            min_exclusive: true,
        }),
    },
    OptionSpec {
        key: "stop-on-disconnect",
        signature: "b",
        flag: None,
        help: "Stop when the D-Bus caller leaves the bus (default: false)",
        range: None,
    },
    OptionSpec {
        key: "notify",
        signature: "b",
        flag: None,
        help: "A desktop notification when the recording ends (default: true; `ctl start --no-notify`)",
        range: None,
    },
    OptionSpec {
        key: "replay",
        signature: "d",
        flag: Some("--replay"),
        help: "Replay mode: keep the last SECONDS in memory and write nothing until a save                (SaveReplay, `zerocast ctl save-replay`, SIGUSR2 to `zerocast record`); clips                start at a keyframe, at most 1 s longer than asked",
        range: Some(Range {
            min: 0.0,
            max: MAX_REPLAY_S,
            min_exclusive: true,
        }),
    },
    OptionSpec {
        key: "replay-max-bytes",
        signature: "t",
        flag: Some("--replay-max-mb"),
        help: "Memory bound of a replay (D-Bus: bytes; CLI: MiB; default 512 MiB): the oldest                seconds go first when the content is hard to encode; needs replay",
        range: Some(Range {
            min: MIN_REPLAY_BYTES as f64,
            max: MAX_REPLAY_BYTES as f64,
            min_exclusive: false,
        }),
    },
    OptionSpec {
        key: "save-on-stop",
        signature: "b",
        flag: Some("--save-on-stop"),
        help: "Replay: write what the ring holds to the path when it stops (default: false,                stopping a replay writes nothing); needs replay",
        range: None,
    },
    OptionSpec {
        key: "audio",
        signature: "as",
        flag: Some("--audio"),
        help: "An audio track, repeatable (one track each): desktop (the default output), mic \
               (the default input), node:NAME, app:NAME (one application's sound); a+b mixes \
               sources into one track. `zerocast probe` lists them (default: no audio)",
        range: None,
    },
    OptionSpec {
        key: "audio-codec",
        signature: "s",
        flag: Some("--audio-codec"),
        help: "Audio codec (default: opus in mkv/webm, aac in mp4; flac only in mkv); needs audio",
        range: None,
    },
    OptionSpec {
        key: "audio-bitrate",
        signature: "u",
        flag: Some("--audio-bitrate"),
        help: "Audio bitrate in kbit/s per track (default: 128 opus, 160 aac; flac is lossless); \
               needs audio",
        range: int_range(*BITRATE_RANGE.start(), *BITRATE_RANGE.end()),
    },
];

/// Every key `Start` understands, in table order.
pub const KEYS: &[&str] = &keys();

const fn keys() -> [&'static str; OPTIONS.len()] {
    let mut out = [""; OPTIONS.len()];
    let mut i = 0;
    while i < OPTIONS.len() {
        out[i] = OPTIONS[i].key;
        i += 1;
    }
    out
}

/// The table row of `key`.
///
/// # Panics
/// When `key` is not in the table (a programming error: keys are literals).
pub fn spec(key: &str) -> &'static OptionSpec {
    OPTIONS
        .iter()
        .find(|o| o.key == key)
        .unwrap_or_else(|| panic!("'{key}' is not in the option table"))
}

/// The values an enumerated option takes, from the types themselves.
pub fn choices(key: &str) -> Option<Vec<&'static str>> {
    Some(match key {
        "container" => Container::ALL.iter().map(|c| c.as_str()).collect(),
        "codec" => Codec::ALL.iter().map(|c| c.as_str()).collect(),
        "encoder" => EncoderChoice::ALL.iter().map(|c| c.as_str()).collect(),
        // `metadata` is a portal mode we refuse; it is not offered.
        "cursor" => vec![CursorMode::Hidden.as_str(), CursorMode::Embedded.as_str()],
        "source" => SourceType::ALL.iter().map(|c| c.as_str()).collect(),
        "audio-codec" => AudioCodec::ALL.iter().map(|c| c.as_str()).collect(),
        _ => return None,
    })
}

/// Help of an option for a command line (`zerocast record`, `zerocast ctl start`): the table's
/// text with its choices or range.
pub fn help(key: &str) -> String {
    let o = spec(key);
    let mut s = o.help.to_string();
    if let Some(c) = choices(key) {
        s.push_str(&format!(" [{}]", c.join(", ")));
    }
    if let Some(r) = &o.range {
        s.push_str(&format!(" [{}]", r.describe()));
    }
    s
}

impl Range {
    /// `1–1000`, `> 0 and <= 31536000`.
    pub fn describe(&self) -> String {
        if self.min_exclusive {
            format!("> {} and <= {}", self.min, self.max)
        } else {
            format!("{}–{}", self.min, self.max)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_table() {
        assert_eq!(KEYS.len(), OPTIONS.len());
        for (k, o) in KEYS.iter().zip(OPTIONS) {
            assert_eq!(*k, o.key);
        }
        assert!(help("codec").contains("h264, hevc, av1, vp9"));
        assert!(help("quality").contains("0–63"), "{}", help("quality"));
    }
}
