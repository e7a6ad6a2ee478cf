//! The capability tables: what a request may name (codecs, containers and what they carry,
//! encoder choices, option ranges) and what this machine's FFmpeg build has. `zerocast probe`,
//! D-Bus `Capabilities` and `zerocast ctl` read these; nothing here opens a GPU library except
//! [`nvenc`], which says so.

use zerocast_recorder::{encode, Codec, Container, EncoderChoice};

use crate::options::{Range, OPTIONS};

/// Every codec a request may name.
pub fn codecs() -> &'static [Codec] {
    Codec::ALL
}

/// Every container, with the codecs it carries.
pub fn containers() -> Vec<(Container, Vec<Codec>)> {
    Container::ALL.iter().map(|c| (*c, c.codecs())).collect()
}

/// Every `encoder` choice.
pub fn encoder_choices() -> &'static [EncoderChoice] {
    EncoderChoice::ALL
}

/// The numeric options and their bounds.
pub fn ranges() -> Vec<(&'static str, Range)> {
    OPTIONS
        .iter()
        .filter_map(|o| o.range.map(|r| (o.key, r)))
        .collect()
}

/// Encoder names in this FFmpeg build per codec (software first). No GPU library is touched.
pub fn encoders_by_codec() -> Vec<(Codec, Vec<&'static str>)> {
    Codec::ALL
        .iter()
        .map(|c| (*c, encode::available_encoders(*c)))
        .collect()
}

/// Every encoder name in this FFmpeg build, once each (D-Bus `Capabilities` `encoders`).
pub fn encoders() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for (_, names) in encoders_by_codec() {
        for n in names {
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    out
}

/// Whether NVENC works for each codec, and why not. Loads the driver and opens a session per
/// codec (cached per process): blocking, for `zerocast probe` only.
pub fn nvenc() -> Vec<(Codec, Result<&'static str, String>)> {
    Codec::ALL
        .iter()
        .map(|c| (*c, encode::nvenc_status(*c)))
        .collect()
}
