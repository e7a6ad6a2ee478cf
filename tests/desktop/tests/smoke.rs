//! The desktop comes up, shows the painter, owns the portal names, and leaves nothing behind.

use std::path::Path;
use std::time::Duration;

use zerocast_testdesk::desktop::{PERMISSION_STORE_BUS_NAME, PORTAL_BUS_NAME, XDPW_BUS_NAME};
use zerocast_testdesk::layout::{close, Quadrant};
use zerocast_testdesk::{Component, Desktop, DesktopOptions, Layout};

fn alive(pid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks for existence.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

/// PIDs of live (non-zombie) processes whose command line or environment mentions `dir`:
/// catches strays we never knew about (double forks, bus activation), not just our children.
fn processes_mentioning(dir: &Path) -> Vec<u32> {
    let needle = dir.to_string_lossy().into_owned().into_bytes();
    let me = std::process::id();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        if stat
            .rsplit(')')
            .next()
            .is_some_and(|s| s.trim_start().starts_with('Z'))
        {
            continue;
        }
        for f in ["cmdline", "environ"] {
            let data = std::fs::read(e.path().join(f)).unwrap_or_default();
            if data.windows(needle.len()).any(|w| w == needle.as_slice()) {
                found.push(pid);
                break;
            }
        }
    }
    found
}

/// The parent of `pid`, from /proc/PID/stat (the field after the state).
fn ppid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Every live process mentioning `dir` is one the harness started or a descendant of one
/// (a bus-activated service is dbus-daemon's child; GNOME 51's shell starts helpers of its own):
/// a double fork that escaped the tree is reparented away from it and fails here.
fn assert_no_strays(dir: &Path, pids: &[(zerocast_testdesk::Component, u32)]) {
    let ours: Vec<u32> = pids.iter().map(|(_, p)| *p).collect();
    let in_tree = |mut p: u32| {
        for _ in 0..64 {
            if ours.contains(&p) {
                return true;
            }
            match ppid(p) {
                Some(q) if q > 1 => p = q,
                _ => return false,
            }
        }
        false
    };
    let strays: Vec<(u32, String)> = processes_mentioning(dir)
        .into_iter()
        .filter(|&p| !in_tree(p))
        .map(|p| {
            let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            (p, String::from_utf8_lossy(&cmd).replace('\0', " "))
        })
        .collect();
    assert!(
        strays.is_empty(),
        "processes outside the desktop's tree {strays:?} vs {pids:?}"
    );
}

fn check_painter_on_screen(desk: &Desktop) {
    let o = desk.options();
    let layout = Layout::new(o.width, o.height);
    let shot = desk.screenshot().expect("grim screenshot");
    assert_eq!((shot.width, shot.height), (o.width, o.height));
    for q in Quadrant::ALL {
        let r = layout.quadrant_rect(q);
        // Sample the centre and points near each corner of the quadrant.
        for (x, y) in [
            r.center(),
            (r.x + 2, r.y + 2),
            (r.x + r.w - 3, r.y + r.h - 3),
        ] {
            let px = shot.pixel(x, y);
            assert!(
                close(px, q.color(), 0),
                "{q:?} at ({x},{y}) is {px:?}, want {:?}",
                q.color()
            );
        }
    }
    // The counter advances: two screenshots 100 ms apart show different counters.
    let c1 = layout.decode_counter(|x, y| shot.pixel(x, y));
    std::thread::sleep(Duration::from_millis(100));
    let shot2 = desk.screenshot().unwrap();
    let c2 = layout.decode_counter(|x, y| shot2.pixel(x, y));
    assert!(c2 > c1, "counter did not advance: {c1} then {c2}");
    // 100 ms at 60 fps plus grim's own time: roughly 6..=30 ticks.
    assert!((3..=40).contains(&(c2 - c1)), "counter jumped {c1} → {c2}");
    // And the whole strip matches the painter's model for the counter it shows.
    let y = layout.bar_band().y + 1;
    for x in (0..o.width).step_by(7) {
        assert_eq!(
            shot2.pixel(x, y),
            layout.color_at(x, y, c2),
            "bar band at x={x}"
        );
    }
}

