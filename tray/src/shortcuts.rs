//! Global shortcuts through the xdg-desktop-portal `GlobalShortcuts` interface (KDE 6, GNOME 48+,
//! Hyprland): toggle recording, pause/resume and save replay, bound for the tray's lifetime and
//! carried out through the same [`Action`]s as the menu, so a press talks to the daemon only
//! through `org.zerocast.Recorder1`.
//!
//! A direct zbus client (~the size of ashpd's wrapper): the tray links zbus, ksni and tokio only.
//! The order the desktops need (verified on GNOME 48 and KDE 6.3):
//! `Registry.Register(app id)` → `CreateSession` → `BindShortcuts`, each portal answer read from
//! the `Request`'s `Response` signal, subscribed on the predicted request path *before* the call.
//! The same shortcut ids every time: the desktop keeps the keys the user chose under the app id.
//!
//! On GNOME with the zerocast extension enabled the extension's own keybindings are the
//! shortcuts and the tray binds nothing, so a press acts once and GNOME never shows its "Add
//! Keyboard Shortcuts" dialog for keys that would duplicate the extension's (see [`decide`]).
//!
//! What is in effect, and why, is logged once per change and published on the tray's own bus
//! name ([`TRAY_NAME`], property `ShortcutsMechanism` and friends) for `zerocast probe`.

use std::collections::HashMap;
use std::fmt;

use futures_util::StreamExt;
use tokio::sync::mpsc::UnboundedSender;
use tracing::{debug, info, warn};
use zbus::fdo::{DBusProxy, RequestNameFlags, RequestNameReply};
use zbus::message::Type as MessageType;
use zbus::names::BusName;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{ObjectPath, OwnedObjectPath, OwnedValue, Value};
use zbus::{Connection, MatchRule, Message, MessageStream};

use crate::sni::Action;

/// The app id the desktops file our shortcuts under; `org.zerocast.Zerocast.desktop` must be
/// installed (GNOME looks the id up as a desktop file and refuses an unknown one).
pub const APP_ID: &str = "org.zerocast.Zerocast";
// Shared with `zerocast probe` (portal-client/src/shortcuts.rs) through the client crate.
pub use zerocast_client::shortcuts::{extension_active, EXTENSION_UUID, TRAY_NAME, TRAY_PATH};
use zerocast_client::shortcuts::{
    extension_info, portal_version, EXTENSIONS_IFACE, GS_IFACE, PORTAL, PORTAL_PATH, SHELL,
    SHELL_PATH,
};

const REGISTRY_IFACE: &str = "org.freedesktop.host.portal.Registry";
const REQUEST_IFACE: &str = "org.freedesktop.portal.Request";
const SESSION_IFACE: &str = "org.freedesktop.portal.Session";
/// `CreateSession` answers at once; a portal that does not is broken, not waiting for a user.
const CREATE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// One shortcut as the tray asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shortcut {
    /// Stable: the desktop keeps the user's key under this id across restarts.
    pub id: &'static str,
    /// What the desktop's settings show next to the key.
    pub description: &'static str,
    /// A suggestion in the XDG shortcuts format; the desktop may assign another or none. Ctrl+Alt,
    /// not the extension's Super+Alt, so the two never fight over a key.
    pub trigger: &'static str,
}

pub const SHORTCUTS: [Shortcut; 3] = [
    Shortcut {
        id: "toggle-recording",
        description: "Start a screen recording, or stop the running one",
        trigger: "CTRL+ALT+R",
    },
    Shortcut {
        id: "pause-resume",
        description: "Pause or resume the running recording",
        trigger: "CTRL+ALT+P",
    },
    Shortcut {
        id: "save-replay",
        description: "Save what the running replay holds to a file",
        trigger: "CTRL+ALT+S",
    },
];

/// What a press of shortcut `id` does: the GNOME extension's shortcuts (toggle stops whatever
/// runs, a replay too — "save replay" has its own key) plus the tray's "Save replay".
pub fn action_for(id: &str) -> Option<Action> {
    match id {
        "toggle-recording" => Some(Action::ToggleRecording),
        "pause-resume" => Some(Action::PauseResume),
        "save-replay" => Some(Action::SaveReplay),
        _ => None,
    }
}

/// A shortcut the desktop confirmed, with the key it shows for it (empty: none assigned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    pub id: String,
    pub trigger: String,
}

/// Why `BindShortcuts` bound nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindError {
    /// Response 1: the user declined (GNOME's "Add Keyboard Shortcuts" dialog).
    Cancelled,
    /// Another response code, without shortcuts in the results.
    NothingBound(u32),
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindError::Cancelled => write!(f, "the user declined the shortcuts"),
            BindError::NothingBound(code) => write!(
                f,
                "the desktop bound none (response {code}; on GNOME: is \
                 gnome-control-center's global shortcuts provider installed, and \
                 {APP_ID}.desktop?)"
            ),
        }
    }
}

