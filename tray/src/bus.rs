//! The event loop: follows the daemon through its signals only (NameOwnerChanged, the
//! manager's and recordings' PropertiesChanged, Finished/Failed) and carries out menu actions.
//! Nothing here polls or ticks, so an idle tray sleeps in epoll.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};
use zbus::fdo::{DBusProxy, PropertiesProxy};
use zbus::message::Type as MessageType;
use zbus::names::{BusName, InterfaceName, OwnedUniqueName};
use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};
use zbus::{Connection, MatchRule, Message, MessageStream};

use crate::model::{file_name, Model, Recording};
use crate::sni::{Action, ZerocastTray};

pub const BUS_NAME: &str = "org.zerocast.Recorder1";
pub const MANAGER_PATH: &str = "/org/zerocast/Recorder1";
const MANAGER_IFACE: &str = "org.zerocast.Recorder1";
const RECORDING_IFACE: &str = "org.zerocast.Recording1";

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
    /// The daemon's unique name: reads go there, so they never activate a daemon.
    owner: Option<OwnedUniqueName>,
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
            owner: None,
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
        let mut owners = dbus
            .receive_name_owner_changed_with_args(&[(0, BUS_NAME)])
            .await?;
        let mut watchers = dbus
            .receive_name_owner_changed_with_args(&[(0, WATCHER_NAME)])
            .await?;
        let rule = MatchRule::builder()
            .msg_type(MessageType::Signal)
            .sender(BUS_NAME)?
            .path_namespace(MANAGER_PATH)?
            .build();
        let mut signals = MessageStream::for_match_rule(rule, &self.conn, Some(64)).await?;
        let (done_tx, mut done) = mpsc::unbounded_channel::<Done>();

        let owner = dbus
            .get_name_owner(BusName::from_static_str(BUS_NAME).expect("valid name"))
            .await
            .ok();
        self.daemon_appeared(owner).await;
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
                Some(sig) = owners.next() => {
                    let Ok(args) = sig.args() else { continue };
                    match args.new_owner().as_ref() {
                        Some(o) => self.daemon_appeared(Some(o.to_owned().into())).await,
                        None => {
                            info!("the daemon left the bus");
                            self.owner = None;
                            self.model.daemon_lost();
                        }
                    }
                }
                Some(msg) = signals.next() => {
                    let Ok(msg) = msg else { continue };
                    self.on_signal(&msg).await;
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
                    Done::Started => self.model.start_pending = false,
                    Done::Failed(e) => {
                        warn!(error = %e, "action failed");
                        self.model.start_pending = false;
                        self.model.last_error = Some(e);
                    }
                    Done::Saved { path, seconds } => {
                        info!(%path, seconds, "replay saved");
                        self.model.save_pending = false;
                        let path = PathBuf::from(path);
                        self.model.last_saved = Some((file_name(&path), seconds));
                        self.model.add_recent(path);
                    }
                    Done::SaveFailed(e) => {
                        warn!(error = %e, "saving the replay failed");
                        self.model.save_pending = false;
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

    async fn daemon_appeared(&mut self, owner: Option<OwnedUniqueName>) {
        self.model.daemon_lost();
        self.owner = owner;
        let Some(owner) = self.owner.clone() else {
            info!("the daemon is not running");
            return;
        };
        info!(%owner, "the daemon is on the bus");
        self.model.daemon = true;
        match self.read_manager(&owner).await {
            Ok(list) => self.sync_recordings(&list).await,
            Err(e) => warn!(error = %e, "cannot read the daemon's recordings"),
        }
    }

    async fn read_manager(&self, owner: &OwnedUniqueName) -> anyhow::Result<Vec<OwnedObjectPath>> {
        let v = self
            .props(owner, MANAGER_PATH)
            .await?
            .get(
                InterfaceName::from_static_str_unchecked(MANAGER_IFACE),
                "Recordings",
            )
            .await?;
        Ok(Vec::<OwnedObjectPath>::try_from(v)?)
    }

    async fn props(
        &self,
        owner: &OwnedUniqueName,
        path: &str,
    ) -> anyhow::Result<PropertiesProxy<'static>> {
        Ok(PropertiesProxy::builder(&self.conn)
            .destination(owner.clone())?
            .path(path.to_owned())?
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await?)
    }

    /// Adopts the daemon's list: reads new objects, drops removed ones.
    async fn sync_recordings(&mut self, list: &[OwnedObjectPath]) {
        let ids: Vec<(u64, &OwnedObjectPath)> = list
            .iter()
            .filter_map(|p| Some((id_of(p.as_str())?, p)))
            .collect();
        self.model
            .recordings
            .retain(|id, _| ids.iter().any(|(i, _)| i == id));
        let Some(owner) = self.owner.clone() else {
            return;
        };
        for (id, path) in ids {
            // Also those seen only in signals so far: `Options` comes with GetAll only.
            let seen = self.model.recordings.get(&id);
            if seen.is_some_and(|r| r.read) {
                continue;
            }
            let new = seen.is_none();
            let all = match self.props(&owner, path.as_str()).await {
                Ok(p) => p
                    .get_all(InterfaceName::from_static_str_unchecked(RECORDING_IFACE))
                    .await
                    .map_err(anyhow::Error::from),
                Err(e) => Err(e),
            };
            match all {
                Ok(all) => {
                    let r = self.model.recordings.entry(id).or_default();
                    apply(r, all.iter().map(|(k, v)| (k.as_str(), &**v)));
                    r.read = true;
                    if new && r.state == "finished" {
                        let file = PathBuf::from(&r.path);
                        self.model.add_recent(file);
                    }
                }
                // Removed between the list and the read: nothing to show.
                Err(e) => debug!(id, error = %e, "cannot read a recording"),
            }
        }
    }

    async fn on_signal(&mut self, msg: &Message) {
        let header = msg.header();
        let (Some(path), Some(member)) = (header.path(), header.member()) else {
            return;
        };
        let path = path.as_str().to_owned();
        match member.as_str() {
            "PropertiesChanged" => {
                let Some(sig) = zbus::fdo::PropertiesChanged::from_message(msg.clone()) else {
                    return;
                };
                let Ok(args) = sig.args() else { return };
                let changed = args.changed_properties();
                if path == MANAGER_PATH {
                    if let Some(v) = changed.get("Recordings") {
                        let list = OwnedValue::try_from(v)
                            .ok()
                            .and_then(|v| Vec::<OwnedObjectPath>::try_from(v).ok());
                        if let Some(list) = list {
                            self.sync_recordings(&list).await;
                        }
                    }
                } else if let Some(id) = id_of(&path) {
                    match self.model.recordings.get_mut(&id) {
                        Some(r) => apply(r, changed.iter().map(|(k, v)| (*k, v))),
                        // A recording we have not listed yet (its Recordings change is next).
                        None => {
                            let mut r = Recording::default();
                            apply(&mut r, changed.iter().map(|(k, v)| (*k, v)));
                            self.model.recordings.insert(id, r);
                        }
                    }
                }
            }
            "Finished" => {
                if let Ok((file, _stats)) = msg
                    .body()
                    .deserialize::<(String, HashMap<String, OwnedValue>)>()
                {
                    info!(%file, "recording finished");
                    // Empty for a replay stopped without save-on-stop: nothing was written.
                    self.model.add_recent(PathBuf::from(file));
                }
                if let Some(r) = id_of(&path).and_then(|id| self.model.recordings.get_mut(&id)) {
                    r.state = "finished".into();
                }
            }
            "Failed" => {
                if let Ok((name, message)) = msg.body().deserialize::<(String, String)>() {
                    info!(%name, %message, "recording failed");
                }
                if let Some(r) = id_of(&path).and_then(|id| self.model.recordings.get_mut(&id)) {
                    r.state = "failed".into();
                }
            }
            _ => {}
        }
    }

    fn on_action(&mut self, action: Action, done: &mpsc::UnboundedSender<Done>) {
        self.model.last_error = None;
        self.model.last_saved = None;
        let current = self.model.current().map(|(id, r)| (id, r.state.clone()));
        let replay = self
            .model
            .current()
            .is_some_and(|(_, r)| r.can_save_replay());
        let action = resolve(action, current.is_some(), replay);
        let conn = self.conn.clone();
        let done = done.clone();
        match action {
            Action::Start(source) => {
                if current.is_some() || self.model.start_pending {
                    return;
                }
                self.model.start_pending = true;
                // Start returns once frames flow; the portal dialog may take minutes, so it
                // runs beside the loop, which keeps following the new object's signals.
                tokio::spawn(async move {
                    let opts: HashMap<&str, Value<'_>> =
                        HashMap::from([("source", Value::from(source))]);
                    let r = conn
                        .call_method(
                            Some(BUS_NAME),
                            MANAGER_PATH,
                            Some(MANAGER_IFACE),
                            "Start",
                            &(opts,),
                        )
                        .await;
                    let _ = done.send(match r {
                        Ok(_) => Done::Started,
                        Err(e) => Done::Failed(describe(&e)),
                    });
                });
            }
            Action::PauseResume | Action::Stop => {
                let Some((id, state)) = current else { return };
                let method = match (&action, state.as_str()) {
                    (Action::Stop, _) => "Stop",
                    (_, "paused") => "Resume",
                    _ => "Pause",
                };
                let path = format!("{MANAGER_PATH}/recording/{id}");
                tokio::spawn(async move {
                    let r = conn
                        .call_method(
                            Some(BUS_NAME),
                            path.as_str(),
                            Some(RECORDING_IFACE),
                            method,
                            &(),
                        )
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
                if self.model.save_pending {
                    return;
                }
                self.model.save_pending = true;
                let path = format!("{MANAGER_PATH}/recording/{id}");
                // Returns once the clip is complete: beside the loop, like the others.
                tokio::spawn(async move {
                    let opts: HashMap<&str, Value<'_>> = HashMap::new();
                    let r = conn
                        .call_method(
                            Some(BUS_NAME),
                            path.as_str(),
                            Some(RECORDING_IFACE),
                            "SaveReplay",
                            &(opts,),
                        )
                        .await
                        .and_then(|m| {
                            m.body()
                                .deserialize::<(String, HashMap<String, OwnedValue>)>()
                        });
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
                    let r = conn
                        .call_method(
                            Some(BUS_NAME),
                            MANAGER_PATH,
                            Some(MANAGER_IFACE),
                            "ForgetSources",
                            &(),
                        )
                        .await;
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

/// Applies property values (from GetAll or PropertiesChanged) to a recording.
fn apply<'a>(r: &mut Recording, props: impl Iterator<Item = (&'a str, &'a Value<'a>)>) {
    for (k, v) in props {
        match (k, unwrap(v)) {
            ("State", Value::Str(s)) => r.state = s.to_string(),
            ("Path", Value::Str(s)) => r.path = s.to_string(),
            ("Encoder", Value::Str(s)) => r.encoder = s.to_string(),
            ("CapturePath", Value::Str(s)) => r.capture_path = s.to_string(),
            ("Duration", Value::F64(d)) => r.duration = *d,
            ("Bytes", Value::U64(b)) => r.bytes = *b,
            ("Options", Value::Dict(opts)) => {
                r.replay = None;
                r.save_on_stop = false;
                for (k, v) in opts.iter() {
                    match (unwrap(k), unwrap(v)) {
                        (Value::Str(k), Value::F64(s)) if k.as_str() == "replay" => {
                            r.replay = Some(*s);
                        }
                        (Value::Str(k), Value::Bool(b)) if k.as_str() == "save-on-stop" => {
                            r.save_on_stop = *b;
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
}

/// The value inside any `v` wrappers.
fn unwrap<'a>(mut v: &'a Value<'a>) -> &'a Value<'a> {
    while let Value::Value(inner) = v {
        v = inner;
    }
    v
}

fn id_of(path: &str) -> Option<u64> {
    path.strip_prefix(MANAGER_PATH)?
        .strip_prefix("/recording/")?
        .parse()
        .ok()
}

fn describe(e: &zbus::Error) -> String {
    match e {
        zbus::Error::MethodError(name, msg, _) => {
            format!("{}: {}", name.as_str(), msg.as_deref().unwrap_or(""))
        }
        e => e.to_string(),
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

    #[test]
    fn ids() {
        assert_eq!(id_of("/org/zerocast/Recorder1/recording/12"), Some(12));
        assert_eq!(id_of("/org/zerocast/Recorder1"), None);
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
        assert_eq!((r.state.as_str(), r.duration, r.bytes), ("paused", 2.5, 42));
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
