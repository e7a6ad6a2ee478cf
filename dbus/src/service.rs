//! The D-Bus objects: the `org.zerocast.Recorder1` manager and one `org.zerocast.Recording1`
//! object per recording, each driven by a supervisor task.
//!
//! The interface objects hold only handles: the manager a [`Shared`] (backend + registry of
//! recordings), a recording object a command sender and a `watch` of its view. Everything
//! that changes a recording happens in its supervisor task, which is also the only place that
//! emits its signals, so signals and property changes come out in the order they happened.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, info_span, warn, Instrument};
use zbus::message::Header;
use zbus::names::{InterfaceName, UniqueName};
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};
use zbus::Connection;
use zerocast_recorder::encode::replay::SavedReplay;
use zerocast_recorder::{EndReason, RecordingState, Stats, Summary};

use crate::backend::{ActiveRecording, Backend};
use crate::error::Error;
use crate::notify::{Notifier, Outcome};
use zerocast_app::dbus::{parse_options, to_dbus};
use zerocast_app::RecordingRequest;

// The names every client uses, defined once with them.
pub use zerocast_client::{BUS_NAME, MANAGER_IFACE, MANAGER_PATH, RECORDING_IFACE};

/// Tunables of the object lifecycle.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// How long an ended recording's object stays, so a late client can read the result.
    pub linger: Duration,
    /// At most this many ended recordings are kept; older ones go first.
    pub keep_ended: usize,
    /// Minimum interval between progress (Duration/Frames/Bytes…) PropertiesChanged signals.
    pub progress_interval: Duration,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            linger: Duration::from_secs(300),
            keep_ended: 5,
            progress_interval: Duration::from_secs(1),
        }
    }
}

/// What the manager shares with the supervisors.
pub struct Shared {
    backend: Arc<dyn Backend>,
    config: ServiceConfig,
    registry: StdMutex<Registry>,
    notifier: Notifier,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    entries: Vec<Entry>,
}

struct Entry {
    id: u64,
    path: OwnedObjectPath,
    output: PathBuf,
    ended: bool,
    /// The supervisor's command channel, so the daemon can stop everything on shutdown.
    cmd: mpsc::Sender<Cmd>,
}

fn object_path(id: u64) -> OwnedObjectPath {
    OwnedObjectPath::try_from(format!("{MANAGER_PATH}/recording/{id}")).expect("valid path")
}

impl Shared {
    pub fn new(backend: Arc<dyn Backend>, config: ServiceConfig) -> Arc<Self> {
        Arc::new(Shared {
            backend,
            config,
            registry: StdMutex::new(Registry::default()),
            notifier: Notifier::new(),
        })
    }

    fn recordings(&self) -> Vec<OwnedObjectPath> {
        self.registry
            .lock()
            .unwrap()
            .entries
            .iter()
            .map(|e| e.path.clone())
            .collect()
    }

    /// Reserves an id for `output`; fails if a running recording already writes there (two
    /// encoders on one file would corrupt both; a template can expand to the same name twice
    /// within one second).
    fn reserve(&self, output: &std::path::Path, cmd: mpsc::Sender<Cmd>) -> Result<u64, Error> {
        let mut reg = self.registry.lock().unwrap();
        if let Some(e) = reg.entries.iter().find(|e| !e.ended && e.output == output) {
            return Err(Error::OutputNotWritable(format!(
                "'path' {} is being written by recording {}",
                output.display(),
                e.id
            )));
        }
        reg.next_id += 1;
        let id = reg.next_id;
        reg.entries.push(Entry {
            id,
            path: object_path(id),
            output: output.to_owned(),
            ended: false,
            cmd,
        });
        Ok(id)
    }

    /// Marks `id` ended; returns ended recordings beyond `keep_ended` to remove now.
    fn mark_ended(&self, id: u64) -> Vec<u64> {
        let mut reg = self.registry.lock().unwrap();
        if let Some(e) = reg.entries.iter_mut().find(|e| e.id == id) {
            e.ended = true;
        }
        let ended: Vec<u64> = reg
            .entries
            .iter()
            .filter(|e| e.ended)
            .map(|e| e.id)
            .collect();
        let excess = ended.len().saturating_sub(self.config.keep_ended);
        ended[..excess].to_vec()
    }

    fn forget(&self, id: u64) -> bool {
        let mut reg = self.registry.lock().unwrap();
        let before = reg.entries.len();
        reg.entries.retain(|e| e.id != id);
        reg.entries.len() != before
    }

    /// Command senders of all running recordings.
    fn running(&self) -> Vec<(u64, mpsc::Sender<Cmd>)> {
        let reg = self.registry.lock().unwrap();
        reg.entries
            .iter()
            .filter(|e| !e.ended)
            .map(|e| (e.id, e.cmd.clone()))
            .collect()
    }

