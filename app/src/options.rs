//! The option table: every recording option once, with its D-Bus type, its `zerocast record`
//! flag, its help, its range and units. Both parsers, the docs' wording, `ctl`'s help and D-Bus
//! `Capabilities` read it; adding an option is one row here, one field of
//! [`crate::RawRequest`] and [`crate::RecordingRequest`], and one parse arm per surface.
//!
//! Each surface names an option its own way — `--replay-max-mb` in MiB on the command line,
//! `'replay-max-bytes'` in bytes on D-Bus — so help and messages are rendered for a
//! [`Surface`] ([`OptionSpec::name`], [`help`], [`crate::RequestError::render`]): a user reads
//! the words they typed.

use zerocast_portal::{CursorMode, SourceType};
use zerocast_recorder::audio::{AudioCodec, BITRATE_RANGE};
use zerocast_recorder::{Codec, Container, EncoderChoice};

/// Where a request comes from, and so the words its help and errors use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// `zerocast record` and `zerocast ctl`: flags (`--replay-max-mb`) and their units (MiB).
    Cli,
    /// D-Bus `Start`, `SaveReplay`, `Keep` and `Capabilities`: keys (`'replay-max-bytes'`) and
    /// their units (bytes).
    Dbus,
}

/// One recording option.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OptionSpec {
    /// The D-Bus key (`'framerate' must be …` on D-Bus).
    pub key: &'static str,
    /// The D-Bus type (`s`, `u`, `d`, `b`, `as`).
    pub signature: &'static str,
    /// The `zerocast record` flag, if the CLI has the option (`--framerate must be …` there).
    pub flag: Option<&'static str>,
    /// What it does and its default, for D-Bus (choices and range are added by [`help`]).
    /// `{key}` stands for another option's name on the surface (`needs {replay}`: `needs
    /// --replay` / `needs 'replay'`), `{unit}` for this option's unit there.
    pub help: &'static str,
    /// The CLI's help where its flag says something else than the key: a negative flag
    /// (`--no-restore` for `restore`), or a rule only the shell has (relative paths).
    pub cli_help: Option<&'static str>,
    /// Inclusive bounds of a numeric option, in D-Bus units; `min_exclusive` when 0 itself is
    /// not allowed (a duration must be > 0).
    pub range: Option<Range>,
    /// The unit a range message names on D-Bus (`seconds`, `bytes`), if any.
    pub unit: Option<&'static str>,
    /// The flag's unit where it differs from D-Bus (`--replay-max-mb`: MiB).
    pub cli_unit: Option<Unit>,
}

/// A flag's unit: its name and how many D-Bus units one of it is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Unit {
    pub name: &'static str,
    pub scale: u64,
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