/// Reads `BindShortcuts`' response. The results' `shortcuts` decide, not the code: GNOME 48
/// answers 2 even when it bound them (ashpd issue #302). Shortcuts that are not ours are left
/// out.
pub fn bound_shortcuts(
    code: u32,
    results: &HashMap<String, OwnedValue>,
) -> Result<Vec<Bound>, BindError> {
    let bound: Vec<Bound> = results
        .get("shortcuts")
        .map(|v| parse_shortcuts(v))
        .unwrap_or_default()
        .into_iter()
        .filter(|b| SHORTCUTS.iter().any(|s| s.id == b.id))
        .collect();
    match code {
        _ if !bound.is_empty() => Ok(bound),
        // Bound, without saying to which keys.
        0 => Ok(bound),
        1 => Err(BindError::Cancelled),
        c => Err(BindError::NothingBound(c)),
    }
}

/// `a(sa{sv})`: id and properties (`description`, `trigger_description`).
fn parse_shortcuts(v: &Value<'_>) -> Vec<Bound> {
    let Value::Array(list) = unwrap(v) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|entry| {
            let Value::Structure(s) = unwrap(entry) else {
                return None;
            };
            let (Some(Value::Str(id)), props) = (s.fields().first().map(unwrap), s.fields().get(1))
            else {
                return None;
            };
            let trigger = match props.map(unwrap) {
                Some(Value::Dict(d)) => d
                    .iter()
                    .find_map(|(k, v)| match (unwrap(k), unwrap(v)) {
                        (Value::Str(k), Value::Str(t)) if k.as_str() == "trigger_description" => {
                            Some(t.to_string())
                        }
                        _ => None,
                    })
                    .unwrap_or_default(),
                _ => String::new(),
            };
            Some(Bound {
                id: id.to_string(),
                trigger,
            })
        })
        .collect()
}

fn unwrap<'a>(mut v: &'a Value<'a>) -> &'a Value<'a> {
    while let Value::Value(inner) = v {
        v = inner;
    }
    v
}

/// Which mechanism is in effect (the tray's `ShortcutsMechanism` and the log say which, and
/// why).
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// Still asking the portal (or waiting for the user to answer GNOME's dialog).
    Pending(String),
    /// Bound through the portal: presses arrive as `Activated`.
    Portal { version: u32, bound: Vec<Bound> },
    /// GNOME with the zerocast extension enabled: its keybindings are the shortcuts.
    Extension,
    /// No global shortcuts from the tray, and why.
    None(String),
}

impl State {
    pub fn mechanism(&self) -> &'static str {
        match self {
            State::Pending(_) => "pending",
            State::Portal { .. } => "portal",
            State::Extension => "gnome-extension",
            State::None(_) => "none",
        }
    }

    pub fn reason(&self) -> String {
        match self {
            State::Pending(why) | State::None(why) => why.clone(),
            State::Portal { version, bound } => {
                let keys: Vec<String> = bound
                    .iter()
                    .map(|b| {
                        let key = if b.trigger.is_empty() {
                            "no key assigned"
                        } else {
                            b.trigger.as_str()
                        };
                        format!("{} = {key}", b.id)
                    })
                    .collect();
                format!(
                    "bound through the GlobalShortcuts portal (version {version}) as {APP_ID}: {}; \
                     change the keys in the desktop's settings",
                    if keys.is_empty() {
                        "the desktop did not list the keys".to_owned()
                    } else {
                        keys.join(", ")
                    }
                )
            }
            State::Extension => format!(
                "the GNOME extension {EXTENSION_UUID} is enabled: its keybindings are the \
                 shortcuts (the tray binds none, so a press acts once)"
            ),
        }
    }
}

/// What the portal and the shell offer, before binding.
#[derive(Debug, Clone, PartialEq)]
pub enum Offer {
    /// `GlobalShortcuts` with this interface version.
    Portal(u32),
    /// No `GlobalShortcuts`, and why.
    NoPortal(String),
}

/// The double-fire rule: on GNOME with our extension enabled, the extension's keybindings win
/// and the tray binds nothing, since both would act on one press if the user gave them the same
/// keys, and GNOME would ask the user to add shortcuts the extension already has. Returns the
/// state to show without binding, or `None` to bind.
pub fn decide(offer: &Offer, extension_active: bool) -> Option<State> {
    match (offer, extension_active) {
        (_, true) => Some(State::Extension),
        (Offer::NoPortal(why), false) => Some(State::None(why.clone())),
        (Offer::Portal(_), false) => None,
    }
}

/// What a failed `Registry.Register` means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterError {
    /// A portal older than 1.19: no registry, and none needed (it takes the id from elsewhere).
    NoRegistry,
    /// This connection already has an id with this portal instance (xdg-desktop-portal 1.20
    /// allows one `Register` per connection): ours, from an earlier bind.
    AlreadyRegistered,
    /// Refused (GNOME: "App info not found" without our desktop file).
    Refused,
}

