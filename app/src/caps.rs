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

/// Audio codecs this FFmpeg build can write.
pub fn audio_codecs() -> Vec<&'static str> {
    zerocast_recorder::audio::AudioCodec::ALL
        .iter()
        .filter(|c| zerocast_recorder::audio::encoder_present(c.encoder_name()))
        .map(|c| c.as_str())
        .collect()
}

/// What `audio` accepts now, with a description where PipeWire has one: `desktop`, `mic`, then
/// every `node:…` and `app:…`. A registry round trip on the user's PipeWire daemon (blocking);
/// the error says why there is no audio server.
pub fn audio_sources() -> Result<Vec<(String, Option<String>)>, zerocast_recorder::audio::AudioError>
{
    use zerocast_recorder::audio::NodeKind;
    let nodes = zerocast_recorder::audio::list_sources()?;
    let mut out = vec![
        (
            "desktop".to_owned(),
            Some("the default output (its monitor)".to_owned()),
        ),
        ("mic".to_owned(), Some("the default input".to_owned())),
    ];
    out.extend(nodes.into_iter().map(|n| {
        let name = match n.kind {
            NodeKind::App => format!("app:{}", n.app.as_deref().unwrap_or(&n.name)),
            _ => format!("node:{}", n.name),
        };
        (name, n.description)
    }));
    Ok(out)
}