/// The fields most rows leave empty (`..PLAIN`).
const PLAIN: OptionSpec = OptionSpec {
    key: "",
    signature: "",
    flag: None,
    help: "",
    cli_help: None,
    range: None,
    unit: None,
    cli_unit: None,
};

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
        // `zerocast record` and `ctl start` take a relative path from the shell's directory
        // (they make it absolute before the request is resolved).
        cli_help: Some(
            "Output file or template: %d date, %t time, %%; ~/ is home, a relative path is \
             taken from the current directory; no extension: the container's is added. \
             Default: zerocast-%d-%t in the videos folder ($XDG_VIDEOS_DIR, else ~/Videos)",
        ),
        range: None,
        ..PLAIN
    },
    OptionSpec {
        key: "overwrite",
        signature: "b",
        flag: Some("--overwrite"),
        help: "Replace the output file if it exists (default: refuse)",
        range: None,
        ..PLAIN
    },
    OptionSpec {
        key: "container",
        signature: "s",
        flag: Some("--container"),
        help: "Container (default: from the extension, else mkv)",
        range: None,
        ..PLAIN
    },
    OptionSpec {
        key: "codec",
        signature: "s",
        flag: Some("--codec"),
        help: "Video codec (default: vp9 in webm, hevc with NVENC, else h264)",
        range: None,
        ..PLAIN
    },
    OptionSpec {
        key: "encoder",
        signature: "s",
        flag: Some("--encoder"),
        help: "Encoder (default: auto — NVENC when it works, else software)",
        range: None,
        ..PLAIN
    },
    OptionSpec {
        key: "framerate",
        signature: "u",
        flag: Some("--framerate"),
        help: "Maximum frames per second (default: every frame the compositor sends)",
        range: int_range(1, MAX_FRAMERATE),
        ..PLAIN
    },
    OptionSpec {
        key: "bitrate",
        signature: "u",
        flag: Some("--bitrate"),
        help: "Bitrate in kbit/s (instead of {quality})",
        range: int_range(1, MAX_BITRATE_KBPS),
        ..PLAIN
    },
    OptionSpec {
        key: "quality",
        signature: "u",
        flag: Some("--quality"),
        help: "Constant quality, codec scale, lower is better (default 23; instead of {bitrate})",
        range: int_range(0, MAX_QUALITY),
        ..PLAIN
    },
    OptionSpec {
        key: "cursor",
        signature: "s",
        flag: Some("--cursor"),
        help: "Cursor (default: embedded; metadata is refused: the pointer would be missing \
               from the file)",
        range: None,
        ..PLAIN
    },
    OptionSpec {
        key: "source",
        signature: "s",
        flag: Some("--source"),
        help: "What to record (default: monitor)",
        range: None,
        ..PLAIN
    },
    OptionSpec {
        key: "restore",
        signature: "b",
        flag: Some("--no-restore"),
        help: "Reuse and keep the remembered source (default: true)",
        // The flag is the negation: it says what giving it does.
        cli_help: Some(
            "Ask for the source every time instead of reusing and keeping the remembered one",
        ),
        range: None,
        ..PLAIN
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
        unit: Some("seconds"),
        ..PLAIN
    },
    OptionSpec {
        key: "stop-on-disconnect",
        signature: "b",
        flag: None,
        help: "Stop when the D-Bus caller leaves the bus (default: false)",
        range: None,
        ..PLAIN
    },
    OptionSpec {
        key: "notify",
        signature: "b",
        flag: None,
        help: "A desktop notification when the recording ends (default: true; `ctl start --no-notify`)",
        range: None,
        ..PLAIN
    },
    OptionSpec {
        key: "replay",
        signature: "d",
        flag: Some("--replay"),
        help: "Replay mode: keep this many seconds in memory and write nothing until a save \
               (SaveReplay, `zerocast ctl save-replay`, SIGUSR2 to `zerocast record`); \
               clips start at a keyframe, at most 1 s longer than asked",
        range: Some(Range {
            min: 0.0,
            max: MAX_REPLAY_S,
            min_exclusive: true,
        }),
        unit: Some("seconds"),
        ..PLAIN
    },
    OptionSpec {
        key: "replay-max-bytes",
        signature: "t",
        flag: Some("--replay-max-mb"),
        help: "Memory bound of a replay in {unit} (default 512 MiB): the oldest seconds go \
               first when the content is hard to encode; needs {replay}",
        range: Some(Range {
            min: MIN_REPLAY_BYTES as f64,
            max: MAX_REPLAY_BYTES as f64,
            min_exclusive: false,
        }),
        unit: Some("bytes"),
        cli_unit: Some(Unit {
            name: "MiB",
            scale: 1 << 20,
        }),
        ..PLAIN
    },
    OptionSpec {
        key: "save-on-stop",
        signature: "b",
        flag: Some("--save-on-stop"),
        help: "Replay: write what the ring holds to {path} when it stops (default: false, \
               stopping a replay writes nothing); needs {replay}",
        range: None,
        ..PLAIN
    },
    OptionSpec {
        key: "region",
        signature: "s",
        flag: Some("--region"),
        help: "Record only this part of the screen: \"X,Y WxH\" in desktop coordinates, as \
               slurp prints them (\"X,Y,WxH\" too); a monitor source only",
        range: None,
        ..PLAIN
    },
    OptionSpec {
        key: "size",
        signature: "s",
        flag: Some("--size"),
        help: "The video's size: WxH, or Wx / xH to keep the aspect (default: as recorded); \
               a picture of another aspect gets black bars, never stretched",
        range: None,
        ..PLAIN
    },
    OptionSpec {
        key: "scale",
        signature: "d",
        flag: Some("--scale"),
        help: "Scale the video by this factor (0.5: half the width and height)",
        range: Some(Range {
            min: 0.0,
            max: 1.0,
            min_exclusive: true,
        }),
        ..PLAIN
    },
    OptionSpec {
        key: "audio",
        signature: "as",
        flag: Some("--audio"),
        help: "An audio track, repeatable (one track each): desktop (the default output), mic \
               (the default input), node:NAME, app:NAME (one application's sound); a+b mixes \
               sources into one track. `zerocast probe` lists them (default: no audio)",
        range: None,
        ..PLAIN
    },
    OptionSpec {
        key: "audio-codec",
        signature: "s",
        flag: Some("--audio-codec"),
        help: "Audio codec (default: opus in mkv/webm, aac in mp4; flac only in mkv); needs {audio}",
        range: None,
        ..PLAIN
    },
    OptionSpec {
        key: "audio-bitrate",
        signature: "u",
        flag: Some("--audio-bitrate"),
        help: "Audio bitrate in kbit/s per track (default: 128 opus, 160 aac; flac is lossless); \
               needs {audio}",
        range: int_range(*BITRATE_RANGE.start(), *BITRATE_RANGE.end()),
        ..PLAIN
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

/// `SaveReplay`'s `seconds` (`ctl save-replay --seconds`): not a `Start` option, but its
/// range errors are worded like theirs.
pub static SAVE_REPLAY_SECONDS: OptionSpec = OptionSpec {
    key: "seconds",
    signature: "d",
    flag: Some("--seconds"),
    help: "How many seconds (default: all the replay holds)",
    range: Some(Range {
        min: 0.0,
        max: MAX_REPLAY_S,
        min_exclusive: true,
    }),
    unit: Some("seconds"),
    ..PLAIN
};

impl OptionSpec {
    /// The option as `surface` calls it: `--replay-max-mb` on the command line, `'replay-max-bytes'`
    /// on D-Bus (quoted, as keys are in D-Bus messages). An option the CLI lacks keeps its key.
    pub fn name(&self, surface: Surface) -> String {
        match (surface, self.flag) {
            (Surface::Cli, Some(flag)) => flag.to_owned(),
            _ => format!("'{}'", self.key),
        }
    }

    /// How many D-Bus units one of `surface`'s units is (MiB on the CLI: 1048576 bytes).
    pub fn scale(&self, surface: Surface) -> u64 {
        match (surface, self.cli_unit) {
            (Surface::Cli, Some(u)) => u.scale,
            _ => 1,
        }
    }

    /// The unit `surface` gives this option's values in, if messages name one.
    pub fn unit(&self, surface: Surface) -> Option<&'static str> {
        match (surface, self.cli_unit) {
            (Surface::Cli, Some(u)) => Some(u.name),
            _ => self.unit,
        }
    }

    /// The range in `surface`'s unit.
    pub fn range_in(&self, surface: Surface) -> Option<Range> {
        let scale = self.scale(surface) as f64;
        self.range.map(|r| Range {
            min: r.min / scale,
            max: r.max / scale,
            ..r
        })
    }

    /// What the option does, in `surface`'s words (no choices or range: see [`help`]).
    pub fn describe(&self, surface: Surface) -> String {
        let text = match surface {
            Surface::Cli => self.cli_help.unwrap_or(self.help),
            Surface::Dbus => self.help,
        };
        // `{key}` → that option's name here, `{unit}` → this option's unit here.
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let close = rest[open..]
                .find('}')
                .map(|c| open + c)
                .unwrap_or_else(|| panic!("unclosed {{ in the help of '{}'", self.key));
            let name = &rest[open + 1..close];
            match name {
                "unit" => out.push_str(self.unit(surface).unwrap_or_else(|| {
                    panic!("the help of '{}' names a unit it has not", self.key)
                })),
                key => out.push_str(&spec(key).name(surface)),
            }
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        out
    }
}

