//! The GNOME flavour: gnome-shell 43 (headless, software-rendered, `--unsafe-mode`) +
//! xdg-desktop-portal-gnome, with a restore token seeded in the permission store so that
//! `Start` never shows the share dialog (nobody could click it headless).
//!
//! What gnome-shell needs to run as root without a GPU or logind
//! (../shared/notes/gnome-headless.md):
//! - a system bus: a second private `dbus-daemon` (nothing has to answer on it);
//! - no `/run/systemd/seats`, or it takes the logind path: it runs in its own mount namespace
//!   with a tmpfs over `/run/systemd` (`unshare -m`, or `unshare -rm` when not root);
//! - dconf-service on the session bus, so GSettings writes (enabled extensions, keybindings)
//!   reach the shell; started by us like everything else.

use std::fs;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};

use super::{screencast_version, write, Component, Desktop, PERMISSION_STORE_BUS_NAME};

pub const SHELL_BUS_NAME: &str = "org.gnome.Shell";
pub const MUTTER_SCREENCAST_BUS_NAME: &str = "org.gnome.Mutter.ScreenCast";
pub const PORTAL_GNOME_BUS_NAME: &str = "org.freedesktop.impl.portal.desktop.gnome";
/// The Wayland socket gnome-shell is told to create (in the private runtime dir).
const GNOME_WAYLAND_DISPLAY: &str = "wayland-0";
const GNOME_MIN_TIMEOUT: Duration = Duration::from_secs(60);

/// JS run once the shell is up: leaves the overview (the shell opens it at start-up), and counts
/// the windows of xdg-desktop-portal-gnome (its PID is set once it runs) — the share dialog, the
/// GNOME equivalent of xdpw's chooser — closing each as soon as it is shown while
/// `__zerocastCancel` is set (what a user pressing Cancel does).
///
/// GNOME 45+ runs `Eval` inside the ES module `shellDBus.js`: `Main` is in scope there and
/// `imports.ui` is gone; 43's legacy module has `imports.ui.main`. On 48 every portal dialog
/// reports gnome-shell's PID (it is a service client), so dialogs are also known by their
/// `wm_class`.
const SHELL_SETUP_JS: &str = r#"
(function () {
    const M = typeof Main !== 'undefined' ? Main : imports.ui.main;
    if (!globalThis.__zerocastSetup) {
        globalThis.__zerocastSetup = true;
        globalThis.__zerocastDialogs = [];
        globalThis.__zerocastCancel = false;
        globalThis.__zerocastPortalPid = -1;
        // Stage paints: each one is a frame mutter can send to a screencast.
        globalThis.__zerocastPaints = 0;
        global.stage.connect('after-paint', () => {
            globalThis.__zerocastPaints++;
        });
        const isPortalDialog = w => w.get_pid() === globalThis.__zerocastPortalPid ||
            (w.get_wm_class() || '').includes('xdg-desktop-portal-gnome');
        global.display.connect('window-created', (_d, w) => {
            // The class may only be set once the window is shown.
            let counted = false;
            const check = shown => {
                if (!isPortalDialog(w))
                    return;
                if (!counted) {
                    counted = true;
                    globalThis.__zerocastDialogs.push(w.get_pid());
                }
                if (shown && globalThis.__zerocastCancel)
                    w.delete(global.get_current_time());
            };
            check(false);
            w.connect('shown', () => check(true));
        });
    }
    // Not while the start-up runs: on 48 hiding the overview the shell is animating into
    // keeps the start-up from ever finishing under a quick poll.
    if (M.layoutManager._startingUp)
        return 'starting';
    M.overview.hide();
    return 'ready';
})()
"#;

/// The installed gnome-shell's major version (`gnome-shell --version`: "GNOME Shell 48.7"),
/// read once. GNOME 45 moved the shell and its extensions to ES modules (Eval's scope, the
/// extension zip); 48 changed how portal dialogs are found and added GlobalShortcuts.
pub fn gnome_shell_major() -> Option<u32> {
    static V: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();
    *V.get_or_init(|| {
        let out = Command::new("gnome-shell")
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace()
            .last()?
            .split('.')
            .next()?
            .parse()
            .ok()
    })
}

/// JS for the shell's `Main` module in `Eval` on every version: in scope on 45+ (ESM
/// `shellDBus.js`), `imports.ui.main` on 43-44.
pub const SHELL_MAIN_JS: &str = "(typeof Main !== 'undefined' ? Main : imports.ui.main)";

