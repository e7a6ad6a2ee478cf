//! `scripts/install.sh` as a user runs it, into a temporary HOME: the installed set-up works (a
//! fresh session bus activates the installed daemon), and `--uninstall` removes every file.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install.sh")
}

/// The built binaries (`zerocast-tray` is built by the tray tests' helper when missing).
fn binaries() -> PathBuf {
    let dir = zerocast_bin().parent().unwrap().to_path_buf();
    if !dir.join("zerocast-tray").is_file() {
        run_ok(
            Command::new(env!("CARGO"))
                .args(["build", "-p", "zerocast-tray"])
                .current_dir(env!("CARGO_MANIFEST_DIR")),
        );
    }
    dir
}

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, d: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut v = Vec::new();
    walk(dir, dir, &mut v);
    v.sort();
    v
}

/// A clean environment: only what a login shell would have, HOME in the temp dir.
fn user_cmd(home: &Path) -> Command {
    let mut c = Command::new("bash");
    c.env_clear()
        .env("HOME", home)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("XDG_RUNTIME_DIR", home.join("run"));
    std::fs::create_dir_all(home.join("run")).unwrap();
    c
}

#[test]
fn user_install_activates_and_uninstalls_cleanly() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let bins = binaries();
    let out = run_ok(
        user_cmd(home)
            .arg(script())
            .args(["--user", "--autostart", "--binaries"])
            .arg(&bins),
    );
    let log = String::from_utf8_lossy(&out.stdout);
    let installed = files(home);
    assert_eq!(
        installed,
        [
            ".config/autostart/zerocast-tray.desktop",
            ".config/systemd/user/zerocast.service",
            ".local/bin/zerocast",
            ".local/bin/zerocast-tray",
            ".local/share/applications/org.zerocast.Zerocast.desktop",
            ".local/share/dbus-1/services/org.zerocast.Recorder1.service",
            ".local/share/icons/hicolor/scalable/apps/zerocast.svg",
            ".local/share/icons/hicolor/scalable/status/zerocast-idle.svg",
            ".local/share/icons/hicolor/scalable/status/zerocast-paused.svg",
            ".local/share/icons/hicolor/scalable/status/zerocast-recording.svg",
            ".local/share/icons/hicolor/scalable/status/zerocast-unavailable.svg",
        ],
        "{log}"
    );
    let bin = home.join(".local/bin/zerocast");
    let read = |p: &str| std::fs::read_to_string(home.join(p)).unwrap();
    assert!(
        read(".local/share/dbus-1/services/org.zerocast.Recorder1.service")
            .contains(&format!("\nExec={} daemon\n", bin.display()))
    );
    assert!(read(".config/systemd/user/zerocast.service")
        .contains(&format!("\nExecStart={} daemon\n", bin.display())));
    let autostart = read(".config/autostart/zerocast-tray.desktop");
    assert!(
        autostart.contains(&format!("\nExec={} tray\n", bin.display())),
        "{autostart}"
    );
    run_ok(
        Command::new("desktop-file-validate")
            .arg(home.join(".local/share/applications/org.zerocast.Zerocast.desktop"))
            .arg(home.join(".config/autostart/zerocast-tray.desktop")),
    );

    // A fresh session bus with the standard service dirs activates the installed daemon on
    // the first call. (dbus-daemon takes the home dir from the password database, not $HOME;
    // XDG_DATA_HOME points it at the temporary one.)
    let probe = r#"
        set -e
        busctl --user get-property org.zerocast.Recorder1 /org/zerocast/Recorder1 org.zerocast.Recorder1 Version
        pid=$(busctl --user call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus \
              GetConnectionUnixProcessID s org.zerocast.Recorder1 | cut -d" " -f2)
        readlink /proc/$pid/exe
        kill -TERM $pid
    "#;
    let probe_file = home.join("run/probe.sh");
    std::fs::write(&probe_file, probe).unwrap();
    let out = run_ok(
        user_cmd(home)
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .arg("-c")
            .arg(format!("dbus-run-session -- bash {}", probe_file.display())),
    );
    std::fs::remove_file(&probe_file).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(format!("s \"{}\"", env!("CARGO_PKG_VERSION")).as_str()),
        "{text}"
    );
    assert_eq!(lines.next(), Some(bin.to_str().unwrap()), "{text}");

    run_ok(user_cmd(home).arg(script()).args(["--user", "--uninstall"]));
    let left: Vec<String> = files(home)
        .into_iter()
        .filter(|f| installed.contains(f))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(files(home).is_empty(), "stray files: {:?}", files(home));
}

#[test]
fn packager_install_into_destdir() {
    let stage = tempfile::tempdir().unwrap();
    let bins = binaries();
    run_ok(
        Command::new("bash")
            .arg(script())
            .args(["--prefix", "/usr", "--binaries"])
            .arg(&bins)
            .env("DESTDIR", stage.path()),
    );
    let installed = files(stage.path());
    assert!(
        installed.contains(&"usr/bin/zerocast-tray".to_owned()),
        "{installed:?}"
    );
    assert!(installed.contains(&"usr/lib/systemd/user/zerocast.service".to_owned()));
    // Autostart is opt-in.
    assert!(
        !installed.iter().any(|f| f.contains("autostart")),
        "{installed:?}"
    );
    // Paths inside the files are the final ones, without DESTDIR.
    let service = std::fs::read_to_string(
        stage
            .path()
            .join("usr/share/dbus-1/services/org.zerocast.Recorder1.service"),
    )
    .unwrap();
    assert!(
        service.contains("\nExec=/usr/bin/zerocast daemon\n"),
        "{service}"
    );
    let app = std::fs::read_to_string(
        stage
            .path()
            .join("usr/share/applications/org.zerocast.Zerocast.desktop"),
    )
    .unwrap();
    assert!(
        app.contains("\nExec=/usr/bin/zerocast tray\n")
            && app.contains("\nExec=/usr/bin/zerocast ctl stop\n")
    );

    run_ok(
        Command::new("bash")
            .arg(script())
            .args(["--prefix", "/usr", "--uninstall"])
            .env("DESTDIR", stage.path()),
    );
    assert!(files(stage.path()).is_empty(), "{:?}", files(stage.path()));
}
