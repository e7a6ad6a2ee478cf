//! The tray's GlobalShortcuts client against stand-ins on a private bus: a portal that answers
//! like GNOME 48 (BindShortcuts response 2 *with* the shortcuts bound), a GNOME Shell whose
//! zerocast extension is switched on and off, and a daemon that records `Start`. What it checks
//! is the client's side of the protocol (Register first, predicted request paths, the session
//! kept, Activated → the daemon's API, the extension rule, rebinding after a portal restart);
//! the desktops' own behaviour is the GNOME 48 / KDE 6.3 end-to-end tests' job.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{ObjectPath, OwnedObjectPath, OwnedValue, Value};
use zbus::Connection;

const PORTAL: &str = "org.freedesktop.portal.Desktop";
const PORTAL_PATH: &str = "/org/freedesktop/portal/desktop";

/// What the stand-ins saw.
#[derive(Default, Debug)]
struct Seen {
    registered: Vec<String>,
    /// Calls in order: "Register", "CreateSession", "BindShortcuts".
    calls: Vec<String>,
    sessions: Vec<String>,
    closed: Vec<String>,
    /// (id, description, preferred_trigger) of the last BindShortcuts.
    shortcuts: Vec<(String, String, String)>,
    starts: Vec<String>,
}

type Shared = Arc<Mutex<Seen>>;

fn sender_part(h: &Header<'_>) -> String {
    h.sender()
        .unwrap()
        .as_str()
        .trim_start_matches(':')
        .replace('.', "_")
}

fn token(opts: &HashMap<String, OwnedValue>, key: &str) -> String {
    String::try_from(opts.get(key).unwrap().try_clone().unwrap()).unwrap()
}

/// Answers on the request path after the method returned, as portals do.
fn respond(conn: &Connection, path: String, code: u32, results: HashMap<String, OwnedValue>) {
    let conn = conn.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        conn.emit_signal(
            None::<&str>,
            path.as_str(),
            "org.freedesktop.portal.Request",
            "Response",
            &(code, results),
        )
        .await
        .unwrap();
    });
}

struct Shortcuts {
    seen: Shared,
}

#[zbus::interface(name = "org.freedesktop.portal.GlobalShortcuts")]
impl Shortcuts {
    /// Lower case, as the portal spells it (zbus would say `Version`).
    #[zbus(property, name = "version")]
    fn version(&self) -> u32 {
        1
    }

    async fn create_session(
        &self,
        options: HashMap<String, OwnedValue>,
        #[zbus(header)] h: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> OwnedObjectPath {
        let s = sender_part(&h);
        let request = format!(
            "{PORTAL_PATH}/request/{s}/{}",
            token(&options, "handle_token")
        );
        let session = format!(
            "{PORTAL_PATH}/session/{s}/{}",
            token(&options, "session_handle_token")
        );
        {
            let mut seen = self.seen.lock().unwrap();
            seen.calls.push("CreateSession".into());
            seen.sessions.push(session.clone());
        }
        conn.object_server()
            .at(
                session.as_str(),
                Session {
                    seen: self.seen.clone(),
                    path: session.clone(),
                },
            )
            .await
            .unwrap();
        let results = HashMap::from([(
            "session_handle".to_owned(),
            OwnedValue::from(ObjectPath::try_from(session.as_str()).unwrap()),
        )]);
        respond(conn, request.clone(), 0, results);
        OwnedObjectPath::try_from(request).unwrap()
    }

    async fn bind_shortcuts(
        &self,
        _session: OwnedObjectPath,
        shortcuts: Vec<(String, HashMap<String, OwnedValue>)>,
        _parent: String,
        options: HashMap<String, OwnedValue>,
        #[zbus(header)] h: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> OwnedObjectPath {
        let request = format!(
            "{PORTAL_PATH}/request/{}/{}",
            sender_part(&h),
            token(&options, "handle_token")
        );
        let mut bound = Vec::new();
        {
            let mut seen = self.seen.lock().unwrap();
            seen.calls.push("BindShortcuts".into());
            seen.shortcuts = shortcuts
                .iter()
                .map(|(id, p)| {
                    (
                        id.clone(),
                        token(p, "description"),
                        token(p, "preferred_trigger"),
                    )
                })
                .collect();
        }
        for (id, p) in shortcuts {
            // GNOME's spelling of the trigger it assigned.
            let key = token(&p, "preferred_trigger").replace("CTRL+ALT+", "Ctrl+Alt+");
            bound.push((
                id,
                HashMap::from([
                    (
                        "description".to_owned(),
                        Value::from(token(&p, "description")),
                    ),
                    ("trigger_description".to_owned(), Value::from(key)),
                ]),
            ));
        }
        let results = HashMap::from([(
            "shortcuts".to_owned(),
            Value::from(bound).try_to_owned().unwrap(),
        )]);
        // GNOME 48: 2 although it bound them.
        respond(conn, request.clone(), 2, results);
        OwnedObjectPath::try_from(request).unwrap()
    }