pub fn register_error(error_name: &str, message: &str) -> RegisterError {
    match error_name {
        "org.freedesktop.DBus.Error.UnknownMethod"
        | "org.freedesktop.DBus.Error.UnknownInterface"
        | "org.freedesktop.DBus.Error.UnknownObject" => RegisterError::NoRegistry,
        _ if message.contains("already associated") => RegisterError::AlreadyRegistered,
        _ => RegisterError::Refused,
    }
}

/// The `Request` object a portal call with `handle_token` creates: its `Response` must be
/// subscribed before the call, or a quick answer is lost.
pub fn request_path(unique_name: &str, token: &str) -> String {
    format!("{PORTAL_PATH}/request/{}/{token}", sender_part(unique_name))
}

/// The session object `CreateSession` with `session_handle_token` creates.
pub fn session_path(unique_name: &str, token: &str) -> String {
    format!("{PORTAL_PATH}/session/{}/{token}", sender_part(unique_name))
}

fn sender_part(unique_name: &str) -> String {
    unique_name.trim_start_matches(':').replace('.', "_")
}

fn method_error(e: &zbus::Error) -> (String, String) {
    match e {
        zbus::Error::MethodError(name, msg, _) => {
            (name.to_string(), msg.clone().unwrap_or_default())
        }
        zbus::Error::FDO(e) => {
            let s = e.to_string();
            match s.split_once(": ") {
                Some((name, msg)) => (name.to_owned(), msg.to_owned()),
                None => (s, String::new()),
            }
        }
        e => (String::new(), e.to_string()),
    }
}

/// The tray's state on the bus (`org.zerocast.Tray1` at [`TRAY_PATH`]), read by `zerocast
/// probe` and the end-to-end tests.
pub struct TrayStatus {
    state: State,
}

#[zbus::interface(name = "org.zerocast.Tray1")]
impl TrayStatus {
    /// `pending`, `portal`, `gnome-extension` or `none`.
    #[zbus(property)]
    fn shortcuts_mechanism(&self) -> String {
        self.state.mechanism().to_owned()
    }

    /// Why that mechanism (for a user).
    #[zbus(property)]
    fn shortcuts_reason(&self) -> String {
        self.state.reason()
    }

    /// The portal's `GlobalShortcuts` version while bound through it, else 0.
    #[zbus(property)]
    fn shortcuts_portal_version(&self) -> u32 {
        match &self.state {
            State::Portal { version, .. } => *version,
            _ => 0,
        }
    }

    /// Shortcut id → the key the desktop shows for it (empty: none assigned).
    #[zbus(property)]
    fn shortcuts_bound(&self) -> HashMap<String, String> {
        match &self.state {
            State::Portal { bound, .. } => bound
                .iter()
                .map(|b| (b.id.clone(), b.trigger.clone()))
                .collect(),
            _ => HashMap::new(),
        }
    }
}

/// Publishes state changes: logged once each, and on the bus.
struct Publisher {
    conn: Connection,
    last: Option<State>,
}

impl Publisher {
    async fn set(&mut self, state: State) {
        if self.last.as_ref() == Some(&state) {
            return;
        }
        match &state {
            State::Pending(why) => debug!(%why, "global shortcuts: pending"),
            State::None(_) => warn!(reason = %state.reason(), "no global shortcuts"),
            _ => info!(mechanism = state.mechanism(), reason = %state.reason(), "global shortcuts"),
        }
        self.last = Some(state.clone());
        let iface = match self
            .conn
            .object_server()
            .interface::<_, TrayStatus>(TRAY_PATH)
            .await
        {
            Ok(i) => i,
            Err(e) => {
                debug!(error = %e, "the tray's status object is not served");
                return;
            }
        };
        iface.get_mut().await.state = state;
        let status = iface.get().await;
        let emitter: &SignalEmitter<'_> = iface.signal_emitter();
        // Best effort: a reader that missed a change reads the properties again.
        let _ = status.shortcuts_mechanism_changed(emitter).await;
        let _ = status.shortcuts_reason_changed(emitter).await;
        let _ = status.shortcuts_portal_version_changed(emitter).await;
        let _ = status.shortcuts_bound_changed(emitter).await;
    }
}

/// A change that makes the current binding (or the lack of one) moot.
enum Event {
    /// The portal has a new owner (restarted, or started on demand): bind again.
    PortalRestarted,
    /// The portal left the bus: its sessions are gone.
    PortalGone,
    /// The extension was enabled or disabled ([`Watch::ext_active`] says which).
    Extension,
}

/// What [`Watch::next`] saw.
enum Next {
    /// `Activated` (for any session: [`Client::on_activated`] checks it is ours).
    Pressed(Message),
    Changed(Event),
}

