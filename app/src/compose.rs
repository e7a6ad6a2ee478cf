//! How a recording is put together, for the CLI and the daemon alike: the encoder selection
//! (once per recording, before any dialog), the portal session, and the recorder on its stream.

use tracing::debug;
use zerocast_portal::{PortalError, ScreencastSession};
use zerocast_recorder::audio::{AudioError, TrackSpec};
use zerocast_recorder::encode::{EncodeError, Selection};
use zerocast_recorder::{Codec, PipeWireSource, RecorderError, Recording};

use crate::request::RecordingRequest;

/// Why [`start_recording`] failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Portal(#[from] PortalError),
    #[error(transparent)]
    Recorder(#[from] RecorderError),
}

/// The one encoder-selection rule ([`zerocast_recorder::encode::select_encoder`]) for this
/// request: the codec (when the request names none) and the encoder. May load the NVENC driver
/// and open a session (cached per process), so it runs off the async workers.
pub async fn select_encoder(req: &RecordingRequest) -> Result<(Codec, Selection), RecorderError> {
    let (codec, choice, container) = (req.codec, req.encoder, req.container);
    tokio::task::spawn_blocking(move || {
        zerocast_recorder::encode::select_encoder(codec, choice, container)
    })
    .await
    .map_err(|e| EncodeError::SelectionPanicked(e.into()))?
}

/// Looks every audio source up on the PipeWire daemon (a registry round trip, off the async
/// workers): an unknown name or no audio server is [`RecorderError::Audio`].
pub async fn resolve_audio(tracks: Vec<TrackSpec>) -> Result<Vec<TrackSpec>, RecorderError> {
    tokio::task::spawn_blocking(move || zerocast_recorder::audio::resolve(&tracks))
        .await
        .map_err(|e| AudioError::Panicked {
            what: "audio source lookup panicked",
            source: e.into(),
        })?
        .map_err(RecorderError::Audio)
}

/// The whole composition: selects the encoder (before the portal: a missing encoder should not
/// cost the user a dialog), opens the portal session, and starts the recorder on its stream
/// with that encoder. Resolves once frames flow.
pub async fn start_recording(
    req: &RecordingRequest,
) -> Result<(ScreencastSession, Recording), StartError> {
    // The start's timeline at debug level (`ms` since the request): where `Start` → first frame
    // goes (encoder choice, portal, then the recorder's own steps, logged by the recording).
    let t0 = std::time::Instant::now();
    let ms = || t0.elapsed().as_secs_f64() * 1e3;
    let (codec, selected) = select_encoder(req).await?;
    if let Some(reason) = &selected.fallback_reason {
        // Said once per recording, where the choice is made.
        tracing::info!("NVENC not used ({reason}); encoding with {}", selected.name);
    }
    debug!(encoder = selected.name, %codec, ms = ms(), "encoder selected");
    // Every audio source must exist (and PipeWire answer) before the portal is asked: an
    // unknown name should not cost the user a dialog either.
    let mut options = req.recording_options(codec, selected);
    if let Some(audio) = options.audio.as_mut() {
        audio.tracks = resolve_audio(audio.tracks.clone()).await?;
    }
    let (session, stream) = ScreencastSession::open(&req.source_options()).await?;
    debug!(
        node = stream.node_id,
        restored = stream.restored,
        ms = ms(),
        "portal stream open"
    );
    let source = PipeWireSource {
        fd: stream.fd,
        node_id: stream.node_id,
        size: stream.size,
        position: stream.position,
    };
    match Recording::start(source, options).await {
        Ok(rec) => {
            debug!(ms = ms(), "recording started (first frame in the file)");
            Ok((session, rec))
        }
        Err(e) => {
            // Without this the compositor keeps showing its "screen is shared" indicator.
            session.close().await;
            Err(e.into())
        }
    }
}
