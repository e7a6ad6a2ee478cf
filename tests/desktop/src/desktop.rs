//! The headless desktop: private D-Bus + PipeWire + WirePlumber + sway (headless, pixman) +
//! painter + patched xdg-desktop-portal-wlr + xdg-desktop-portal, all in a private temp dir.
//! Other flavours: GNOME ([`gnome`]) and KDE ([`kde`]: kwin_wayland --virtual +
//! xdg-desktop-portal-kde).
//!
//! Every process is a child of this process (never `swaymsg exec`, never D-Bus activation), so
//! [`Desktop`]'s `Drop` can end each one by PID and reap it. Children also get
//! `PR_SET_PDEATHSIG(SIGKILL)`, so nothing outlives a test process that is killed outright.

use std::fmt;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::layout::Content;
use crate::painter::{PainterOptions, PainterThread};

mod gnome;
pub use gnome::{
    gnome_shell_major, MUTTER_SCREENCAST_BUS_NAME, PORTAL_GNOME_BUS_NAME, SHELL_BUS_NAME,
    SHELL_MAIN_JS,
};
mod kde;
pub use kde::{
    kde_monitor_cast_unsupported, kde_restore_payload, kde_window_cast_unsupported, kwin_version,
    KwinWindow, KDE5_MONITOR_CAST, KDE6_QPAINTER, KGLOBALACCEL_BUS_NAME, KWIN_BUS_NAME,
    KWIN_CAST_REFUSALS, PORTAL_KDE_BUS_NAME,
};

/// Which desktop runs: sway + xdg-desktop-portal-wlr, GNOME Shell + xdg-desktop-portal-gnome,
/// or KWin (`--virtual`) + xdg-desktop-portal-kde.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Flavour {
    #[default]
    Sway,
    Gnome,
    Kde,
}

impl Flavour {
    /// The flavours whose monitor casts record here (KDE's do not: [`kde_monitor_cast_unsupported`]).
    pub const ALL: [Flavour; 2] = [Flavour::Sway, Flavour::Gnome];

    pub fn name(self) -> &'static str {
        match self {
            Flavour::Sway => "sway",
            Flavour::Gnome => "gnome",
            Flavour::Kde => "kde",
        }
    }

    /// The lowest frame rate a 60 fps painter may be recorded at on a loaded 2-core machine:
    /// sway (pixman) composites every frame (~48-60 fps delivered); gnome-shell renders with
    /// llvmpipe at ~18 fps on an idle 2-core machine and ~4 fps when it is 8× oversubscribed,
    /// so on GNOME this floor only catches a stalled stream; tests that count frames compare
    /// with mutter's own paint count in the same run ([`Desktop::compositor_frames`]).
    pub fn min_recorded_fps(self) -> f64 {
        match self {
            Flavour::Sway => 33.0,
            Flavour::Gnome => 2.0,
            // KWin 5.27 renders with llvmpipe like mutter: ~20-30 fps of a window cast on an
            // idle 2-core machine, much less under load.
            Flavour::Kde => 2.0,
        }
    }
}

impl fmt::Display for Flavour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How the desktop is set up. `Default` is a 1280×720@120Hz output, the painter at 60 fps and
/// the portal with restore tokens.
#[derive(Debug, Clone)]
pub struct DesktopOptions {
    pub width: u32,
    pub height: u32,
    /// Output refresh. 120 by default: at 60 Hz xdpw's pacing delivers only ~48-50 fps of
    /// 60 fps content; at 120 Hz it delivers all 60.
    pub refresh_hz: u32,
    /// Painter content rate; `Some(0)` draws once and stays static (xdpw then sends no frames
    /// at all); `None` starts no painter.
    pub painter_fps: Option<u32>,
    /// What the painter draws: the counter strip (default) or full motion (benchmarks).
    pub painter_content: Content,
    /// Paint from a thread of this process instead of the `zerocast-painter` binary. Happens
    /// anyway when the binary is not found (crates using this library as a dev-dependency do
    /// not get our binaries built).
    pub painter_in_process: bool,
    /// Start xdg-desktop-portal + the patched xdpw (+ xdg-permission-store).
    pub portal: bool,
    /// `XDPW_PERSIST_MODE=permanent`, so that persist_mode=2 returns a restore token.
    pub restore_tokens: bool,
    /// Verbose logs: sway -d, xdpw -l DEBUG, WIREPLUMBER_DEBUG=3. Also on when the env var
    /// `ZEROCAST_TESTDESK_DEBUG` is set.
    pub debug: bool,
    /// Give up when the desktop is not ready after this long.
    pub timeout: Duration,
    /// sway, GNOME or KDE.
    pub flavour: Flavour,
    /// GNOME: extension directories (each with a metadata.json) installed into the data dir
    /// before the shell starts.
    pub gnome_extensions: Vec<PathBuf>,
    /// GNOME 48+: make gnome-control-center's global-shortcuts provider bus-activatable (the
    /// GlobalShortcuts portal needs it). Off by default: xdg-desktop-portal-gnome activates it
    /// at start-up, and an activated process is the bus's child, not ours.
    pub gnome_global_shortcuts: bool,
    /// Files written under the desktop's `XDG_CONFIG_HOME` before anything starts (path
    /// relative to it, contents): what a user's earlier sessions left there, e.g. the global
    /// shortcuts a user approved once in KDE's dialog (`kglobalshortcutsrc`).
    pub config_files: Vec<(PathBuf, String)>,
}