/// The signals the client follows, read in one place. Every stream is read in every phase: a
/// zbus stream left full holds up the whole connection (the tray's loop shares it).
struct Watch {
    owners: zbus::fdo::NameOwnerChangedStream,
    ext_changes: MessageStream,
    activated: MessageStream,
    /// The portal instance we talk to: a NameOwnerChanged naming it again (its start on demand
    /// by our own first call) changes nothing.
    portal_owner: Option<String>,
    /// The zerocast GNOME extension is enabled.
    ext_active: bool,
}

impl Watch {
    async fn new(conn: &Connection) -> anyhow::Result<Watch> {
        let dbus = DBusProxy::new(conn).await?;
        let owners = dbus
            .receive_name_owner_changed_with_args(&[(0, PORTAL)])
            .await?;
        let rule = MatchRule::builder()
            .msg_type(MessageType::Signal)
            .sender(SHELL)?
            .path(SHELL_PATH)?
            .interface(EXTENSIONS_IFACE)?
            .member("ExtensionStateChanged")?
            .arg(0, EXTENSION_UUID)?
            .build();
        let ext_changes = MessageStream::for_match_rule(rule, conn, Some(8)).await?;
        let rule = MatchRule::builder()
            .msg_type(MessageType::Signal)
            .sender(PORTAL)?
            .path(PORTAL_PATH)?
            .interface(GS_IFACE)?
            .member("Activated")?
            .build();
        let activated = MessageStream::for_match_rule(rule, conn, Some(16)).await?;
        Ok(Watch {
            owners,
            ext_changes,
            activated,
            portal_owner: None,
            ext_active: false,
        })
    }

    /// The next press or change. Cancel-safe: state changes only where it returns.
    async fn next(&mut self) -> anyhow::Result<Next> {
        loop {
            tokio::select! {
                Some(msg) = self.activated.next() => {
                    if let Ok(msg) = msg {
                        return Ok(Next::Pressed(msg));
                    }
                }
                Some(sig) = self.owners.next() => {
                    if let Some(ev) = owner_event(&sig, &mut self.portal_owner) {
                        return Ok(Next::Changed(ev));
                    }
                }
                Some(msg) = self.ext_changes.next() => {
                    if let Some(active) = msg.ok().and_then(|m| changed_extension(&m)) {
                        if active != self.ext_active {
                            self.ext_active = active;
                            return Ok(Next::Changed(Event::Extension));
                        }
                    }
                }
                else => anyhow::bail!("lost the session bus"),
            }
        }
    }

    /// The next change; presses meanwhile are not ours to act on (nothing is bound).
    async fn changed(&mut self) -> anyhow::Result<Event> {
        loop {
            if let Next::Changed(ev) = self.next().await? {
                return Ok(ev);
            }
        }
    }
}

/// Runs for the tray's lifetime: binds, turns `Activated` into actions, binds again when the
/// portal restarts or the extension goes away. Never fails the tray: what goes wrong is a state.
pub async fn run(conn: Connection, actions: UnboundedSender<Action>) {
    let mut publisher = Publisher {
        conn: conn.clone(),
        last: None,
    };
    if let Err(e) = serve(&conn, &mut publisher).await {
        publisher
            .set(State::None(format!(
                "cannot own {TRAY_NAME} to hold the shortcuts: {e}"
            )))
            .await;
        return;
    }
    if let Err(e) = Client::start(conn, actions, publisher).await {
        warn!(error = %format!("{e:#}"), "global shortcuts stopped");
    }
}

/// Serves the status object, then takes [`TRAY_NAME`]. A second tray carries on without
/// shortcuts: the portal would hand presses to one of the two sessions only.
async fn serve(conn: &Connection, publisher: &mut Publisher) -> anyhow::Result<()> {
    conn.object_server()
        .at(
            TRAY_PATH,
            TrayStatus {
                state: State::Pending("starting".into()),
            },
        )
        .await?;
    let taken = "another zerocast tray holds it (and the shortcuts)";
    match conn
        .request_name_with_flags(TRAY_NAME, RequestNameFlags::DoNotQueue.into())
        .await
    {
        // zbus turns `Exists` into `NameTaken`; both mean the same.
        Ok(RequestNameReply::Exists) | Err(zbus::Error::NameTaken) => anyhow::bail!(taken),
        Ok(_) => {}
        Err(e) => return Err(e.into()),
    }
    publisher
        .set(State::Pending("asking the portal".into()))
        .await;
    Ok(())
}

struct Client {
    conn: Connection,
    actions: UnboundedSender<Action>,
    publisher: Publisher,
    unique: String,
    tokens: u32,
    /// The portal instance (unique name) this connection registered [`APP_ID`] with.
    registered: Option<String>,
}

impl Client {
    /// Runs the client until the bus goes.
    async fn start(
        conn: Connection,
        actions: UnboundedSender<Action>,
        publisher: Publisher,
    ) -> anyhow::Result<()> {
        let unique = conn
            .unique_name()
            .map(|n| n.to_string())
            .ok_or_else(|| anyhow::anyhow!("no unique name on the bus"))?;
        Client {
            conn,
            actions,
            publisher,
            unique,
            tokens: 0,
            registered: None,
        }
        .run()
        .await
    }