impl Desktop {
    /// GNOME's counterpart of the sway bring-up in [`Desktop::bring_up`].
    pub(super) fn bring_up_gnome(&mut self, deadline: Instant) -> Result<()> {
        // gnome-shell alone takes 0.5 s on an idle machine but 5-10 s on a loaded 2-core one.
        let deadline = deadline.max(Instant::now() + GNOME_MIN_TIMEOUT);
        self.write_gnome_files()?;
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
        let cmd = self.daemon_command("/usr/libexec/dconf-service");
        self.spawn(Component::Dconf, cmd)?;

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
        self.wait_name(Component::Dconf, "ca.desrt.dconf", deadline)?;

        self.install_extensions()?;
        self.gnome_settings()?;
        self.spawn_gnome_shell()?;
        let socket = self.runtime_dir.join(GNOME_WAYLAND_DISPLAY);
        self.wait(
            Component::GnomeShell,
            deadline,
            "the Wayland socket",
            |_| Ok(UnixStream::connect(&socket).is_ok()),
        )?;
        self.wayland_display = GNOME_WAYLAND_DISPLAY.into();
        self.wait_name(Component::GnomeShell, SHELL_BUS_NAME, deadline)?;
        self.wait_name(Component::GnomeShell, MUTTER_SCREENCAST_BUS_NAME, deadline)?;
        // What Eval said last: a start-up that never ends says why (a JS error, say).
        let last = std::cell::RefCell::new(String::new());
        self.wait(
            Component::GnomeShell,
            deadline,
            "the shell's start-up",
            |d| {
                let r = d.shell_eval(SHELL_SETUP_JS);
                let ready = r.as_ref().is_ok_and(|r| r == "\"ready\"");
                *last.borrow_mut() = match r {
                    Ok(r) => r,
                    Err(e) => format!("{e:#}"),
                };
                Ok(ready)
            },
        )
        .with_context(|| format!("the set-up Eval last said: {}", last.borrow()))?;

        if let Some(fps) = self.opts.painter_fps {
            self.spawn_painter(fps)?;
        }

        if self.opts.portal {
            let cmd = self.daemon_command("/usr/libexec/xdg-permission-store");
            self.spawn(Component::PermissionStore, cmd)?;
            let mut cmd = self.daemon_command("/usr/libexec/xdg-desktop-portal-gnome");
            if self.opts.debug {
                cmd.arg("--verbose");
            }
            self.spawn(Component::PortalGnome, cmd)?;
            self.wait_name(
                Component::PermissionStore,
                PERMISSION_STORE_BUS_NAME,
                deadline,
            )?;
            self.wait_name(Component::PortalGnome, PORTAL_GNOME_BUS_NAME, deadline)?;
            let pid = self.pid(Component::PortalGnome).unwrap_or(0);
            self.shell_eval(&format!("globalThis.__zerocastPortalPid = {pid}"))?;
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
            if self.opts.restore_tokens {
                let token = self.seed_gnome_restore_token()?;
                self.store_zerocast_token("monitor", &token)?;
            }
        }

        self.wait_wireplumber(deadline)?;
        if self.opts.painter_fps.is_some() {
            let ready = self.root.join("painter.ready");
            self.wait(
                Component::Painter,
                deadline,
                "the painter's first frame",
                |_| Ok(ready.exists()),
            )?;
            // The painter's window may have raised the overview again or be animating in;
            // what is recorded must be the painter alone.
            let _ = self.shell_eval(SHELL_SETUP_JS);
        }
        Ok(())
    }

    fn write_gnome_files(&self) -> Result<()> {
        let o = &self.opts;
        // A second bus of the session type for the shell's system-bus clients (login manager,
        // power, network): none of them has to answer, the connection just has to succeed.
        write(
            &self.root.join("system-bus.conf"),
            &system_bus_conf(&self.runtime_dir.join("system_bus")),
        )?;
        // xdg-desktop-portal 1.16 picks backends by UseIn= among the files in this dir.
        // Only the interfaces the tests use, so no other backend is ever asked; GlobalShortcuts
        // where this xdg-desktop-portal-gnome has it (48+).
        let mut interfaces = String::from(
            "org.freedesktop.impl.portal.ScreenCast;org.freedesktop.impl.portal.Screenshot;\
             org.freedesktop.impl.portal.RemoteDesktop;",
        );
        let stock = fs::read_to_string("/usr/share/xdg-desktop-portal/portals/gnome.portal")
            .unwrap_or_default();
        if stock.contains("org.freedesktop.impl.portal.GlobalShortcuts") {
            interfaces.push_str("org.freedesktop.impl.portal.GlobalShortcuts;");
        }
        let gnome_portal = format!(
            "[portal]\nDBusName=org.freedesktop.impl.portal.desktop.gnome\n\
             Interfaces={interfaces}\nUseIn=gnome\n"
        );
        write(&self.root.join("portals/gnome.portal"), &gnome_portal)?;
        // GNOME 48's GlobalShortcuts backend asks gnome-control-center's provider (the
        // "Add Keyboard Shortcuts" dialog and the stored approvals): activatable on our bus
        // like the stock session bus makes it; nothing else of the stock service dir is.
        let provider =
            "/usr/share/dbus-1/services/org.gnome.Settings.GlobalShortcutsProvider.service";
        if let Ok(service) = fs::read_to_string(provider) {
            write(
                &self
                    .root
                    .join("dbus-services/org.gnome.Settings.GlobalShortcutsProvider.service"),
                &service,
            )?;
        }
        let portals_conf = "[preferred]\ndefault=gnome\n";
        write(
            &self
                .root
                .join("config/xdg-desktop-portal/gnome-portals.conf"),
            portals_conf,
        )?;
        // Mutter's monitor configuration is not needed: --virtual-monitor sizes the output.
        let _ = o;
        Ok(())
    }

