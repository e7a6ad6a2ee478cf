//! The service on a private dbus-daemon, driven by the real `busctl`: D-Bus activation from
//! the shipped service file, a second daemon refusing to start, the busctl happy path with a
//! recording that outlives its caller, bad input, stop-on-disconnect, and the checked-in
//! introspection XML matching the live service.
//!
//! The daemon under test is this very test binary run with `--fake-daemon` (the fake backend:
//! no compositor needed), so activation can point at it. `harness = false` for that reason.
//! The real pipeline's end-to-end test is `tests/dbus_e2e.rs` in the root crate.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zbus::zvariant::Value;

use zerocast_dbus::fake::FakeBackend;
use zerocast_dbus::service::ServiceConfig;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../data");

fn main() {
    if std::env::args().any(|a| a == "--fake-daemon") {
        fake_daemon();
        return;
    }
    let args = LibtestArgs::parse(std::env::args().skip(1));
    let tests: &[(&str, fn())] = &[
        ("activation_and_second_daemon", activation_and_second_daemon),
        (
            "busctl_recording_outlives_caller",
            busctl_recording_outlives_caller,
        ),
        ("busctl_bad_input", busctl_bad_input),
        ("stop_on_disconnect", stop_on_disconnect),
        (
            "introspection_xml_matches_data",
            introspection_xml_matches_data,
        ),
    ];
    let chosen: Vec<_> = tests.iter().filter(|(name, _)| args.runs(name)).collect();
    if args.list {
        for (name, _) in &chosen {
            println!("{name}: test");
        }
        return;
    }
    // A missing tool fails the suite, not skips it: scripts/install-deps.sh (and the Debian 13
    // root's package list) install both, so a missing one means the tests did not run where
    // they are meant to, which must not read as a pass.
    if !chosen.is_empty() {
        for tool in ["dbus-daemon", "busctl"] {
            if let Err(e) = Command::new(tool).arg("--version").output() {
                eprintln!(
                    "bus: cannot run {tool} ({e}); these tests need dbus-daemon and busctl \
                     (systemd): scripts/install-deps.sh installs them"
                );
                std::process::exit(1);
            }
        }
    }
    let mut failed = 0;
    for (name, f) in &chosen {
        eprintln!("test {name} ...");
        match std::panic::catch_unwind(f) {
            Ok(()) => eprintln!("test {name} ... ok"),
            Err(_) => {
                eprintln!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    // libtest's summary line, which scripts/test.sh counts; a filter that leaves nothing to
    // run says so here rather than passing silently.
    eprintln!(
        "test result: {}. {} passed; {failed} failed; 0 ignored; 0 measured; {} filtered out",
        if failed > 0 { "FAILED" } else { "ok" },
        chosen.len() - failed,
        tests.len() - chosen.len()
    );
    if failed > 0 {
        std::process::exit(1);
    }
}

/// The libtest command line as far as this harness needs it: `cargo test` passes the same
/// arguments to every test binary (`scripts/test.sh -- --test-threads 1`, a name filter), so
/// flags and their values must not be mistaken for name filters.
#[derive(Debug, Default)]
struct LibtestArgs {
    filters: Vec<String>,
    skip: Vec<String>,
    exact: bool,
    list: bool,
    /// `--ignored`: only ignored tests, and this harness has none.
    only_ignored: bool,
}

impl LibtestArgs {
    fn parse(args: impl IntoIterator<Item = String>) -> Self {
        // libtest's options that take a value as the next argument (`--opt=value` is one).
        const WITH_VALUE: &[&str] = &[
            "--test-threads",
            "--skip",
            "--logfile",
            "--format",
            "--color",
            "--shuffle-seed",
            "-Z",
        ];
        let mut out = LibtestArgs::default();
        let mut args = args.into_iter();
        while let Some(a) = args.next() {
            if a == "--" {
                continue;
            }
            if !a.starts_with('-') {
                out.filters.push(a);
                continue;
            }
            let (flag, inline) = match a.split_once('=') {
                Some((f, v)) => (f.to_string(), Some(v.to_string())),
                None => (a.clone(), None),
            };
            let value = if WITH_VALUE.contains(&flag.as_str()) {
                inline.or_else(|| args.next())
            } else {
                None
            };
            match flag.as_str() {
                "--skip" => out.skip.extend(value),
                "--exact" => out.exact = true,
                "--list" => out.list = true,
                "--ignored" => out.only_ignored = true,
                _ => {}
            }
        }
        out
    }

    fn runs(&self, name: &str) -> bool {
        let hit = |p: &String| {
            if self.exact {
                name == p
            } else {
                name.contains(p.as_str())
            }
        };
        !self.only_ignored
            && (self.filters.is_empty() || self.filters.iter().any(hit))
            && !self.skip.iter().any(hit)
    }
}

/// The daemon process: fake backend, short lifecycle timings from the environment.
fn fake_daemon() {
    zerocast_app::logging::init("info");
    let ms = |k: &str, d: u64| {
        Duration::from_millis(
            std::env::var(k)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(d),
        )
    };
    let config = ServiceConfig {
        linger: ms("ZEROCAST_TEST_LINGER_MS", 300_000),
        keep_ended: 5,
        progress_interval: ms("ZEROCAST_TEST_PROGRESS_MS", 1000),
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let r = rt.block_on(zerocast_dbus::run_daemon_with(
        Arc::new(FakeBackend::from_env()),
        config,
    ));
    if let Err(e) = r {
        eprintln!("zerocast: {e:#}");
        std::process::exit(1);
    }
}

/// A private session bus whose service directory holds our (adapted) activation file.
struct TestBus {
    dir: tempfile::TempDir,
    daemon: Child,
    address: String,
}

impl TestBus {
    fn new() -> TestBus {
        let dir = tempfile::tempdir().unwrap();
        let services = dir.path().join("services");
        std::fs::create_dir(&services).unwrap();
        // The shipped file, with Exec pointed at this binary in fake-daemon mode.
        let shipped =
            std::fs::read_to_string(Path::new(DATA).join("org.zerocast.Recorder1.service"))
                .expect("data/org.zerocast.Recorder1.service");
        let exe = std::env::current_exe().unwrap();
        let adapted: String = shipped
            .lines()
            .map(|l| {
                if l.starts_with("Exec=") {
                    format!("Exec={} --fake-daemon", exe.display())
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        assert!(adapted.contains("Name=org.zerocast.Recorder1"), "{adapted}");
        std::fs::write(services.join("org.zerocast.Recorder1.service"), adapted).unwrap();
        let socket = dir.path().join("bus");
        let config = dir.path().join("bus.conf");
        std::fs::write(
            &config,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}</listen>
  <servicedir>{}</servicedir>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
                socket.display(),
                services.display()
            ),
        )
        .unwrap();
        let daemon = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .arg("--nofork")
            .env("ZEROCAST_TEST_LINGER_MS", "1500")
            .env("ZEROCAST_TEST_PROGRESS_MS", "200")
            .env("ZEROCAST_FAKE_START_DELAY_MS", "300")
            .env("XDG_VIDEOS_DIR", dir.path().join("Videos"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "dbus-daemon did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        TestBus {
            address: format!("unix:path={}", socket.display()),
            dir,
            daemon,
        }
    }

    fn busctl(&self, args: &[&str]) -> Output {
        Command::new("busctl")
            .arg("--user")
            .args(args)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .output()
            .unwrap()
    }

    /// `busctl call` on the manager; returns (success, stdout+stderr).
    fn call(&self, obj: &str, iface: &str, method: &str, sig_args: &[&str]) -> (bool, String) {
        // `--`: values like `-5` are not options.
        let mut args = vec!["call", "--", "org.zerocast.Recorder1", obj, iface, method];
        args.extend_from_slice(sig_args);
        let o = self.busctl(&args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        (o.status.success(), text.trim().to_owned())
    }

    fn start(&self, sig_args: &[&str]) -> (bool, String) {
        self.call(
            "/org/zerocast/Recorder1",
            "org.zerocast.Recorder1",
            "Start",
            sig_args,
        )
    }

    fn get(&self, obj: &str, iface: &str, prop: &str) -> String {
        let o = self.busctl(&["get-property", "org.zerocast.Recorder1", obj, iface, prop]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    }

    fn state(&self, obj: &str) -> String {
        self.get(obj, "org.zerocast.Recording1", "State")
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn zbus(&self) -> zbus::blocking::Connection {
        zbus::blocking::connection::Builder::address(self.address.as_str())
            .unwrap()
            .build()
            .unwrap()
    }

    fn wait_for(&self, what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for TestBus {
    fn drop(&mut self) {
        // The activated daemon exits by itself when its bus goes away.
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

/// `busctl` output of an object path: `o "/org/…"`.
fn object_of(reply: &str) -> String {
    reply
        .trim()
        .trim_start_matches("o ")
        .trim_matches('"')
        .to_owned()
}

fn s(v: &str) -> String {
    format!("s \"{v}\"")
}

fn activation_and_second_daemon() {
    let bus = TestBus::new();
    // Nothing runs yet; the first call activates the daemon through the service file.
    let (ok, out) = bus.call(
        "/org/zerocast/Recorder1",
        "org.freedesktop.DBus.Properties",
        "Get",
        &["ss", "org.zerocast.Recorder1", "Version"],
    );
    assert!(ok, "activation failed: {out}");
    assert_eq!(out, format!("v s \"{}\"", env!("CARGO_PKG_VERSION")));

    let o = Command::new(std::env::current_exe().unwrap())
        .arg("--fake-daemon")
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("another zerocast daemon already owns org.zerocast.Recorder1"),
        "{err}"
    );
    assert!(err.contains("(pid "), "{err}");
    // The first one still serves.
    let (ok, _) = bus.call(
        "/org/zerocast/Recorder1",
        "org.freedesktop.DBus.Properties",
        "Get",
        &["ss", "org.zerocast.Recorder1", "Recordings"],
    );
    assert!(ok);
}

fn busctl_recording_outlives_caller() {
    let bus = TestBus::new();
    let out_file = bus.path("clip.mkv");
    // Watch the PropertiesChanged signals the way a shell script would.
    let mut monitor = Command::new("busctl")
        .args([
            "--user",
            "monitor",
            "--json=short",
            "org.zerocast.Recorder1",
        ])
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));

    let (ok, reply) = bus.start(&[
        "a{sv}",
        "3",
        "path",
        "s",
        out_file.to_str().unwrap(),
        "framerate",
        "u",
        "30",
        "cursor",
        "s",
        "hidden",
    ]);
    assert!(ok, "{reply}");
    // That busctl has exited: the recording must live on without it.
    let obj = object_of(&reply);
    assert!(
        obj.starts_with("/org/zerocast/Recorder1/recording/"),
        "{reply}"
    );
    assert_eq!(bus.state(&obj), s("recording"));
    let opts = bus.get(&obj, "org.zerocast.Recording1", "Options");
    assert!(
        opts.contains("\"framerate\" u 30") && opts.contains("\"cursor\" s \"hidden\""),
        "{opts}"
    );

    std::thread::sleep(Duration::from_millis(600));
    let (ok, out) = bus.call(&obj, "org.zerocast.Recording1", "Pause", &[]);
    assert!(ok, "{out}");
    assert_eq!(bus.state(&obj), s("paused"));
    let paused_at = bus.get(&obj, "org.zerocast.Recording1", "Duration");
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        bus.get(&obj, "org.zerocast.Recording1", "Duration"),
        paused_at
    );
    let (ok, out) = bus.call(&obj, "org.zerocast.Recording1", "Resume", &[]);
    assert!(ok, "{out}");
    std::thread::sleep(Duration::from_millis(400));
    let (ok, out) = bus.call(&obj, "org.zerocast.Recording1", "Stop", &[]);
    assert!(ok, "{out}");
    assert_eq!(out, s(out_file.to_str().unwrap()));
    assert!(out_file.exists(), "file exists when Stop returns");
    assert_eq!(bus.state(&obj), s("finished"));

    std::thread::sleep(Duration::from_millis(300));
    let _ = monitor.kill();
    let text = String::from_utf8_lossy(&monitor.wait_with_output().unwrap().stdout).into_owned();
    let states: Vec<String> = text
        .lines()
        .filter(|l| l.contains("PropertiesChanged") && l.contains(&obj))
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            v["payload"]["data"][1]["State"]["data"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    let mut dedup = states.clone();
    dedup.dedup();
    assert_eq!(
        dedup,
        [
            "starting",
            "recording",
            "paused",
            "recording",
            "finishing",
            "finished"
        ],
        "State changes seen by busctl monitor: {states:?}"
    );
    assert!(
        text.contains("\"member\":\"Finished\""),
        "no Finished signal seen"
    );

    // Removed after the linger time; then the standard UnknownObject error.
    bus.wait_for("object removal", || {
        !bus.get(
            "/org/zerocast/Recorder1",
            "org.zerocast.Recorder1",
            "Recordings",
        )
        .contains(&obj)
    });
    let (ok, out) = bus.call(&obj, "org.zerocast.Recording1", "Stop", &[]);
    assert!(!ok && out.contains("Unknown object"), "{out}");
}

/// Each bad request fails with its named error, and the daemon answers the next one.
fn busctl_bad_input() {
    let bus = TestBus::new();
    let good = bus.path("good.mkv");
    let good = good.to_str().unwrap();
    let missing = bus.path("nope/a.mkv");
    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (
            vec!["a{sv}", "1", "fps", "u", "30"],
            "InvalidOption",
            "unknown option 'fps'",
        ),
        (
            vec!["a{sv}", "1", "framerate", "s", "60"],
            "InvalidOption",
            "'framerate' must be u (uint32), got s (string)",
        ),
        (
            vec!["a{sv}", "1", "framerate", "u", "0"],
            "InvalidOption",
            "'framerate' must be > 0",
        ),
        (
            vec!["a{sv}", "1", "framerate", "i", "-5"],
            "InvalidOption",
            "'framerate' must be > 0",
        ),
        (
            vec!["a{sv}", "1", "path", "s", missing.to_str().unwrap()],
            "OutputNotWritable",
            "does not exist",
        ),
        (
            vec!["a{sv}", "1", "path", "s", "/sys/zerocast-test.mkv"],
            "OutputNotWritable",
            "'path'",
        ),
        (
            vec!["a{sv}", "1", "codec", "s", "h266"],
            "InvalidOption",
            "'codec' must be one of",
        ),
        (
            vec!["a{sv}", "1", "encoder", "s", "vaapi"],
            "InvalidOption",
            "'encoder' must be one of",
        ),
        (
            vec!["a{sv}", "1", "duration", "d", "-1"],
            "InvalidOption",
            "'duration' must be > 0",
        ),
    ];
    let conn = bus.zbus();
    let manager = zbus::blocking::Proxy::new(
        &conn,
        "org.zerocast.Recorder1",
        "/org/zerocast/Recorder1",
        "org.zerocast.Recorder1",
    )
    .unwrap();
    for (args, name, msg) in &cases {
        let (ok, out) = bus.start(args);
        assert!(!ok, "{args:?} was accepted: {out}");
        assert!(
            out.contains(msg),
            "{args:?}: busctl said {out:?}, expected {msg:?}"
        );
        // busctl prints only the message; check the error name over zbus too.
        let opts = busctl_args_to_dict(args);
        let e = manager
            .call::<_, _, zbus::zvariant::OwnedObjectPath>("Start", &(opts,))
            .unwrap_err();
        match e {
            zbus::Error::MethodError(n, _, _) => {
                assert_eq!(n.as_str(), format!("org.zerocast.Error.{name}"), "{args:?}")
            }
            e => panic!("{e}"),
        }
    }
    // Still serving: a good request works, then the state errors.
    let (ok, reply) = bus.start(&["a{sv}", "1", "path", "s", good]);
    assert!(ok, "{reply}");
    let obj = object_of(&reply);
    let rec = zbus::blocking::Proxy::new(
        &conn,
        "org.zerocast.Recorder1",
        obj.as_str(),
        "org.zerocast.Recording1",
    )
    .unwrap();
    let name_of = |e: zbus::Error| match e {
        zbus::Error::MethodError(n, _, _) => n.to_string(),
        e => panic!("{e}"),
    };
    // Same output path while it is being written.
    let (ok, out) = bus.start(&["a{sv}", "1", "path", "s", good]);
    assert!(
        !ok && out.contains("is being written by recording"),
        "{out}"
    );
    rec.call::<_, _, ()>("Pause", &()).unwrap();
    assert_eq!(
        name_of(rec.call::<_, _, ()>("Pause", &()).unwrap_err()),
        "org.zerocast.Error.NotRecording"
    );
    let (ok, out) = bus.call(&obj, "org.zerocast.Recording1", "Pause", &[]);
    assert!(!ok && out.contains("already paused"), "{out}");
    rec.call::<_, _, ()>("Resume", &()).unwrap();
    assert_eq!(
        name_of(rec.call::<_, _, ()>("Resume", &()).unwrap_err()),
        "org.zerocast.Error.NotPaused"
    );
    let (ok, _) = bus.call(&obj, "org.zerocast.Recording1", "Stop", &[]);
    assert!(ok);
    assert_eq!(
        name_of(rec.call::<_, _, String>("Stop", &()).unwrap_err()),
        "org.zerocast.Error.NotRecording"
    );
    let (ok, out) = bus.call(&obj, "org.zerocast.Recording1", "Stop", &[]);
    assert!(!ok && out.contains("has finished"), "{out}");
}

/// The `a{sv}` of a busctl argument list, for the same request over zbus.
fn busctl_args_to_dict(args: &[&str]) -> HashMap<String, Value<'static>> {
    let mut m = HashMap::new();
    let mut it = args[2..].chunks(3);
    for c in &mut it {
        let v = match c[1] {
            "s" => Value::from(c[2].to_owned()),
            "u" => Value::from(c[2].parse::<u32>().unwrap()),
            "i" => Value::from(c[2].parse::<i32>().unwrap()),
            "d" => Value::from(c[2].parse::<f64>().unwrap()),
            "b" => Value::from(c[2] == "true"),
            t => panic!("type {t}"),
        };
        m.insert(c[0].to_owned(), v);
    }
    m
}

fn stop_on_disconnect() {
    let bus = TestBus::new();
    let a = bus.path("a.mkv");
    let b = bus.path("b.mkv");
    // busctl exits right after the reply: with stop-on-disconnect the recording then ends…
    let (ok, reply) = bus.start(&[
        "a{sv}",
        "2",
        "path",
        "s",
        a.to_str().unwrap(),
        "stop-on-disconnect",
        "b",
        "true",
    ]);
    assert!(ok, "{reply}");
    let obj_a = object_of(&reply);
    // …without it, it keeps going.
    let (ok, reply) = bus.start(&["a{sv}", "1", "path", "s", b.to_str().unwrap()]);
    assert!(ok, "{reply}");
    let obj_b = object_of(&reply);
    bus.wait_for("stop-on-disconnect", || bus.state(&obj_a) == s("finished"));
    assert!(a.exists());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(bus.state(&obj_b), s("recording"));
}

/// The checked-in XML is what the service introspects to. `ZEROCAST_BLESS=1` rewrites it.
fn introspection_xml_matches_data() {
    let bus = TestBus::new();
    let (ok, reply) = bus.start(&[
        "a{sv}",
        "1",
        "path",
        "s",
        bus.path("x.mkv").to_str().unwrap(),
    ]);
    assert!(ok, "{reply}");
    let obj = object_of(&reply);
    let conn = bus.zbus();
    let introspect = |path: &str| -> String {
        zbus::blocking::fdo::IntrospectableProxy::builder(&conn)
            .destination("org.zerocast.Recorder1")
            .unwrap()
            .path(path.to_owned())
            .unwrap()
            .build()
            .unwrap()
            .introspect()
            .unwrap()
    };
    let mut xml = String::from(
        "<!DOCTYPE node PUBLIC \"-//freedesktop//DTD D-BUS Object Introspection 1.0//EN\"\n \
         \"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd\">\n\
         <!-- org.zerocast.Recorder1 at /org/zerocast/Recorder1 and org.zerocast.Recording1 at\n     \
         /org/zerocast/Recorder1/recording/N. Generated from the running service by\n     \
         `ZEROCAST_BLESS=1 cargo test -p zerocast-dbus --test bus`; documented in README.md. -->\n<node>\n",
    );
    xml.push_str(&interface_block(
        &introspect("/org/zerocast/Recorder1"),
        "org.zerocast.Recorder1",
    ));
    xml.push_str(&interface_block(
        &introspect(&obj),
        "org.zerocast.Recording1",
    ));
    xml.push_str("</node>\n");
    let file = Path::new(DATA).join("org.zerocast.Recorder1.xml");
    if std::env::var_os("ZEROCAST_BLESS").is_some() {
        std::fs::write(&file, &xml).unwrap();
    }
    let checked_in = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        checked_in == xml,
        "{} is out of date; run with ZEROCAST_BLESS=1. Live:\n{xml}",
        file.display()
    );
}

/// The `<interface name="…">…</interface>` element of `name` in an introspection document.
fn interface_block(doc: &str, name: &str) -> String {
    let start_tag = format!("<interface name=\"{name}\">");
    let start = doc
        .find(&start_tag)
        .unwrap_or_else(|| panic!("{name} missing in {doc}"));
    let end = start + doc[start..].find("</interface>").unwrap() + "</interface>".len();
    format!("  {}\n", &doc[start..end])
}