#[test]
fn desktop_shows_painter_and_owns_portal_names() {
    let desk = Desktop::start_default().expect("desktop");
    eprintln!("desktop up in {:?}", desk.startup_time());
    assert!(desk.name_has_owner(PORTAL_BUS_NAME).unwrap());
    assert!(desk.name_has_owner(XDPW_BUS_NAME).unwrap());
    assert!(desk.name_has_owner(PERMISSION_STORE_BUS_NAME).unwrap());
    assert_eq!(
        desk.screencast_version().unwrap(),
        desk.expected_screencast_version(),
        "xdpw 0.7 portal version"
    );
    check_painter_on_screen(&desk);

    // sway runs the requested mode.
    let out = desk
        .command("swaymsg")
        .args(["-t", "get_outputs", "-r"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("\"refresh\": 120000"),
        "swaymsg get_outputs: {text}"
    );
}

#[test]
fn two_desktops_run_concurrently_and_drop_leaves_nothing() {
    let opts = DesktopOptions {
        width: 640,
        height: 480,
        ..DesktopOptions::default()
    };
    let o2 = opts.clone();
    let other = std::thread::spawn(move || Desktop::start(o2).expect("desktop 2"));
    let a = Desktop::start(opts).expect("desktop 1");
    let b = other.join().unwrap();
    assert_ne!(a.dir(), b.dir());
    assert_ne!(a.bus_address(), b.bus_address());
    check_painter_on_screen(&a);
    check_painter_on_screen(&b);

    for desk in [a, b] {
        let dir = desk.dir().to_path_buf();
        let pids = desk.pids();
        assert!(pids.len() >= 8, "expected 8 processes, got {pids:?}");
        assert!(pids.iter().all(|(_, p)| alive(*p)));
        assert_no_strays(&dir, &pids);

        drop(desk);
        for (c, pid) in pids {
            assert!(!alive(pid), "{c} (pid {pid}) survived drop");
        }
        assert_eq!(
            processes_mentioning(&dir),
            Vec::<u32>::new(),
            "strays after drop"
        );
        assert!(!dir.exists(), "temp dir {} not removed", dir.display());
    }
}

#[test]
fn stopping_the_portal_leaves_no_owner() {
    let opts = DesktopOptions {
        painter_fps: Some(30),
        ..DesktopOptions::default()
    };
    let mut desk = Desktop::start(opts).expect("desktop");
    let pid = desk.pid(Component::Portal).unwrap();
    desk.stop_portal().unwrap();
    assert!(!alive(pid));
    assert!(!desk.name_has_owner(PORTAL_BUS_NAME).unwrap());
    assert_eq!(desk.screencast_version().unwrap(), None);
    // Nothing activates it again behind our back.
    std::thread::sleep(Duration::from_millis(200));
    assert!(!desk.name_has_owner(PORTAL_BUS_NAME).unwrap());
}

#[test]
fn desktop_without_portal() {
    let opts = DesktopOptions {
        portal: false,
        painter_fps: Some(0),
        ..DesktopOptions::default()
    };
    let desk = Desktop::start(opts).expect("desktop");
    assert!(desk.pid(Component::Portal).is_none());
    assert!(desk.pid(Component::Xdpw).is_none());
    assert!(!desk.name_has_owner(PORTAL_BUS_NAME).unwrap());
    // A static painter still draws the quadrants once.
    let layout = Layout::new(1280, 720);
    let shot = desk.screenshot().unwrap();
    for q in Quadrant::ALL {
        let (x, y) = layout.quadrant_rect(q).center();
        assert_eq!(shot.pixel(x, y), q.color());
    }
    assert_eq!(layout.decode_counter(|x, y| shot.pixel(x, y)), 0);
}

#[test]
fn painter_on_a_thread_works_too() {
    let opts = DesktopOptions {
        painter_in_process: true,
        portal: false,
        ..DesktopOptions::default()
    };
    let desk = Desktop::start(opts).expect("desktop");
    assert!(desk.pid(Component::Painter).is_none());
    check_painter_on_screen(&desk);
}

/// The GNOME flavour: gnome-shell, its portal and the permission store run and own their
/// names, the painter covers the screen (panel included), the seeded restore token is in the
/// permission store and where zerocast looks, and drop leaves nothing behind.
#[test]
fn gnome_desktop_comes_up_and_drop_leaves_nothing() {
    use zerocast_testdesk::desktop::{
        MUTTER_SCREENCAST_BUS_NAME, PORTAL_GNOME_BUS_NAME, SHELL_BUS_NAME,
    };
    use zerocast_testdesk::Flavour;
    let desk = Desktop::start(DesktopOptions {
        flavour: Flavour::Gnome,
        ..DesktopOptions::default()
    })
    .expect("GNOME desktop");
    eprintln!("GNOME desktop up in {:?}", desk.startup_time());
    for name in [
        SHELL_BUS_NAME,
        MUTTER_SCREENCAST_BUS_NAME,
        PORTAL_GNOME_BUS_NAME,
        PORTAL_BUS_NAME,
        PERMISSION_STORE_BUS_NAME,
    ] {
        assert!(desk.name_has_owner(name).unwrap(), "{name} not owned");
    }
    assert!(!desk.name_has_owner(XDPW_BUS_NAME).unwrap());
    assert_eq!(
        desk.screencast_version().unwrap(),
        desk.expected_screencast_version()
    );

    let layout = Layout::new(1280, 720);
    let shot = desk.screenshot().expect("Shell.Screenshot");
    for q in Quadrant::ALL {
        let r = layout.quadrant_rect(q);
        for (x, y) in [
            r.center(),
            (r.x + 2, r.y + 2),
            (r.x + r.w - 3, r.y + r.h - 3),
        ] {
            assert_eq!(shot.pixel(x, y), q.color(), "{q:?} at ({x},{y})");
        }
    }
    // The strip is the painter's, not the shell's panel: the bar band matches the model.
    let c1 = layout.decode_counter(|x, y| shot.pixel(x, y));
    let y = layout.bar_band().y + 1;
    for x in (0..1280).step_by(7) {
        assert_eq!(
            shot.pixel(x, y),
            layout.color_at(x, y, c1),
            "bar band at x={x}"
        );
    }
    let shot2 = desk.screenshot().unwrap();
    let c2 = layout.decode_counter(|x, y| shot2.pixel(x, y));
    assert!(c2 > c1, "counter did not advance: {c1} then {c2}");

    // The seeded token: stored for zerocast and known to the permission store.
    let token = std::fs::read_to_string(desk.dir().join("state/zerocast/restore-token-monitor"))
        .expect("token file");
    let out = desk
        .command("busctl")
        .args([
            "--user",
            "call",
            PERMISSION_STORE_BUS_NAME,
            "/org/freedesktop/impl/portal/PermissionStore",
            "org.freedesktop.impl.portal.PermissionStore",
            "Lookup",
            "ss",
            "screencast",
            token.trim(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("MetaVendor:MetaVirtualMonitor"),
        "permission store entry: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let dir = desk.dir().to_path_buf();
    let pids = desk.pids();
    assert_no_strays(&dir, &pids);
    drop(desk);
    for (c, pid) in pids {
        assert!(!alive(pid), "{c} (pid {pid}) survived drop");
    }
    assert_eq!(
        processes_mentioning(&dir),
        Vec::<u32>::new(),
        "strays after drop"
    );
    assert!(!dir.exists(), "temp dir {} not removed", dir.display());
}

/// The KDE flavour (kwin_wayland --virtual + xdg-desktop-portal-kde; Plasma 5.27 on Debian 12,
/// 6.3 on Debian 13): kwin, its portal, the portal and the permission store run and own their
/// names; the painter is a KWin window; the seeded restore tokens (monitor "0x0", the painter's
/// window) are in the permission store and where zerocast looks; key presses reach KWin through
/// fake-input, and on KWin 6 a global shortcut fires both from kglobalaccel's invokeShortcut and
/// from a real key press; drop leaves nothing behind.
#[test]
fn kde_desktop_comes_up_and_drop_leaves_nothing() {
    use zerocast_testdesk::desktop::{
        kwin_version, KGLOBALACCEL_BUS_NAME, KWIN_BUS_NAME, PORTAL_KDE_BUS_NAME,
    };
    use zerocast_testdesk::Flavour;
    const TEST: &str = "smoke::kde_desktop_comes_up_and_drop_leaves_nothing";
    let Some((major, minor)) = kwin_version() else {
        zerocast_testdesk::skipped(
            TEST,
            "kwin_wayland is not installed (scripts/install-deps.sh)",
        );
        return;
    };
    let desk = Desktop::start(DesktopOptions {
        flavour: Flavour::Kde,
        ..DesktopOptions::default()
    })
    .expect("KDE desktop");
    eprintln!(
        "KDE (KWin {major}.{minor}) desktop up in {:?}",
        desk.startup_time()
    );
    for name in [
        KWIN_BUS_NAME,
        PORTAL_KDE_BUS_NAME,
        PORTAL_BUS_NAME,
        PERMISSION_STORE_BUS_NAME,
    ] {
        assert!(desk.name_has_owner(name).unwrap(), "{name} not owned");
    }
    assert!(!desk.name_has_owner(XDPW_BUS_NAME).unwrap());
    assert!(desk.screencast_version().unwrap().is_some_and(|v| v >= 4));

    // The painter is a window (a fullscreen toplevel), which is what the portal can cast.
    let windows = desk.kwin_windows().expect("KWin's windows");
    let painter = windows
        .iter()
        .find(|w| w.resource_class == "zerocast-painter")
        .unwrap_or_else(|| panic!("no painter window in {windows:?}"));
    assert_eq!(
        desk.source_selections(),
        0,
        "a chooser is open: {windows:?}"
    );

    // The seeded tokens: stored for zerocast and known to the permission store.
    for (source, content) in [("monitor", "0x0"), ("window", painter.id.as_str())] {
        let token = std::fs::read_to_string(
            desk.dir()
                .join(format!("state/zerocast/restore-token-{source}")),
        )
        .expect("token file");
        let out = desk
            .busctl(
                "PermissionStore.Lookup",
                &[
                    "call",
                    PERMISSION_STORE_BUS_NAME,
                    "/org/freedesktop/impl/portal/PermissionStore",
                    "org.freedesktop.impl.portal.PermissionStore",
                    "Lookup",
                    "ss",
                    "screencast",
                    token.trim(),
                ],
            )
            .expect("Lookup");
        assert!(out.contains("\"KDE\""), "{source}: {out}");
        // The QDataStream holds the id as UTF-16BE: its bytes in busctl's decimal dump.
        let utf16: Vec<String> = content
            .encode_utf16()
            .flat_map(|u| u.to_be_bytes())
            .map(|b| b.to_string())
            .collect();
        assert!(
            out.contains(&utf16.join(" ")),
            "{source}: {content} not in {out}"
        );
    }

    // Key presses go in through fake-input (Ctrl alone: harmless).
    desk.kde_press_keys(&[29]).expect("fake-input key press");
    if major >= 6 {
        // A shortcut of a KWin script lives in kglobalaccel (inside KWin 6) as component "kwin".
        assert!(desk.name_has_owner(KGLOBALACCEL_BUS_NAME).unwrap());
        desk.kwin_run_script(
            "zerocast-shortcut",
            "registerShortcut('zerocast-test', 'zerocast test', 'Meta+Ctrl+F12', \
             function () { print('ZEROCAST-SHORTCUT fired'); });\n\
             print('ZEROCAST-SHORTCUT registered');\n",
        )
        .expect("shortcut script");
        desk.wait_kwin_log("ZEROCAST-SHORTCUT registered", Duration::from_secs(10))
            .unwrap();
        let components = desk.kde_shortcut_components().unwrap();
        assert!(
            components.iter().any(|c| c == "/component/kwin"),
            "{components:?}"
        );
        desk.kde_invoke_shortcut("kwin", "zerocast-test").unwrap();
        let fired = |d: &Desktop| d.kwin_log().matches("ZEROCAST-SHORTCUT fired").count();
        let t0 = std::time::Instant::now();
        while fired(&desk) < 1 && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(fired(&desk), 1, "invokeShortcut did not fire it");
        // Meta (125) + Ctrl (29) + F12 (88), a real key press.
        desk.kde_press_keys(&[125, 29, 88]).unwrap();
        while fired(&desk) < 2 && t0.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(fired(&desk), 2, "the fake-input key press did not fire it");
    } else {
        zerocast_testdesk::skipped(
            &format!("{TEST} (global shortcuts)"),
            "KWin 5.27 keeps shortcuts in kglobalaccel5 (started beside it), and KWin \
             scripts' shortcuts are KWin 6's; the portal's are tested in shortcuts_e2e",
        );
    }

    let dir = desk.dir().to_path_buf();
    let pids = desk.pids();
    assert_no_strays(&dir, &pids);
    drop(desk);
    for (c, pid) in pids {
        assert!(!alive(pid), "{c} (pid {pid}) survived drop");
    }
    assert_eq!(
        processes_mentioning(&dir),
        Vec::<u32>::new(),
        "strays after drop"
    );
    assert!(!dir.exists(), "temp dir {} not removed", dir.display());
}
