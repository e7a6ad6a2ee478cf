//! The KDE flavour: `kwin_wayland --virtual` (Plasma 5.27 on Debian 12, 6.3 on Debian 13) +
//! xdg-desktop-portal-kde, with restore tokens seeded in the permission store so that `Start`
//! never shows the chooser (nobody could click it headless).
//!
//! What kwin needs to run here (../shared/notes/debian13-desktops.md, KDE):
//! - `/usr/bin/kwin_wayland` carries a file capability (`cap_sys_resource` on 5.27,
//!   `cap_sys_nice` on 6.x); exec of it as root in a sandbox fails with EPERM. A plain copy
//!   (copying drops the `security.capability` xattr) in the desktop's temp dir runs; its name
//!   must still be `kwin_wayland`.
//! - PipeWire before kwin: its screencast plugin connects once, at start-up.
//! - `KWIN_WAYLAND_NO_PERMISSION_CHECKS=1`: any client may bind the restricted protocols
//!   (zkde_screencast for the portal, org_kde_kwin_fake_input for key presses) and call the
//!   restricted D-Bus interfaces.
//! - 6.x: `QT_QPA_PLATFORMTHEME=generic`, or Qt picks its built-in KDE theme and kwin segfaults
//!   in its constructor with an empty log.
//! - A second private bus standing in for the system bus (logind, UPower: nothing has to
//!   answer), as for GNOME.
//!
//! What casts give here (no GPU): on 5.27 a **window** cast delivers frames (the painter is a
//! fullscreen toplevel for this); a monitor cast gives none (the virtual backend never
//! announces its output to the screencast plugin). On 6.x without a render node kwin composites
//! with QPainter and refuses every cast: "OpenGL compositing is required for screencasting"
//! (6.3; the portal then cancels), "Unsupported compositing type" (6.7; the portal then never
//! answers Start).
//! [`kde_monitor_cast_unsupported`] and [`kde_window_cast_unsupported`] say so, for tests to
//! print as their SKIPPED reason.

use std::fs;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use super::{screencast_version, write, Component, Desktop, PERMISSION_STORE_BUS_NAME};

pub const KWIN_BUS_NAME: &str = "org.kde.KWin";
pub const PORTAL_KDE_BUS_NAME: &str = "org.freedesktop.impl.portal.desktop.kde";
pub const KGLOBALACCEL_BUS_NAME: &str = "org.kde.kglobalaccel";
/// The Wayland socket kwin is told to create (in the private runtime dir).
const KDE_WAYLAND_DISPLAY: &str = "wayland-0";
/// kwin with llvmpipe takes 1-2 s idle, several times that on a loaded 2-core machine.
const KDE_MIN_TIMEOUT: Duration = Duration::from_secs(60);
const XDP_KDE: &str = "/usr/lib/x86_64-linux-gnu/libexec/xdg-desktop-portal-kde";
/// Plasma 5's global-shortcuts daemon.
const KGLOBALACCEL5: &str = "/usr/bin/kglobalaccel5";
/// The app id of the painter's toplevel (its `resourceClass` in KWin).
const PAINTER_APP_ID: &str = "zerocast-painter";

/// Why monitor casts on 5.27 give nothing.
pub const KDE5_MONITOR_CAST: &str =
    "the KWin 5.27 virtual backend never announces its output: monitor casts give 0 frames";
/// Why every cast on 6.x without a GPU fails.
pub const KDE6_QPAINTER: &str = "kwin composites with QPainter without a GPU render node and \
     refuses screencasts (6.3: 'OpenGL compositing is required for screencasting', 6.7: \
     'Unsupported compositing type')";

/// The installed KWin's (major, minor), from the `kwin-wayland` package (running
/// `kwin_wayland --version` would fail with EPERM as root, see the module docs).
pub fn kwin_version() -> Option<(u32, u32)> {
    static VERSION: OnceLock<Option<(u32, u32)>> = OnceLock::new();
    *VERSION.get_or_init(|| {
        let out = Command::new("dpkg-query")
            .args(["-W", "-f=${Version}", "kwin-wayland"])
            .stderr(Stdio::null())
            .output()
            .ok()?;
        parse_debian_version(&String::from_utf8_lossy(&out.stdout))
    })
}

