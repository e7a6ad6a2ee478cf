//! Session services a desktop user has beside the compositor, for tests of the surfaces (tray,
//! notifications, opening files): a StatusNotifierWatcher, the `dunst` notification server,
//! a default handler that records what `xdg-open` was asked to open, and D-Bus activation.
//!
//! Kept apart from [`Desktop`]'s own components: they are started on demand by the tests that
//! need them, as [`SessionProc`]s (our children, ended by PID on drop, with the parent-death
//! signal like every desktop process).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::desktop::{spawn_with_pdeathsig, terminate};
use crate::Desktop;

pub const WATCHER_BUS_NAME: &str = "org.kde.StatusNotifierWatcher";
pub const NOTIFICATIONS_BUS_NAME: &str = "org.freedesktop.Notifications";

/// A process started beside a desktop. Dropping it sends SIGTERM (SIGKILL after 2 s) and reaps
/// it.
pub struct SessionProc {
    name: String,
    child: Child,
}

impl SessionProc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether it still runs (reaps it if not).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends `signal` without waiting.
    pub fn signal(&self, signal: i32) -> Result<()> {
        // SAFETY: kill(2) has no memory-safety preconditions; the PID is our unreaped child,
        // so it cannot have been recycled for another process.
        if unsafe { libc::kill(self.child.id() as libc::pid_t, signal) } != 0 {
            return Err(std::io::Error::last_os_error()).context(format!("kill {}", self.name));
        }
        Ok(())
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait()? {
                return Ok(s);
            }
            if Instant::now() > deadline {
                bail!("{} did not exit within {timeout:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for SessionProc {
    fn drop(&mut self) {
        terminate(&mut self.child, Duration::from_secs(2));
    }
}

/// Starts `cmd` (build it with [`Desktop::command`]) with its output in `logs/<name>.log`.
pub fn spawn(desk: &Desktop, name: &str, mut cmd: Command) -> Result<SessionProc> {
    let log_path = desk.logs_dir().join(format!("{name}.log"));
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let child = spawn_with_pdeathsig(cmd).with_context(|| format!("starting {name}"))?;
    Ok(SessionProc {
        name: name.to_owned(),
        child,
    })
}

/// Waits until `name` has an owner on the desktop's bus, or `proc` exits.
pub fn wait_for_name(
    desk: &Desktop,
    name: &str,
    proc: Option<&mut SessionProc>,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut proc = proc;
    loop {
        if desk.name_has_owner(name)? {
            return Ok(());
        }
        if let Some(p) = proc.as_deref_mut() {
            if !p.is_running() {
                bail!(
                    "{} exited before owning {name}; see {}",
                    p.name,
                    desk.logs_dir().join(format!("{}.log", p.name)).display()
                );
            }
        }
        if Instant::now() > deadline {
            bail!("{name} has no owner after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Debian's `status-notifier-watcher` (haskell-status-notifier-item-utils): the
/// `org.kde.StatusNotifierWatcher` service a panel runs. Items register with it through the
/// standard protocol; a test acting as the host must call `RegisterStatusNotifierHost`.
pub fn start_watcher(desk: &Desktop) -> Result<SessionProc> {
    let bin = "status-notifier-watcher";
    let mut p = spawn(desk, "status-notifier-watcher", desk.command(bin))
        .context("is haskell-status-notifier-item-utils installed? (scripts/install-deps.sh)")?;
    wait_for_name(
        desk,
        WATCHER_BUS_NAME,
        Some(&mut p),
        Duration::from_secs(10),
    )?;
    Ok(p)
}

/// A running `dunst` and where its context-menu choices are logged.
pub struct Dunst {
    pub proc: SessionProc,
    /// Each context menu dunst opened: the entries it offered, then `> chosen`.
    pub menu_log: PathBuf,
}

/// Starts `dunst` (a real notification server; it needs the desktop's Wayland display) with
/// a config that keeps notifications on screen until closed, and a "dmenu" that picks the
/// context-menu entry containing the text in `<dir>/dunst/choose` (so a test can invoke any
/// action, not only the default one).
pub fn start_dunst(desk: &Desktop) -> Result<Dunst> {
    let dir = desk.dir().join("dunst");
    fs::create_dir_all(&dir)?;
    let menu_log = dir.join("menu.log");
    let chooser = dir.join("dmenu.sh");
    write_executable(
        &chooser,
        &format!(
            "#!/bin/sh\n# dunst's context menu: offered entries on stdin, the choice on stdout.\n\
             entries=$(cat)\nwant=$(cat {choose})\nprintf '%s\\n' \"$entries\" >> {log}\n\
             pick=$(printf '%s\\n' \"$entries\" | grep -F -m1 -- \"$want\")\n\
             printf '> %s\\n' \"$pick\" >> {log}\nprintf '%s\\n' \"$pick\"\n",
            choose = dir.join("choose").display(),
            log = menu_log.display()
        ),
    )?;
    let config = dir.join("dunstrc");
    fs::write(
        &config,
        format!(
            "[global]\n    dmenu = {}\n    browser = /bin/false\n    follow = none\n\
             [urgency_low]\n    timeout = 0\n[urgency_normal]\n    timeout = 0\n\
             [urgency_critical]\n    timeout = 0\n",
            chooser.display()
        ),
    )?;
    let mut cmd = desk.command("dunst");
    cmd.arg("-config").arg(&config);
    let mut proc =
        spawn(desk, "dunst", cmd).context("is dunst installed? (scripts/install-deps.sh)")?;
    wait_for_name(
        desk,
        NOTIFICATIONS_BUS_NAME,
        Some(&mut proc),
        Duration::from_secs(10),
    )?;
    Ok(Dunst { proc, menu_log })
}

impl Dunst {
    /// Makes the next context menu pick the entry containing `text`.
    pub fn choose(&self, desk: &Desktop, text: &str) -> Result<()> {
        fs::write(desk.dir().join("dunst/choose"), text)?;
        Ok(())
    }
}

/// Runs `dunstctl ARGS` against the desktop's dunst; returns stdout.
pub fn dunstctl(desk: &Desktop, args: &[&str]) -> Result<String> {
    let out = desk
        .command("dunstctl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running dunstctl")?;
    if !out.status.success() {
        bail!(
            "dunstctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Makes a recording script the desktop's default application for videos and folders, the
/// way a user's file associations work (`$XDG_CONFIG_HOME/mimeapps.list` + a `.desktop` file
/// in `$XDG_DATA_HOME/applications`), so `xdg-open` runs it. Returns the file it appends each
/// call's arguments to.
pub fn install_default_handler(desk: &Desktop) -> Result<PathBuf> {
    let calls = desk.dir().join("opened.log");
    let script = desk.dir().join("open-handler.sh");
    write_executable(
        &script,
        &format!("#!/bin/sh\necho \"$@\" >> {}\n", calls.display()),
    )?;
    let types = [
        "video/x-matroska",
        "video/mp4",
        "video/webm",
        "inode/directory",
    ];
    let apps = desk.dir().join("data/applications");
    fs::create_dir_all(&apps)?;
    fs::write(
        apps.join("zerocast-test-open.desktop"),
        format!(
            "[Desktop Entry]\nType=Application\nName=zerocast test opener\nExec={} %f\n\
             MimeType={};\nNoDisplay=true\n",
            script.display(),
            types.join(";")
        ),
    )?;
    let mut list = String::from("[Default Applications]\n");
    for t in types {
        list.push_str(&format!("{t}=zerocast-test-open.desktop\n"));
    }
    fs::write(desk.dir().join("config/mimeapps.list"), list)?;
    Ok(calls)
}

/// Makes `name` D-Bus-activatable on the desktop's bus: `Exec=exec` in the bus's service dir,
/// then asks the bus to reload. The bus starts the process with its own environment (the
/// desktop's, without the Wayland display); it is the bus's child, not ours: end it through
/// [`kill_name_owner`].
pub fn install_activatable(desk: &Desktop, name: &str, exec: &str) -> Result<()> {
    fs::write(
        desk.dir()
            .join("dbus-services")
            .join(format!("{name}.service")),
        format!("[D-BUS Service]\nName={name}\nExec={exec}\n"),
    )?;
    desk.busctl(
        "ReloadConfig",
        &[
            "call",
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "ReloadConfig",
        ],
    )?;
    Ok(())
}

/// The PID of `name`'s owner on the desktop's bus.
pub fn name_owner_pid(desk: &Desktop, name: &str) -> Result<Option<u32>> {
    let out = desk
        .command("busctl")
        .args([
            "--user",
            "call",
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "GetConnectionUnixProcessID",
            "s",
            name,
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()?;
    if !out.status.success() {
        return Ok(None);
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .trim()
        .strip_prefix("u ")
        .and_then(|p| p.parse().ok()))
}

/// Sends `signal` to `name`'s owner (a bus-activated process is not our child) and, with
/// `wait`, waits until the name is released.
pub fn kill_name_owner(desk: &Desktop, name: &str, signal: i32, wait: Duration) -> Result<u32> {
    let pid = name_owner_pid(desk, name)?.with_context(|| format!("{name} has no owner"))?;
    // SAFETY: kill(2) has no memory-safety preconditions. The PID comes from the bus, which
    // only hands out live connections' PIDs; this is a private test bus.
    if unsafe { libc::kill(pid as libc::pid_t, signal) } != 0 {
        return Err(std::io::Error::last_os_error()).context(format!("kill {pid}"));
    }
    let deadline = Instant::now() + wait;
    while desk.name_has_owner(name)? {
        if Instant::now() > deadline {
            bail!("{name} (pid {pid}) still owned {wait:?} after signal {signal}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(pid)
}

fn write_executable(path: &Path, contents: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::write(path, contents).with_context(|| format!("writing {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))?;
    Ok(())
}
