//! The event loop: follows the daemon through its signals only (NameOwnerChanged, the
//! manager's and recordings' PropertiesChanged, Finished/Failed) and carries out menu actions.
//! Nothing here polls or ticks, so an idle tray sleeps in epoll.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tracing::{info, warn};
use zbus::fdo::DBusProxy;
use zbus::proxy::CacheProperties;
use zbus::zvariant::Value;
use zbus::Connection;
use zerocast_client::{
    describe, recording_path, Entry, Follower, RecorderProxy, RecordingProxy, State, Update,
};

use crate::model::{file_name, Model, Pending, Recording};
use crate::sni::{Action, ZerocastTray};

/// What finished actions report back to the loop.
enum Done {
    Started,
    Failed(String),
    /// `SaveReplay` wrote `path`, a clip of `seconds`.
    Saved {
        path: String,
        seconds: f64,
    },
    SaveFailed(String),
}

const WATCHER_NAME: &str = "org.kde.StatusNotifierWatcher";
/// Registration retries after a failure, each twice as late as the one before (0.1 s … 12.8 s);
/// after that only a new watcher starts them again.
const MAX_RETRIES: u32 = 8;

pub struct Loop {
    conn: Connection,
    /// The ksni service; `None` while it has to be served again.
    handle: Option<ksni::Handle<ZerocastTray>>,
    actions_tx: mpsc::UnboundedSender<Action>,
    own_icons: bool,
    model: Model,
    /// Failed registrations since the watcher last changed.
    retries: u32,
    retry_at: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl Loop {
    pub fn new(
        conn: Connection,
        actions_tx: mpsc::UnboundedSender<Action>,
        own_icons: bool,
    ) -> Self {
        Loop {
            conn,
            handle: None,
            actions_tx,
            own_icons,
            model: Model::default(),
            retries: 0,
            retry_at: None,
        }
    }

    /// Serves the StatusNotifierItem (again). It waits for a watcher instead of failing, since
    /// the tray often starts before the panel.
    async fn serve_item(&mut self) {
        use ksni::TrayMethods;
        if let Some(old) = self.handle.take() {
            old.shutdown().await;
        }
        let tray = ZerocastTray {
            model: self.model.clone(),
            own_icons: self.own_icons,
            actions: self.actions_tx.clone(),
        };
        match tray.assume_sni_available(true).spawn().await {
            Ok(h) => self.handle = Some(h),
            Err(e) => {
                warn!(error = %e, "cannot serve the StatusNotifierItem");
                self.schedule_retry();
            }
        }
    }

    fn schedule_retry(&mut self) {
        if self.retries >= MAX_RETRIES {
            warn!("giving up registering until the StatusNotifierWatcher changes");
            return;
        }
        let delay = std::time::Duration::from_millis(100 << self.retries);
        self.retries += 1;
        self.retry_at = Some(Box::pin(tokio::time::sleep(delay)));
    }

    pub async fn run(mut self, mut actions: mpsc::UnboundedReceiver<Action>) -> anyhow::Result<()> {
        // Subscribe first, then read the state: nothing falls in between.
        let dbus = DBusProxy::new(&self.conn).await?;
        let mut watchers = dbus
            .receive_name_owner_changed_with_args(&[(0, WATCHER_NAME)])
            .await?;
        let (mut daemon, first) = Follower::subscribe(&self.conn).await?;
        let (done_tx, mut done) = mpsc::unbounded_channel::<Done>();
        self.on_update(&daemon, first);
        self.serve_item().await;

        loop {
            tokio::select! {
                // ksni registers with a new watcher itself; we only step in when that fails.
                Some(sig) = watchers.next() => {
                    if sig.args().is_ok_and(|a| a.new_owner().is_some()) {
                        self.retries = 0;
                        if self.handle.is_none() {
                            self.schedule_retry();
                        }
                    }
                }
                () = async { self.retry_at.as_mut().expect("guarded").await }, if self.retry_at.is_some() => {
                    self.retry_at = None;
                    info!(attempt = self.retries, "serving the StatusNotifierItem again");
                    self.serve_item().await;
                }
                Some(signal) = daemon.recv() => {
                    let update = daemon.apply(signal).await;
                    self.on_update(&daemon, update);
                }
                Some(a) = actions.recv() => {
                    match a {
                        Action::Quit => {
                            info!("quit from the menu");
                            if let Some(h) = self.handle.take() {
                                h.shutdown().await;
                            }
                            return Ok(());
                        }
                        Action::Reregister => {
                            if self.retry_at.is_none() {
                                self.schedule_retry();
                            }
                            continue;
                        }
                        _ => {}
                    }
                    self.on_action(a, &done_tx);
                }
                Some(d) = done.recv() => match d {
                    Done::Started => self.model.pending.clear(Pending::Start),
                    Done::Failed(e) => {
                        warn!(error = %e, "action failed");
                        self.model.pending.clear(Pending::Start);
                        self.model.last_error = Some(e);
                    }
                    Done::Saved { path, seconds } => {
                        info!(%path, seconds, "replay saved");
                        self.model.pending.clear(Pending::Save);
                        let path = PathBuf::from(path);
                        self.model.last_saved = Some((file_name(&path), seconds));
                        self.model.add_recent(path);
                    }
                    Done::SaveFailed(e) => {
                        warn!(error = %e, "saving the replay failed");
                        self.model.pending.clear(Pending::Save);
                        self.model.last_error = Some(e);
                    }
                },
                else => anyhow::bail!("lost the session bus"),
            }
            self.publish().await;
        }
    }

    /// Hands the model to ksni, which emits only what changed.
    async fn publish(&self) {
        if let Some(h) = &self.handle {
            let model = self.model.clone();
            h.update(move |t| t.model = model).await;
        }
    }

    /// Adopts what the daemon's signals changed.
    fn on_update(&mut self, daemon: &Follower, update: Update) {
        // Finished files the tray learns of, newest last.
        let mut finished = Vec::new();
        match update {
            Update::Daemon { owner: None, .. } => info!("the daemon is not running"),
            Update::Daemon {
                owner: Some(owner),
                error,
            } => {
                info!(%owner, "the daemon is on the bus");
                if let Some(e) = error {
                    warn!(error = %e, "cannot read the daemon's recordings");
                }
                finished.extend(daemon.recordings().values().filter_map(finished_file));
            }
            Update::Listed { added } => finished.extend(
                added
                    .iter()
                    .filter_map(|id| daemon.recordings().get(id))
                    .filter_map(finished_file),
            ),
            Update::Finished { path, .. } => {
                info!(path = path.as_deref().unwrap_or(""), "recording finished");
                // None for a replay stopped without save-on-stop: nothing was written.
                finished.extend(path.map(PathBuf::from));
            }
            Update::Failed {
                error_name,
                message,
                ..
            } => info!(name = %error_name, %message, "recording failed"),
            Update::Changed { .. } | Update::Nothing => {}
        }
        for file in finished {
            self.model.add_recent(file);
        }
        self.model.daemon = daemon.owner().is_some();
        self.model.recordings = daemon
            .recordings()
            .iter()
            .map(|(id, e)| (*id, recording(e)))
            .collect();
    }

    fn on_action(&mut self, action: Action, done: &mpsc::UnboundedSender<Done>) {
        self.model.last_error = None;
        self.model.last_saved = None;
        let current = self.model.current().map(|(id, r)| (id, r.state));
        let replay = self
            .model
            .current()
            .is_some_and(|(_, r)| r.can_save_replay());
        let action = resolve(action, current.is_some(), replay);
        let conn = self.conn.clone();
        let done = done.clone();
        match action {
            Action::Start(source) => {
                if current.is_some() || self.model.pending == Pending::Start {
                    return;
                }
                self.model.pending = Pending::Start;
                // Start returns once frames flow; the portal dialog may take minutes, so it
                // runs beside the loop, which keeps following the new object's signals.
                tokio::spawn(async move {
                    let opts: HashMap<&str, Value<'_>> =
                        HashMap::from([("source", Value::from(source))]);
                    let r = async { manager(&conn).await?.start(opts).await }.await;
                    let _ = done.send(match r {
                        Ok(_) => Done::Started,
                        Err(e) => Done::Failed(describe(&e)),
                    });
                });
            }
            Action::PauseResume | Action::Stop => {
                let Some((id, state)) = current else { return };
                tokio::spawn(async move {
                    let r = async {
                        let rec = recording_proxy(&conn, id).await?;
                        match (&action, state) {
                            (Action::Stop, _) => rec.stop().await.map(drop),
                            (_, Some(State::Paused)) => rec.resume().await,
                            _ => rec.pause().await,
                        }
                    }
                    .await;
                    if let Err(e) = r {
                        let _ = done.send(Done::Failed(describe(&e)));
                    }
                });
            }
            Action::SaveReplay => {
                let Some((id, _)) = self.model.current().filter(|(_, r)| r.can_save_replay())
                else {
                    return;
                };
                if self.model.pending == Pending::Save {
                    return;
                }
                self.model.pending = Pending::Save;
                // Returns once the clip is complete: beside the loop, like the others.
                tokio::spawn(async move {
                    let opts: HashMap<&str, Value<'_>> = HashMap::new();
                    let r =
                        async { recording_proxy(&conn, id).await?.save_replay(opts).await }.await;
                    let _ = done.send(match r {
                        Ok((path, info)) => Done::Saved {
                            path,
                            seconds: info
                                .get("seconds")
                                .and_then(|v| f64::try_from(v).ok())
                                .unwrap_or(0.0),
                        },
                        Err(e) => Done::SaveFailed(describe(&e)),
                    });
                });
            }
            Action::ForgetSources => {
                tokio::spawn(async move {
                    let r = async { manager(&conn).await?.forget_sources().await }.await;
                    if let Err(e) = r {
                        let _ = done.send(Done::Failed(describe(&e)));
                    }
                });
            }
            Action::OpenFolder => {
                let dir = self
                    .model
                    .recent
                    .front()
                    .and_then(|p| p.parent().map(Path::to_path_buf))
                    .unwrap_or_else(videos_dir);
                open(dir, done);
            }
            Action::Open(p) => open(p, done),
            Action::Toggle | Action::ToggleRecording | Action::Quit | Action::Reregister => {}
        }
    }
}

/// What a toggle means now: `running` — a recording has not ended; `replay` — it is a replay
/// that can be saved.
fn resolve(action: Action, running: bool, replay: bool) -> Action {
    match (action, running) {
        // On a replay a click saves it: stopping would throw away what it holds.
        (Action::Toggle, true) if replay => Action::SaveReplay,
        (Action::Toggle, true) => Action::Stop,
        // The shortcut stops a replay too, like the GNOME extension's ("save replay" is a key
        // of its own).
        (Action::ToggleRecording, true) => Action::Stop,
        (Action::Toggle | Action::ToggleRecording, false) => Action::Start("monitor"),
        (a, _) => a,
    }
}

/// The manager, through its well-known name: a call may start the daemon (D-Bus activation).
async fn manager(conn: &Connection) -> zbus::Result<RecorderProxy<'static>> {
    RecorderProxy::builder(conn)
        .cache_properties(CacheProperties::No)
        .build()
        .await
}

