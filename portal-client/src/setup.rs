//! What `zerocast probe` says about the portal set-up beyond ScreenCast's own properties: which
//! backends run (xdg-desktop-portal-gnome behaves differently from -wlr: it shows a share
//! dialog on every `Start` unless a stored restore token is accepted, and offers window
//! sources and the metadata cursor mode), and which restore tokens are stored.

use crate::{tokens, PortalError, RequestFailed, SourceType, Unreachable};

const IMPL_PREFIX: &str = "org.freedesktop.impl.portal.desktop.";

/// The portal backends running on the session bus (`gnome`, `wlr`, `kde`, `gtk`, …).
pub async fn running_backends() -> Result<Vec<String>, PortalError> {
    let conn = zbus::Connection::session()
        .await
        .map_err(Unreachable::bus)?;
    let dbus = zbus::fdo::DBusProxy::new(&conn)
        .await
        .map_err(Unreachable::bus)?;
    let names = dbus
        .list_names()
        .await
        .map_err(|e| PortalError::Failed(RequestFailed::BusDaemon(e)))?;
    let mut backends: Vec<String> = names
        .iter()
        .filter_map(|n| n.as_str().strip_prefix(IMPL_PREFIX).map(str::to_string))
        .collect();
    backends.sort();
    Ok(backends)
}

/// Source types with a stored restore token (no dialog next time, if the portal accepts it).
pub fn stored_tokens() -> Vec<SourceType> {
    let Some(dir) = tokens::state_dir() else {
        return Vec::new();
    };
    SourceType::ALL
        .iter()
        .copied()
        .filter(|s| tokens::load(&dir, *s).is_some())
        .collect()
}

/// A running program and the version its package manager gives for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// The process name (`/proc/PID/comm`), e.g. `gnome-shell`, `kwin_wayland`, `sway`.
    pub name: String,
    /// The executable's path (`/proc/PID/exe`).
    pub path: Option<String>,
    /// `package version` from dpkg / rpm / pacman, when one of them owns the executable.
    pub package: Option<String>,
}

impl std::fmt::Display for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.package {
            Some(p) => write!(f, "{} ({p})", self.name),
            None => write!(f, "{} (version unknown)", self.name),
        }
    }
}

/// The desktop the user is in: what `XDG_CURRENT_DESKTOP` says and the compositor that owns
/// the Wayland socket (found by the socket's peer credentials, so it is the compositor really
/// serving this session whatever the variables claim).
#[derive(Debug, Clone, Default)]
pub struct DesktopInfo {
    pub current_desktop: Option<String>,
    pub compositor: Option<Program>,
}

/// What [`DesktopInfo`] and the portal's processes are, for `zerocast probe`.
pub fn desktop() -> DesktopInfo {
    DesktopInfo {
        current_desktop: std::env::var("XDG_CURRENT_DESKTOP")
            .ok()
            .filter(|s| !s.is_empty()),
        compositor: wayland_peer_pid().and_then(program),
    }
}

/// The portal frontend and each backend with their versions: `(bus name suffix or
/// "xdg-desktop-portal", program)`.
pub async fn portal_programs() -> Result<Vec<(String, Program)>, PortalError> {
    let conn = zbus::Connection::session()
        .await
        .map_err(Unreachable::bus)?;
    let dbus = zbus::fdo::DBusProxy::new(&conn)
        .await
        .map_err(Unreachable::bus)?;
    let mut names: Vec<(String, String)> = vec![(
        "xdg-desktop-portal".into(),
        "org.freedesktop.portal.Desktop".into(),
    )];
    for b in running_backends().await? {
        names.push((b.clone(), format!("{IMPL_PREFIX}{b}")));
    }
    let mut out = Vec::new();
    for (label, name) in names {
        let Ok(bus_name) = zbus::names::BusName::try_from(name.as_str()) else {
            continue;
        };
        // Not running (the frontend is bus-activated on first use): nothing to report.
        let Ok(pid) = dbus.get_connection_unix_process_id(bus_name).await else {
            continue;
        };
        if let Some(p) = tokio::task::spawn_blocking(move || program(pid))
            .await
            .ok()
            .flatten()
        {
            out.push((label, p));
        }
    }
    Ok(out)
}

/// The PID of the process at the other end of `$XDG_RUNTIME_DIR/$WAYLAND_DISPLAY`.
fn wayland_peer_pid() -> Option<u32> {
    use std::os::fd::AsRawFd;
    let display = std::env::var("WAYLAND_DISPLAY").ok()?;
    let path = if display.starts_with('/') {
        std::path::PathBuf::from(display)
    } else {
        std::path::PathBuf::from(std::env::var_os("XDG_RUNTIME_DIR")?).join(display)
    };
    let sock = std::os::unix::net::UnixStream::connect(path).ok()?;
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `sock` is an open socket for the whole call; `cred` and `len` are valid for
    // writes and `len` holds `cred`'s size, as SO_PEERCRED requires.
    let r = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    (r == 0 && cred.pid > 0).then_some(cred.pid as u32)
}

/// Name, executable and package version of process `pid`.
fn program(pid: u32) -> Option<Program> {
    let name = std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()?
        .trim()
        .to_string();
    let path = std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned());
    let package = path.as_deref().and_then(package_of);
    Some(Program {
        name,
        path,
        package,
    })
}

/// `package version` of the package owning `path`, asked of dpkg, then rpm, then pacman.
fn package_of(path: &str) -> Option<String> {
    let run = |cmd: &str, args: &[&str]| -> Option<String> {
        let out = std::process::Command::new(cmd)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
            .filter(|s| !s.is_empty())
    };
    // dpkg knows the path it installed (/usr/bin/x), which may differ from the resolved
    // /proc/PID/exe only by the /usr merge: try both.
    let unmerged = path.strip_prefix("/usr").unwrap_or(path);
    for p in [path, unmerged] {
        if let Some(line) = run("dpkg-query", &["-S", p]) {
            let pkg = line.lines().next()?.split(':').next()?.trim().to_string();
            if let Some(v) = run("dpkg-query", &["-W", "-f=${Version}", &pkg]) {
                return Some(format!("{pkg} {v}"));
            }
        }
    }
    run(
        "rpm",
        &["-qf", "--qf", "%{NAME} %{VERSION}-%{RELEASE}", path],
    )
    .or_else(|| {
        // "PATH is owned by NAME VERSION"
        let line = run("pacman", &["-Qo", path])?;
        let words: Vec<&str> = line.split_whitespace().collect();
        (words.len() >= 2).then(|| words[words.len() - 2..].join(" "))
    })
}
