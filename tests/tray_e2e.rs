//! End-to-end: `zerocast-tray` against a real StatusNotifierWatcher (Debian's
//! `status-notifier-watcher`), the real daemon, portal and PipeWire of the test desktop. The test
//! plays the panel: it registers as the StatusNotifierHost, reads the item's properties and its
//! menu with `com.canonical.dbusmenu.GetLayout`, and clicks with `Event`.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use zbus::blocking::{Connection, Proxy};
use zbus::zvariant::{OwnedValue, Value};
use zerocast_testdesk::session::{self, SessionProc};
use zerocast_testdesk::{Desktop, DesktopOptions};

static SERIAL: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const NAME: &str = "org.zerocast.Recorder1";
const MANAGER: &str = "/org/zerocast/Recorder1";
const WATCHER: &str = "org.kde.StatusNotifierWatcher";
const SNI: &str = "org.kde.StatusNotifierItem";
const MENU: &str = "com.canonical.dbusmenu";

/// The user's home in the desktop, with the videos folder the daemon writes relative paths to.
fn home(desk: &Desktop) -> PathBuf {
    let h = desk.dir().join("home");
    std::fs::create_dir_all(h.join("Videos")).unwrap();
    h
}

struct Daemon {
    child: Child,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = signal_and_wait(&mut self.child, libc::SIGTERM, Duration::from_secs(10));
    }
}

fn start_daemon(desk: &Desktop) -> Daemon {
    let child = zerocast(desk)
        .arg("daemon")
        .env("HOME", home(desk))
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn daemon");
    wait_until(Duration::from_secs(20), "the daemon owns its name", || {
        desk.name_has_owner(NAME).unwrap_or(false)
    });
    Daemon { child }
}

fn start_tray(desk: &Desktop) -> SessionProc {
    let mut cmd = desk.command(tray_bin());
    cmd.env("HOME", home(desk))
        .env("ZEROCAST_LOG", "debug,zbus=warn");
    session::spawn(desk, "tray", cmd).expect("start the tray")
}

fn wait_until(timeout: Duration, what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The panel side: a StatusNotifierHost registered with the watcher.
struct Host {
    conn: Connection,
}

impl Host {
    fn register(desk: &Desktop) -> Host {
        let conn = zbus::blocking::connection::Builder::address(desk.bus_address())
            .unwrap()
            .build()
            .unwrap();
        let name = format!("org.kde.StatusNotifierHost-{}", std::process::id());
        conn.request_name(name.as_str()).unwrap();
        let host = Host { conn };
        host.register_again(&name);
        host
    }

    fn register_again(&self, name: &str) {
        let w = Proxy::new(&self.conn, WATCHER, "/StatusNotifierWatcher", WATCHER).unwrap();
        // A watcher that has just taken its name may not serve its object yet (seen on
        // Debian 13: UnknownObject right after the name appeared): retry that for a while.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match w.call::<_, _, ()>("RegisterStatusNotifierHost", &(name,)) {
                Ok(()) => return,
                Err(zbus::Error::MethodError(e, _, _))
                    if e.as_str() == "org.freedesktop.DBus.Error.UnknownObject"
                        && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("RegisterStatusNotifierHost: {e:?}"),
            }
        }
    }

    fn host_name(&self) -> String {
        format!("org.kde.StatusNotifierHost-{}", std::process::id())
    }

    /// Items the watcher lists (`service` or `service/path` strings).
    fn items(&self) -> Vec<String> {
        let Ok(w) = Proxy::new(&self.conn, WATCHER, "/StatusNotifierWatcher", WATCHER) else {
            return Vec::new();
        };
        w.get_property::<Vec<String>>("RegisteredStatusNotifierItems")
            .unwrap_or_default()
    }

    /// Waits for our item (the tray process's) to be listed; returns (service, object path).
    fn wait_item(&self, tray_pid: u32) -> Item {
        let mut found = None;
        wait_until(
            Duration::from_secs(15),
            "the tray's item in RegisteredStatusNotifierItems",
            || {
                found = self.items().into_iter().find_map(|entry| {
                    let (service, path) = match entry.find('/') {
                        Some(i) => (entry[..i].to_owned(), entry[i..].to_owned()),
                        None => (entry.clone(), "/StatusNotifierItem".to_owned()),
                    };
                    (self.pid_of(&service) == Some(tray_pid)).then_some((service, path))
                });
                found.is_some()
            },
        );
        let (service, path) = found.unwrap();
        Item {
            conn: self.conn.clone(),
            service,
            path,
        }
    }

    fn pid_of(&self, service: &str) -> Option<u32> {
        let dbus = zbus::blocking::fdo::DBusProxy::new(&self.conn).ok()?;
        dbus.get_connection_unix_process_id(service.try_into().ok()?)
            .ok()
    }
}