/// "4:5.27.5-3" → (5, 27).
fn parse_debian_version(v: &str) -> Option<(u32, u32)> {
    let v = v.trim();
    let v = v.split_once(':').map_or(v, |(_, rest)| rest);
    let mut it = v.split(['.', '-', '+', '~']);
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

fn has_render_node() -> bool {
    fs::read_dir("/dev/dri").is_ok_and(|d| {
        d.flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("renderD"))
    })
}

/// Why a **monitor** cast cannot be recorded on this machine's KDE flavour (`None`: it can).
pub fn kde_monitor_cast_unsupported() -> Option<String> {
    match kwin_version() {
        None => Some("kwin_wayland is not installed (scripts/install-deps.sh)".into()),
        Some((major, _)) if major >= 6 && !has_render_node() => Some(KDE6_QPAINTER.into()),
        Some((major, _)) if major >= 6 => None,
        Some(_) => Some(KDE5_MONITOR_CAST.into()),
    }
}

/// Why a **window** cast cannot be recorded on this machine's KDE flavour (`None`: it can).
pub fn kde_window_cast_unsupported() -> Option<String> {
    match kwin_version() {
        None => Some("kwin_wayland is not installed (scripts/install-deps.sh)".into()),
        Some((major, _)) if major >= 6 && !has_render_node() => Some(KDE6_QPAINTER.into()),
        Some(_) => None,
    }
}

/// KWin's words when it refuses a cast for want of OpenGL compositing: 6.3's (the portal then
/// cancels), then 6.7's (the portal then never answers Start).
pub const KWIN_CAST_REFUSALS: [&str; 2] = [
    "OpenGL compositing is required for screencasting",
    "Unsupported compositing type",
];

/// A window as KWin's scripting API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KwinWindow {
    /// `internalId` as KWin prints it (`{uuid}`): what xdg-desktop-portal-kde keeps in window
    /// restore data.
    pub id: String,
    /// The Wayland app id.
    pub resource_class: String,
    pub caption: String,
}

impl Desktop {
    /// KDE's counterpart of the sway bring-up in [`Desktop::bring_up`].
    pub(super) fn bring_up_kde(&mut self, deadline: Instant) -> Result<()> {
        let (major, _) = kwin_version().ok_or_else(|| {
            anyhow!("kwin_wayland is not installed (scripts/install-deps.sh installs kwin-wayland)")
        })?;
        let deadline = deadline.max(Instant::now() + KDE_MIN_TIMEOUT);
        self.write_kde_files()?;
        self.spawn_session_bus(deadline)?;

        let mut cmd = self.daemon_command("dbus-daemon");
        cmd.arg(format!(
            "--config-file={}",
            self.root.join("system-bus.conf").display()
        ))
        .args(["--nofork", "--nopidfile"]);
        self.spawn(Component::SystemBus, cmd)?;

        let mut cmd = self.daemon_command("pipewire");
        if self.opts.debug {
            cmd.env("PIPEWIRE_DEBUG", "3");
        }
        self.spawn(Component::PipeWire, cmd)?;
        let system_socket = self.runtime_dir.join("system_bus");
        self.wait(
            Component::SystemBus,
            deadline,
            "the system bus socket",
            |_| Ok(UnixStream::connect(&system_socket).is_ok()),
        )?;
        let pw_socket = self.runtime_dir.join("pipewire-0");
        self.wait(
            Component::PipeWire,
            deadline,
            "the pipewire-0 socket",
            |_| Ok(UnixStream::connect(&pw_socket).is_ok()),
        )?;
        let mut cmd = self.daemon_command("wireplumber");
        if self.opts.debug {
            cmd.env("WIREPLUMBER_DEBUG", "3");
        }
        self.spawn(Component::WirePlumber, cmd)?;

        self.spawn_kwin(major)?;
        let socket = self.runtime_dir.join(KDE_WAYLAND_DISPLAY);
        self.wait(Component::Kwin, deadline, "the Wayland socket", |_| {
            Ok(UnixStream::connect(&socket).is_ok())
        })?;
        self.wayland_display = KDE_WAYLAND_DISPLAY.into();
        self.wait_name(Component::Kwin, KWIN_BUS_NAME, deadline)?;
        // Plasma 5 keeps global shortcuts in a daemon of their own (a session starts it; here
        // we do): xdg-desktop-portal-kde's GlobalShortcuts files the portal's shortcuts there.
        // KWin 6 hosts the same service itself.
        if major < 6 && Path::new(KGLOBALACCEL5).exists() {
            let mut cmd = self.daemon_command(KGLOBALACCEL5);
            cmd.env("QT_QPA_PLATFORM", "wayland");
            self.spawn(Component::Kglobalaccel, cmd)?;
            self.wait_name(Component::Kglobalaccel, KGLOBALACCEL_BUS_NAME, deadline)?;
        }

        if let Some(fps) = self.opts.painter_fps {
            self.spawn_painter(fps)?;
        }

        if self.opts.portal {
            let cmd = self.daemon_command("/usr/libexec/xdg-permission-store");
            self.spawn(Component::PermissionStore, cmd)?;
            let mut cmd = self.daemon_command(XDP_KDE);
            cmd.env("QT_QPA_PLATFORM", "wayland");
            if self.opts.debug {
                cmd.env("QT_LOGGING_RULES", "xdp-kde-*.debug=true");
            }
            self.spawn(Component::PortalKde, cmd)?;
            self.wait_name(
                Component::PermissionStore,
                PERMISSION_STORE_BUS_NAME,
                deadline,
            )?;
            self.wait_name(Component::PortalKde, PORTAL_KDE_BUS_NAME, deadline)?;
            let mut cmd = self.daemon_command("/usr/libexec/xdg-desktop-portal");
            if self.opts.debug {
                cmd.arg("--verbose");
            }
            cmd.env("XDG_DESKTOP_PORTAL_DIR", self.root.join("portals"));
            self.spawn(Component::Portal, cmd)?;
            let addr = self.bus_address.clone();
            self.wait(Component::Portal, deadline, "ScreenCast on the bus", |_| {
                Ok(screencast_version(&addr)?.is_some())
            })?;
        }

        self.wait_wireplumber(deadline)?;
        self.configure_audio(deadline)?;
        if self.opts.painter_fps.is_some() {
            let ready = self.root.join("painter.ready");
            self.wait(
                Component::Painter,
                deadline,
                "the painter's first frame",
                |_| Ok(ready.exists()),
            )?;
        }
        if self.opts.portal && self.opts.restore_tokens {
            // The output's id in 5.27's restore data is its position; 6.3 accepts it too.
            let token = self.seed_kde_restore_token(&["0x0"], &[])?;
            self.store_zerocast_token("monitor", &token)?;
            if self.opts.painter_fps.is_some() {
                let painter = self.wait_kde_window(PAINTER_APP_ID, deadline)?;
                let token = self.seed_kde_restore_token(&[], &[&painter.id])?;
                self.store_zerocast_token("window", &token)?;
            }
        }
        Ok(())
    }