    /// Stops every running recording and waits until their files are finalized (daemon
    /// shutdown: SIGTERM from `systemctl --user stop` must not leave broken files).
    pub async fn stop_all(&self) {
        let mut waits = Vec::new();
        for (id, cmd) in self.running() {
            let (tx, rx) = oneshot::channel();
            if cmd.send(Cmd::Stop(tx)).await.is_ok() {
                waits.push((id, rx));
            }
        }
        for (id, rx) in waits {
            match rx.await {
                Ok(Ok(path)) => info!(id, path, "stopped at shutdown"),
                Ok(Err(e)) => warn!(id, error = %e.message(), "stop at shutdown failed"),
                Err(_) => {}
            }
        }
    }
}

/// Emits PropertiesChanged for `Recordings` on the manager.
async fn emit_recordings_changed(conn: &Connection, shared: &Shared) {
    let list: Vec<OwnedObjectPath> = shared.recordings();
    let mut changed: HashMap<&str, Value<'_>> = HashMap::new();
    changed.insert("Recordings", Value::from(list));
    emit_properties(conn, MANAGER_PATH, MANAGER_IFACE, changed).await;
}

async fn emit_properties(
    conn: &Connection,
    path: &str,
    iface: &'static str,
    changed: HashMap<&str, Value<'_>>,
) {
    let Ok(emitter) = SignalEmitter::new(conn, path.to_owned()) else {
        return;
    };
    let r = zbus::fdo::Properties::properties_changed(
        &emitter,
        InterfaceName::from_static_str_unchecked(iface),
        changed,
        Cow::Borrowed(&[]),
    )
    .await;
    if let Err(e) = r {
        debug!(error = %e, "cannot emit PropertiesChanged");
    }
}

/// `org.zerocast.Recorder1` at `/org/zerocast/Recorder1`.
pub struct RecorderService {
    shared: Arc<Shared>,
}

impl RecorderService {
    pub fn new(shared: Arc<Shared>) -> Self {
        RecorderService { shared }
    }
}

#[zbus::interface(name = "org.zerocast.Recorder1")]
impl RecorderService {
    /// Starts a recording; returns its object once frames flow. The object exists (in state
    /// `starting`, listed in `Recordings`) from the moment the options are accepted.
    #[zbus(out_args("recording"))]
    async fn start(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        options: HashMap<String, OwnedValue>,
    ) -> Result<OwnedObjectPath, Error> {
        let sender = header.sender().map(|s| s.to_owned());
        // Filesystem checks: keep them off the executor.
        let req = tokio::task::spawn_blocking(move || parse_options(&options))
            .await
            .map_err(|e| Error::Failed(format!("options parser panicked: {e}")))??;

        let (cmd_tx, cmd_rx) = mpsc::channel(8);
        let id = self.shared.reserve(&req.path, cmd_tx.clone())?;
        let span = info_span!("recording", id);
        span.in_scope(|| info!(path = %req.path.display(), "start requested"));
        let path = object_path(id);
        let (view_tx, view_rx) = watch::channel(View::new(&req));
        let object = RecordingObject {
            id,
            cmd: cmd_tx,
            view: view_rx,
        };
        if let Err(e) = conn.object_server().at(&path, object).await {
            self.shared.forget(id);
            return Err(e.into());
        }
        emit_recordings_changed(conn, &self.shared).await;

        let (started_tx, started_rx) = oneshot::channel();
        let sup = Supervisor {
            id,
            path: path.clone(),
            conn: conn.clone(),
            shared: self.shared.clone(),
            view: view_tx,
            cmds: cmd_rx,
            caller: sender.filter(|_| req.stop_on_disconnect),
            notify: req.notify,
        };
        tokio::spawn(sup.run(req, started_tx).instrument(span));
        match started_rx.await {
            Ok(Ok(())) => Ok(path),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::Failed(
                "the recording task ended unexpectedly".into(),
            )),
        }
    }

    /// Drops stored restore tokens so the next `Start` asks for a source again.
    async fn forget_sources(&self) -> Result<(), Error> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || shared.backend.forget_sources())
            .await
            .map_err(|e| Error::Failed(e.to_string()))?
    }

    /// Recording objects, running and recently ended, oldest first.
    #[zbus(property)]
    async fn recordings(&self) -> Vec<OwnedObjectPath> {
        self.shared.recordings()
    }

    /// `encoders` as, `zero-copy` b, `version` u (portal), `cursor-modes` as,
    /// `source-types` as, and `portal-error` s when no portal answered; `audio-codecs` as,
    /// `audio-sources` as (what `audio` accepts now), `audio-error` s when there is no audio
    /// server; plus the request tables (`codecs`, `containers`, `encoder-choices`, `options`,
    /// `ranges`).
    #[zbus(property(emits_changed_signal = "false"))]
    async fn capabilities(&self) -> HashMap<String, OwnedValue> {
        let c = self.shared.backend.capabilities().await;
        let mut m: HashMap<String, OwnedValue> = HashMap::new();
        let mut put = |k: &str, v: Value<'_>| {
            m.insert(k.into(), v.try_to_owned().expect("basic value"));
        };
        put("encoders", Value::from(c.encoders));
        put("zero-copy", Value::from(c.zero_copy));
        put("version", Value::from(c.portal_version));
        put("cursor-modes", Value::from(c.cursor_modes));
        put("source-types", Value::from(c.source_types));
        if let Some(e) = c.portal_error {
            put("portal-error", Value::from(e));
        }
        put("audio-codecs", Value::from(c.audio_codecs));
        put("audio-sources", Value::from(c.audio_sources));
        if let Some(e) = c.audio_error {
            put("audio-error", Value::from(e));
        }
        // What a request may name: the same tables `zerocast probe` prints.
        for (k, v) in zerocast_app::dbus::capability_tables() {
            m.insert(k.into(), v);
        }
        m
    }

    #[zbus(property(emits_changed_signal = "const"))]
    async fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_owned()
    }
}