async fn recording_proxy(conn: &Connection, id: u64) -> zbus::Result<RecordingProxy<'static>> {
    RecordingProxy::builder(conn)
        .path(recording_path(id))?
        .cache_properties(CacheProperties::No)
        .build()
        .await
}

/// The file of a recording that finished before the tray looked.
fn finished_file(e: &Entry) -> Option<PathBuf> {
    e.file()
        .filter(|_| e.state == Some(State::Finished))
        .map(PathBuf::from)
}

/// A recording as the tray shows it.
fn recording(e: &Entry) -> Recording {
    let s = |prop| e.str(prop).unwrap_or("").to_owned();
    Recording {
        state: e.state,
        path: e.file().map(str::to_owned),
        encoder: s("Encoder"),
        capture_path: s("CapturePath"),
        duration: e.f64("Duration").unwrap_or(0.0),
        bytes: e.u64("Bytes").unwrap_or(0),
        replay: match e.option("replay") {
            Some(Value::F64(s)) => Some(*s),
            _ => None,
        },
        save_on_stop: matches!(e.option("save-on-stop"), Some(Value::Bool(true))),
        warnings: e.warnings().into_values().collect(),
    }
}

/// `$XDG_VIDEOS_DIR` (xdg-user-dirs), else `~/Videos` — where the daemon puts relative paths.
fn videos_dir() -> PathBuf {
    if let Ok(out) = std::process::Command::new("xdg-user-dir")
        .arg("VIDEOS")
        .output()
    {
        let s = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if out.status.success() && !s.is_empty() {
            return PathBuf::from(s);
        }
    }
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join("Videos"))
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Opens a file or folder with the desktop's default handler.
fn open(target: PathBuf, done: mpsc::UnboundedSender<Done>) {
    tokio::spawn(async move {
        let r = tokio::process::Command::new("xdg-open")
            .arg(&target)
            .stdin(std::process::Stdio::null())
            .status()
            .await
            .with_context(|| format!("xdg-open {}", target.display()));
        match r {
            Ok(s) if s.success() => {}
            Ok(s) => {
                let _ = done.send(Done::Failed(format!("xdg-open {}: {s}", target.display())));
            }
            Err(e) => {
                let _ = done.send(Done::Failed(format!("{e:#}")));
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toggles() {
        use Action::*;
        assert_eq!(resolve(Toggle, false, false), Start("monitor"));
        assert_eq!(resolve(Toggle, true, false), Stop);
        assert_eq!(resolve(Toggle, true, true), SaveReplay);
        assert_eq!(resolve(ToggleRecording, false, false), Start("monitor"));
        assert_eq!(resolve(ToggleRecording, true, false), Stop);
        assert_eq!(resolve(ToggleRecording, true, true), Stop);
        assert_eq!(resolve(PauseResume, true, true), PauseResume);
        assert_eq!(resolve(SaveReplay, true, true), SaveReplay);
    }

    /// Reads properties the way the client crate does, into the tray's view.
    fn apply<'a>(r: &mut Recording, props: impl Iterator<Item = (&'a str, &'a Value<'a>)>) {
        let mut e = Entry::default();
        e.apply(props, true);
        *r = recording(&e);
    }

    #[test]
    fn apply_reads_variants() {
        let mut r = Recording::default();
        let state = Value::from("paused");
        let wrapped = Value::Value(Box::new(Value::from(2.5f64)));
        let bytes = Value::from(42u64);
        apply(
            &mut r,
            [("State", &state), ("Duration", &wrapped), ("Bytes", &bytes)].into_iter(),
        );
        assert_eq!(
            (r.state, r.duration, r.bytes),
            (Some(State::Paused), 2.5, 42)
        );
    }

    #[test]
    fn apply_reads_replay_options() {
        let mut r = Recording::default();
        let normal = Value::from(HashMap::from([(
            "path".to_owned(),
            Value::Value(Box::new(Value::from("/v/a.mkv"))),
        )]));
        apply(&mut r, [("Options", &normal)].into_iter());
        assert_eq!((r.replay, r.save_on_stop), (None, false));

        let replay = Value::from(HashMap::from([
            (
                "replay".to_owned(),
                Value::Value(Box::new(Value::from(5.0f64))),
            ),
            (
                "save-on-stop".to_owned(),
                Value::Value(Box::new(Value::from(true))),
            ),
        ]));
        apply(&mut r, [("Options", &replay)].into_iter());
        assert_eq!((r.replay, r.save_on_stop), (Some(5.0), true));
    }
}