    #[zbus(signal)]
    async fn activated(
        emitter: &SignalEmitter<'_>,
        session: ObjectPath<'_>,
        id: &str,
        timestamp: u64,
        options: HashMap<&str, Value<'_>>,
    ) -> zbus::Result<()>;
}

struct Registry {
    seen: Shared,
    /// Connections that registered with this portal instance (it keeps one id per connection).
    by: Mutex<Vec<String>>,
}

#[zbus::interface(name = "org.freedesktop.host.portal.Registry")]
impl Registry {
    /// Once per connection, as xdg-desktop-portal 1.20 allows.
    fn register(
        &self,
        app_id: String,
        _options: HashMap<String, OwnedValue>,
        #[zbus(header)] h: Header<'_>,
    ) -> zbus::fdo::Result<()> {
        let mut seen = self.seen.lock().unwrap();
        seen.calls.push("Register".into());
        let who = h.sender().unwrap().to_string();
        let mut by = self.by.lock().unwrap();
        if by.contains(&who) {
            return Err(zbus::fdo::Error::Failed(
                "Could not register app ID: Connection already associated with an application ID"
                    .into(),
            ));
        }
        by.push(who);
        seen.registered.push(app_id);
        Ok(())
    }
}

struct Session {
    seen: Shared,
    path: String,
}

#[zbus::interface(name = "org.freedesktop.portal.Session")]
impl Session {
    fn close(&self) {
        self.seen.lock().unwrap().closed.push(self.path.clone());
    }
}

struct Extensions {
    state: f64,
}

#[zbus::interface(name = "org.gnome.Shell.Extensions")]
impl Extensions {
    fn get_extension_info(&self, uuid: String) -> HashMap<String, OwnedValue> {
        if uuid == "zerocast@zerocast.github.io" {
            HashMap::from([("state".to_owned(), OwnedValue::from(self.state))])
        } else {
            HashMap::new()
        }
    }

    #[zbus(signal)]
    async fn extension_state_changed(
        emitter: &SignalEmitter<'_>,
        uuid: &str,
        state: HashMap<&str, Value<'_>>,
    ) -> zbus::Result<()>;
}

struct Recorder {
    seen: Shared,
}

#[zbus::interface(name = "org.zerocast.Recorder1")]
impl Recorder {
    #[zbus(property)]
    fn recordings(&self) -> Vec<OwnedObjectPath> {
        Vec::new()
    }

    fn start(&self, options: HashMap<String, OwnedValue>) -> OwnedObjectPath {
        self.seen
            .lock()
            .unwrap()
            .starts
            .push(token(&options, "source"));
        OwnedObjectPath::try_from("/org/zerocast/Recorder1/recording/1").unwrap()
    }
}

/// A private bus with no service files: nothing is activated behind the test's back.
struct Bus {
    child: Child,
    address: String,
    _dir: std::path::PathBuf,
}

