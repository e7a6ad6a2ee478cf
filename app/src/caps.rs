//! The capability tables: what a request may name (codecs, containers and what they carry,
//! encoder choices, option ranges) and what this machine's FFmpeg build has. `zerocast probe`,
//! D-Bus `Capabilities` and `zerocast ctl` read these; nothing here opens a GPU library except
//! [`nvenc`] and [`Capabilities::read`], which say so.
//!
//! [`Capabilities::read`] is the one place the machine's capabilities are gathered (the portal,
//! audio, the encoders and the GPU path): `zerocast probe` prints them, the daemon's
//! `Capabilities` property serves them.

use std::sync::Arc;

use zerocast_interop::ProbeReport;
use zerocast_portal::{PortalCapabilities, PortalError};
use zerocast_recorder::audio::AudioError;
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

/// What this machine can record with now, gathered once by [`Capabilities::read`] for
/// `zerocast probe` and the daemon's `Capabilities` property alike.
#[derive(Debug, Clone)]
pub struct Capabilities {
    /// Encoder names per codec in this FFmpeg build ([`encoders_by_codec`]).
    pub encoders: Vec<(Codec, Vec<&'static str>)>,
    /// Audio codecs this build can write ([`audio_codecs`]).
    pub audio_codecs: Vec<&'static str>,
    /// The audio sources with their descriptions ([`audio_sources`]), or why there is no audio.
    pub audio_sources: Result<Vec<(String, Option<String>)>, AudioError>,
    /// The ScreenCast portal's version, cursor modes and source types, or why there is none.
    pub portal: Result<PortalCapabilities, PortalError>,
    /// The Vulkan/CUDA probe (zero-copy path, explicit sync); `None` if it panicked.
    pub gpu: Option<Arc<ProbeReport>>,
}

impl Capabilities {
    /// Asks the portal and the user's PipeWire daemon (every call: both change while a daemon
    /// runs) and probes the GPU (Vulkan and CUDA load drivers and block: once per process, off
    /// the async workers).
    pub async fn read() -> Capabilities {
        static GPU: tokio::sync::OnceCell<Option<Arc<ProbeReport>>> =
            tokio::sync::OnceCell::const_new();
        let gpu = GPU
            .get_or_init(|| async {
                tokio::task::spawn_blocking(zerocast_interop::probe)
                    .await
                    .ok()
                    .map(Arc::new)
            })
            .await
            .clone();
        // A registry round trip on the user's PipeWire daemon (blocking).
        let audio_sources = tokio::task::spawn_blocking(audio_sources)
            .await
            .unwrap_or_else(|e| {
                Err(AudioError::Panicked {
                    what: "audio source lookup panicked",
                    source: e.into(),
                })
            });
        Capabilities {
            encoders: encoders_by_codec(),
            audio_codecs: audio_codecs(),
            audio_sources,
            portal: zerocast_portal::capabilities().await,
            gpu,
        }
    }

    /// Every encoder name, once each, software first (D-Bus `Capabilities` `encoders`).
    pub fn encoder_names(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for (_, names) in &self.encoders {
            for n in names {
                if !out.contains(n) {
                    out.push(n);
                }
            }
        }
        out
    }

    /// Whether frames can go GPU → CUDA → encoder without touching the CPU.
    pub fn zero_copy(&self) -> bool {
        self.gpu.as_ref().is_some_and(|g| g.zero_copy)
    }
}
