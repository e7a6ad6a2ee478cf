//! What the service drives: the portal + recorder composition (`zerocast_app::start_recording`),
//! behind a small trait so the whole D-Bus surface can be tested without a compositor (see
//! [`crate::fake`]).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::{watch, Mutex};
use tracing::info;
use zerocast_app::{start_recording, RecordingRequest};
use zerocast_portal::ScreencastSession;
use zerocast_recorder::encode::replay::SavedReplay;
use zerocast_recorder::{Codec, Recording, Stats, Summary};

use crate::error::Error;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What `Capabilities` reports.
#[derive(Debug, Clone, Default)]
pub struct Capabilities {
    pub encoders: Vec<String>,
    pub zero_copy: bool,
    /// 0 when no portal answered (`portal_error` says why).
    pub portal_version: u32,
    pub cursor_modes: Vec<String>,
    pub source_types: Vec<String>,
    pub portal_error: Option<String>,
    /// Audio codecs this build can write.
    pub audio_codecs: Vec<String>,
    /// Audio sources now (`desktop`, `mic`, `node:…`, `app:…`); empty when no audio server.
    pub audio_sources: Vec<String>,
    /// Why there is no audio (no PipeWire daemon answered).
    pub audio_error: Option<String>,
}

/// The property's shape of the one capabilities reading (`zerocast_app::caps::Capabilities`,
/// which `zerocast probe` prints too): names as strings, each failure as its message.
impl From<&zerocast_app::caps::Capabilities> for Capabilities {
    fn from(c: &zerocast_app::caps::Capabilities) -> Self {
        let mut caps = Capabilities {
            encoders: c.encoder_names().into_iter().map(str::to_owned).collect(),
            zero_copy: c.zero_copy(),
            audio_codecs: c.audio_codecs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        match &c.audio_sources {
            Ok(sources) => caps.audio_sources = sources.iter().map(|(n, _)| n.clone()).collect(),
            Err(e) => caps.audio_error = Some(e.to_string()),
        }
        match &c.portal {
            Ok(p) => {
                caps.portal_version = p.version;
                caps.cursor_modes = p.cursor_modes.iter().map(|m| m.to_string()).collect();
                caps.source_types = p.source_types.iter().map(|s| s.to_string()).collect();
            }
            Err(e) => caps.portal_error = Some(e.to_string()),
        }
        caps
    }
}

/// Starts recordings. One per daemon, shared by all requests.
pub trait Backend: Send + Sync + 'static {
    /// Opens the portal session and starts recording; resolves once frames flow.
    fn start(
        &self,
        req: RecordingRequest,
    ) -> BoxFuture<'_, Result<Arc<dyn ActiveRecording>, Error>>;
    fn capabilities(&self) -> BoxFuture<'_, Capabilities>;
    /// Drops stored restore tokens (blocking file I/O; call off the executor).
    fn forget_sources(&self) -> Result<(), Error>;
}

/// One running recording as the service sees it.
pub trait ActiveRecording: Send + Sync + 'static {
    fn stats(&self) -> watch::Receiver<Stats>;
    /// The codec being written, once chosen (a request may leave it to the encoder selection).
    fn codec(&self) -> Option<Codec> {
        None
    }
    /// Named warnings about the source (name → message: a restored source that is not the one
    /// chosen); fixed once the recording has started.
    fn warnings(&self) -> HashMap<String, String> {
        HashMap::new()
    }
    fn pause(&self) -> Result<(), Error>;
    fn resume(&self) -> Result<(), Error>;
    /// Finalizes; resolves after the file is complete.
    fn stop(&self) -> BoxFuture<'_, Result<Summary, Error>>;
    /// Resolves when the recording ends for any reason.
    fn finished(&self) -> BoxFuture<'_, Result<Summary, Error>>;
    /// Releases the capture source (portal session) after the end.
    fn close(&self) -> BoxFuture<'_, ()>;
    /// Replay mode → a normal recording to `path` that starts with what the ring holds.
    fn keep(&self, path: std::path::PathBuf) -> BoxFuture<'_, Result<(), Error>> {
        let _ = path;
        Box::pin(async { Err(Error::NotReplay("this recording is not a replay".into())) })
    }
    /// Replay mode: writes the last `seconds` (all when `None`) to `path`; resolves once the
    /// file is complete.
    fn save_replay(
        &self,
        path: std::path::PathBuf,
        seconds: Option<f64>,
    ) -> BoxFuture<'_, Result<SavedReplay, Error>> {
        let _ = (path, seconds);
        Box::pin(async { Err(Error::NotReplay("this recording is not a replay".into())) })
    }
}

/// The production backend: real portal, real recorder.
#[derive(Default)]
pub struct RealBackend;

struct LiveRecording {
    session: Mutex<Option<ScreencastSession>>,
    rec: Recording,
    warnings: HashMap<String, String>,
}

impl Backend for RealBackend {
    fn start(
        &self,
        req: RecordingRequest,
    ) -> BoxFuture<'_, Result<Arc<dyn ActiveRecording>, Error>> {
        Box::pin(async move {
            let (session, rec) = start_recording(&req).await?;
            info!(recorder_id = %rec.id(), path = %rec.path().display(), "recording started");
            let warnings = session
                .warnings()
                .iter()
                .map(|w| (w.name.to_string(), w.message.clone()))
                .collect();
            let live: Arc<dyn ActiveRecording> = Arc::new(LiveRecording {
                session: Mutex::new(Some(session)),
                rec,
                warnings,
            });
            Ok(live)
        })
    }

    fn capabilities(&self) -> BoxFuture<'_, Capabilities> {
        Box::pin(async move { Capabilities::from(&zerocast_app::caps::Capabilities::read().await) })
    }

    fn forget_sources(&self) -> Result<(), Error> {
        zerocast_portal::forget_tokens()
            .map_err(|e| Error::Failed(format!("cannot delete restore tokens: {e}")))
    }
}

impl ActiveRecording for LiveRecording {
    fn stats(&self) -> watch::Receiver<Stats> {
        self.rec.stats()
    }
    fn codec(&self) -> Option<Codec> {
        Some(self.rec.options().codec)
    }
    fn warnings(&self) -> HashMap<String, String> {
        self.warnings.clone()
    }
    fn pause(&self) -> Result<(), Error> {
        Ok(self.rec.pause()?)
    }
    fn resume(&self) -> Result<(), Error> {
        Ok(self.rec.resume()?)
    }
    fn stop(&self) -> BoxFuture<'_, Result<Summary, Error>> {
        Box::pin(async move { Ok(self.rec.stop().await?) })
    }
    fn finished(&self) -> BoxFuture<'_, Result<Summary, Error>> {
        Box::pin(async move { Ok(self.rec.finished().await?) })
    }
    fn save_replay(
        &self,
        path: std::path::PathBuf,
        seconds: Option<f64>,
    ) -> BoxFuture<'_, Result<SavedReplay, Error>> {
        Box::pin(async move { Ok(self.rec.save_replay(path, seconds).await?) })
    }
    fn keep(&self, path: std::path::PathBuf) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move { Ok(self.rec.keep(path).await?) })
    }
    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(s) = self.session.lock().await.take() {
                s.close().await;
            }
        })
    }
}