impl Host {
    /// The tray's account of its global shortcuts (`org.zerocast.Tray1`): mechanism and reason.
    fn shortcuts(&self) -> (String, String) {
        let Ok(p) = Proxy::new(
            &self.conn,
            "org.zerocast.Tray",
            "/org/zerocast/Tray",
            "org.zerocast.Tray1",
        ) else {
            return Default::default();
        };
        (
            p.get_property("ShortcutsMechanism").unwrap_or_default(),
            p.get_property("ShortcutsReason").unwrap_or_default(),
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    id: i32,
    label: String,
    enabled: bool,
    visible: bool,
}

/// SNI `ToolTip`: icon name, pixmaps (w, h, ARGB), title, description.
type ToolTip = (String, Vec<(i32, i32, Vec<u8>)>, String, String);
/// dbusmenu layout node: id, properties, children (each a variant holding a node).
type Layout = (i32, HashMap<String, OwnedValue>, Vec<OwnedValue>);

struct Item {
    conn: Connection,
    service: String,
    path: String,
}

impl Item {
    fn prop<T: TryFrom<OwnedValue>>(&self, name: &str) -> T
    where
        T::Error: Into<zbus::Error>,
    {
        let p = Proxy::new(&self.conn, self.service.as_str(), self.path.as_str(), SNI).unwrap();
        p.get_property(name).unwrap()
    }

    fn status(&self) -> String {
        self.prop("Status")
    }

    fn icon(&self) -> String {
        self.prop("IconName")
    }

    /// Tooltip (title, description).
    fn tooltip(&self) -> (String, String) {
        let p = Proxy::new(&self.conn, self.service.as_str(), self.path.as_str(), SNI).unwrap();
        let (_icon, _pixmaps, title, body): ToolTip = p.get_property("ToolTip").unwrap();
        (title, body)
    }

    fn menu_path(&self) -> String {
        let p = Proxy::new(&self.conn, self.service.as_str(), self.path.as_str(), SNI).unwrap();
        let path: zbus::zvariant::OwnedObjectPath = p.get_property("Menu").unwrap();
        path.to_string()
    }

    /// The top-level menu entries from `GetLayout(0, -1, [])`.
    fn menu(&self) -> Vec<Entry> {
        let menu = self.menu_path();
        let p = Proxy::new(&self.conn, self.service.as_str(), menu.as_str(), MENU).unwrap();
        let (_rev, (_id, _props, children)): (u32, Layout) = p
            .call("GetLayout", &(0i32, -1i32, Vec::<String>::new()))
            .expect("GetLayout");
        children
            .iter()
            .map(|c| {
                let Value::Structure(s) = &**c else {
                    panic!("menu child is not a structure: {c:?}")
                };
                let f = s.fields();
                let id = match &f[0] {
                    Value::I32(i) => *i,
                    v => panic!("id {v:?}"),
                };
                let props: HashMap<String, OwnedValue> =
                    HashMap::try_from(f[1].try_clone().unwrap()).unwrap();
                let get_bool = |k: &str| {
                    props
                        .get(k)
                        .map(|v| bool::try_from(&**v).unwrap())
                        .unwrap_or(true)
                };
                let label = props
                    .get("label")
                    .map(|v| String::try_from(v.try_clone().unwrap()).unwrap())
                    .unwrap_or_default();
                Entry {
                    id,
                    label,
                    enabled: get_bool("enabled"),
                    visible: get_bool("visible"),
                }
            })
            .collect()
    }

    fn entry(&self, label: &str) -> Entry {
        let menu = self.menu();
        menu.iter()
            .find(|e| e.label == label)
            .cloned()
            .unwrap_or_else(|| panic!("no menu entry {label:?} in {menu:#?}"))
    }

    /// A click on a menu entry, as a panel sends it.
    fn click(&self, label: &str) {
        let e = self.entry(label);
        assert!(e.enabled && e.visible, "clicking a disabled entry: {e:?}");
        self.click_id(e.id);
    }

    fn click_id(&self, id: i32) {
        let menu = self.menu_path();
        let p = Proxy::new(&self.conn, self.service.as_str(), menu.as_str(), MENU).unwrap();
        let () = p
            .call("Event", &(id, "clicked", Value::from(0i32), 0u32))
            .expect("dbusmenu Event");
    }

    /// A left click on the icon.
    fn activate(&self) {
        let p = Proxy::new(&self.conn, self.service.as_str(), self.path.as_str(), SNI).unwrap();
        let () = p.call("Activate", &(0i32, 0i32)).expect("Activate");
    }

    fn wait_status(&self, status: &str, title_has: &str) {
        wait_until(
            Duration::from_secs(30),
            &format!("tray status {status} with a tooltip saying {title_has:?}"),
            || self.status() == status && self.tooltip().0.contains(title_has),
        );
    }
}

/// The labels, enabled flags and visibility of the fixed entries.
fn enabled(item: &Item) -> Vec<(String, bool)> {
    item.menu()
        .into_iter()
        .filter(|e| e.visible && !e.label.is_empty())
        .map(|e| (e.label, e.enabled))
        .collect()
}

fn expect_menu(record: bool, pause_label: &str, pause: bool, stop: bool) -> Vec<(String, bool)> {
    expect_replay_menu(record, pause_label, pause, stop, false)
}

fn expect_replay_menu(
    record: bool,
    pause_label: &str,
    pause: bool,
    stop: bool,
    save: bool,
) -> Vec<(String, bool)> {
    [
        ("Record screen", record),
        ("Record window", record),
        (pause_label, pause),
        ("Stop", stop),
        ("Save replay", save),
        ("Open recordings folder", true),
    ]
    .into_iter()
    .map(|(l, e)| (l.to_owned(), e))
    .collect()
}

/// Entries after "Open recordings folder": recent files, then Forget and Quit.
fn with_tail(mut v: Vec<(String, bool)>, recent: &[&str], forget: bool) -> Vec<(String, bool)> {
    v.extend(recent.iter().map(|r| (r.to_string(), true)));
    v.push(("Forget remembered source".into(), forget));
    v.push(("Quit".into(), true));
    v
}

fn decodes(path: &Path) {
    run_ok(
        Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(path)
            .args(["-f", "null", "-"]),
    );
}

/// Voluntary + involuntary context switches per thread of `pid`, by thread id.
fn switches(pid: u32) -> HashMap<String, u64> {
    let mut m = HashMap::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let s = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
        let mut n = 0;
        for l in s.lines() {
            if l.starts_with("voluntary_ctxt_switches")
                || l.starts_with("nonvoluntary_ctxt_switches")
            {
                n += l.split_whitespace().last().unwrap().parse::<u64>().unwrap();
            }
        }
        m.insert(t.file_name().to_string_lossy().into_owned(), n);
    }
    m
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmRSS"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn wakeups_per_sec(pid: u32, over: Duration) -> f64 {
    let a = switches(pid);
    std::thread::sleep(over);
    // Threads that started in between count from zero; those that ended are not counted
    // (at least their exit is).
    let b = switches(pid);
    let woke: u64 = b
        .iter()
        .map(|(tid, n)| n - a.get(tid).copied().unwrap_or(0))
        .sum::<u64>()
        + a.keys().filter(|t| !b.contains_key(*t)).count() as u64;
    woke as f64 / over.as_secs_f64()
}

fn the_video(desk: &Desktop) -> PathBuf {
    let dir = desk.dir().join("home/Videos");
    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

/// The whole menu path: listed by the watcher, the menu's flags per state, Record screen →
/// Pause → Resume → Stop through dbusmenu clicks, the file without the pause, the recent entry
/// opening the file. Also prints the tray's figures (RSS, wake-ups, click → recording).
#[test]
fn tray_menu_records_pauses_and_stops() {
    let _g = lock();
    let desk = Desktop::start(DesktopOptions::default()).expect("test desktop");
    // Our state icons, installed where a host looks them up.
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("data/icons"),
        &desk.dir().join("data/icons"),
    );
    let opened = session::install_default_handler(&desk).unwrap();
    let _watcher = session::start_watcher(&desk).unwrap();
    let host = Host::register(&desk);
    let _daemon = start_daemon(&desk);
    let tray = start_tray(&desk);
    let item = host.wait_item(tray.pid());

    wait_until(Duration::from_secs(10), "idle tooltip", || {
        item.tooltip().0 == "zerocast: idle"
    });
    assert_eq!(item.status(), "Active");
    assert_eq!(item.icon(), "zerocast-idle");
    // This desktop's xdg-desktop-portal (1.16) has no GlobalShortcuts: the tray carries on
    // without, says why once in its log and on its bus name (what `zerocast probe` reads).
    wait_until(Duration::from_secs(10), "the tray's shortcut state", || {
        host.shortcuts().0 == "none"
    });
    let reason = host.shortcuts().1;
    assert!(reason.contains("no GlobalShortcuts"), "{reason}");
    let log = std::fs::read_to_string(desk.logs_dir().join("tray.log")).unwrap();
    assert_eq!(log.matches("no global shortcuts").count(), 1, "{log}");

    assert_eq!(
        enabled(&item),
        with_tail(expect_menu(true, "Pause", false, false), &[], true)
    );
    let ids: Vec<i32> = item.menu().iter().map(|e| e.id).collect();

    // Steady state: zbus connects through tokio's blocking pool, whose idle thread leaves
    // ~10 s later (one last wake-up); after that the tray is one thread.
    wait_until(
        Duration::from_secs(20),
        "the tray to be single-threaded",
        || {
            std::fs::read_dir(format!("/proc/{}/task", tray.pid()))
                .unwrap()
                .count()
                == 1
        },
    );
    let idle_wakeups = wakeups_per_sec(tray.pid(), Duration::from_secs(10));
    let idle_rss = rss_kb(tray.pid());

    let t0 = Instant::now();
    item.click("Record screen");
    item.wait_status("NeedsAttention", "recording");
    let click_to_recording = t0.elapsed();
    let t_rec = Instant::now();
    assert_eq!(item.icon(), "zerocast-recording");
    assert_eq!(
        enabled(&item),
        with_tail(expect_menu(false, "Pause", true, true), &[], false)
    );

    let rec_wakeups = wakeups_per_sec(tray.pid(), Duration::from_secs(3));
    let rec_rss = rss_kb(tray.pid());
    // The tooltip follows the daemon's 1 Hz progress signals: elapsed time, size, capture path.
    let (title, body) = item.tooltip();
    assert!(title.starts_with("zerocast: recording 0:0"), "{title}");
    assert!(
        body.contains(" MB") && body.contains("shm-cpu") && body.contains("x264"),
        "{body}"
    );
    assert!(body.contains("home/Videos/zerocast-"), "{body}");
    assert!(
        !title.ends_with("0:00"),
        "elapsed time did not advance: {title}"
    );

    let t_pause = Instant::now();
    item.click("Pause");
    item.wait_status("Active", "paused");
    assert_eq!(item.icon(), "zerocast-paused");
    assert_eq!(
        enabled(&item),
        with_tail(expect_menu(false, "Resume", true, true), &[], false)
    );
    std::thread::sleep(Duration::from_millis(2500));
    let t_resume = Instant::now();
    item.click("Resume");
    item.wait_status("NeedsAttention", "recording");
    std::thread::sleep(Duration::from_millis(1500));
    let t_stop = Instant::now();
    item.click("Stop");
    item.wait_status("Active", "idle");
    let file = the_video(&desk);
    let name = file
        .file_name()
        .unwrap()
        .to_string_lossy()
        .replace('_', "__");
    assert_eq!(
        enabled(&item),
        with_tail(expect_menu(true, "Pause", false, false), &[&name], true)
    );
    // Labels and flags changed; the items did not move.
    assert_eq!(item.menu().iter().map(|e| e.id).collect::<Vec<_>>(), ids);

    decodes(&file);
    let p = ffprobe(&file);
    let recorded = (t_pause - t_rec).as_secs_f64() + (t_stop - t_resume).as_secs_f64();
    // The recording started a little before the tray showed it, and each click takes a few ms
    // to reach the daemon; the 2.5 s pause must be absent.
    assert!(
        p.duration > recorded - 0.3 && p.duration < recorded + 1.0,
        "file {:.2} s, recorded {recorded:.2} s (+2.5 s paused): {p:?}",
        p.duration
    );

    // The recent entry opens the file with the default handler.
    item.click(&name);
    wait_until(
        Duration::from_secs(10),
        "the default handler to run",
        || std::fs::read_to_string(&opened).is_ok_and(|s| s.contains(file.to_str().unwrap())),
    );

    // Open recordings folder: the folder of the last recording.
    item.click("Open recordings folder");
    let videos = file.parent().unwrap().to_str().unwrap().to_owned();
    wait_until(Duration::from_secs(10), "the folder opened", || {
        std::fs::read_to_string(&opened).is_ok_and(|s| s.lines().any(|l| l == videos))
    });
    // Forget remembered source: the daemon drops the restore token the recording stored.
    let token = desk.dir().join("state/zerocast/restore-token-monitor");
    assert!(token.exists(), "no restore token at {}", token.display());
    item.click("Forget remembered source");
    wait_until(Duration::from_secs(10), "the restore token removed", || {
        !token.exists()
    });

    println!(
        "tray figures: RSS idle {idle_rss} kB, recording {rec_rss} kB; wake-ups/s idle {idle_wakeups:.2} \
         (10 s), recording {rec_wakeups:.2} (3 s); menu click → tray shows recording {:.0} ms",
        click_to_recording.as_secs_f64() * 1e3
    );
    // Nothing polls: an idle tray sleeps until the bus has something for it.
    assert!(
        idle_wakeups < 0.5,
        "idle tray woke {idle_wakeups:.2} times a second"
    );
}

/// A recording started by someone else (busctl) shows up in the tray; the tray stops it.
#[test]
fn tray_follows_a_busctl_recording_and_stops_it() {
    let _g = lock();
    let desk = Desktop::start(DesktopOptions::default()).expect("test desktop");
    let _watcher = session::start_watcher(&desk).unwrap();
    let host = Host::register(&desk);
    let _daemon = start_daemon(&desk);
    let tray = start_tray(&desk);
    let item = host.wait_item(tray.pid());
    item.wait_status("Active", "idle");

    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("busctl.mkv");
    let obj = busctl_start(&desk, &["1", "path", "s", file.to_str().unwrap()]);
    item.wait_status("NeedsAttention", "recording");
    assert!(item.tooltip().1.contains(file.to_str().unwrap()));
    assert!(item.entry("Stop").enabled);
    // Not a replay: nothing to save.
    assert!(!item.entry("Save replay").enabled);
    std::thread::sleep(Duration::from_millis(1000));
    item.click("Stop");
    item.wait_status("Active", "idle");
    let state = desk
        .command("busctl")
        .args([
            "--user",
            "get-property",
            NAME,
            &obj,
            "org.zerocast.Recording1",
            "State",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&state.stdout).trim(),
        "s \"finished\""
    );
    decodes(&file);
    assert!(ffprobe(&file).duration > 0.5);
    assert!(item.entry("busctl.mkv").visible);

    // Left click toggles: records the screen, then stops.
    item.activate();
    item.wait_status("NeedsAttention", "recording");
    std::thread::sleep(Duration::from_millis(700));
    item.activate();
    item.wait_status("Active", "idle");
    assert_eq!(
        item.menu()
            .iter()
            .filter(|e| e.visible && e.label.ends_with(".mkv"))
            .count(),
        2
    );
}

/// `Start` through busctl with the `a{sv}` arguments `options` (count first); returns the
/// recording's object path once frames flow.
fn busctl_start(desk: &Desktop, options: &[&str]) -> String {
    let o = desk
        .command("busctl")
        .args([
            "--user",
            "--timeout=30",
            "call",
            NAME,
            MANAGER,
            NAME,
            "Start",
            "a{sv}",
        ])
        .args(options)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .trim()
        .trim_start_matches("o ")
        .trim_matches('"')
        .to_owned()
}

/// Files in the videos folder whose name starts with `prefix`.
fn videos(desk: &Desktop, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(desk.dir().join("home/Videos"))
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A replay started by busctl (`replay d 5`): "Save replay" is enabled for it only, the tooltip
/// says replay; a save into an unusable videos folder shows the daemon's error; a save writes
/// a clip of the last seconds that shows in the recent list; stopping the replay (no
/// save-on-stop: the Finished path is empty) adds no entry.
#[test]
fn tray_saves_a_replay() {
    let _g = lock();
    let desk = Desktop::start(DesktopOptions::default()).expect("test desktop");
    let _watcher = session::start_watcher(&desk).unwrap();
    let host = Host::register(&desk);
    let _daemon = start_daemon(&desk);
    let mut tray = start_tray(&desk);
    let item = host.wait_item(tray.pid());
    item.wait_status("Active", "idle");
    assert_eq!(
        enabled(&item),
        with_tail(
            expect_replay_menu(true, "Pause", false, false, false),
            &[],
            true
        )
    );
    let ids: Vec<i32> = item.menu().iter().map(|e| e.id).collect();

    let obj = busctl_start(&desk, &["1", "replay", "d", "5"]);
    item.wait_status("NeedsAttention", "replay (last 5 s)");
    assert_eq!(
        enabled(&item),
        with_tail(
            expect_replay_menu(false, "Pause", true, true, true),
            &[],
            false
        )
    );
    assert_eq!(item.menu().iter().map(|e| e.id).collect::<Vec<_>>(), ids);
    let (_, body) = item.tooltip();
    assert!(body.contains("in memory"), "{body}");

    // The videos folder is a file: the daemon refuses, the tray shows why and can try again.
    let videos_dir = desk.dir().join("home/Videos");
    let away = desk.dir().join("home/Videos.away");
    std::fs::rename(&videos_dir, &away).unwrap();
    std::fs::write(&videos_dir, b"").unwrap();
    item.click("Save replay");
    wait_until(
        Duration::from_secs(20),
        "the save error in the tooltip",
        || {
            item.tooltip()
                .1
                .contains("Last error: org.zerocast.Error.OutputNotWritable")
        },
    );
    assert!(item.entry("Save replay").enabled);
    std::fs::remove_file(&videos_dir).unwrap();
    std::fs::rename(&away, &videos_dir).unwrap();

    // Enough in the ring for a clip of more than 2 s (Duration: recorded seconds).
    let rec: Proxy = zbus::blocking::proxy::Builder::new(&host.conn)
        .destination(NAME)
        .unwrap()
        .path(obj.as_str())
        .unwrap()
        .interface("org.zerocast.Recording1")
        .unwrap()
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .unwrap();
    wait_until(Duration::from_secs(20), "4 s in the replay", || {
        rec.get_property::<f64>("Duration").unwrap_or(0.0) >= 4.0
    });
    item.click("Save replay");
    let mut clip = Vec::new();
    wait_until(
        Duration::from_secs(20),
        "the saved replay in the recent list",
        || {
            clip = videos(&desk, "zerocast-replay-");
            clip.len() == 1 && {
                let name = clip[0]
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .replace('_', "__");
                item.menu().iter().any(|e| e.visible && e.label == name)
            }
        },
    );
    let clip = clip.remove(0);
    let name = clip.file_name().unwrap().to_string_lossy().into_owned();
    let (_, body) = item.tooltip();
    assert!(body.contains(&format!("Replay saved: {name} (")), "{body}");
    assert!(
        !body.contains("(0.0 s)"),
        "the clip's length is missing: {body}"
    );
    assert!(!body.contains("Last error"), "{body}");
    decodes(&clip);
    let p = ffprobe(&clip);
    // The last 5 s from a keyframe (at most 1 s more), of a ring that held at least 4 s.
    assert!(
        p.duration > 2.0 && p.duration < 7.0,
        "clip of {:.2} s: {p:?}",
        p.duration
    );
    // The replay goes on, and can be saved again.
    let label = name.replace('_', "__");
    assert_eq!(
        enabled(&item),
        with_tail(
            expect_replay_menu(false, "Pause", true, true, true),
            &[&label],
            false
        )
    );

    // Stopped without save-on-stop: nothing written, no empty recent entry, the tray lives on.
    item.click("Stop");
    item.wait_status("Active", "idle");
    let state = rec.get_property::<String>("State").unwrap();
    assert_eq!(state, "finished");
    assert_eq!(
        enabled(&item),
        with_tail(
            expect_replay_menu(true, "Pause", false, false, false),
            &[&label],
            true
        )
    );
    // Only the two separators are visible without a label.
    let menu = item.menu();
    assert_eq!(
        menu.iter()
            .filter(|e| e.visible && e.label.is_empty())
            .count(),
        2,
        "{menu:#?}"
    );
    assert_eq!(menu.iter().map(|e| e.id).collect::<Vec<_>>(), ids);
    assert_eq!(videos(&desk, ""), vec![clip]);
    assert!(tray.is_running());
}

/// The tray starts before any watcher and registers when one appears; a killed daemon shows
/// as unavailable and the next "Record screen" activates a new one over D-Bus; a restarted
/// watcher gets the item again.
#[test]
fn tray_survives_daemon_and_watcher_restarts() {
    let _g = lock();
    let desk = Desktop::start(DesktopOptions::default()).expect("test desktop");
    home(&desk);
    session::install_activatable(&desk, NAME, &format!("{} daemon", zerocast_bin().display()))
        .unwrap();
    let tray = start_tray(&desk);
    std::thread::sleep(Duration::from_millis(500));
    let mut watcher = session::start_watcher(&desk).unwrap();
    let host = Host::register(&desk);
    let item = host.wait_item(tray.pid());
    item.wait_status("Active", "not running");
    assert!(item.entry("Record screen").enabled);

    let record_and_stop = |item: &Item| {
        item.click("Record screen");
        item.wait_status("NeedsAttention", "recording");
        std::thread::sleep(Duration::from_millis(700));
        item.click("Stop");
        item.wait_status("Active", "idle");
    };
    // Activation starts the daemon.
    record_and_stop(&item);
    let first = session::name_owner_pid(&desk, NAME)
        .unwrap()
        .expect("activated daemon");

    session::kill_name_owner(&desk, NAME, libc::SIGKILL, Duration::from_secs(5)).unwrap();
    item.wait_status("Active", "not running");
    assert_eq!(item.icon(), "video-display");
    record_and_stop(&item);
    let second = session::name_owner_pid(&desk, NAME)
        .unwrap()
        .expect("re-activated daemon");
    assert_ne!(first, second);
    assert_eq!(
        std::fs::read_dir(desk.dir().join("home/Videos"))
            .unwrap()
            .count(),
        2
    );

    // The watcher restarts (a panel restart): the item registers with the new one.
    watcher.signal(libc::SIGTERM).unwrap();
    watcher.wait_exit(Duration::from_secs(5)).unwrap();
    drop(watcher);
    let _watcher = session::start_watcher(&desk).unwrap();
    host.register_again(&host.host_name());
    let again = host.wait_item(tray.pid());
    assert_eq!(again.status(), "Active");

    // Clean up the bus-activated daemon (not our child).
    session::kill_name_owner(&desk, NAME, libc::SIGTERM, Duration::from_secs(10)).unwrap();
}

/// The applet links no recorder code: none of the recorder's native libraries, none of its
/// crates.
#[test]
fn tray_links_no_recorder_code() {
    let bin = tray_bin();
    let ldd = run_ok(Command::new("ldd").arg(&bin));
    let libs = String::from_utf8_lossy(&ldd.stdout);
    for lib in ["libavcodec", "libpipewire", "libvulkan", "libswscale"] {
        assert!(!libs.contains(lib), "zerocast-tray links {lib}:\n{libs}");
    }
    let bytes = std::fs::read(&bin).unwrap();
    for krate in [
        "zerocast_recorder",
        "zerocast_interop",
        "zerocast_portal",
        "zerocast_dbus",
    ] {
        assert!(
            !bytes.windows(krate.len()).any(|w| w == krate.as_bytes()),
            "zerocast-tray contains {krate}"
        );
    }
    // And the same binary does carry its own code (the check above can fail).
    assert!(bytes.windows(13).any(|w| w == b"zerocast_tray"));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// `zerocast tray` replaces itself with the `zerocast-tray` next to it.
#[test]
fn zerocast_tray_runs_the_applet_binary() {
    tray_bin();
    let out = run_ok(Command::new(zerocast_bin()).args(["tray", "--help"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("zerocast-tray: tray applet"), "{text}");
    let bad = Command::new(zerocast_bin())
        .args(["tray", "--bogus"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown argument \"--bogus\""));
}