/// What a recording object shows; written only by its supervisor.
#[derive(Debug, Clone)]
struct View {
    state: RecordingState,
    path: String,
    stats: Stats,
    /// The request as accepted (`Options` shows it; `SaveReplay`/`Keep` read its replay
    /// limits and container), its codec filled in once the encoder chose it.
    request: RecordingRequest,
    /// `Warnings`: set when the recording starts.
    warnings: HashMap<String, String>,
}

impl View {
    fn new(req: &RecordingRequest) -> Self {
        View {
            state: RecordingState::Starting,
            path: req.path.to_string_lossy().into_owned(),
            stats: Stats::default(),
            request: req.clone(),
            warnings: HashMap::new(),
        }
    }
}

enum Cmd {
    Stop(oneshot::Sender<Result<String, Error>>),
    SaveReplay {
        request: zerocast_app::dbus::SaveReplayRequest,
        reply: oneshot::Sender<Result<SavedReplay, Error>>,
    },
    Keep {
        path: PathBuf,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    Pause(oneshot::Sender<Result<(), Error>>),
    Resume(oneshot::Sender<Result<(), Error>>),
}

/// `org.zerocast.Recording1` at `/org/zerocast/Recorder1/recording/N`.
pub struct RecordingObject {
    id: u64,
    cmd: mpsc::Sender<Cmd>,
    view: watch::Receiver<View>,
}

impl RecordingObject {
    fn ended_error(&self) -> Error {
        let v = self.view.borrow();
        Error::NotRecording(format!(
            "recording {} has {} ({})",
            self.id, v.state, v.path
        ))
    }

    /// A replay's container and current path, for the path rules of `SaveReplay`/`Keep`;
    /// `NotReplay` for a recording started without `replay`.
    fn replay_target(&self) -> Result<(zerocast_recorder::Container, String), Error> {
        let v = self.view.borrow();
        if v.request.replay.is_none() {
            return Err(Error::NotReplay(format!(
                "recording {} is not a replay (Start it with the 'replay' option)",
                self.id
            )));
        }
        Ok((v.request.container, v.path.clone()))
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, Error>>) -> Cmd,
    ) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        // A closed channel means the supervisor is done: the recording has ended.
        if self.cmd.send(make(tx)).await.is_err() {
            return Err(self.ended_error());
        }
        rx.await.unwrap_or_else(|_| Err(self.ended_error()))
    }
}

#[zbus::interface(name = "org.zerocast.Recording1")]
impl RecordingObject {
    /// Stops and returns the output path once the file is finalized.
    #[zbus(out_args("path"))]
    async fn stop(&self) -> Result<String, Error> {
        self.call(Cmd::Stop).await
    }

    /// Pauses; the paused time is absent from the file.
    async fn pause(&self) -> Result<(), Error> {
        self.call(Cmd::Pause).await
    }

    async fn resume(&self) -> Result<(), Error> {
        self.call(Cmd::Resume).await
    }