    fn write_kde_files(&self) -> Result<()> {
        write(
            &self.root.join("system-bus.conf"),
            &super::gnome::system_bus_conf(&self.runtime_dir.join("system_bus")),
        )?;
        // The distribution's kde.portal (its interface list differs between 5.27 and 6.3),
        // alone in the dir that xdg-desktop-portal reads.
        let kde_portal = fs::read_to_string("/usr/share/xdg-desktop-portal/portals/kde.portal")
            .unwrap_or_else(|_| {
                "[portal]\nDBusName=org.freedesktop.impl.portal.desktop.kde\n\
                 Interfaces=org.freedesktop.impl.portal.ScreenCast;\
                 org.freedesktop.impl.portal.GlobalShortcuts;\nUseIn=KDE\n"
                    .into()
            });
        write(&self.root.join("portals/kde.portal"), &kde_portal)?;
        let portals_conf = "[preferred]\ndefault=kde\n";
        write(
            &self.root.join("config/xdg-desktop-portal/kde-portals.conf"),
            portals_conf,
        )?;
        // A copy of kwin_wayland without its file capability (see the module docs).
        let kwin = self.root.join("bin/kwin_wayland");
        fs::create_dir_all(kwin.parent().unwrap_or(Path::new(".")))?;
        fs::copy("/usr/bin/kwin_wayland", &kwin).context("copying /usr/bin/kwin_wayland")?;
        Ok(())
    }