impl Default for DesktopOptions {
    fn default() -> Self {
        DesktopOptions {
            width: 1280,
            height: 720,
            refresh_hz: 120,
            painter_fps: Some(60),
            painter_content: Content::Strip,
            painter_in_process: false,
            portal: true,
            restore_tokens: true,
            debug: false,
            timeout: Duration::from_secs(20),
            flavour: Flavour::Sway,
            gnome_extensions: Vec::new(),
            gnome_global_shortcuts: false,
            config_files: Vec::new(),
        }
    }
}

/// The processes a desktop runs, in start order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Component {
    Dbus,
    PipeWire,
    WirePlumber,
    Sway,
    Painter,
    Xdpw,
    PermissionStore,
    Portal,
    /// GNOME: the second bus standing in for the system bus.
    SystemBus,
    /// GNOME: dconf-service (GSettings writes).
    Dconf,
    GnomeShell,
    PortalGnome,
    /// KDE: kwin_wayland --virtual.
    Kwin,
    /// KDE: xdg-desktop-portal-kde.
    PortalKde,
    /// KDE 5: kglobalaccel5, the global-shortcuts daemon (KWin 6 hosts it itself).
    Kglobalaccel,
}

impl Component {
    pub fn name(self) -> &'static str {
        match self {
            Component::Dbus => "dbus-daemon",
            Component::PipeWire => "pipewire",
            Component::WirePlumber => "wireplumber",
            Component::Sway => "sway",
            Component::Painter => "painter",
            Component::Xdpw => "xdpw",
            Component::PermissionStore => "permission-store",
            Component::Portal => "xdg-desktop-portal",
            Component::SystemBus => "system-bus",
            Component::Dconf => "dconf-service",
            Component::GnomeShell => "gnome-shell",
            Component::PortalGnome => "xdg-desktop-portal-gnome",
            Component::Kwin => "kwin_wayland",
            Component::PortalKde => "xdg-desktop-portal-kde",
            Component::Kglobalaccel => "kglobalaccel5",
        }
    }

    /// Log file name in [`Desktop::logs_dir`].
    pub fn log_name(self) -> String {
        format!("{}.log", self.name())
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Well-known bus names.
pub const PORTAL_BUS_NAME: &str = "org.freedesktop.portal.Desktop";
pub const XDPW_BUS_NAME: &str = "org.freedesktop.impl.portal.desktop.wlr";
pub const PERMISSION_STORE_BUS_NAME: &str = "org.freedesktop.impl.portal.PermissionStore";
/// The output sway creates with `WLR_HEADLESS_OUTPUTS=1`.
pub const OUTPUT_NAME: &str = "HEADLESS-1";

/// Variables that would make a child talk to the *outer* session; [`Desktop::command`] removes
/// them.
const ENV_REMOVE: &[&str] = &[
    "DISPLAY",
    "WAYLAND_SOCKET",
    "I3SOCK",
    "PIPEWIRE_REMOTE",
    "PIPEWIRE_CORE",
    "XDG_SEAT",
    "XDG_SESSION_ID",
    "XDG_VTNR",
    "DESKTOP_SESSION",
    "GNOME_SETUP_DISPLAY",
    // An outer Plasma session's; the KDE flavour sets its own.
    "KDE_FULL_SESSION",
    "KDE_SESSION_VERSION",
    "QT_QPA_PLATFORM",
];

struct Proc {
    component: Component,
    child: Child,
}

/// A running headless desktop. Dropping it ends every process it started.
pub struct Desktop {
    opts: DesktopOptions,
    /// `None` once the directory is kept (`keep_logs` or a panicking test).
    tempdir: Option<tempfile::TempDir>,
    root: PathBuf,
    runtime_dir: PathBuf,
    logs_dir: PathBuf,
    bus_address: String,
    wayland_display: String,
    procs: Vec<Proc>,
    painter_thread: Option<PainterThread>,
    keep: bool,
    startup: Duration,
}

impl Desktop {
    /// Starts the desktop. Returns once sway runs, the painter has presented its first frame,
    /// WirePlumber is up and (with `portal`) the portal answers on the bus with ScreenCast.
    ///
    /// A desktop whose start-up hangs (a component alive but never ready: gnome-shell 43 once
    /// stopped answering for a whole minute under CI's load, its log silent) is started afresh
    /// once; the first try's logs are kept and its hung threads printed. A component that exits
    /// or fails in any other way is not retried.
    pub fn start(opts: DesktopOptions) -> Result<Desktop> {
        match Desktop::start_once(opts.clone()) {
            Err(e) if e.chain().any(|c| c.downcast_ref::<TimedOut>().is_some()) => {
                eprintln!(
                    "zerocast-testdesk: {} desktop did not come up; starting a fresh one. \
                     First try: {e:#}",
                    opts.flavour
                );
                Desktop::start_once(opts)
                    .map_err(|e2| e2.context("a second try failed as well (the first is above)"))
            }
            r => r,
        }
    }

    fn start_once(opts: DesktopOptions) -> Result<Desktop> {
        let t0 = Instant::now();
        let base = std::env::var_os("ZEROCAST_TESTDESK_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/tmp"));
        // Short paths: Unix socket paths are limited to 108 bytes.
        let tempdir = tempfile::Builder::new()
            .prefix("zerocast-desk-")
            .tempdir_in(&base)
            .with_context(|| format!("creating a temp dir in {}", base.display()))?;
        let root = tempdir.path().to_path_buf();
        let runtime_dir = root.join("run");
        let logs_dir = root.join("logs");
        let mut desk = Desktop {
            bus_address: format!("unix:path={}", runtime_dir.join("bus").display()),
            opts,
            tempdir: Some(tempdir),
            root,
            runtime_dir,
            logs_dir,
            wayland_display: String::new(),
            procs: Vec::new(),
            painter_thread: None,
            keep: false,
            startup: Duration::ZERO,
        };
        if std::env::var_os("ZEROCAST_TESTDESK_DEBUG").is_some() {
            desk.opts.debug = true;
        }
        // On error `desk` is dropped here, which ends whatever was started and keeps the logs.
        match desk.bring_up(t0) {
            Ok(()) => {
                desk.startup = t0.elapsed();
                Ok(desk)
            }
            Err(e) => {
                desk.keep_logs();
                let logs = desk.log_tails();
                Err(e.context(format!(
                    "test desktop failed to start (logs kept in {}){logs}",
                    desk.logs_dir.display()
                )))
            }
        }
    }

    /// Starts a desktop with default options.
    pub fn start_default() -> Result<Desktop> {
        Desktop::start(DesktopOptions::default())
    }

    fn bring_up(&mut self, t0: Instant) -> Result<()> {
        let deadline = t0 + self.opts.timeout;
        self.write_files()?;
        match self.opts.flavour {
            Flavour::Gnome => return self.bring_up_gnome(deadline),
            Flavour::Kde => return self.bring_up_kde(deadline),
            Flavour::Sway => {}
        }
        self.spawn_session_bus(deadline)?;

        // PipeWire and sway are independent: start both, then wait for both.
        let mut cmd = self.daemon_command("pipewire");
        if self.opts.debug {
            cmd.env("PIPEWIRE_DEBUG", "3");
        }
        self.spawn(Component::PipeWire, cmd)?;
        self.spawn_sway()?;

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

        let runtime_dir = self.runtime_dir.clone();
        let mut display = String::new();
        self.wait(Component::Sway, deadline, "the Wayland socket", |_| {
            Ok(match find_wayland_socket(&runtime_dir) {
                Some(d) if UnixStream::connect(runtime_dir.join(&d)).is_ok() => {
                    display = d;
                    true
                }
                _ => false,
            })
        })?;
        self.wayland_display = display;

        if let Some(fps) = self.opts.painter_fps {
            self.spawn_painter(fps)?;
        }

        if self.opts.portal {
            let mut cmd = self.daemon_command(&xdpw_binary()?.to_string_lossy());
            cmd.args(["-l", if self.opts.debug { "DEBUG" } else { "INFO" }]);
            cmd.arg("-r"); // replace: harmless, and avoids a stale owner ever winning
            if self.opts.restore_tokens {
                cmd.env("XDPW_PERSIST_MODE", "permanent");
            }
            self.spawn(Component::Xdpw, cmd)?;
            let cmd = self.daemon_command("/usr/libexec/xdg-permission-store");
            self.spawn(Component::PermissionStore, cmd)?;
            self.wait_name(Component::Xdpw, XDPW_BUS_NAME, deadline)?;
            self.wait_name(
                Component::PermissionStore,
                PERMISSION_STORE_BUS_NAME,
                deadline,
            )?;

            let mut cmd = self.daemon_command("/usr/libexec/xdg-desktop-portal");
            if self.opts.debug {
                cmd.arg("--verbose");
            }
            // 1.16 has no portals.conf: it picks backends from the .portal files in this dir
            // by UseIn= and XDG_CURRENT_DESKTOP. Ours holds only wlr.portal.
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
        Ok(())
    }

    /// D-Bus first: PipeWire, WirePlumber and the portals connect to it at start-up.
    fn spawn_session_bus(&mut self, deadline: Instant) -> Result<()> {
        let bus_conf = self.root.join("dbus.conf");
        let mut cmd = self.daemon_command("dbus-daemon");
        cmd.arg(format!("--config-file={}", bus_conf.display()))
            .arg("--nofork")
            .arg("--nopidfile")
            .arg(format!("--address={}", self.bus_address));
        self.spawn(Component::Dbus, cmd)?;
        let bus_socket = self.runtime_dir.join("bus");
        self.wait(Component::Dbus, deadline, "the bus socket", |_| {
            Ok(UnixStream::connect(&bus_socket).is_ok())
        })
    }

    fn write_files(&self) -> Result<()> {
        for d in [
            "run",
            "logs",
            "config",
            "data",
            "state",
            "cache",
            "home",
            "portals",
            "dbus-services",
        ] {
            fs::create_dir_all(self.root.join(d))?;
        }
        // libwayland and PipeWire insist on a private runtime dir.
        fs::set_permissions(&self.runtime_dir, fs::Permissions::from_mode(0o700))?;

        let o = &self.opts;
        for (rel, contents) in &o.config_files {
            anyhow::ensure!(
                rel.is_relative(),
                "config file {} must be relative to XDG_CONFIG_HOME",
                rel.display()
            );
            let path = self.root.join("config").join(rel);
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir)?;
            }
            write(&path, contents)?;
        }
        write(
            &self.root.join("sway.conf"),
            &format!(
                "# zerocast test desktop\n\
                 output {OUTPUT_NAME} mode {}x{}@{}Hz\n\
                 output {OUTPUT_NAME} position 0 0\n\
                 xwayland disable\n\
                 swaybg_command -\n\
                 default_border none\n\
                 default_floating_border none\n\
                 focus_follows_mouse no\n\
                 # no swaybar, no swaybg, no swaynag: sway would spawn them, and we only\n\
                 # start processes whose PID we own.\n\
                 swaynag_command -\n",
                o.width, o.height, o.refresh_hz
            ),
        )?;
        write(
            &self.root.join("config/xdg-desktop-portal-wlr/config"),
            // The "simple" chooser runs a command that records each source selection, so tests
            // can tell a restored session (no selection) from a fresh one.
            // While the file `cancel-selection` exists the chooser prints nothing, which xdpw
            // treats as the user cancelling the dialog.
            &format!(
                "[screencast]\nchooser_type=simple\nchooser_cmd=test -e {cancel} && exit 1; echo picked >> {log}; echo {OUTPUT_NAME}\nmax_fps=0\n",
                log = self.root.join("chooser.log").display(),
                cancel = self.root.join("cancel-selection").display()
            ),
        )?;
        let wlr_portal = "[portal]\n\
            DBusName=org.freedesktop.impl.portal.desktop.wlr\n\
            Interfaces=org.freedesktop.impl.portal.Screenshot;org.freedesktop.impl.portal.ScreenCast;\n\
            UseIn=wlroots;sway;Wayfire;river;phosh;Hyprland;\n";
        write(&self.root.join("portals/wlr.portal"), wlr_portal)?;
        // xdg-desktop-portal >= 1.17 reads portals.conf instead of UseIn=.
        let portals_conf = "[preferred]\ndefault=wlr\norg.freedesktop.impl.portal.ScreenCast=wlr\n\
                            org.freedesktop.impl.portal.Screenshot=wlr\n";
        write(
            &self.root.join("config/xdg-desktop-portal/portals.conf"),
            portals_conf,
        )?;
        write(
            &self
                .root
                .join("config/xdg-desktop-portal/sway-portals.conf"),
            portals_conf,
        )?;
        // No <standard_session_servicedirs/>: nothing is ever bus-activated, so every process
        // on this bus is one we started and own.
        write(
            &self.root.join("dbus.conf"),
            &format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <keep_umask/>
  <listen>{}</listen>
  <auth>EXTERNAL</auth>
  <servicedir>{}</servicedir>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
                self.bus_address,
                self.root.join("dbus-services").display()
            ),
        )?;
        // Null sinks for the speakers and the microphone (crate::audio).
        write(
            &self
                .root
                .join("config/pipewire/pipewire.conf.d/50-zerocast-null-sinks.conf"),
            crate::audio::NULL_SINKS_CONF,
        )?;
        // Nothing to monitor on a headless box; skipping the monitors makes WirePlumber start
        // faster and log less.
        write(
            &self
                .root
                .join("config/wireplumber/wireplumber.conf.d/50-zerocast-testdesk.conf"),
            "wireplumber.profiles = {\n  main = {\n    monitor.alsa = disabled\n    \
             monitor.alsa-midi = disabled\n    monitor.bluez = disabled\n    \
             monitor.bluez-midi = disabled\n    monitor.v4l2 = disabled\n    \
             monitor.libcamera = disabled\n  }\n}\n",
        )?;
        Ok(())
    }

    fn spawn_sway(&mut self) -> Result<()> {
        // sway refuses to run as root ("Unable to drop root"); in a user namespace it is uid
        // 1000 inside but still root outside, so it can use our root-owned runtime dir.
        let mut cmd = if is_root() {
            let mut c = self.daemon_command("unshare");
            c.args(["--user", "--map-user=1000", "--", "sway"]);
            c
        } else {
            self.daemon_command("sway")
        };
        cmd.arg("-c").arg(self.root.join("sway.conf"));
        if self.opts.debug {
            cmd.arg("-d");
        }
        cmd.env("WLR_BACKENDS", "headless")
            .env("WLR_RENDERER", "pixman")
            .env("WLR_LIBINPUT_NO_DEVICES", "1")
            .env("WLR_HEADLESS_OUTPUTS", "1")
            .env_remove("WAYLAND_DISPLAY")
            .env_remove("SWAYSOCK");
        self.spawn(Component::Sway, cmd)
    }

    fn spawn_painter(&mut self, fps: u32) -> Result<()> {
        let ready = self.root.join("painter.ready");
        let bin = if self.opts.painter_in_process {
            None
        } else {
            painter_binary()
        };
        match bin {
            Some(bin) => {
                let mut cmd = self.daemon_command(&bin.to_string_lossy());
                cmd.arg("--fps")
                    .arg(fps.to_string())
                    .arg("--ready-file")
                    .arg(&ready);
                if self.opts.painter_content == Content::FullMotion {
                    cmd.arg("--full-motion");
                }
                if self.opts.flavour == Flavour::Kde {
                    // A window, so that it can be cast as one (KWin has layer-shell too).
                    cmd.arg("--toplevel");
                }
                self.spawn(Component::Painter, cmd)
            }
            None => {
                let socket = self.runtime_dir.join(&self.wayland_display);
                let opts = PainterOptions {
                    fps,
                    content: self.opts.painter_content,
                    ready_file: Some(ready),
                    toplevel: self.opts.flavour == Flavour::Kde,
                };
                self.painter_thread = Some(PainterThread::spawn(&socket, opts)?);
                Ok(())
            }
        }
    }

    fn wait_name(&mut self, c: Component, name: &str, deadline: Instant) -> Result<()> {
        let addr = self.bus_address.clone();
        self.wait(c, deadline, &format!("{name} on the bus"), |_| {
            name_has_owner(&addr, name)
        })
    }

    /// WirePlumber is ready once it has created the "default" metadata object; before that a
    /// screencast consumer would not get linked ("target not found").
    fn wait_wireplumber(&mut self, deadline: Instant) -> Result<()> {
        let env = self.env();
        self.wait(
            Component::WirePlumber,
            deadline,
            "WirePlumber's default metadata",
            |_| {
                let out = Command::new("pw-cli")
                    .args(["ls", "Metadata"])
                    .envs(env.iter().map(|(k, v)| (k, v)))
                    .stdin(Stdio::null())
                    .stderr(Stdio::null())
                    .output()
                    .context("running pw-cli")?;
                Ok(String::from_utf8_lossy(&out.stdout).contains("metadata.name = \"default\""))
            },
        )
    }

    /// Polls `ready` every 5 ms until it is true; fails when the component exits or the
    /// deadline passes.
    fn wait(
        &mut self,
        c: Component,
        deadline: Instant,
        what: &str,
        mut ready: impl FnMut(&mut Self) -> Result<bool>,
    ) -> Result<()> {
        loop {
            if ready(self)? {
                return Ok(());
            }
            if let Some(p) = self.procs.iter_mut().find(|p| p.component == c) {
                if let Some(status) = p.child.try_wait()? {
                    bail!("{c} exited ({status}) while waiting for {what}");
                }
            }
            if Instant::now() >= deadline {
                let threads = self.pid(c).map(threads_of).unwrap_or_default();
                return Err(TimedOut {
                    component: c.to_string(),
                    what: what.to_owned(),
                    threads,
                }
                .into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// A command for one of our daemons: the desktop's env plus HOME inside the temp dir.
    fn daemon_command(&self, program: &str) -> Command {
        let mut cmd = self.command(program);
        cmd.env("HOME", self.root.join("home"));
        cmd
    }

    fn spawn(&mut self, c: Component, mut cmd: Command) -> Result<()> {
        let log = fs::File::create(self.logs_dir.join(c.log_name()))?;
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let program = cmd.get_program().to_string_lossy().into_owned();
        let child =
            spawn_with_pdeathsig(cmd).with_context(|| format!("starting {c} ({program})"))?;
        self.procs.push(Proc {
            component: c,
            child,
        });
        Ok(())
    }

    /// The environment a client of this desktop needs. Apply all of it; see also
    /// [`Desktop::command`], which also removes variables pointing at an outer session.
    pub fn env(&self) -> Vec<(String, String)> {
        let p = |s: &str| self.root.join(s).to_string_lossy().into_owned();
        let mut env = vec![
            (
                "XDG_RUNTIME_DIR".into(),
                self.runtime_dir.to_string_lossy().into_owned(),
            ),
            ("DBUS_SESSION_BUS_ADDRESS".into(), self.bus_address.clone()),
            (
                "PIPEWIRE_RUNTIME_DIR".into(),
                self.runtime_dir.to_string_lossy().into_owned(),
            ),
            ("XDG_CONFIG_HOME".into(), p("config")),
            ("XDG_DATA_HOME".into(), p("data")),
            ("XDG_STATE_HOME".into(), p("state")),
            ("XDG_CACHE_HOME".into(), p("cache")),
            (
                "XDG_CURRENT_DESKTOP".into(),
                match self.opts.flavour {
                    Flavour::Sway => "sway",
                    Flavour::Gnome => "GNOME",
                    Flavour::Kde => "KDE",
                }
                .into(),
            ),
            (
                "XDG_SESSION_DESKTOP".into(),
                self.opts.flavour.name().into(),
            ),
            ("XDG_SESSION_TYPE".into(), "wayland".into()),
        ];
        if !self.wayland_display.is_empty() {
            env.push(("WAYLAND_DISPLAY".into(), self.wayland_display.clone()));
        }
        if self.opts.flavour == Flavour::Kde {
            env.push(("KDE_FULL_SESSION".into(), "true".into()));
            let major = kwin_version().map_or(5, |v| v.0);
            env.push(("KDE_SESSION_VERSION".into(), major.to_string()));
        }
        if let Some(sock) = self.swaysock() {
            env.push(("SWAYSOCK".into(), sock.to_string_lossy().into_owned()));
        }
        env
    }

    /// `program` with [`Desktop::env`] applied and any outer-session variables removed.
    /// `busctl --user <args>` on this desktop's bus: its stdout, or an error that starts with
    /// `what` and carries busctl's own message.
    pub fn busctl(&self, what: &str, args: &[&str]) -> Result<String> {
        let out = self
            .command("busctl")
            .arg("--user")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("running busctl")?;
        if !out.status.success() {
            bail!("{what}: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        for k in ENV_REMOVE {
            cmd.env_remove(k);
        }
        // Removed unless set below: never let a child reach the outer session by accident.
        for k in ["WAYLAND_DISPLAY", "SWAYSOCK"] {
            cmd.env_remove(k);
        }
        cmd.envs(self.env());
        cmd
    }

    /// sway's IPC socket (for `swaymsg`), once sway has created it.
    pub fn swaysock(&self) -> Option<PathBuf> {
        fs::read_dir(&self.runtime_dir)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("sway-ipc.") && n.ends_with(".sock"))
            })
    }

    /// The temp dir holding everything (runtime dir, configs, logs).
    pub fn dir(&self) -> &Path {
        &self.root
    }

    pub fn logs_dir(&self) -> &Path {
        &self.logs_dir
    }

    pub fn runtime_dir(&self) -> &Path {
        &self.runtime_dir
    }

    /// e.g. `unix:path=/tmp/zerocast-desk-XXXX/run/bus`
    pub fn bus_address(&self) -> &str {
        &self.bus_address
    }

    /// e.g. `wayland-1` (relative to [`Desktop::runtime_dir`]).
    pub fn wayland_display(&self) -> &str {
        &self.wayland_display
    }

    pub fn flavour(&self) -> Flavour {
        self.opts.flavour
    }

    pub fn options(&self) -> &DesktopOptions {
        &self.opts
    }

    /// How long [`Desktop::start`] took.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// PID of a running component (`None` if not started, stopped, or the painter runs on a
    /// thread).
    pub fn pid(&self, c: Component) -> Option<u32> {
        self.procs
            .iter()
            .find(|p| p.component == c)
            .map(|p| p.child.id())
    }

    /// Every process this desktop started and has not stopped yet, in start order.
    pub fn pids(&self) -> Vec<(Component, u32)> {
        self.procs
            .iter()
            .map(|p| (p.component, p.child.id()))
            .collect()
    }

    /// Stops one component (SIGTERM, SIGKILL after 2 s) and reaps it. Stopping
    /// [`Component::Portal`] leaves `org.freedesktop.portal.Desktop` without an owner, and
    /// since nothing is bus-activated here it stays that way: the "no portal" case.
    pub fn stop(&mut self, c: Component) -> Result<()> {
        if c == Component::Painter {
            if let Some(t) = self.painter_thread.take() {
                t.stop()?;
            }
        }
        if let Some(i) = self.procs.iter().position(|p| p.component == c) {
            let mut p = self.procs.remove(i);
            terminate(&mut p.child, Duration::from_secs(2));
        }
        Ok(())
    }

    /// Stops xdg-desktop-portal (see [`Desktop::stop`]).
    pub fn stop_portal(&mut self) -> Result<()> {
        self.stop(Component::Portal)
    }

    /// Sends `signal` to a component without waiting (e.g. SIGKILL pipewire to test
    /// recovery). The process is reaped on [`Desktop::stop`] or drop.
    pub fn signal(&self, c: Component, signal: i32) -> Result<()> {
        let pid = self.pid(c).ok_or_else(|| anyhow!("{c} is not running"))?;
        // SAFETY: kill(2) has no memory-safety preconditions; the PID is our unreaped child,
        // so it cannot have been recycled for another process.
        if unsafe { libc::kill(pid as libc::pid_t, signal) } != 0 {
            return Err(std::io::Error::last_os_error()).context(format!("kill {pid}"));
        }
        Ok(())
    }

    /// Whether a component's process has exited (it is reaped if so).
    pub fn has_exited(&mut self, c: Component) -> Result<bool> {
        match self.procs.iter_mut().find(|p| p.component == c) {
            Some(p) => Ok(p.child.try_wait()?.is_some()),
            None => Ok(true),
        }
    }

    /// Whether `name` has an owner on the desktop's bus.
    pub fn name_has_owner(&self, name: &str) -> Result<bool> {
        name_has_owner(&self.bus_address, name)
    }

    /// The portal's ScreenCast `version` property, `None` if the portal does not answer.
    pub fn screencast_version(&self) -> Result<Option<u32>> {
        screencast_version(&self.bus_address)
    }

    /// The ScreenCast version the frontend should announce on this desktop (it depends on the
    /// frontend's version and, from xdg-desktop-portal 1.21.2, on the backend's own version,
    /// read from the backend here): see [`frontend_screencast_version`].
    pub fn expected_screencast_version(&self) -> Option<u32> {
        let backend = match self.opts.flavour {
            Flavour::Sway => XDPW_BUS_NAME,
            Flavour::Gnome => gnome::PORTAL_GNOME_BUS_NAME,
            Flavour::Kde => kde::PORTAL_KDE_BUS_NAME,
        };
        let backend = version_property(
            &self.bus_address,
            backend,
            "org.freedesktop.impl.portal.ScreenCast",
        )
        .ok()
        .flatten();
        frontend_screencast_version(backend)
    }

    /// Takes a screenshot with `grim` (PPM) and returns it as packed RGB.
    pub fn screenshot(&self) -> Result<Screenshot> {
        match self.opts.flavour {
            Flavour::Gnome => return self.gnome_screenshot(),
            Flavour::Kde => bail!(
                "no screenshots on the KDE flavour (KWin's ScreenShot2 hands the image over a \
                 file descriptor); record the painter's window instead"
            ),
            Flavour::Sway => {}
        }
        let out = self
            .command("grim")
            .args(["-t", "ppm", "-"])
            .stdin(Stdio::null())
            .output()
            .context("running grim (is it installed? scripts/install-deps.sh)")?;
        if !out.status.success() {
            bail!("grim failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Screenshot::from_ppm(&out.stdout)
    }

    /// How many times the portal asked for a source (restored sessions do not ask).
    /// GNOME: how many share dialogs the portal opened. KDE: how many of the portal's chooser
    /// windows are open now (nobody closes them).
    pub fn source_selections(&self) -> usize {
        match self.opts.flavour {
            Flavour::Gnome => return self.gnome_dialogs(),
            Flavour::Kde => return self.kde_dialogs(),
            Flavour::Sway => {}
        }
        std::fs::read_to_string(self.root.join("chooser.log"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    /// Makes the next source selections fail as if the user cancelled the dialog.
    /// GNOME: share dialogs are closed as soon as they open (the user pressing Cancel).
    pub fn cancel_source_selection(&self, cancel: bool) -> Result<()> {
        match self.opts.flavour {
            Flavour::Gnome => return self.gnome_cancel_dialogs(cancel),
            Flavour::Kde => bail!("cancelling the chooser is not supported on the KDE flavour"),
            Flavour::Sway => {}
        }
        let flag = self.root.join("cancel-selection");
        if cancel {
            std::fs::write(&flag, b"")?;
        } else if flag.exists() {
            std::fs::remove_file(&flag)?;
        }
        Ok(())
    }

    /// Keep the temp dir (and its logs) after drop, and print where it is.
    pub fn keep_logs(&mut self) {
        self.keep = true;
    }

    /// The last lines of every log, for error messages.
    fn log_tails(&self) -> String {
        let mut s = String::new();
        for p in &self.procs {
            let tail = tail_file(&self.logs_dir.join(p.component.log_name()), 1500);
            if !tail.trim().is_empty() {
                s.push_str(&format!(
                    "\n--- {} (last lines) ---\n{}",
                    p.component,
                    tail.trim_end()
                ));
            }
        }
        s
    }

    fn teardown(&mut self) {
        if let Some(t) = self.painter_thread.take() {
            let _ = t.stop();
        }
        // Reverse start order: clients before the servers they use, the bus last.
        while let Some(mut p) = self.procs.pop() {
            terminate(&mut p.child, Duration::from_secs(2));
        }
    }
}

/// A component alive but not ready by the deadline.
#[derive(Debug)]
struct TimedOut {
    component: String,
    what: String,
    /// Its threads as the kernel saw them then (name, state, wait channel).
    threads: String,
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "timed out waiting for {} ({})",
            self.what, self.component
        )?;
        if !self.threads.is_empty() {
            write!(f, "; its threads: {}", self.threads)?;
        }
        Ok(())
    }
}

impl std::error::Error for TimedOut {}

/// `pid`'s threads, one `name:state:wchan` each: what a hung process waits on.
fn threads_of(pid: u32) -> String {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return String::new();
    };
    let mut out = Vec::new();
    for t in tasks.flatten() {
        let p = t.path();
        let read = |f: &str| fs::read_to_string(p.join(f)).unwrap_or_default();
        let stat = read("stat");
        // The state follows the parenthesised name, which may itself hold spaces.
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap_or("?")
            .to_owned();
        out.push(format!(
            "{}:{state}:{}",
            read("comm").trim(),
            read("wchan").trim()
        ));
    }
    out.join(" ")
}

impl Drop for Desktop {
    fn drop(&mut self) {
        self.teardown();
        let Some(dir) = self.tempdir.take() else {
            return;
        };
        if self.keep || std::thread::panicking() {
            let path = dir.keep();
            eprintln!(
                "zerocast-testdesk: kept logs in {}",
                path.join("logs").display()
            );
        }
        // Otherwise `dir` is dropped here and removed.
    }
}

/// A packed RGB image.
#[derive(Debug, Clone)]
pub struct Screenshot {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
}

impl Screenshot {
    /// Parses binary PPM (P6, maxval 255) as written by grim.
    pub fn from_ppm(data: &[u8]) -> Result<Screenshot> {
        let mut fields = Vec::new();
        let mut i = 0;
        while fields.len() < 4 {
            while i < data.len() && data[i].is_ascii_whitespace() {
                i += 1;
            }
            if i < data.len() && data[i] == b'#' {
                while i < data.len() && data[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            let start = i;
            while i < data.len() && !data[i].is_ascii_whitespace() {
                i += 1;
            }
            if start == i {
                bail!("truncated PPM header");
            }
            fields.push(std::str::from_utf8(&data[start..i])?.to_string());
        }
        i += 1; // the single whitespace byte after maxval
        if fields[0] != "P6" || fields[3] != "255" {
            bail!("unsupported PPM: {} maxval {}", fields[0], fields[3]);
        }
        let (width, height): (u32, u32) = (fields[1].parse()?, fields[2].parse()?);
        let len = width as usize * height as usize * 3;
        let rgb = data
            .get(i..i + len)
            .ok_or_else(|| anyhow!("truncated PPM data"))?
            .to_vec();
        Ok(Screenshot { width, height, rgb })
    }

    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let o = (y as usize * self.width as usize + x as usize) * 3;
        [self.rgb[o], self.rgb[o + 1], self.rgb[o + 2]]
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid(2) cannot fail and has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn write(path: &Path, contents: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}

fn find_wayland_socket(runtime_dir: &Path) -> Option<String> {
    fs::read_dir(runtime_dir).ok()?.flatten().find_map(|e| {
        let name = e.file_name().into_string().ok()?;
        let rest = name.strip_prefix("wayland-")?;
        rest.chars().all(|c| c.is_ascii_digit()).then_some(name)
    })
}

fn name_has_owner(bus_address: &str, name: &str) -> Result<bool> {
    let out = Command::new("busctl")
        .arg(format!("--address={bus_address}"))
        .args([
            "call",
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
        ])
        .args(["NameHasOwner", "s", name])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .context("running busctl")?;
    Ok(out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "b true")
}

fn screencast_version(bus_address: &str) -> Result<Option<u32>> {
    version_property(
        bus_address,
        PORTAL_BUS_NAME,
        "org.freedesktop.portal.ScreenCast",
    )
}

/// The `version` property of interface `iface` of `name` at the portal's object path.
fn version_property(bus_address: &str, name: &str, iface: &str) -> Result<Option<u32>> {
    let out = Command::new("busctl")
        .arg(format!("--address={bus_address}"))
        .args(["get-property", name, "/org/freedesktop/portal/desktop"])
        .args([iface, "version"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .context("running busctl")?;
    if !out.status.success() {
        return Ok(None);
    }
    // Output: "u 4"
    Ok(String::from_utf8_lossy(&out.stdout)
        .trim()
        .strip_prefix("u ")
        .and_then(|v| v.parse().ok()))
}

fn tail_file(path: &Path, max: u64) -> String {
    let Ok(mut f) = fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(max)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// SIGTERM, wait up to `grace`, then SIGKILL; always reaps.
pub(crate) fn terminate(child: &mut Child, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    // SAFETY: kill(2) has no memory-safety preconditions; the PID is our unreaped child, so it
    // cannot have been recycled for another process.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The installed xdg-desktop-portal's version, (major, minor, micro), from dpkg.
pub fn frontend_version() -> Option<(u32, u32, u32)> {
    static V: OnceLock<Option<(u32, u32, u32)>> = OnceLock::new();
    *V.get_or_init(|| {
        let v = deb_version("xdg-desktop-portal")?;
        Some((*v.first()?, *v.get(1)?, v.get(2).copied().unwrap_or(0)))
    })
}

/// The leading numbers of an installed Debian package's version ("1.22.1-2" → [1, 22, 1]).
fn deb_version(package: &str) -> Option<Vec<u32>> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", package])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let v = String::from_utf8_lossy(&out.stdout);
    let v = v.trim();
    let v = v.split_once(':').map_or(v, |(_epoch, v)| v);
    Some(
        v.split(['.', '-', '+', '~'])
            .map_while(|x| x.parse().ok())
            .collect(),
    )
}

/// The ScreenCast version the frontend announces over a backend of ScreenCast version
/// `backend`: 4 up to xdg-desktop-portal 1.16 (Debian 12), 5 from 1.18 (Debian 13) whatever the
/// backend, and from 1.21.2 (1.22: Debian unstable) the backend's own, capped at 6.
pub fn frontend_screencast_version(backend: Option<u32>) -> Option<u32> {
    let v = frontend_version()?;
    Some(if v >= (1, 21, 2) {
        backend?.min(6)
    } else if v >= (1, 18, 0) {
        5
    } else {
        4
    })
}

/// Where the patched xdpw is: `$ZEROCAST_XDPW`, else `<target>/xdpw/xdg-desktop-portal-wlr`
/// as installed by `scripts/build-xdpw.sh`.
pub fn xdpw_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("ZEROCAST_XDPW") {
        return Ok(p.into());
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let p = target.join("xdpw/xdg-desktop-portal-wlr");
    if p.exists() {
        Ok(p)
    } else {
        bail!(
            "patched xdg-desktop-portal-wlr not found at {}: run scripts/build-xdpw.sh \
             (or set ZEROCAST_XDPW)",
            p.display()
        )
    }
}

/// The (major, minor) version of the xdpw the sway flavour runs: a packaged binary's (under
/// /usr: its Debian package's version, from dpkg), else the patched 0.7 that
/// `scripts/build-xdpw.sh` builds. xdpw has no `--version`.
pub fn xdpw_version() -> Option<(u32, u32)> {
    let bin = xdpw_binary().ok()?;
    if !bin.starts_with("/usr") {
        return Some((0, 7));
    }
    let v = deb_version("xdg-desktop-portal-wlr")?;
    Some((*v.first()?, *v.get(1)?))
}

/// The workspace root, from this crate's manifest dir at compile time (tests/desktop).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// The painter binary: `$ZEROCAST_PAINTER`, else next to the current executable or one level
/// up (test binaries live in target/<profile>/deps/). `None`: paint from a thread instead.
pub fn painter_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ZEROCAST_PAINTER") {
        return Some(p.into());
    }
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    [
        dir.join("zerocast-painter"),
        dir.parent()?.join("zerocast-painter"),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Spawns `cmd` with PR_SET_PDEATHSIG(SIGKILL), from one long-lived thread.
///
/// Why a thread: the parent-death signal fires when the *thread* that forked the child exits,
/// not the process. Tests run on short-lived threads, and a Desktop may outlive the thread that
/// created it (e.g. one kept in a static), so forking from a test thread would kill the
/// desktop when that test's thread ends.
pub(crate) fn spawn_with_pdeathsig(cmd: Command) -> std::io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("zerocast-testdesk-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    set_pdeathsig(&mut cmd);
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawning the spawner thread");
        Mutex::new(tx)
    });
    let (tx, rx) = mpsc::channel();
    spawner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((cmd, tx))
        .map_err(|_| std::io::Error::other("spawner thread is gone"))?;
    rx.recv()
        .map_err(|_| std::io::Error::other("spawner thread is gone"))?
}

fn set_pdeathsig(cmd: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec and only calls prctl(2) and
    // getppid(2), both async-signal-safe; it allocates nothing and touches no locks.
    unsafe {
        let parent = libc::getpid();
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl; then nobody would ever kill us.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}