    /// Replay mode: writes the last `seconds` of the ring (options: `path` s — same rules as
    /// Start's, default `zerocast-replay-%d-%t` in the videos folder; `seconds` d — default and
    /// at most the whole ring; `overwrite` b) and returns once the file is complete. The replay
    /// keeps running. `info`: `seconds` d (the clip's length: it starts at a keyframe, up to
    /// 1 s longer than asked), `bytes` t, `whole-ring` b (less than asked was kept: this is
    /// everything). `NotReplay` on a normal recording; `OutputNotWritable` leaves the ring as it
    /// was.
    /// Replay mode → a normal recording ("record from N seconds ago"): the file (options:
    /// `path` s, default the path given to Start; `overwrite` b) starts with everything the ring
    /// holds and goes on until Stop, like any recording. Returns the path. Afterwards the
    /// recording is no longer a replay (SaveReplay: `NotReplay`).
    #[zbus(out_args("path"))]
    async fn keep(&self, options: HashMap<String, OwnedValue>) -> Result<String, Error> {
        let (container, default) = self.replay_target()?;
        let path = tokio::task::spawn_blocking(move || {
            zerocast_app::dbus::parse_keep(
                &options,
                &default,
                container,
                &zerocast_app::PathContext::from_env(),
            )
        })
        .await
        .map_err(|e| Error::Failed(e.to_string()))?
        .map_err(Error::from)?;
        self.call(|reply| Cmd::Keep { path, reply }).await?;
        Ok(self.view.borrow().path.clone())
    }

    #[zbus(out_args("path", "info"))]
    async fn save_replay(
        &self,
        options: HashMap<String, OwnedValue>,
    ) -> Result<(String, HashMap<String, OwnedValue>), Error> {
        let (container, _) = self.replay_target()?;
        let request = tokio::task::spawn_blocking(move || {
            zerocast_app::dbus::parse_save_replay(
                &options,
                container,
                &zerocast_app::PathContext::from_env(),
            )
        })
        .await
        .map_err(|e| Error::Failed(e.to_string()))?
        .map_err(Error::from)?;
        let saved = self
            .call(|reply| Cmd::SaveReplay { request, reply })
            .await?;
        let info = HashMap::from([
            ("seconds".to_string(), OwnedValue::from(saved.seconds)),
            ("bytes".to_string(), OwnedValue::from(saved.bytes)),
            ("whole-ring".to_string(), OwnedValue::from(saved.whole_ring)),
        ]);
        Ok((saved.path.to_string_lossy().into_owned(), info))
    }

    /// starting | recording | paused | finishing | finished | failed
    #[zbus(property)]
    async fn state(&self) -> String {
        on_bus(self.view.borrow().state).as_str().to_owned()
    }

    #[zbus(property)]
    async fn path(&self) -> String {
        self.view.borrow().path.clone()
    }

    /// Recorded seconds, pauses excluded.
    #[zbus(property)]
    async fn duration(&self) -> f64 {
        self.view.borrow().stats.duration.as_secs_f64()
    }

    /// Frames written to the file.
    #[zbus(property)]
    async fn frames(&self) -> u64 {
        self.view.borrow().stats.frames_written
    }

    #[zbus(property)]
    async fn dropped_frames(&self) -> u64 {
        self.view.borrow().stats.frames_dropped
    }

    #[zbus(property)]
    async fn bytes(&self) -> u64 {
        self.view.borrow().stats.bytes
    }

    #[zbus(property)]
    async fn encoder(&self) -> String {
        self.view.borrow().stats.encoder.clone()
    }

    #[zbus(property)]
    async fn capture_path(&self) -> String {
        self.view.borrow().stats.capture_path.as_str().to_owned()
    }

    /// Named warnings about the recording's source, name → message, set when it starts:
    /// `restored-source-differs` — the restore token brought back another source than the
    /// one chosen when it was stored (the desktop's layout changed); Start with `restore`
    /// false (`--no-restore`) to choose again.
    #[zbus(property)]
    async fn warnings(&self) -> HashMap<String, String> {
        self.view.borrow().warnings.clone()
    }

    /// The effective options, defaults filled in.
    #[zbus(property(emits_changed_signal = "const"))]
    async fn options(&self) -> HashMap<String, OwnedValue> {
        to_dbus(&self.view.borrow().request)
    }

    /// The recording ended normally; `stats` has `duration` d, `frames` t, `dropped-frames` t,
    /// `bytes` t, `encoder` s, `capture-path` s.
    #[zbus(signal)]
    async fn finished(
        emitter: &SignalEmitter<'_>,
        path: &str,
        stats: HashMap<&str, Value<'_>>,
    ) -> zbus::Result<()>;

    /// The recording failed; `error_name` is an `org.zerocast.Error.*` name.
    #[zbus(signal)]
    async fn failed(
        emitter: &SignalEmitter<'_>,
        error_name: &str,
        message: &str,
    ) -> zbus::Result<()>;
}