    async fn run(mut self) -> anyhow::Result<()> {
        // Every stream first, then the first look: nothing falls in between.
        let mut watch = Watch::new(&self.conn).await?;
        watch.ext_active = self.extension_active().await;
        // Wait for something to change before asking again (after a refusal, or while the
        // extension holds the keys).
        let mut wait = false;
        loop {
            if wait && matches!(watch.changed().await?, Event::PortalGone) {
                self.publisher.set(portal_gone()).await;
                continue;
            }
            wait = true;

            let offer = self.offer().await;
            watch.portal_owner = self.portal_owner().await;
            if let Some(state) = decide(&offer, watch.ext_active) {
                self.publisher.set(state).await;
                continue;
            }
            let Offer::Portal(version) = offer else {
                continue;
            };

            // Bind, while watching for what would make it moot. The session's path is known
            // before it exists, so an abandoned one is closed.
            self.tokens += 1;
            let session_token = format!("zerocast_shortcuts_{}", self.tokens);
            let session = session_path(&self.unique, &session_token);
            let outcome = {
                let bind = self.bind(version, watch.portal_owner.clone(), session_token);
                tokio::pin!(bind);
                tokio::select! {
                    r = &mut bind => Ok(r),
                    ev = watch.changed() => Err(ev?),
                }
            };
            let bound = match outcome {
                Ok(Ok(bound)) => bound,
                Ok(Err(state)) => {
                    self.close(&session).await;
                    self.publisher.set(state).await;
                    continue;
                }
                Err(ev) => {
                    debug!("abandoning the bind: the portal or the extension changed");
                    // A session of a portal that left went with it; closing is harmless.
                    self.close(&session).await;
                    if matches!(ev, Event::PortalGone) {
                        self.publisher.set(portal_gone()).await;
                    } else {
                        wait = false;
                    }
                    continue;
                }
            };
            self.publisher.set(State::Portal { version, bound }).await;

            // Bound: presses until something changes.
            loop {
                match watch.next().await? {
                    Next::Pressed(msg) => self.on_activated(&msg, &session),
                    Next::Changed(ev) => {
                        match ev {
                            Event::PortalRestarted => {
                                info!("xdg-desktop-portal restarted: binding the shortcuts again");
                                wait = false;
                            }
                            Event::PortalGone => self.publisher.set(portal_gone()).await,
                            Event::Extension => {
                                // The extension's keys take over: our session goes, so a press
                                // the user bound in both places acts once.
                                self.close(&session).await;
                                wait = false;
                            }
                        }
                        break;
                    }
                }
            }
        }
    }

    /// Whether the portal has `GlobalShortcuts` (this call starts xdg-desktop-portal on demand).
    async fn offer(&self) -> Offer {
        match portal_version(&self.conn).await {
            Ok(version) => Offer::Portal(version),
            Err(why) => Offer::NoPortal(why),
        }
    }

    async fn portal_owner(&self) -> Option<String> {
        let dbus = DBusProxy::new(&self.conn).await.ok()?;
        dbus.get_name_owner(BusName::from_static_str(PORTAL).ok()?)
            .await
            .ok()
            .map(|o| o.to_string())
    }

    /// Whether the zerocast GNOME extension is enabled (false off GNOME).
    async fn extension_active(&self) -> bool {
        let r = extension_info(&self.conn).await;
        match r {
            Ok(info) => extension_active(&info),
            // Not GNOME (no org.gnome.Shell), or a shell without extensions.
            Err(e) => {
                debug!(error = %e, "no GNOME Shell extension info");
                false
            }
        }
    }