    fn spawn_kwin(&mut self, major: u32) -> Result<()> {
        let kwin = self.root.join("bin/kwin_wayland");
        let mut cmd = self.daemon_command(&kwin.to_string_lossy());
        cmd.args(["--virtual", "--no-lockscreen"])
            .arg("--socket")
            .arg(KDE_WAYLAND_DISPLAY)
            .arg("--width")
            .arg(self.opts.width.to_string())
            .arg("--height")
            .arg(self.opts.height.to_string());
        if major < 6 {
            // 5.27 talks to a separate kglobalaccel5 daemon, which nothing starts here.
            // 6.x runs kglobalaccel inside kwin: the global-shortcut tests need it.
            cmd.arg("--no-global-shortcuts");
        }
        let rules = if self.opts.debug {
            "kwin_*.debug=true;js.debug=true"
        } else {
            // KWin scripts print through these (windows are listed by a script).
            "kwin_scripting.debug=true;js.debug=true;qml.debug=true"
        };
        cmd.env("KWIN_WAYLAND_NO_PERMISSION_CHECKS", "1")
            .env("QT_QPA_PLATFORMTHEME", "generic")
            .env("QT_LOGGING_RULES", rules)
            .env(
                "DBUS_SYSTEM_BUS_ADDRESS",
                format!(
                    "unix:path={}",
                    self.runtime_dir.join("system_bus").display()
                ),
            )
            .env_remove("QT_QPA_PLATFORM")
            .env_remove("WAYLAND_DISPLAY");
        self.spawn(Component::Kwin, cmd)
    }