fn stats_dict(s: &Stats) -> HashMap<&'static str, Value<'static>> {
    HashMap::from([
        ("duration", Value::from(s.duration.as_secs_f64())),
        ("frames", Value::from(s.frames_written)),
        ("dropped-frames", Value::from(s.frames_dropped)),
        ("bytes", Value::from(s.bytes)),
        ("encoder", Value::from(s.encoder.clone())),
        ("capture-path", Value::from(s.capture_path.as_str())),
    ])
}

/// Owns one recording: starts it, forwards commands, publishes its view, and tears it down.
/// A `Stop` caller, answered with the file's path once the recording ended.
type StopWaiter = oneshot::Sender<Result<String, Error>>;

/// A started recording's phase, as the supervisor's loop tracks it: recording (or paused:
/// the recorder's state says which), or stopping, with the `Stop` callers to answer.
enum Running {
    Recording,
    Stopping { waiters: Vec<StopWaiter> },
}

impl Running {
    fn is_stopping(&self) -> bool {
        matches!(self, Running::Stopping { .. })
    }

    /// A stop was asked (by `Stop`, whose caller waits, or by the caller leaving the bus);
    /// `true` the first time, when the stop itself must be started.
    fn stop(&mut self, waiter: Option<StopWaiter>) -> bool {
        let first = !self.is_stopping();
        if first {
            *self = Running::Stopping {
                waiters: Vec::new(),
            };
        }
        if let (Running::Stopping { waiters }, Some(w)) = (self, waiter) {
            waiters.push(w);
        }
        first
    }

    fn into_waiters(self) -> Vec<StopWaiter> {
        match self {
            Running::Recording => Vec::new(),
            Running::Stopping { waiters } => waiters,
        }
    }
}

struct Supervisor {
    id: u64,
    path: OwnedObjectPath,
    conn: Connection,
    shared: Arc<Shared>,
    view: watch::Sender<View>,
    cmds: mpsc::Receiver<Cmd>,
    /// The `Start` caller, when it asked for `stop-on-disconnect`.
    caller: Option<UniqueName<'static>>,
    /// Send a desktop notification when the recording ends.
    notify: bool,
}

impl Supervisor {
    async fn run(mut self, req: RecordingRequest, started: oneshot::Sender<Result<(), Error>>) {
        let disconnected = watch_disconnect(self.conn.clone(), self.caller.clone());
        tokio::pin!(disconnected);
        // The object is new, but observers watching signals only (busctl monitor, `ctl watch`
        // started early) should see the whole starting → recording sequence.
        self.emit_all().await;
        let rec = match self.starting(req, started, &mut disconnected).await {
            Ok(rec) => rec,
            Err(e) => return self.end(Err(e), Vec::new()).await,
        };
        let (result, stop_waiters) = self.running(&rec, &mut disconnected).await;
        rec.close().await;
        self.end(result, stop_waiters).await;
    }

    /// Phase 1: starting. Stop (or the caller leaving) abandons the start; the portal dialog
    /// may otherwise wait forever. An error has been sent to the `Start` caller.
    async fn starting(
        &mut self,
        req: RecordingRequest,
        started: oneshot::Sender<Result<(), Error>>,
        disconnected: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) -> Result<Arc<dyn ActiveRecording>, Error> {
        let backend = self.shared.backend.clone();
        let start = backend.start(req);
        let rec = tokio::select! {
            r = start => r,
            cancel = self.until_cancelled(disconnected) => Err(cancel),
        };
        let rec = match rec {
            Ok(rec) => rec,
            Err(e) => {
                info!(error = %e.message(), "start failed");
                let _ = started.send(Err(e.clone()));
                return Err(e);
            }
        };
        let codec = rec.codec();
        let warnings = rec.warnings();
        self.view.send_modify(|v| {
            v.state = RecordingState::Recording;
            v.warnings = warnings;
            // A default codec is chosen with the encoder, after the options were accepted.
            if let Some(c) = codec {
                v.request.codec = Some(c);
            }
        });
        self.emit_all().await;
        let _ = started.send(Ok(()));
        info!("recording");
        Ok(rec)
    }

