//! A backend without portal or PipeWire: it "records" by counting time and writes a small
//! placeholder file on stop. It exists so the D-Bus surface (states, signals, errors, object
//! lifecycle, activation, busctl scripts) can be tested on any machine, quickly; the real
//! pipeline has its own end-to-end tests on the test desktop.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use tokio::sync::watch;
use zerocast_recorder::{CapturePath, EndReason, RecordingState, Stats, Summary};

use crate::backend::{ActiveRecording, Backend, BoxFuture, Capabilities};
use crate::error::Error;
use zerocast_app::RecordingRequest;

/// Frames per second the fake pretends to encode.
const FAKE_FPS: u64 = 30;
const TICK: Duration = Duration::from_millis(100);

/// Test backend; see the module docs.
#[derive(Clone, Default)]
pub struct FakeBackend {
    inner: Arc<StdMutex<FakeState>>,
}

#[derive(Default)]
struct FakeState {
    /// Returned by the next `start` instead of recording (then cleared).
    next_start_error: Option<Error>,
    start_delay: Duration,
    /// The next recording's `Warnings` (then cleared).
    next_warnings: HashMap<String, String>,
    started: Vec<FakeHandle>,
}

impl FakeBackend {
    /// A fake configured from the environment, for a daemon process driven by tests:
    /// `ZEROCAST_FAKE_START_DELAY_MS` (time from Start to "first frame").
    pub fn from_env() -> Self {
        let fake = FakeBackend::default();
        if let Some(ms) = std::env::var("ZEROCAST_FAKE_START_DELAY_MS")
            .ok()
            .and_then(|s| s.parse().ok())
        {
            fake.set_start_delay(Duration::from_millis(ms));
        }
        fake
    }

    pub fn set_start_delay(&self, d: Duration) {
        self.inner.lock().unwrap().start_delay = d;
    }

    /// Makes the next `Start` fail with `e` (e.g. `Error::PortalCancelled`).
    pub fn fail_next_start(&self, e: Error) {
        self.inner.lock().unwrap().next_start_error = Some(e);
    }

    /// Gives the next recording these named warnings (as a restored source that differs would).
    pub fn warn_next_start(&self, name: &str, message: &str) {
        self.inner
            .lock()
            .unwrap()
            .next_warnings
            .insert(name.into(), message.into());
    }

    /// Recordings started so far, oldest first.
    pub fn started(&self) -> Vec<FakeHandle> {
        self.inner.lock().unwrap().started.clone()
    }
}

/// Test-side control of one fake recording.
#[derive(Clone)]
pub struct FakeHandle(Arc<FakeRecording>);

impl FakeHandle {
    /// The compositor closes the stream: the recording fails with `StreamLost`, and the file
    /// written so far is kept.
    pub fn lose_stream(&self) {
        // Like the real recorder: the end is a (playable) summary whose reason says why.
        let mut summary = self.0.summary();
        summary.reason = EndReason::StreamLost("compositor closed the stream".into());
        self.0.end(Ok(summary));
    }
}

struct FakeRecording {
    path: std::path::PathBuf,
    stats_tx: watch::Sender<Stats>,
    /// `Some` once ended.
    end_tx: watch::Sender<Option<Result<Summary, Error>>>,
    warnings: HashMap<String, String>,
}

impl FakeRecording {
    fn end(&self, result: Result<Summary, Error>) {
        // Only the first end counts.
        let mut first = false;
        self.end_tx.send_if_modified(|cur| {
            if cur.is_none() {
                *cur = Some(result.clone());
                first = true;
                true
            } else {
                false
            }
        });
        if first {
            let state = match &result {
                Ok(s) if !matches!(s.reason, EndReason::StreamLost(_)) => RecordingState::Finished,
                _ => RecordingState::Failed,
            };
            // A placeholder "file so far", so callers can check the path.
            let _ = std::fs::write(&self.path, b"zerocast fake recording\n");
            self.stats_tx.send_modify(|s| s.state = state);
        }
    }

    fn summary(&self) -> Summary {
        Summary {
            path: Some(self.path.clone()),
            stats: self.stats_tx.borrow().clone(),
            reason: EndReason::Stopped,
        }
    }

    async fn wait_end(&self) -> Result<Summary, Error> {
        let mut rx = self.end_tx.subscribe();
        let r = rx.wait_for(|e| e.is_some()).await;
        match r {
            Ok(v) => v.clone().expect("checked by wait_for"),
            Err(_) => Err(Error::Failed("fake recording dropped".into())),
        }
    }
}

