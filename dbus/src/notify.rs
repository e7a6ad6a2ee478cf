//! Desktop notifications when a recording ends, through `org.freedesktop.Notifications`.
//!
//! They come from the daemon, so recordings started by busctl, a keyboard shortcut or any other
//! client get them too. A small zbus proxy instead of notify-rust: notify-rust 4.19 pulls zbus 6,
//! a second zbus next to ours. No notification server is not an error: it is logged, and the
//! recording's outcome is unchanged.
//!
//! `Finished` → "Recording saved" with the file name, duration and size, and the actions Open
//! (also the default action: a click on the notification) and Show in folder
//! (`org.freedesktop.FileManager1.ShowItems` where a file manager provides it, else the folder
//! with the default handler). `Failed` → the error's D-Bus name and message.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures_util::StreamExt;
use tracing::{debug, info, warn};
use zbus::zvariant::Value;
use zbus::Connection;
use zerocast_client::human::size;

const NAME: &str = "org.freedesktop.Notifications";
const PATH: &str = "/org/freedesktop/Notifications";
const FILE_MANAGER: &str = "org.freedesktop.FileManager1";
/// A server that hangs must not leave tasks behind forever.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Notifications whose actions we still answer (older ones are forgotten first).
const KEEP: usize = 32;

const ACTION_OPEN: &str = "default";
const ACTION_SHOW: &str = "show-in-folder";

#[zbus::proxy(
    interface = "org.freedesktop.Notifications",
    default_service = "org.freedesktop.Notifications",
    default_path = "/org/freedesktop/Notifications"
)]
trait Notifications {
    #[allow(
        clippy::too_many_arguments,
        reason = "the Notify method of the freedesktop spec has eight arguments"
    )]
    fn notify(
        &self,
        app_name: &str,
        replaces_id: u32,
        app_icon: &str,
        summary: &str,
        body: &str,
        actions: &[&str],
        hints: HashMap<&str, Value<'_>>,
        expire_timeout: i32,
    ) -> zbus::Result<u32>;
}

/// How a recording ended, as far as a notification tells it.
#[derive(Debug, Clone)]
pub enum Outcome {
    Saved {
        path: PathBuf,
        duration: Duration,
        bytes: u64,
    },
    Failed {
        error_name: String,
        message: String,
        /// The file written up to the failure, if any (a lost stream keeps it).
        path: Option<PathBuf>,
    },
    /// A replay clip was written (the replay goes on).
    ReplaySaved {
        path: PathBuf,
        duration: Duration,
        bytes: u64,
    },
}

/// The daemon's notifications: sends them and answers their actions.
#[derive(Default)]
pub struct Notifier {
    /// Notification id → the file its actions act on, oldest first.
    files: Arc<Mutex<Vec<(u32, PathBuf)>>>,
    /// The ActionInvoked/NotificationClosed listener, started with the first notification.
    listening: OnceLock<()>,
}

impl Notifier {
    pub fn new() -> Self {
        Notifier::default()
    }

    /// Sends the notification for `outcome`; logs (and otherwise ignores) every failure.
    pub async fn recording_ended(&self, conn: &Connection, outcome: Outcome) {
        if let Err(e) = tokio::time::timeout(CALL_TIMEOUT, self.send(conn, outcome))
            .await
            .unwrap_or_else(|_| Err(zbus::Error::Failure("no answer within 10 s".into())))
        {
            match &e {
                zbus::Error::MethodError(name, _, _)
                    if name.as_str() == "org.freedesktop.DBus.Error.ServiceUnknown" =>
                {
                    info!("no notification server on the session bus; not notifying")
                }
                e => warn!(error = %e, "cannot send the notification"),
            }
        }
    }

    async fn send(&self, conn: &Connection, outcome: Outcome) -> zbus::Result<()> {
        if self.listening.set(()).is_ok() {
            // Subscribed before the first Notify, so no action can be missed.
            self.listen(conn.clone()).await?;
        }
        let (summary, body, file) = match &outcome {
            Outcome::Saved {
                path,
                duration,
                bytes,
            } => (
                "Recording saved".to_owned(),
                format!(
                    "{} — {}, {}",
                    escape(&file_name(path)),
                    clock(*duration),
                    size(*bytes)
                ),
                Some(path.clone()),
            ),
            Outcome::ReplaySaved {
                path,
                duration,
                bytes,
            } => (
                "Replay saved".to_owned(),
                format!(
                    "{} — last {}, {}",
                    escape(&file_name(path)),
                    clock(*duration),
                    size(*bytes)
                ),
                Some(path.clone()),
            ),
            Outcome::Failed {
                error_name,
                message,
                path,
            } => (
                "Recording failed".to_owned(),
                format!("{}: {}", escape(error_name), escape(message)),
                path.clone(),
            ),
        };
        let actions: &[&str] = if file.is_some() {
            &[ACTION_OPEN, "Open", ACTION_SHOW, "Show in folder"]
        } else {
            &[]
        };
        let hints = HashMap::from([
            // Matches data/org.zerocast.Zerocast.desktop (the app id): servers show our name
            // and icon.
            ("desktop-entry", Value::from("org.zerocast.Zerocast")),
            ("urgency", Value::U8(1)),
        ]);
        let proxy = NotificationsProxy::new(conn).await?;
        let id = proxy
            .notify(
                "zerocast", 0, "zerocast", &summary, &body, actions, hints, -1,
            )
            .await?;
        debug!(id, %summary, "notification sent");
        if let Some(f) = file {
            let mut files = self.files.lock().unwrap();
            files.push((id, f));
            let excess = files.len().saturating_sub(KEEP);
            files.drain(..excess);
        }
        Ok(())
    }