    /// Settings the shell reads at start-up: no notification banners (as root the shell
    /// announces "Logged in as a privileged user" over the top of the screen, where the
    /// painter's counter is), no animations (cheaper under llvmpipe, and what is on screen is
    /// settled), no idle blanking or lock during long runs.
    fn gnome_settings(&self) -> Result<()> {
        for (schema, key, value) in [
            ("org.gnome.desktop.notifications", "show-banners", "false"),
            ("org.gnome.desktop.interface", "enable-animations", "false"),
            ("org.gnome.desktop.session", "idle-delay", "uint32 0"),
            ("org.gnome.desktop.screensaver", "lock-enabled", "false"),
        ] {
            let out = self
                .daemon_command("gsettings")
                .args(["set", schema, key, value])
                .stdin(Stdio::null())
                .output()
                .context("running gsettings")?;
            if !out.status.success() {
                bail!(
                    "gsettings set {schema} {key} {value}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
        Ok(())
    }

    /// Copies the extensions in [`super::DesktopOptions::gnome_extensions`] into
    /// `$XDG_DATA_HOME/gnome-shell/extensions/<uuid>/`, where the shell finds them at start-up.
    fn install_extensions(&self) -> Result<()> {
        for src in &self.opts.gnome_extensions {
            let meta = fs::read_to_string(src.join("metadata.json"))
                .with_context(|| format!("reading {}/metadata.json", src.display()))?;
            let uuid = json_string_field(&meta, "uuid")
                .ok_or_else(|| anyhow!("{}/metadata.json has no uuid", src.display()))?;
            let dest = self.root.join("data/gnome-shell/extensions").join(&uuid);
            copy_dir(src, &dest)?;
        }
        Ok(())
    }

    fn spawn_gnome_shell(&mut self) -> Result<()> {
        let hide_logind = "if [ -d /run/systemd ]; then mount -t tmpfs none /run/systemd || exit 97; fi; exec \"$@\"";
        let mut cmd = self.daemon_command("unshare");
        if super::is_root() {
            cmd.arg("-m");
        } else {
            // An unprivileged user may mount in a mount namespace of its own user namespace.
            cmd.args(["-r", "-m"]);
        }
        cmd.args(["sh", "-c", hide_logind, "sh", "gnome-shell"])
            .args(["--headless", "--wayland", "--no-x11", "--unsafe-mode"])
            .arg(format!("--wayland-display={GNOME_WAYLAND_DISPLAY}"))
            .arg(format!(
                "--virtual-monitor={}x{}",
                self.opts.width, self.opts.height
            ))
            .env(
                "DBUS_SYSTEM_BUS_ADDRESS",
                format!(
                    "unix:path={}",
                    self.runtime_dir.join("system_bus").display()
                ),
            )
            // No accessibility bus to find; don't look for one.
            .env("NO_AT_BRIDGE", "1")
            .env("GTK_A11Y", "none")
            .env_remove("WAYLAND_DISPLAY");
        if self.opts.debug {
            cmd.env("MUTTER_VERBOSE", "1").env("SHELL_DEBUG", "all");
        }
        self.spawn(Component::GnomeShell, cmd)
    }

    /// `org.gnome.Shell.Eval(js)`: the JSON of the result. Needs `--unsafe-mode` (always on
    /// here). Promises are not awaited (43).
    pub fn shell_eval(&self, js: &str) -> Result<String> {
        let out = self.busctl(
            "Eval failed",
            &[
                "--json=short",
                "call",
                SHELL_BUS_NAME,
                "/org/gnome/Shell",
                "org.gnome.Shell",
                "Eval",
                "s",
                js,
            ],
        )?;
        let v = parse_busctl_json(out.as_bytes())?;
        let ok = v["data"][0].as_bool().unwrap_or(false);
        let result = v["data"][1].as_str().unwrap_or("").to_string();
        if !ok {
            bail!("Eval threw: {result}");
        }
        Ok(result)
    }

    /// Seeds a ScreenCast restore token for the (only) virtual monitor in the permission
    /// store, exactly as xdg-desktop-portal would store it after the user picked that monitor
    /// in the share dialog and allowed "remember". Returns the token.
    fn seed_gnome_restore_token(&self) -> Result<String> {
        let out = self.busctl(
            "DisplayConfig.GetCurrentState",
            &[
                "--json=short",
                "call",
                "org.gnome.Mutter.DisplayConfig",
                "/org/gnome/Mutter/DisplayConfig",
                "org.gnome.Mutter.DisplayConfig",
                "GetCurrentState",
            ],
        )?;
        let v = parse_busctl_json(out.as_bytes())?;
        // (serial, monitors a((ssss)a(...)a{sv}), logical monitors, properties)
        let spec = &v["data"][1][0][0];
        let field = |i: usize| spec[i].as_str().unwrap_or("").to_string();
        if field(1).is_empty() {
            bail!("no monitor in DisplayConfig.GetCurrentState: {v}");
        }
        let match_string = format!("{}:{}:{}", field(1), field(2), field(3));
        let token = uuid_v4()?;
        let now_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)?
            .as_micros()
            .to_string();
        // Set(table, create, id, app_permissions a{sas}, data v) with data
        // ("GNOME", 1, <(created, last_used, [(stream id 0, type 1 = monitor, <match>)])>).
        let out = self
            .command("busctl")
            .args(["--user", "call", PERMISSION_STORE_BUS_NAME])
            .args([
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
                "GNOME",
                "1",
                "(xxa(uuv))",
                &now_us,
                &now_us,
                "1",
                "0",
                "1",
                "s",
                &match_string,
            ])
            .stdin(Stdio::null())
            .output()
            .context("running busctl")?;
        if !out.status.success() {
            bail!(
                "PermissionStore.Set: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(token)
    }

    /// Puts `token` where zerocast looks for a stored one
    /// (`$XDG_STATE_HOME/zerocast/restore-token-<source>`, 0600 in a 0700 dir).
    pub(super) fn store_zerocast_token(&self, source: &str, token: &str) -> Result<()> {
        use std::io::Write;
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let dir = self.root.join("state/zerocast");
        fs::create_dir_all(&dir)?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(dir.join(format!("restore-token-{source}")))?;
        f.write_all(token.as_bytes())?;
        Ok(())
    }

    /// GNOME: how many share dialogs the portal has opened (windows other than the painter).
    pub(super) fn gnome_dialogs(&self) -> usize {
        self.shell_eval("globalThis.__zerocastDialogs ? globalThis.__zerocastDialogs.length : 0")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    /// GNOME: how many times mutter has painted the stage so far (every frame a screencast
    /// can get); a baseline for frame counts measured in the same run.
    pub fn compositor_frames(&self) -> Result<u64> {
        let s = self.shell_eval("globalThis.__zerocastPaints")?;
        s.trim()
            .parse()
            .with_context(|| format!("stage paint count {s:?}"))
    }

    pub(super) fn gnome_cancel_dialogs(&self, cancel: bool) -> Result<()> {
        self.shell_eval(&format!("globalThis.__zerocastCancel = {cancel}"))
            .map(|_| ())
    }

    /// A screenshot through `org.gnome.Shell.Screenshot` (allowed in unsafe mode): what mutter
    /// shows, decoded from its PNG by ffmpeg.
    pub(super) fn gnome_screenshot(&self) -> Result<super::Screenshot> {
        let png = self.root.join(format!(
            "screenshot-{}.png",
            SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos()
        ));
        let out = self
            .command("busctl")
            .args([
                "--user",
                "call",
                SHELL_BUS_NAME,
                "/org/gnome/Shell/Screenshot",
            ])
            .args([
                "org.gnome.Shell.Screenshot",
                "Screenshot",
                "bbs",
                "false",
                "false",
            ])
            .arg(&png)
            .stdin(Stdio::null())
            .output()
            .context("running busctl")?;
        if !out.status.success() {
            bail!(
                "Shell.Screenshot: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while !png.exists() {
            if Instant::now() > deadline {
                bail!("Shell.Screenshot wrote no {}", png.display());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let ppm = Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(&png)
            .args([
                "-f",
                "image2pipe",
                "-vcodec",
                "ppm",
                "-pix_fmt",
                "rgb24",
                "-",
            ])
            .stdin(Stdio::null())
            .output()
            .context("running ffmpeg")?;
        let _ = fs::remove_file(&png);
        if !ppm.status.success() {
            bail!(
                "decoding the screenshot: {}",
                String::from_utf8_lossy(&ppm.stderr)
            );
        }
        super::Screenshot::from_ppm(&ppm.stdout)
    }

    /// Presses `keysyms` together (in order, released in reverse) through a mutter
    /// `org.gnome.Mutter.RemoteDesktop` session: the same input path as a remote-desktop client,
    /// so keybindings see a real key press. One gjs process keeps the session alive (mutter
    /// closes it when its caller leaves the bus). Returns when the keys were pressed
    /// (CLOCK_REALTIME, µs), for latency figures.
    pub fn press_keys(&self, keysyms: &[u32]) -> Result<i64> {
        let script = format!(
            r#"
const {{ Gio, GLib }} = imports.gi;
const bus = Gio.DBus.session;
function call(path, iface, method, args) {{
    return bus.call_sync('org.gnome.Mutter.RemoteDesktop', path, iface, method, args, null,
        Gio.DBusCallFlags.NONE, 5000, null);
}}
const [session] = call('/org/gnome/Mutter/RemoteDesktop', 'org.gnome.Mutter.RemoteDesktop',
    'CreateSession', null).deepUnpack();
const S = 'org.gnome.Mutter.RemoteDesktop.Session';
call(session, S, 'Start', null);
if ({warm_up}) {{
    // Mutter 45+ creates the session's virtual devices on the first event: keybindings see
    // that event, Wayland clients (which bind the keyboard after the capability change) do
    // not. A Shift tap and a 1 px move first, then time for clients to catch up.
    call(session, S, 'NotifyKeyboardKeysym', new GLib.Variant('(ub)', [0xffe1, true]));
    call(session, S, 'NotifyKeyboardKeysym', new GLib.Variant('(ub)', [0xffe1, false]));
    call(session, S, 'NotifyPointerMotionRelative', new GLib.Variant('(dd)', [1, 0]));
    GLib.usleep(500000);
}}
const keys = [{keys}];
print(GLib.get_real_time());
for (const k of keys)
    call(session, S, 'NotifyKeyboardKeysym', new GLib.Variant('(ub)', [k, true]));
// Injected events are queued and processed later: a loaded shell may not have seen them yet
// when the call returns, and stopping the session drops its device (and so its pressed keys).
GLib.usleep(100000);
for (const k of keys.slice().reverse())
    call(session, S, 'NotifyKeyboardKeysym', new GLib.Variant('(ub)', [k, false]));
GLib.usleep(500000);
call(session, S, 'Stop', null);
"#,
            warm_up = gnome_shell_major().is_some_and(|v| v >= 45),
            keys = keysyms
                .iter()
                .map(|k| k.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let out = self
            .command("gjs")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .output()
            .context("running gjs")?;
        if !out.status.success() {
            bail!(
                "RemoteDesktop key press failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        stdout
            .trim()
            .parse()
            .with_context(|| format!("gjs printed {stdout:?}"))
    }
}

/// A bus of the session type at `socket`, standing in for the system bus.
pub(super) fn system_bus_conf(socket: &Path) -> String {
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
        socket.display()
    )
}

fn parse_busctl_json(out: &[u8]) -> Result<serde_json::Value> {
    serde_json::from_slice(out).with_context(|| {
        format!(
            "parsing busctl's JSON: {}",
            String::from_utf8_lossy(out).trim()
        )
    })
}

/// A random UUID (what xdg-desktop-portal uses for tokens), from the kernel.
pub(super) fn uuid_v4() -> Result<String> {
    Ok(fs::read_to_string("/proc/sys/kernel/random/uuid")
        .context("reading /proc/sys/kernel/random/uuid")?
        .trim()
        .to_string())
}

fn json_string_field(json: &str, key: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    v[key].as_str().map(str::to_string)
}

fn copy_dir(src: &Path, dest: &Path) -> Result<()> {
    fs::create_dir_all(dest)?;
    for e in fs::read_dir(src)? {
        let e = e?;
        let to: PathBuf = dest.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &to)?;
        } else {
            fs::copy(e.path(), &to).with_context(|| format!("copying {}", e.path().display()))?;
        }
    }
    Ok(())
}