impl Backend for FakeBackend {
    fn start(
        &self,
        req: RecordingRequest,
    ) -> BoxFuture<'_, Result<Arc<dyn ActiveRecording>, Error>> {
        Box::pin(async move {
            let (err, delay, warnings) = {
                let mut s = self.inner.lock().unwrap();
                let warnings = std::mem::take(&mut s.next_warnings);
                (s.next_start_error.take(), s.start_delay, warnings)
            };
            tokio::time::sleep(delay).await;
            if let Some(e) = err {
                return Err(e);
            }
            let stats = Stats {
                state: RecordingState::Recording,
                encoder: "fake".into(),
                capture_path: CapturePath::ShmCpu,
                width: 1280,
                height: 720,
                ..Default::default()
            };
            let (stats_tx, _) = watch::channel(stats);
            let (end_tx, _) = watch::channel(None);
            let rec = Arc::new(FakeRecording {
                path: req.path.clone(),
                stats_tx,
                end_tx,
                warnings,
            });
            self.inner
                .lock()
                .unwrap()
                .started
                .push(FakeHandle(rec.clone()));
            tokio::spawn(tick(rec.clone(), req.duration));
            let active: Arc<dyn ActiveRecording> = rec;
            Ok(active)
        })
    }

    fn capabilities(&self) -> BoxFuture<'_, Capabilities> {
        Box::pin(async {
            Capabilities {
                encoders: vec!["fake".into()],
                zero_copy: false,
                portal_version: 0,
                cursor_modes: vec![],
                source_types: vec![],
                portal_error: Some("fake backend: no portal".into()),
                audio_codecs: vec![],
                audio_sources: vec![],
                audio_error: Some("fake backend: no audio server".into()),
            }
        })
    }

    fn forget_sources(&self) -> Result<(), Error> {
        Ok(())
    }
}

/// Advances recorded time while recording; ends at `limit`.
async fn tick(rec: Arc<FakeRecording>, limit: Option<Duration>) {
    let mut interval = tokio::time::interval(TICK);
    loop {
        interval.tick().await;
        if rec.end_tx.borrow().is_some() {
            return;
        }
        let mut reached = false;
        rec.stats_tx.send_modify(|s| {
            if s.state == RecordingState::Recording {
                s.duration += TICK;
                s.frames_received += FAKE_FPS / 10;
                s.frames_written += FAKE_FPS / 10;
                s.bytes += 4096;
                reached = limit.is_some_and(|l| s.duration >= l);
            }
        });
        if reached {
            rec.stats_tx
                .send_modify(|s| s.state = RecordingState::Finishing);
            let summary = rec.summary();
            rec.end(Ok(summary));
            return;
        }
    }
}

impl ActiveRecording for FakeRecording {
    fn stats(&self) -> watch::Receiver<Stats> {
        self.stats_tx.subscribe()
    }

    fn warnings(&self) -> HashMap<String, String> {
        self.warnings.clone()
    }

    fn pause(&self) -> Result<(), Error> {
        let mut ok = false;
        self.stats_tx.send_if_modified(|s| {
            ok = s.state == RecordingState::Recording;
            if ok {
                s.state = RecordingState::Paused;
            }
            ok
        });
        ok.then_some(())
            .ok_or_else(|| Error::NotRecording("fake: not recording".into()))
    }

    fn resume(&self) -> Result<(), Error> {
        let mut ok = false;
        self.stats_tx.send_if_modified(|s| {
            ok = s.state == RecordingState::Paused;
            if ok {
                s.state = RecordingState::Recording;
            }
            ok
        });
        ok.then_some(())
            .ok_or_else(|| Error::NotPaused("fake: not paused".into()))
    }

    fn stop(&self) -> BoxFuture<'_, Result<Summary, Error>> {
        Box::pin(async move {
            if self.end_tx.borrow().is_some() {
                return Err(Error::NotRecording("fake: already ended".into()));
            }
            self.stats_tx
                .send_modify(|s| s.state = RecordingState::Finishing);
            // Finalizing takes a moment in real life; make ordering bugs visible.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let summary = self.summary();
            self.end(Ok(summary));
            self.wait_end().await
        })
    }

    fn finished(&self) -> BoxFuture<'_, Result<Summary, Error>> {
        Box::pin(self.wait_end())
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}