    /// Seeds a ScreenCast restore token in the permission store exactly as
    /// xdg-desktop-portal(-kde) stores one after the user picked these outputs (5.27: the
    /// output's position, "0x0") and windows (KWin `internalId`s) and allowed "remember".
    /// Data: `("KDE", 1, <QDataStream of QVariantMap {outputs: QVariantList<QString>,
    /// windows: QStringList}>)`. Returns the token.
    pub fn seed_kde_restore_token(&self, outputs: &[&str], windows: &[&str]) -> Result<String> {
        let payload = kde_restore_payload(outputs, windows);
        let token = super::gnome::uuid_v4()?;
        let mut args: Vec<String> = [
            "call",
            PERMISSION_STORE_BUS_NAME,
            "/org/freedesktop/impl/portal/PermissionStore",
            "org.freedesktop.impl.portal.PermissionStore",
            "Set",
            "sbsa{sas}v",
            "screencast",
            "true",
            &token,
            "1",
            "",
            "1",
            "yes",
            "(suv)",
            "KDE",
            "1",
            "ay",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push(payload.len().to_string());
        args.extend(payload.iter().map(|b| b.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.busctl("PermissionStore.Set", &args)?;
        Ok(token)
    }

    /// Loads `js` as the KWin script `name` and runs it (over D-Bus, `org.kde.kwin.Scripting`).
    /// It stays loaded (its shortcuts and signal handlers live) until
    /// [`Desktop::kwin_unload_script`]. Its `print`s land in kwin's log ([`Desktop::kwin_log`]).
    pub fn kwin_run_script(&self, name: &str, js: &str) -> Result<()> {
        let script = self.root.join(format!("kwin-script-{name}.js"));
        write(&script, js)?;
        let out = self.busctl(
            "Scripting.loadScript",
            &[
                "call",
                KWIN_BUS_NAME,
                "/Scripting",
                "org.kde.kwin.Scripting",
                "loadScript",
                "ss",
                &script.to_string_lossy(),
                name,
            ],
        )?;
        // "i 3"
        let id: i64 = out
            .trim()
            .strip_prefix("i ")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow!("loadScript answered {out:?}"))?;
        if id < 0 {
            bail!(
                "KWin did not load {} (is a script of that name loaded?)",
                script.display()
            );
        }
        // 6.x exports the script at /Scripting/Script<id>, 5.27 at /<id>.
        let mut errors = Vec::new();
        for path in [format!("/Scripting/Script{id}"), format!("/{id}")] {
            match self.busctl(
                "Script.run",
                &["call", KWIN_BUS_NAME, &path, "org.kde.kwin.Script", "run"],
            ) {
                Ok(_) => return Ok(()),
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        bail!("running KWin script {name}: {}", errors.join("; "))
    }

    pub fn kwin_unload_script(&self, name: &str) -> Result<()> {
        self.busctl(
            "Scripting.unloadScript",
            &[
                "call",
                KWIN_BUS_NAME,
                "/Scripting",
                "org.kde.kwin.Scripting",
                "unloadScript",
                "s",
                name,
            ],
        )
        .map(|_| ())
    }

    /// kwin's log so far (stdout + stderr): script `print`s appear as `js: ...` lines.
    pub fn kwin_log(&self) -> String {
        fs::read_to_string(self.logs_dir.join(Component::Kwin.log_name())).unwrap_or_default()
    }

    /// Waits until kwin's log holds `needle`; returns the log.
    pub fn wait_kwin_log(&self, needle: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.kwin_log();
            if text.contains(needle) {
                return Ok(text);
            }
            if Instant::now() > deadline {
                bail!(
                    "kwin's log has no {needle:?} after {timeout:?} ({})",
                    self.logs_dir.join(Component::Kwin.log_name()).display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The windows KWin manages now, through a KWin script (its `print`s land in kwin's log,
    /// tagged with a number unique to this call).
    pub fn kwin_windows(&self) -> Result<Vec<KwinWindow>> {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tag = format!("ZEROCAST-WIN-{}-{n}", std::process::id());
        let name = format!("zerocast-list-{n}");
        // 6.x: workspace.windowList(); 5.27: workspace.clientList().
        let js = format!(
            "var ws = workspace.windowList ? workspace.windowList() : workspace.clientList();\n\
             for (var i = 0; i < ws.length; i++)\n    \
             print(\"{tag} \" + ws[i].internalId + \"\\t\" + ws[i].resourceClass + \"\\t\" + ws[i].caption);\n\
             print(\"{tag} END\");\n"
        );
        let ran = self.kwin_run_script(&name, &js);
        let text =
            ran.and_then(|()| self.wait_kwin_log(&format!("{tag} END"), Duration::from_secs(10)));
        let _ = self.kwin_unload_script(&name);
        let text = text.context("listing KWin's windows")?;
        let prefix = format!("{tag} ");
        Ok(text
            .lines()
            .filter_map(|l| {
                let rest = &l[l.find(&prefix)? + prefix.len()..];
                let mut f = rest.splitn(3, '\t');
                let id = f.next()?.to_string();
                Some(KwinWindow {
                    id,
                    resource_class: f.next()?.to_string(),
                    caption: f.next().unwrap_or("").trim_end_matches('"').to_string(),
                })
            })
            .collect())
    }

    /// Waits until KWin manages a window of `app_id`, and returns it.
    pub fn wait_kde_window(&self, app_id: &str, deadline: Instant) -> Result<KwinWindow> {
        loop {
            let windows = self.kwin_windows()?;
            if let Some(w) = windows.iter().find(|w| w.resource_class == app_id) {
                return Ok(w.clone());
            }
            if Instant::now() > deadline {
                bail!("KWin has no window of {app_id}: {windows:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// KDE: how many windows of xdg-desktop-portal-kde (the chooser) are open now. A restored
    /// session opens none; an unrestored one keeps its chooser open (nobody clicks it).
    pub(super) fn kde_dialogs(&self) -> usize {
        self.kwin_windows()
            .map(|ws| {
                ws.iter()
                    .filter(|w| w.resource_class.contains("xdg-desktop-portal-kde"))
                    .count()
            })
            .unwrap_or(0)
    }

    /// The first line of this desktop's logs in which KWin (or the portal relaying it) refuses
    /// a cast ([`KWIN_CAST_REFUSALS`]), prefixed with the log's name.
    pub fn kde_cast_refusal(&self) -> Option<String> {
        fs::read_dir(self.logs_dir()).ok()?.flatten().find_map(|e| {
            let log = fs::read_to_string(e.path()).ok()?;
            log.lines()
                .find(|l| KWIN_CAST_REFUSALS.iter().any(|r| l.contains(r)))
                .map(|l| format!("{}: {}", e.file_name().to_string_lossy(), l.trim()))
        })
    }

    /// Invokes a global shortcut through kglobalaccel's D-Bus
    /// (`/component/<component>` `org.kde.kglobalaccel.Component.invokeShortcut(action)`), as
    /// KWin does when the key is pressed. KWin 6 only (5.27's kglobalaccel5 does not run here).
    /// `component` is the D-Bus path element: non-alphanumerics become `_`
    /// (`org.zerocast.Zerocast` → `org_zerocast_Zerocast`).
    pub fn kde_invoke_shortcut(&self, component: &str, action: &str) -> Result<()> {
        let path = format!("/component/{}", dbus_path_element(component));
        self.busctl(
            &format!("kglobalaccel invokeShortcut {path} {action}"),
            &[
                "call",
                KGLOBALACCEL_BUS_NAME,
                &path,
                "org.kde.kglobalaccel.Component",
                "invokeShortcut",
                "s",
                action,
            ],
        )?;
        Ok(())
    }

    /// The components kglobalaccel knows (D-Bus object paths, e.g.
    /// `/component/org_zerocast_Zerocast`).
    pub fn kde_shortcut_components(&self) -> Result<Vec<String>> {
        let out = self.busctl(
            "KGlobalAccel.allComponents",
            &[
                "call",
                KGLOBALACCEL_BUS_NAME,
                "/kglobalaccel",
                "org.kde.KGlobalAccel",
                "allComponents",
            ],
        )?;
        // "ao 2 "/component/kwin" "/component/x""
        Ok(out
            .split_whitespace()
            .filter_map(|w| w.strip_prefix('"')?.strip_suffix('"'))
            .map(str::to_string)
            .collect())
    }

    /// Presses `keys` (Linux evdev codes, e.g. 29 56 19 = Ctrl Alt R) together, in order, and
    /// releases them in reverse, through KWin's `org_kde_kwin_fake_input`: a real key press in
    /// KWin's input pipeline (global shortcuts see it). Returns when the keys were pressed
    /// (CLOCK_REALTIME, µs).
    pub fn kde_press_keys(&self, keys: &[u32]) -> Result<i64> {
        if self.opts.flavour != super::Flavour::Kde {
            bail!("kde_press_keys needs the KDE flavour");
        }
        crate::fake_input::press_keys(&self.runtime_dir.join(&self.wayland_display), keys)
    }
}

/// D-Bus object path elements allow `[A-Za-z0-9_]`; kglobalaccel replaces the rest with `_`.
fn dbus_path_element(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// QDataStream (big-endian, Qt 5 format) of `QVariantMap {outputs: QVariantList of QString,
/// windows: QStringList}`, what xdg-desktop-portal-kde keeps as restore data.
pub fn kde_restore_payload(outputs: &[&str], windows: &[&str]) -> Vec<u8> {
    fn qstring(out: &mut Vec<u8>, s: &str) {
        let utf16: Vec<u16> = s.encode_utf16().collect();
        out.extend_from_slice(&((utf16.len() * 2) as u32).to_be_bytes());
        for u in utf16 {
            out.extend_from_slice(&u.to_be_bytes());
        }
    }
    // A QVariant: type id (u32), is-null flag (u8), value.
    const QSTRING: u32 = 10;
    const QVARIANTLIST: u32 = 9;
    const QSTRINGLIST: u32 = 11;
    let mut p = Vec::new();
    p.extend_from_slice(&2u32.to_be_bytes());
    // QMap is written largest key first by Qt 5; the reader does not mind the order.
    qstring(&mut p, "windows");
    p.extend_from_slice(&QSTRINGLIST.to_be_bytes());
    p.push(0);
    p.extend_from_slice(&(windows.len() as u32).to_be_bytes());
    for w in windows {
        qstring(&mut p, w);
    }
    qstring(&mut p, "outputs");
    p.extend_from_slice(&QVARIANTLIST.to_be_bytes());
    p.push(0);
    p.extend_from_slice(&(outputs.len() as u32).to_be_bytes());
    for o in outputs {
        p.extend_from_slice(&QSTRING.to_be_bytes());
        p.push(0);
        qstring(&mut p, o);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_versions_parse() {
        assert_eq!(parse_debian_version("4:5.27.5-3"), Some((5, 27)));
        assert_eq!(parse_debian_version("4:6.3.6-1\n"), Some((6, 3)));
        assert_eq!(parse_debian_version(""), None);
    }

    #[test]
    fn restore_payload_matches_the_reference_script() {
        // seed-kde-token.py with outputs ["0x0"] and no windows.
        let p = kde_restore_payload(&["0x0"], &[]);
        let mut want = vec![0, 0, 0, 2, 0, 0, 0, 14];
        want.extend("windows".encode_utf16().flat_map(|u| u.to_be_bytes()));
        want.extend([0, 0, 0, 11, 0, 0, 0, 0, 0]);
        want.extend([0, 0, 0, 14]);
        want.extend("outputs".encode_utf16().flat_map(|u| u.to_be_bytes()));
        want.extend([0, 0, 0, 9, 0, 0, 0, 0, 1, 0, 0, 0, 10, 0, 0, 0, 0, 6]);
        want.extend("0x0".encode_utf16().flat_map(|u| u.to_be_bytes()));
        assert_eq!(p, want);
    }

    #[test]
    fn component_paths() {
        assert_eq!(
            dbus_path_element("org.zerocast.Zerocast"),
            "org_zerocast_Zerocast"
        );
    }
}