impl Bus {
    fn start(name: &str) -> Bus {
        let dir = std::env::temp_dir().join(format!("zc-tray-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("bus.conf");
        let mut f = std::fs::File::create(&conf).unwrap();
        write!(
            f,
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>session</type><listen>unix:dir={}</listen><auth>EXTERNAL</auth>
<policy context="default"><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/>
<allow own="*"/></policy></busconfig>"#,
            dir.display()
        )
        .unwrap();
        let mut child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", conf.display()))
            .args(["--nofork", "--print-address=1"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("dbus-daemon");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        Bus {
            child,
            address: line.trim().to_owned(),
            _dir: dir,
        }
    }

    async fn connect(&self) -> Connection {
        zbus::connection::Builder::address(self.address.as_str())
            .unwrap()
            .build()
            .await
            .unwrap()
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

struct Tray {
    child: Child,
    log: std::path::PathBuf,
}

impl Tray {
    fn start(bus: &Bus, name: &str) -> Tray {
        let log = bus._dir.join(format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_zerocast-tray"))
            .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
            .env("ZEROCAST_LOG", "debug,zbus=warn")
            .env_remove("WAYLAND_DISPLAY")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("zerocast-tray");
        Tray { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Tray {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- {}:\n{}", self.log.display(), self.log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn tray_prop<T: TryFrom<OwnedValue>>(conn: &Connection, name: &str) -> Option<T> {
    let p = zbus::fdo::PropertiesProxy::builder(conn)
        .destination("org.zerocast.Tray")
        .ok()?
        .path("/org/zerocast/Tray")
        .ok()?
        .build()
        .await
        .ok()?;
    let v = p
        .get(
            zbus::names::InterfaceName::from_static_str_unchecked("org.zerocast.Tray1"),
            name,
        )
        .await
        .ok()?;
    T::try_from(v).ok()
}

async fn wait_for(what: &str, timeout: Duration, mut ok: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn mechanism(conn: &Connection) -> String {
    tray_prop::<String>(conn, "ShortcutsMechanism")
        .await
        .unwrap_or_default()
}

async fn serve_portal(bus: &Bus, seen: &Shared) -> Connection {
    let c = bus.connect().await;
    c.object_server()
        .at(PORTAL_PATH, Shortcuts { seen: seen.clone() })
        .await
        .unwrap();
    c.object_server()
        .at(
            PORTAL_PATH,
            Registry {
                seen: seen.clone(),
                by: Mutex::default(),
            },
        )
        .await
        .unwrap();
    c.request_name(PORTAL).await.unwrap();
    c
}

#[tokio::test]
async fn binds_through_the_portal_and_yields_to_the_extension() {
    let bus = Bus::start("bind");
    let seen: Shared = Shared::default();
    let mut portal = serve_portal(&bus, &seen).await;
    let daemon = bus.connect().await;
    daemon
        .object_server()
        .at("/org/zerocast/Recorder1", Recorder { seen: seen.clone() })
        .await
        .unwrap();
    daemon.request_name("org.zerocast.Recorder1").await.unwrap();
    let test = bus.connect().await;

    let tray = Tray::start(&bus, "tray");
    wait_for("the portal binding", Duration::from_secs(20), async || {
        mechanism(&test).await == "portal"
    })
    .await;
    {
        let s = seen.lock().unwrap();
        // The app id first, before any other portal call.
        assert_eq!(s.registered, ["org.zerocast.Zerocast"]);
        assert_eq!(s.calls, ["Register", "CreateSession", "BindShortcuts"]);
        let ids: Vec<&str> = s.shortcuts.iter().map(|(id, _, _)| id.as_str()).collect();
        assert_eq!(ids, ["toggle-recording", "pause-resume", "save-replay"]);
        assert!(s
            .shortcuts
            .iter()
            .all(|(_, d, t)| !d.is_empty() && !t.is_empty()));
    }
    let bound: HashMap<String, String> = tray_prop(&test, "ShortcutsBound").await.unwrap();
    assert_eq!(bound["toggle-recording"], "Ctrl+Alt+R");
    assert_eq!(bound.len(), 3);
    assert_eq!(
        tray_prop::<u32>(&test, "ShortcutsPortalVersion").await,
        Some(1)
    );

    // A press: the daemon's Start, as the menu's "Record screen" does.
    let session = seen.lock().unwrap().sessions[0].clone();
    let emitter = SignalEmitter::new(&portal, PORTAL_PATH).unwrap();
    let press = async |e: &SignalEmitter<'_>, session: &str, id: &str| {
        Shortcuts::activated(
            e,
            ObjectPath::try_from(session).unwrap(),
            id,
            1,
            HashMap::new(),
        )
        .await
        .unwrap();
    };
    // Another session's press is not ours.
    press(
        &emitter,
        "/org/freedesktop/portal/desktop/session/1_99/other",
        "toggle-recording",
    )
    .await;
    press(&emitter, &session, "toggle-recording").await;
    wait_for(
        "Start from the shortcut",
        Duration::from_secs(10),
        async || !seen.lock().unwrap().starts.is_empty(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(seen.lock().unwrap().starts, ["monitor"]);
    assert!(
        tray.log().contains("global shortcut pressed"),
        "{}",
        tray.log()
    );

    // GNOME Shell appears and the extension is enabled: its keys win, our session goes.
    let shell = bus.connect().await;
    shell
        .object_server()
        .at("/org/gnome/Shell", Extensions { state: 1.0 })
        .await
        .unwrap();
    shell.request_name("org.gnome.Shell").await.unwrap();
    let shell_emitter = SignalEmitter::new(&shell, "/org/gnome/Shell").unwrap();
    let state = |s: f64| HashMap::from([("state", Value::from(s))]);
    Extensions::extension_state_changed(&shell_emitter, "zerocast@zerocast.github.io", state(1.0))
        .await
        .unwrap();
    wait_for(
        "the extension to win",
        Duration::from_secs(10),
        async || mechanism(&test).await == "gnome-extension",
    )
    .await;
    assert_eq!(seen.lock().unwrap().closed, std::slice::from_ref(&session));
    let reason: String = tray_prop(&test, "ShortcutsReason").await.unwrap();
    assert!(reason.contains("extension"), "{reason}");

    // Disabled again: bound again, same ids.
    shell
        .object_server()
        .interface::<_, Extensions>("/org/gnome/Shell")
        .await
        .unwrap()
        .get_mut()
        .await
        .state = 2.0;
    Extensions::extension_state_changed(&shell_emitter, "zerocast@zerocast.github.io", state(2.0))
        .await
        .unwrap();
    wait_for(
        "binding after the extension",
        Duration::from_secs(10),
        async || mechanism(&test).await == "portal" && seen.lock().unwrap().sessions.len() == 2,
    )
    .await;

    // The portal restarts (a new unique name): its sessions died with it; bind again.
    portal.release_name(PORTAL).await.unwrap();
    wait_for("the tray to notice", Duration::from_secs(10), async || {
        mechanism(&test).await == "none"
    })
    .await;
    drop(emitter);
    portal.graceful_shutdown().await;
    portal = serve_portal(&bus, &seen).await;
    wait_for(
        "binding with the new portal",
        Duration::from_secs(10),
        async || mechanism(&test).await == "portal" && seen.lock().unwrap().sessions.len() == 3,
    )
    .await;
    // Registered once per portal instance: a second Register on one connection is refused.
    let calls = seen.lock().unwrap().calls.clone();
    assert_eq!(
        calls.iter().filter(|c| *c == "Register").count(),
        2,
        "{calls:?}"
    );
    assert_eq!(seen.lock().unwrap().registered.len(), 2);
    let session = seen.lock().unwrap().sessions[2].clone();
    let emitter = SignalEmitter::new(&portal, PORTAL_PATH).unwrap();
    press(&emitter, &session, "toggle-recording").await;
    wait_for(
        "Start from the new session",
        Duration::from_secs(10),
        async || seen.lock().unwrap().starts.len() == 2,
    )
    .await;

    // A second tray does not bind: only one session per app gets the presses.
    let second = Tray::start(&bus, "second");
    wait_for(
        "the second tray to give up",
        Duration::from_secs(10),
        async || second.log().contains("another zerocast tray"),
    )
    .await;
    assert_eq!(seen.lock().unwrap().sessions.len(), 3);
    drop(tray);
}

#[tokio::test]
async fn without_the_portal_it_says_why() {
    let bus = Bus::start("none");
    let test = bus.connect().await;
    let tray = Tray::start(&bus, "tray");
    wait_for("no portal", Duration::from_secs(20), async || {
        mechanism(&test).await == "none"
    })
    .await;
    let reason: String = tray_prop(&test, "ShortcutsReason").await.unwrap();
    assert!(reason.contains("no xdg-desktop-portal"), "{reason}");

    // A portal without GlobalShortcuts (sway's xdp-wlr, xdp 1.16): it appears, the tray asks
    // again and gives the other reason.
    let seen = Shared::default();
    let portal = bus.connect().await;
    portal
        .object_server()
        .at(
            PORTAL_PATH,
            Registry {
                seen: seen.clone(),
                by: Mutex::default(),
            },
        )
        .await
        .unwrap();
    portal.request_name(PORTAL).await.unwrap();
    wait_for(
        "the reason to change",
        Duration::from_secs(10),
        async || {
            tray_prop::<String>(&test, "ShortcutsReason")
                .await
                .is_some_and(|r| r.contains("no GlobalShortcuts"))
        },
    )
    .await;
    assert_eq!(mechanism(&test).await, "none");
    // Nothing was bound or registered.
    assert!(seen.lock().unwrap().calls.is_empty());
    let log = tray.log();
    assert_eq!(
        log.matches("no global shortcuts").count(),
        2,
        "once per reason:\n{log}"
    );
}