/// Help of an option for `surface`: the table's text in that surface's words, with its choices
/// or its range in that surface's unit.
pub fn help(key: &str, surface: Surface) -> String {
    let o = spec(key);
    let mut s = o.describe(surface);
    if let Some(c) = choices(key) {
        s.push_str(&format!(" [{}]", c.join(", ")));
    }
    if let Some(r) = o.range_in(surface) {
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
        assert!(help("codec", Surface::Cli).contains("h264, hevc, av1, vp9"));
        let q = help("quality", Surface::Dbus);
        assert!(
            q.contains("0–63") && q.contains("instead of 'bitrate'"),
            "{q}"
        );
    }

    #[test]
    fn help_in_each_surfaces_words() {
        let cli = help("replay-max-bytes", Surface::Cli);
        assert!(
            cli.starts_with("Memory bound of a replay in MiB ")
                && cli.contains("needs --replay")
                && cli.ends_with(" [1–262144]"),
            "{cli}"
        );
        let dbus = help("replay-max-bytes", Surface::Dbus);
        assert!(
            dbus.starts_with("Memory bound of a replay in bytes ")
                && dbus.contains("needs 'replay'")
                && dbus.ends_with(" [1048576–274877906944]"),
            "{dbus}"
        );
        assert!(help("restore", Surface::Cli).starts_with("Ask for the source every time"));
        assert!(help("restore", Surface::Dbus).starts_with("Reuse and keep"));
        for o in OPTIONS {
            for s in [Surface::Cli, Surface::Dbus] {
                let h = help(o.key, s);
                assert!(
                    !h.contains("  ") && !h.contains('{'),
                    "{s:?} {}: {h}",
                    o.key
                );
            }
        }
    }
}