    /// Phase 2: running, then stopping, until the recording ends. Returns how it ended and the
    /// `Stop` callers waiting for the file.
    async fn running(
        &mut self,
        rec: &Arc<dyn ActiveRecording>,
        disconnected: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) -> (Result<Summary, Error>, Vec<StopWaiter>) {
        let mut stats = rec.stats();
        stats.mark_changed();
        let finished = rec.finished();
        tokio::pin!(finished);
        let mut tick = tokio::time::interval(self.shared.config.progress_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut progress_dirty = false;
        let mut phase = Running::Recording;
        let mut stats_open = true;

        let result = loop {
            let stopping = phase.is_stopping();
            tokio::select! {
                end = &mut finished => break end,
                changed = stats.changed(), if stats_open => {
                    if changed.is_err() {
                        stats_open = false;
                        continue;
                    }
                    let s = stats.borrow_and_update().clone();
                    let old_state = self.view.borrow().state;
                    // The final state is set from `finished`, with the final figures.
                    let new_state = if s.state.is_over() { old_state } else { s.state };
                    self.view.send_modify(|v| { v.stats = s; v.state = new_state; });
                    if new_state != old_state {
                        // State changes go out at once, with the current figures.
                        self.emit_all().await;
                        progress_dirty = false;
                    } else {
                        progress_dirty = true;
                    }
                }
                _ = tick.tick(), if progress_dirty => {
                    progress_dirty = false;
                    self.emit_progress().await;
                }
                cmd = self.cmds.recv() => match cmd {
                    Some(Cmd::Stop(reply)) => {
                        // The first Stop starts the stop; each caller gets the file.
                        let first = phase.stop(Some(reply));
                        if first {
                            self.spawn_stop(rec.clone());
                        }
                    }
                    Some(Cmd::Pause(reply)) => {
                        let _ = reply.send(self.pause(&**rec, stopping));
                    }
                    Some(Cmd::Resume(reply)) => {
                        let _ = reply.send(self.resume(&**rec, stopping));
                    }
                    Some(Cmd::Keep { path, reply }) => {
                        let r = if stopping {
                            Err(Error::NotRecording(format!("recording {} is finishing", self.id)))
                        } else {
                            rec.keep(path.clone()).await
                        };
                        if r.is_ok() {
                            info!(path = %path.display(), "replay kept as a recording");
                            self.view.send_modify(|v| v.path = path.to_string_lossy().into_owned());
                            self.emit_all().await;
                        }
                        let _ = reply.send(r);
                    }
                    Some(Cmd::SaveReplay { request, reply }) => {
                        if stopping {
                            let _ = reply.send(Err(Error::NotRecording(format!("recording {} is finishing", self.id))));
                        } else {
                            self.spawn_save_replay(rec.clone(), request, reply);
                        }
                    }
                    None => {}
                },
                _ = disconnected.as_mut(), if !stopping => {
                    info!("caller left the bus; stopping (stop-on-disconnect)");
                    phase.stop(None);
                    self.spawn_stop(rec.clone());
                }
            }
        };
        (result, phase.into_waiters())
    }

    /// A replay save runs beside the loop: it takes as long as writing the clip.
    fn spawn_save_replay(
        &self,
        rec: Arc<dyn ActiveRecording>,
        request: zerocast_app::dbus::SaveReplayRequest,
        reply: oneshot::Sender<Result<SavedReplay, Error>>,
    ) {
        let (conn, shared, notify) = (self.conn.clone(), self.shared.clone(), self.notify);
        tokio::spawn(
            async move {
                let r = rec.save_replay(request.path, request.seconds).await;
                match &r {
                    Err(e) => info!(error = %e.message(), "replay save failed"),
                    Ok(s) if notify => {
                        let outcome = Outcome::ReplaySaved {
                            path: s.path.clone(),
                            duration: Duration::from_secs_f64(s.seconds),
                            bytes: s.bytes,
                        };
                        let _ = reply.send(r);
                        shared.notifier.recording_ended(&conn, outcome).await;
                        return;
                    }
                    Ok(_) => {}
                }
                let _ = reply.send(r);
            }
            .in_current_span(),
        );
    }

    /// Resolves with the error Start should fail with when the start is abandoned.
    async fn until_cancelled(
        &mut self,
        disconnected: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) -> Error {
        loop {
            tokio::select! {
                cmd = self.cmds.recv() => match cmd {
                    Some(Cmd::Stop(reply)) => {
                        let _ = reply.send(Err(Error::NotRecording(format!(
                            "recording {} was still starting; the start is cancelled", self.id
                        ))));
                        return Error::PortalCancelled("cancelled by Stop() before the first frame".into());
                    }
                    Some(Cmd::Pause(reply)) => {
                        let _ = reply.send(Err(Error::NotRecording(format!("recording {} is still starting", self.id))));
                    }
                    Some(Cmd::Resume(reply)) => {
                        let _ = reply.send(Err(Error::NotPaused(format!("recording {} is still starting", self.id))));
                    }
                    Some(Cmd::SaveReplay { reply, .. }) => {
                        let _ = reply.send(Err(Error::NotRecording(format!("recording {} is still starting; the replay holds nothing yet", self.id))));
                    }
                    Some(Cmd::Keep { reply, .. }) => {
                        let _ = reply.send(Err(Error::NotRecording(format!("recording {} is still starting; the replay holds nothing yet", self.id))));
                    }
                    None => std::future::pending::<()>().await,
                },
                _ = disconnected.as_mut() => {
                    return Error::PortalCancelled("the caller left the bus before the first frame (stop-on-disconnect)".into());
                }
            }
        }
    }

    fn spawn_stop(&self, rec: Arc<dyn ActiveRecording>) {
        // Stop runs beside the loop, which keeps publishing `finishing` and the figures; the
        // end itself is observed through `finished`.
        tokio::spawn(
            async move {
                if let Err(e) = rec.stop().await {
                    debug!(error = %e.message(), "stop returned an error");
                }
            }
            .in_current_span(),
        );
    }

    fn pause(&self, rec: &dyn ActiveRecording, stopping: bool) -> Result<(), Error> {
        let state = self.view.borrow().state;
        match state {
            RecordingState::Recording if !stopping => {
                rec.pause()?;
                info!("paused");
                Ok(())
            }
            RecordingState::Paused => Err(Error::NotRecording(format!(
                "recording {} is already paused",
                self.id
            ))),
            s => Err(Error::NotRecording(format!(
                "recording {} is {}",
                self.id,
                if stopping { "finishing" } else { s.as_str() }
            ))),
        }
    }

    fn resume(&self, rec: &dyn ActiveRecording, stopping: bool) -> Result<(), Error> {
        let state = self.view.borrow().state;
        if state == RecordingState::Paused && !stopping {
            rec.resume()?;
            info!("resumed");
            Ok(())
        } else {
            Err(Error::NotPaused(format!(
                "recording {} is {} (not paused)",
                self.id, state
            )))
        }
    }

    /// Publishes the end (properties, then `Finished`/`Failed`), answers `Stop` callers, and
    /// schedules the object's removal.
    async fn end(
        self,
        result: Result<Summary, Error>,
        stop_waiters: Vec<oneshot::Sender<Result<String, Error>>>,
    ) {
        let emitter = SignalEmitter::new(&self.conn, self.path.clone()).expect("valid path");
        // A lost stream ends with a playable file (a summary) but is still a failure.
        let (summary, failure) = match result {
            Ok(s) => match &s.reason {
                EndReason::StreamLost(why) => {
                    let e = Error::StreamLost(format!(
                        "the screen-cast stream was lost: {why}; the file up to then is at {}",
                        on_bus_path(&s.path)
                    ));
                    (Some(s), Some(e))
                }
                _ => (Some(s), None),
            },
            Err(e) => (None, Some(e)),
        };
        if let Some(summary) = &summary {
            let path = on_bus_path(&summary.path);
            self.view.send_modify(|v| {
                v.stats = summary.stats.clone();
                v.path = path;
            });
        }
        let state = if failure.is_some() {
            RecordingState::Failed
        } else {
            RecordingState::Finished
        };
        self.view.send_modify(|v| v.state = state);
        self.emit_all().await;
        match (&summary, &failure) {
            (Some(s), None) => {
                let path = on_bus_path(&s.path);
                info!(%path, secs = s.stats.duration.as_secs_f64(), reason = ?s.reason, "finished");
                let _ = RecordingObject::finished(&emitter, &path, stats_dict(&s.stats)).await;
            }
            (_, Some(e)) => {
                warn!(error = %e.message(), "failed");
                let _ = RecordingObject::failed(&emitter, &e.dbus_name(), &e.message()).await;
            }
            (None, None) => unreachable!("an end has a summary or an error"),
        }
        let outcome = match (&summary, &failure) {
            (Some(s), None) => s.path.as_ref().map(|path| Outcome::Saved {
                path: path.clone(),
                duration: s.stats.duration,
                bytes: s.stats.bytes,
            }),
            (s, Some(e)) => Some(Outcome::Failed {
                error_name: e.dbus_name().to_string(),
                message: e.message(),
                path: s.as_ref().and_then(|s| s.path.clone()),
            }),
            (None, None) => unreachable!("an end has a summary or an error"),
        };
        // None: a replay stopped without save-on-stop wrote nothing, nothing to announce.
        if let Some(outcome) = outcome.filter(|_| self.notify) {
            let (conn, shared) = (self.conn.clone(), self.shared.clone());
            // Beside the end: a slow or missing notification server delays nothing.
            tokio::spawn(
                async move { shared.notifier.recording_ended(&conn, outcome).await }
                    .in_current_span(),
            );
        }
        for w in stop_waiters {
            // A Stop caller gets the path whenever a file exists, even after a lost stream.
            let _ = w.send(match (&summary, &failure) {
                (Some(s), _) => Ok(on_bus_path(&s.path)),
                (None, Some(e)) => Err(e.clone()),
                (None, None) => unreachable!(),
            });
        }

        let excess = self.shared.mark_ended(self.id);
        for id in excess {
            remove_object(&self.conn, &self.shared, id).await;
        }
        let (conn, shared, id, linger) = (
            self.conn.clone(),
            self.shared.clone(),
            self.id,
            self.shared.config.linger,
        );
        tokio::spawn(
            async move {
                tokio::time::sleep(linger).await;
                remove_object(&conn, &shared, id).await;
            }
            .in_current_span(),
        );
    }

    async fn emit_all(&self) {
        let v = self.view.borrow().clone();
        let mut changed = progress_dict(&v.stats);
        changed.insert("State", Value::from(on_bus(v.state).as_str()));
        changed.insert("Path", Value::from(v.path));
        changed.insert("Encoder", Value::from(v.stats.encoder.clone()));
        changed.insert("CapturePath", Value::from(v.stats.capture_path.as_str()));
        changed.insert("Warnings", Value::from(v.warnings));
        emit_properties(&self.conn, self.path.as_str(), RECORDING_IFACE, changed).await;
    }

    async fn emit_progress(&self) {
        let stats = self.view.borrow().stats.clone();
        let mut changed = progress_dict(&stats);
        // Encoder and capture path settle right after start; cheap to repeat.
        changed.insert("Encoder", Value::from(stats.encoder.clone()));
        changed.insert("CapturePath", Value::from(stats.capture_path.as_str()));
        emit_properties(&self.conn, self.path.as_str(), RECORDING_IFACE, changed).await;
    }
}

/// A recording's file as `Path`, `Stop` and `Finished` carry it: empty when nothing was
/// written (a replay stopped without save-on-stop), as the interface documents.
fn on_bus_path(path: &Option<PathBuf>) -> String {
    path.as_deref()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A recorder state as the `State` property names it: the client crate's list is the one the
/// clients parse (and the GNOME extension is checked against).
fn on_bus(s: RecordingState) -> zerocast_client::State {
    use zerocast_client::State;
    match s {
        RecordingState::Starting => State::Starting,
        RecordingState::Recording => State::Recording,
        RecordingState::Paused => State::Paused,
        RecordingState::Finishing => State::Finishing,
        RecordingState::Finished => State::Finished,
        RecordingState::Failed => State::Failed,
    }
}

fn progress_dict(s: &Stats) -> HashMap<&'static str, Value<'static>> {
    HashMap::from([
        ("Duration", Value::from(s.duration.as_secs_f64())),
        ("Frames", Value::from(s.frames_written)),
        ("DroppedFrames", Value::from(s.frames_dropped)),
        ("Bytes", Value::from(s.bytes)),
    ])
}

async fn remove_object(conn: &Connection, shared: &Shared, id: u64) {
    if !shared.forget(id) {
        return;
    }
    let path = object_path(id);
    if let Err(e) = conn
        .object_server()
        .remove::<RecordingObject, _>(&path)
        .await
    {
        debug!(id, error = %e, "removing object");
    }
    debug!(id, "object removed");
    emit_recordings_changed(conn, shared).await;
}

/// Resolves when `caller` leaves the bus; never when `None`.
async fn watch_disconnect(conn: Connection, caller: Option<UniqueName<'static>>) {
    let Some(caller) = caller else {
        return std::future::pending().await;
    };
    let watch = async {
        let dbus = zbus::fdo::DBusProxy::new(&conn).await?;
        let mut changes = dbus
            .receive_name_owner_changed_with_args(&[(0, caller.as_str())])
            .await?;
        // Subscribe first, then check: the caller may have left in between (a `busctl call`
        // exits right after the reply).
        if !dbus.name_has_owner(caller.as_ref().into()).await? {
            return Ok::<(), zbus::Error>(());
        }
        while let Some(sig) = changes.next().await {
            if let Ok(args) = sig.args() {
                if args.new_owner().is_none() {
                    return Ok(());
                }
            }
        }
        Ok(())
    };
    if let Err(e) = watch.await {
        // Without a working watch, keep recording: losing a recording is worse than an
        // orphaned one, which `ctl stop` still reaches.
        warn!(error = %e, "cannot watch the caller; stop-on-disconnect disabled");
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The recorder's own names (in logs and error messages) are the bus's.
    #[test]
    fn recorder_states_keep_the_bus_names() {
        use RecordingState::*;
        for s in [Starting, Recording, Paused, Finishing, Finished, Failed] {
            assert_eq!(on_bus(s).as_str(), s.as_str());
            assert_eq!(on_bus(s).is_over(), s.is_over());
        }
    }
}