    /// Register → CreateSession → BindShortcuts. `Err` is the state to show.
    async fn bind(
        &mut self,
        version: u32,
        portal_owner: Option<String>,
        session_token: String,
    ) -> Result<Vec<Bound>, State> {
        self.publisher
            .set(State::Pending(format!(
                "binding through the GlobalShortcuts portal (version {version})"
            )))
            .await;
        // Before any other portal call on this connection: the portal files the session (and
        // the user's keys) under this id. KDE without it keeps the keys with a component named
        // after the session token, a new one each run, so a later run gets no keys: do not
        // bind unregistered unless the portal has no registry at all.
        // Once per portal instance: it keeps the id for the connection and refuses a second
        // `Register` (binding again after the extension was disabled).
        if self.registered.is_none() || self.registered != portal_owner {
            let r = self
                .conn
                .call_method(
                    Some(PORTAL),
                    PORTAL_PATH,
                    Some(REGISTRY_IFACE),
                    "Register",
                    &(APP_ID, HashMap::<&str, Value<'_>>::new()),
                )
                .await;
            match r {
                Ok(_) => debug!(app_id = APP_ID, "registered with the portal"),
                Err(e) => {
                    let (name, msg) = method_error(&e);
                    match register_error(&name, &msg) {
                        RegisterError::NoRegistry => info!(
                            "the portal has no host app registry (xdg-desktop-portal < 1.19): \
                             binding without registering {APP_ID}"
                        ),
                        RegisterError::AlreadyRegistered => {
                            debug!(%msg, "already registered with this portal")
                        }
                        RegisterError::Refused => {
                            return Err(State::None(format!(
                                "the portal refused the app id {APP_ID} ({name}: {msg}); is \
                                 {APP_ID}.desktop installed (scripts/install.sh) with its Exec \
                                 in PATH?"
                            )))
                        }
                    }
                }
            }
            self.registered = portal_owner;
        }

        let create = tokio::time::timeout(
            CREATE_TIMEOUT,
            self.request("CreateSession", Body::Create { session_token }),
        )
        .await;
        let (code, results) = match create {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(State::None(format!("CreateSession failed: {e:#}"))),
            Err(_) => {
                return Err(State::None(format!(
                    "CreateSession: no answer from the portal in {} s",
                    CREATE_TIMEOUT.as_secs()
                )))
            }
        };
        if code != 0 {
            return Err(State::None(format!(
                "the portal refused a GlobalShortcuts session (response {code})"
            )));
        }
        let session = results
            .get("session_handle")
            .and_then(|v| match unwrap(v) {
                Value::Str(s) => Some(s.to_string()),
                Value::ObjectPath(p) => Some(p.to_string()),
                _ => None,
            })
            .ok_or_else(|| State::None("CreateSession answered without a session".into()))?;
        let session = OwnedObjectPath::try_from(session)
            .map_err(|e| State::None(format!("CreateSession: bad session path: {e}")))?;

        self.publisher
            .set(State::Pending(
                "waiting for the desktop to bind the shortcuts (GNOME asks the user once)".into(),
            ))
            .await;
        // No timeout: GNOME's dialog waits for the user, however long they take.
        let (code, results) = self
            .request("BindShortcuts", Body::Bind { session })
            .await
            .map_err(|e| State::None(format!("BindShortcuts failed: {e:#}")))?;
        bound_shortcuts(code, &results).map_err(|e| State::None(e.to_string()))
    }

    /// One portal request: subscribe to the `Response` on the predicted path, call, await it.
    async fn request(
        &mut self,
        method: &str,
        body: Body,
    ) -> anyhow::Result<(u32, HashMap<String, OwnedValue>)> {
        self.tokens += 1;
        let token = format!("zerocast_{}", self.tokens);
        let path = request_path(&self.unique, &token);
        let rule = MatchRule::builder()
            .msg_type(MessageType::Signal)
            .sender(PORTAL)?
            .path(path.as_str())?
            .interface(REQUEST_IFACE)?
            .member("Response")?
            .build();
        let mut responses = MessageStream::for_match_rule(rule, &self.conn, Some(2)).await?;
        let mut opts = HashMap::from([("handle_token", Value::from(token.as_str()))]);
        let reply = match &body {
            Body::Create { session_token } => {
                opts.insert("session_handle_token", Value::from(session_token.as_str()));
                self.conn
                    .call_method(Some(PORTAL), PORTAL_PATH, Some(GS_IFACE), method, &(opts,))
                    .await
            }
            Body::Bind { session } => {
                let shortcuts: Vec<(&str, HashMap<&str, Value<'_>>)> = SHORTCUTS
                    .iter()
                    .map(|s| {
                        (
                            s.id,
                            HashMap::from([
                                ("description", Value::from(s.description)),
                                ("preferred_trigger", Value::from(s.trigger)),
                            ]),
                        )
                    })
                    .collect();
                self.conn
                    .call_method(
                        Some(PORTAL),
                        PORTAL_PATH,
                        Some(GS_IFACE),
                        method,
                        &(session, shortcuts, "", opts),
                    )
                    .await
            }
        };
        let handle: OwnedObjectPath = reply?.body().deserialize()?;
        if handle.as_str() != path {
            // Portals before 0.9 chose their own paths; GlobalShortcuts is far newer.
            anyhow::bail!(
                "{method}: the portal answered on {handle}, not {path}; its Response would be missed"
            );
        }
        let msg = responses
            .next()
            .await
            .ok_or_else(|| anyhow::anyhow!("{method}: the bus closed before the Response"))??;
        let (code, results): (u32, HashMap<String, OwnedValue>) = msg.body().deserialize()?;
        debug!(method, code, ?results, "portal response");
        Ok((code, results))
    }

    /// Ends our session (the extension took over, or a bind was abandoned); harmless when it is
    /// already gone.
    async fn close(&self, session: &str) {
        let Ok(path) = ObjectPath::try_from(session) else {
            return;
        };
        if let Err(e) = self
            .conn
            .call_method(Some(PORTAL), &path, Some(SESSION_IFACE), "Close", &())
            .await
        {
            debug!(error = %e, %session, "closing the shortcuts session");
        }
    }

    fn on_activated(&self, msg: &Message, session: &str) {
        let Ok((sess, id, _ts, _opts)) =
            msg.body()
                .deserialize::<(OwnedObjectPath, String, u64, HashMap<String, OwnedValue>)>()
        else {
            return;
        };
        if sess.as_str() != session {
            return;
        }
        match action_for(&id) {
            Some(a) => {
                info!(shortcut = %id, "global shortcut pressed");
                let _ = self.actions.send(a);
            }
            None => debug!(shortcut = %id, "unknown shortcut"),
        }
    }
}

/// A portal call's own arguments (`request` adds `handle_token`).
enum Body {
    Create { session_token: String },
    Bind { session: OwnedObjectPath },
}

fn portal_gone() -> State {
    State::None("xdg-desktop-portal left the bus; binding again when it returns".into())
}

/// What a NameOwnerChanged of the portal means for us; `None` when it names the instance we
/// already talk to (its start on demand by our own first call).
fn owner_event(sig: &zbus::fdo::NameOwnerChanged, known: &mut Option<String>) -> Option<Event> {
    let args = sig.args().ok()?;
    let new = args.new_owner().as_ref().map(|o| o.to_string());
    portal_owner_change(known, new)
}

/// The pure part of [`owner_event`].
fn portal_owner_change(known: &mut Option<String>, new: Option<String>) -> Option<Event> {
    match new {
        None => {
            *known = None;
            Some(Event::PortalGone)
        }
        Some(n) if known.as_deref() == Some(n.as_str()) => None,
        Some(n) => {
            *known = Some(n);
            Some(Event::PortalRestarted)
        }
    }
}

/// `ExtensionStateChanged(s uuid, a{sv} info)` for our extension: whether it is enabled now.
fn changed_extension(msg: &Message) -> Option<bool> {
    let (uuid, info) = msg
        .body()
        .deserialize::<(String, HashMap<String, OwnedValue>)>()
        .ok()?;
    (uuid == EXTENSION_UUID).then(|| extension_active(&info))
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocast_client::shortcuts::why_no_portal;

    fn owned(v: Value<'_>) -> OwnedValue {
        v.try_to_owned().unwrap()
    }

    fn results(list: Vec<(&str, &str)>) -> HashMap<String, OwnedValue> {
        let shortcuts: Vec<(String, HashMap<String, Value<'_>>)> = list
            .into_iter()
            .map(|(id, trigger)| {
                (
                    id.to_owned(),
                    HashMap::from([
                        ("description".to_owned(), Value::from("d")),
                        ("trigger_description".to_owned(), Value::from(trigger)),
                    ]),
                )
            })
            .collect();
        HashMap::from([("shortcuts".to_owned(), owned(Value::from(shortcuts)))])
    }

    #[test]
    fn gnome_answers_2_but_bound() {
        let r = results(vec![
            ("toggle-recording", "Ctrl+Alt+R"),
            ("pause-resume", "Ctrl+Alt+P"),
            ("save-replay", ""),
        ]);
        let bound = bound_shortcuts(2, &r).unwrap();
        assert_eq!(bound.len(), 3);
        assert_eq!(
            bound[0],
            Bound {
                id: "toggle-recording".into(),
                trigger: "Ctrl+Alt+R".into()
            }
        );
        assert_eq!(bound[2].trigger, "");
        let state = State::Portal { version: 1, bound };
        assert_eq!(state.mechanism(), "portal");
        let reason = state.reason();
        assert!(
            reason.contains("toggle-recording = Ctrl+Alt+R")
                && reason.contains("save-replay = no key assigned")
                && reason.contains("version 1"),
            "{reason}"
        );
    }

    #[test]
    fn codes_without_shortcuts() {
        let empty = HashMap::new();
        assert_eq!(bound_shortcuts(0, &empty), Ok(vec![]));
        assert_eq!(bound_shortcuts(1, &empty), Err(BindError::Cancelled));
        assert_eq!(bound_shortcuts(2, &empty), Err(BindError::NothingBound(2)));
        // GNOME without an app id: 2 and an empty list.
        assert_eq!(
            bound_shortcuts(2, &results(vec![])),
            Err(BindError::NothingBound(2))
        );
        assert!(BindError::NothingBound(2)
            .to_string()
            .contains("org.zerocast.Zerocast.desktop"));
    }

    #[test]
    fn foreign_and_malformed_entries_are_left_out() {
        let r = results(vec![("someone-else", "F1"), ("save-replay", "Ctrl+Alt+S")]);
        let bound = bound_shortcuts(0, &r).unwrap();
        assert_eq!(bound.len(), 1);
        assert_eq!(bound[0].id, "save-replay");
        let junk = HashMap::from([("shortcuts".to_owned(), owned(Value::from(7u32)))]);
        assert_eq!(bound_shortcuts(2, &junk), Err(BindError::NothingBound(2)));
        // Wrapped in a variant, as some portals send it.
        let shortcuts = results(vec![("pause-resume", "Meta+P")])
            .remove("shortcuts")
            .unwrap();
        let wrapped = HashMap::from([(
            "shortcuts".to_owned(),
            owned(Value::Value(Box::new(Value::from(shortcuts)))),
        )]);
        assert_eq!(bound_shortcuts(2, &wrapped).unwrap()[0].trigger, "Meta+P");
    }

    #[test]
    fn actions_match_the_extension() {
        assert_eq!(
            action_for("toggle-recording"),
            Some(Action::ToggleRecording)
        );
        assert_eq!(action_for("pause-resume"), Some(Action::PauseResume));
        assert_eq!(action_for("save-replay"), Some(Action::SaveReplay));
        assert_eq!(action_for("toggle"), None);
        for s in SHORTCUTS {
            assert!(action_for(s.id).is_some(), "{}", s.id);
            assert!(!s.description.is_empty());
        }
    }

    #[test]
    fn triggers_do_not_clash_with_the_extension() {
        let schema = include_str!(
            "../../shell/gnome/src/schemas/org.gnome.shell.extensions.zerocast.gschema.xml"
        );
        for s in SHORTCUTS {
            // XDG "CTRL+ALT+R" → GTK "<Control><Alt>r".
            let gtk: String = s
                .trigger
                .split('+')
                .map(|p| match p {
                    "CTRL" => "<Control>".to_owned(),
                    "ALT" => "<Alt>".to_owned(),
                    "SHIFT" => "<Shift>".to_owned(),
                    "LOGO" => "<Super>".to_owned(),
                    key => key.to_lowercase(),
                })
                .collect();
            assert!(
                !schema.contains(&format!("'{gtk}'")),
                "{gtk} is the extension's"
            );
            assert!(schema.contains("<Super><Alt>r"), "the schema moved");
        }
    }

    #[test]
    fn the_extension_wins() {
        assert_eq!(decide(&Offer::Portal(1), true), Some(State::Extension));
        assert_eq!(decide(&Offer::Portal(2), false), None);
        assert_eq!(
            decide(&Offer::NoPortal("x".into()), true),
            Some(State::Extension)
        );
        assert_eq!(
            decide(&Offer::NoPortal("x".into()), false),
            Some(State::None("x".into()))
        );
        let on = HashMap::from([("state".to_owned(), OwnedValue::from(1.0f64))]);
        let off = HashMap::from([("state".to_owned(), OwnedValue::from(2.0f64))]);
        assert!(extension_active(&on));
        assert!(!extension_active(&off));
        assert!(!extension_active(&HashMap::new()));
    }

    #[test]
    fn reasons() {
        let r = why_no_portal(
            "org.freedesktop.DBus.Error.InvalidArgs",
            "No such interface",
        );
        assert!(
            r.contains("no GlobalShortcuts") && r.contains("zerocast ctl"),
            "{r}"
        );
        let r = why_no_portal(
            "org.freedesktop.DBus.Error.ServiceUnknown",
            "not activatable",
        );
        assert!(r.contains("no xdg-desktop-portal"), "{r}");
        assert_eq!(
            register_error("org.freedesktop.DBus.Error.UnknownMethod", ""),
            RegisterError::NoRegistry
        );
        // xdg-desktop-portal 1.20, a second Register on one connection.
        assert_eq!(
            register_error(
                "org.freedesktop.portal.Error.Failed",
                "Could not register app ID: Connection already associated with an application ID"
            ),
            RegisterError::AlreadyRegistered
        );
        assert_eq!(
            register_error("org.freedesktop.portal.Error.Failed", "App info not found"),
            RegisterError::Refused
        );
    }

    #[test]
    fn predicted_paths() {
        assert_eq!(
            request_path(":1.42", "zerocast_3"),
            "/org/freedesktop/portal/desktop/request/1_42/zerocast_3"
        );
        assert_eq!(
            session_path(":1.42", "zerocast_shortcuts_1"),
            "/org/freedesktop/portal/desktop/session/1_42/zerocast_shortcuts_1"
        );
    }

    #[test]
    fn own_portal_start_is_no_restart() {
        let mut known = None;
        assert!(matches!(
            portal_owner_change(&mut known, Some(":1.5".into())),
            Some(Event::PortalRestarted)
        ));
        assert!(portal_owner_change(&mut known, Some(":1.5".into())).is_none());
        assert!(matches!(
            portal_owner_change(&mut known, None),
            Some(Event::PortalGone)
        ));
        assert_eq!(known, None);
        assert!(matches!(
            portal_owner_change(&mut known, Some(":1.9".into())),
            Some(Event::PortalRestarted)
        ));
    }
}