    async fn listen(&self, conn: Connection) -> zbus::Result<()> {
        let files = self.files.clone();
        let rule = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .sender(NAME)?
            .interface(NAME)?
            .path(PATH)?
            .build();
        let mut stream = zbus::MessageStream::for_match_rule(rule, &conn, Some(16)).await?;
        tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                let header = msg.header();
                match header.member().map(|m| m.as_str()) {
                    Some("ActionInvoked") => {
                        let Ok((id, key)) = msg.body().deserialize::<(u32, String)>() else {
                            continue;
                        };
                        let file = file_of(&files, id);
                        if let Some(file) = file {
                            info!(id, action = %key, file = %file.display(), "notification action");
                            run_action(&conn, &key, &file).await;
                        }
                    }
                    Some("NotificationClosed") => {
                        if let Ok((id, _reason)) = msg.body().deserialize::<(u32, u32)>() {
                            files.lock().unwrap().retain(|(i, _)| *i != id);
                        }
                    }
                    _ => {}
                }
            }
        });
        Ok(())
    }
}

fn file_of(files: &Mutex<Vec<(u32, PathBuf)>>, id: u32) -> Option<PathBuf> {
    files
        .lock()
        .unwrap()
        .iter()
        .find(|(i, _)| *i == id)
        .map(|(_, f)| f.clone())
}

async fn run_action(conn: &Connection, key: &str, file: &Path) {
    match key {
        ACTION_OPEN => open_with_default(file).await,
        ACTION_SHOW => {
            if let Err(e) = show_in_file_manager(conn, file).await {
                debug!(error = %e, "no FileManager1; opening the folder instead");
                open_with_default(file.parent().unwrap_or(Path::new("/"))).await;
            }
        }
        other => debug!(action = other, "unknown notification action"),
    }
}

/// `org.freedesktop.FileManager1.ShowItems`: the folder with the file selected. Only when a
/// file manager owns the name or can be activated for it.
async fn show_in_file_manager(conn: &Connection, file: &Path) -> anyhow::Result<()> {
    let dbus = zbus::fdo::DBusProxy::new(conn).await?;
    let name = zbus::names::BusName::try_from(FILE_MANAGER)?;
    let available = dbus.name_has_owner(name).await?
        || dbus
            .list_activatable_names()
            .await?
            .iter()
            .any(|n| n.as_str() == FILE_MANAGER);
    if !available {
        anyhow::bail!("{FILE_MANAGER} is not available");
    }
    conn.call_method(
        Some(FILE_MANAGER),
        "/org/freedesktop/FileManager1",
        Some(FILE_MANAGER),
        "ShowItems",
        &(vec![file_uri(file)], ""),
    )
    .await?;
    Ok(())
}

/// `xdg-open`: the user's default application for the file (or folder).
async fn open_with_default(target: &Path) {
    let child = tokio::process::Command::new("xdg-open")
        .arg(target)
        .stdin(std::process::Stdio::null())
        .spawn();
    match child {
        // Reaped here; xdg-open returns once the handler is started.
        Ok(mut c) => match c.wait().await {
            Ok(s) if s.success() => {}
            Ok(s) => warn!(target = %target.display(), status = %s, "xdg-open failed"),
            Err(e) => warn!(error = %e, "waiting for xdg-open"),
        },
        Err(e) => warn!(error = %e, "cannot run xdg-open (xdg-utils)"),
    }
}

/// `file://` URI with everything but unreserved characters and `/` percent-encoded.
pub fn file_uri(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut s = String::from("file://");
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// Notification bodies may carry markup: keep names literal.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

fn clock(d: Duration) -> String {
    zerocast_client::human::clock(d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_escapes() {
        assert_eq!(
            file_uri(Path::new("/home/u/My Clip#1.mkv")),
            "file:///home/u/My%20Clip%231.mkv"
        );
    }

    #[test]
    fn body_parts() {
        assert_eq!(escape("a<b>&c"), "a&lt;b&gt;&amp;c");
        assert_eq!(clock(Duration::from_secs(3725)), "1:02:05");
        assert_eq!(clock(Duration::from_millis(12_900)), "0:12");
        assert_eq!(size(3_400_000), "3.4 MB");
    }
}
