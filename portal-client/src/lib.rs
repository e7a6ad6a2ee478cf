//! xdg-desktop-portal ScreenCast client: session lifecycle, restore tokens, error mapping.
//!
//! API CONTRACT (bodies being implemented): `ScreencastSession::open` runs CreateSession →
//! SelectSources → Start → OpenPipeWireRemote and returns the session (keep it alive while
//! recording; dropping/closing it ends the cast) and the stream to connect PipeWire to.

use std::fmt;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use ashpd::desktop::screencast::{
    CursorMode as AshpdCursor, Screencast, SelectSourcesOptions, SourceType as AshpdSource,
};
use ashpd::desktop::PersistMode;
use ashpd::enumflags2::BitFlags;

pub mod setup;
pub mod shortcuts;
pub mod tokens;

/// How the pointer appears in the capture (portal `cursor_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CursorMode {
    Hidden,
    #[default]
    Embedded,
    Metadata,
}

/// What the portal is asked to capture (portal `types`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SourceType {
    #[default]
    Monitor,
    Window,
    Virtual,
}

use zerocast_strenum::str_enum;

str_enum!(CursorMode, "cursor mode", { Hidden => "hidden", Embedded => "embedded", Metadata => "metadata" });
str_enum!(SourceType, "source", { Monitor => "monitor", Window => "window", Virtual => "virtual" });

/// What to ask the portal for.
#[derive(Debug, Clone, Default)]
pub struct SourceOptions {
    pub source: SourceType,
    pub cursor: CursorMode,
    /// Use a stored restore token and keep the new one (no dialog next time).
    pub restore: bool,
}

/// The stream to record: connect PipeWire with `fd` and target `node_id`.
#[derive(Debug)]
pub struct Stream {
    pub fd: OwnedFd,
    pub node_id: u32,
    pub size: Option<(u32, u32)>,
    /// The monitor's position in the desktop (logical units), if the portal said.
    pub position: Option<(i32, i32)>,
    /// True when a stored restore token was accepted (no source selection happened).
    pub restored: bool,
    /// What the portal says the stream is (monitor, window, virtual), if it said (logged; see
    /// `Stream::record` for why it is not compared).
    pub kind: Option<SourceType>,
}

/// Something about a started session the user should know, by name (the daemon's `Warnings`
/// property shows it; the log has it as `name: message`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub name: &'static str,
    pub message: String,
}

/// A restored session records another source than the one chosen when its token was stored.
pub const RESTORED_SOURCE_DIFFERS: &str = "restored-source-differs";

impl Stream {
    /// What to store with the token: the type asked for, and for a monitor its place and size
    /// in the desktop (a window's size changes as the user works: not compared). The type is
    /// the one asked (one type per request, `multiple` false), not the stream's
    /// `source_type`: through ashpd 0.13, xdg-desktop-portal-wlr 0.7's monitor streams read
    /// as `Window` (seen on the sway test desktop), so that field is only logged.
    fn record(&self, asked: SourceType) -> tokens::SourceRecord {
        let monitor = asked == SourceType::Monitor;
        tokens::SourceRecord {
            kind: Some(asked),
            position: self.position.filter(|_| monitor),
            size: self.size.filter(|_| monitor),
        }
    }
}

/// The warning for a restored session whose source is not the `chosen` one (as stored with the
/// token), if it is not.
pub fn restore_check(
    chosen: &tokens::SourceRecord,
    restored: &tokens::SourceRecord,
) -> Option<Warning> {
    let what = chosen.differences(restored);
    (!what.is_empty()).then(|| Warning {
        name: RESTORED_SOURCE_DIFFERS,
        message: format!(
            "the restored screen-cast source is {restored}, but {chosen} was chosen when its \
             restore token was stored ({} differs: the desktop's layout changed?); record with \
             --no-restore (D-Bus 'restore': false) to choose the source again, or run \
             `zerocast ctl forget-sources` so that the next recording asks and remembers the \
             new choice",
            what.join(", ")
        ),
    })
}

/// What the portal on this bus offers.
#[derive(Debug, Clone)]
pub struct PortalCapabilities {
    pub version: u32,
    pub cursor_modes: Vec<CursorMode>,
    pub source_types: Vec<SourceType>,
}

/// Portal failures, each a distinct case the user can act on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PortalError {
    #[error("xdg-desktop-portal is not available: {0}")]
    Unavailable(#[source] Unreachable),
    #[error("the screen-cast request was cancelled")]
    Cancelled,
    #[error("this xdg-desktop-portal has no ScreenCast support (no backend for this desktop?)")]
    ScreenCastUnsupported,
    #[error("the portal does not offer {what} '{value}' (available: {available})")]
    Unsupported {
        what: &'static str,
        value: String,
        available: String,
    },
    #[error("portal request failed: {0}")]
    Failed(#[source] RequestFailed),
}

/// Why the portal cannot be reached ([`PortalError::Unavailable`]). The bus errors are the
/// `source()` (behind `Arc`: `PortalError` is `Clone`, zbus' and ashpd's errors are not);
/// each message reads as the error's own, as before they were kept typed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Unreachable {
    /// Opening the recording's connection to the session bus failed.
    #[error("cannot connect to the D-Bus session bus: {0}")]
    SessionBus(#[source] Arc<zbus::Error>),
    /// A call to the bus daemon failed (also the connection of `zerocast probe`'s set-up reads).
    #[error("{0}")]
    Bus(#[source] Arc<zbus::Error>),
    /// The portal answered reading its ScreenCast version with an error.
    #[error("{0}")]
    Portal(#[source] zbus::fdo::Error),
    #[error(
        "{PORTAL_NAME} is not running on the session bus and cannot be activated \
         (install and start xdg-desktop-portal and a backend for your desktop)"
    )]
    NotRunning,
}

/// Why a portal request failed ([`PortalError::Failed`]).
#[derive(Debug, Clone, thiserror::Error)]
pub enum RequestFailed {
    #[error("Start returned no streams")]
    NoStreams,
    #[error("the portal refused the request")]
    Refused,
    #[error("{0}")]
    Bus(#[source] Arc<zbus::Error>),
    #[error("{0}")]
    BusDaemon(#[source] zbus::fdo::Error),
    #[error("{0}")]
    Portal(#[source] Arc<ashpd::Error>),
}

impl Unreachable {
    pub(crate) fn bus(e: zbus::Error) -> PortalError {
        PortalError::Unavailable(Unreachable::Bus(Arc::new(e)))
    }
}

impl RequestFailed {
    pub(crate) fn bus(e: zbus::Error) -> PortalError {
        PortalError::Failed(RequestFailed::Bus(Arc::new(e)))
    }
}

/// An open ScreenCast session. Keep it alive for as long as the stream is recorded.
pub struct ScreencastSession {
    session: ashpd::desktop::Session<Screencast>,
    _proxy: Screencast,
    warnings: Vec<Warning>,
}

const PORTAL_NAME: &str = "org.freedesktop.portal.Desktop";
const SCREENCAST_IFACE: &str = "org.freedesktop.portal.ScreenCast";

/// How long ending a cast waits for the portal's answer (see [`ScreencastSession::close`]).
const CLOSE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

/// How long a portal request goes unanswered before the user is told that it is still waited on.
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// Awaits `fut`, logging `what` once if it takes longer than [`PATIENCE`].
async fn patiently<F: std::future::Future>(fut: F, what: &str) -> F::Output {
    tokio::pin!(fut);
    tokio::select! {
        out = &mut fut => return out,
        _ = tokio::time::sleep(PATIENCE) => tracing::warn!(after_s = PATIENCE.as_secs(), "{what}"),
    }
    fut.await
}

impl ScreencastSession {
    /// CreateSession → SelectSources → Start → OpenPipeWireRemote.
    ///
    /// With `opts.restore`, a stored token is offered first; if the portal refuses it the whole
    /// exchange is retried once without a token (a token is single-use and may be stale).
    pub async fn open(opts: &SourceOptions) -> Result<(ScreencastSession, Stream), PortalError> {
        let conn = connect().await?;
        let proxy = screencast_proxy(&conn).await?;
        check_modes(&proxy, opts).await?;
        let dir = if opts.restore {
            tokens::state_dir()
        } else {
            None
        };
        let stored = dir.as_deref().and_then(|d| tokens::load(d, opts.source));
        let token = stored.as_ref().map(|s| s.token.clone());
        let result = match token {
            Some(token) => {
                match Self::attempt(&proxy, opts, Some(&token)).await {
                    Ok(ok) => Ok(ok),
                    // Cancelled is the user's answer, not a token problem: don't ask twice.
                    Err(PortalError::Cancelled) => Err(PortalError::Cancelled),
                    Err(e) => {
                        tracing::info!(error = %e, "restore token refused, asking without it");
                        Self::attempt(&proxy, opts, None).await
                    }
                }
            }
            None => Self::attempt(&proxy, opts, None).await,
        };
        let (session, stream, new_token) = result?;
        let mut warnings = Vec::new();
        // The record kept with the token is the source the user chose in a dialog: a restored
        // session is compared with it and does not replace it, so the warning stays until the
        // user chooses again. (A token stored before records existed adopts the source it
        // restores.)
        let chosen = stored.and_then(|s| s.source).filter(|_| stream.restored);
        let record = match chosen {
            Some(chosen) => {
                if let Some(w) = restore_check(&chosen, &stream.record(opts.source)) {
                    tracing::warn!("{}: {}", w.name, w.message);
                    warnings.push(w);
                }
                chosen
            }
            None => stream.record(opts.source),
        };
        if let (Some(dir), Some(new_token)) = (dir.as_deref(), new_token) {
            if let Err(e) = tokens::store(dir, opts.source, &new_token, Some(&record)) {
                tracing::warn!(error = %e, dir = %dir.display(), "could not store restore token");
            }
        }
        Ok((
            ScreencastSession {
                session,
                _proxy: proxy,
                warnings,
            },
            stream,
        ))
    }

    async fn attempt(
        proxy: &Screencast,
        opts: &SourceOptions,
        token: Option<&str>,
    ) -> Result<(ashpd::desktop::Session<Screencast>, Stream, Option<String>), PortalError> {
        let session = proxy
            .create_session(Default::default())
            .await
            .map_err(map_err)?;
        let persist = if opts.restore {
            PersistMode::ExplicitlyRevoked
        } else {
            PersistMode::DoNot
        };
        let select = SelectSourcesOptions::default()
            .set_cursor_mode(to_ashpd_cursor(opts.cursor))
            .set_sources(BitFlags::from(to_ashpd_source(opts.source)))
            .set_multiple(false)
            .set_persist_mode(persist)
            .set_restore_token(token);
        proxy
            .select_sources(&session, select)
            .await
            .and_then(|r| r.response())
            .map_err(map_err)?;
        // Start is where the desktop asks the user (a share dialog): it may take as long as
        // they like, so there is no timeout, but a silent wait looks like a hang (KWin 6.7
        // without GPU compositing refuses the cast and its portal never answers).
        let streams = patiently(
            proxy.start(&session, None, Default::default()),
            "still waiting for the desktop to answer the screen-share request (its dialog may \
             be open; Ctrl-C or Stop cancels)",
        )
        .await
        .and_then(|r| r.response())
        .map_err(map_err)?;
        let first = streams
            .streams()
            .first()
            .ok_or(PortalError::Failed(RequestFailed::NoStreams))?;
        let node_id = first.pipe_wire_node_id();
        let size = first
            .size()
            .and_then(|(w, h)| Some((u32::try_from(w).ok()?, u32::try_from(h).ok()?)));
        let position = first.position();
        let kind = first.source_type().map(from_ashpd_source);
        let new_token = streams.restore_token().map(str::to_string);
        let fd = proxy
            .open_pipe_wire_remote(&session, Default::default())
            .await
            .map_err(map_err)?;
        tracing::info!(
            node_id,
            ?size,
            ?position,
            ?kind,
            restored = token.is_some(),
            "portal stream started"
        );
        Ok((
            session,
            Stream {
                fd,
                node_id,
                size,
                position,
                restored: token.is_some(),
                kind,
            },
            new_token,
        ))
    }

    /// What the user should know about this session (a restored source that is not the one
    /// chosen), each by name; already logged.
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// Ends the cast (portal Session.Close), waiting at most [`CLOSE_PATIENCE`] for the portal
    /// to confirm; the close then goes on in the background. xdg-desktop-portal forwards Close
    /// to its backend and, when the backend answers nothing (seen: xdg-desktop-portal-wlr 0.7
    /// wedged by two casts starting at once), answers only after its 25-s D-Bus timeout: that
    /// must not hold up a recording's end or a failed `Start`'s answer.
    pub async fn close(self) {
        let closing = tokio::spawn(async move {
            if let Err(e) = self.session.close().await {
                tracing::debug!(error = %e, "closing portal session");
            }
        });
        if tokio::time::timeout(CLOSE_PATIENCE, closing).await.is_err() {
            tracing::warn!(
                "the portal has not confirmed the end of the screen cast within {} s; it is \
                 left to finish in the background",
                CLOSE_PATIENCE.as_secs()
            );
        }
    }
}

/// Connects to the session bus and makes sure a portal is there (running or activatable).
///
/// ashpd alone would report a misleading "requires version N, but 1 is available" when nothing
/// owns the portal name, so the name is checked first.
async fn connect() -> Result<zbus::Connection, PortalError> {
    let conn = zbus::Connection::session()
        .await
        .map_err(|e| PortalError::Unavailable(Unreachable::SessionBus(Arc::new(e))))?;
    let dbus = zbus::fdo::DBusProxy::new(&conn)
        .await
        .map_err(Unreachable::bus)?;
    let name = zbus::names::BusName::try_from(PORTAL_NAME).expect("valid bus name");
    let owned = dbus.name_has_owner(name).await.unwrap_or(false);
    if !owned {
        let activatable = dbus
            .list_activatable_names()
            .await
            .map(|names| names.iter().any(|n| n.as_str() == PORTAL_NAME))
            .unwrap_or(false);
        if !activatable {
            return Err(PortalError::Unavailable(Unreachable::NotRunning));
        }
    }
    Ok(conn)
}

async fn screencast_proxy(conn: &zbus::Connection) -> Result<Screencast, PortalError> {
    // Reading the interface version distinguishes "portal without ScreenCast" from other errors.
    let props = zbus::fdo::PropertiesProxy::builder(conn)
        .destination(PORTAL_NAME)
        .and_then(|b| b.path("/org/freedesktop/portal/desktop"))
        .map_err(RequestFailed::bus)?
        .build()
        .await
        .map_err(RequestFailed::bus)?;
    let iface = zbus::names::InterfaceName::try_from(SCREENCAST_IFACE).expect("valid interface");
    match props.get(iface, "version").await {
        Ok(_) => {}
        Err(zbus::fdo::Error::UnknownInterface(_))
        | Err(zbus::fdo::Error::UnknownProperty(_))
        | Err(zbus::fdo::Error::InvalidArgs(_)) => return Err(PortalError::ScreenCastUnsupported),
        Err(e) => return Err(PortalError::Unavailable(Unreachable::Portal(e))),
    }
    Screencast::with_connection(conn.clone())
        .await
        .map_err(map_err)
}

/// Refuses cursor modes / source types the portal does not list: the portal would otherwise close
/// the session with no useful message.
async fn check_modes(proxy: &Screencast, opts: &SourceOptions) -> Result<(), PortalError> {
    let caps = read_caps(proxy).await?;
    if !caps.cursor_modes.contains(&opts.cursor) {
        return Err(PortalError::Unsupported {
            what: "cursor mode",
            value: opts.cursor.to_string(),
            available: join(&caps.cursor_modes),
        });
    }
    if !caps.source_types.contains(&opts.source) {
        return Err(PortalError::Unsupported {
            what: "source type",
            value: opts.source.to_string(),
            available: join(&caps.source_types),
        });
    }
    Ok(())
}

fn join<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

async fn read_caps(proxy: &Screencast) -> Result<PortalCapabilities, PortalError> {
    let cursors = proxy.available_cursor_modes().await.map_err(map_err)?;
    let sources = proxy.available_source_types().await.map_err(map_err)?;
    Ok(PortalCapabilities {
        version: proxy.version(),
        cursor_modes: CursorMode::ALL
            .iter()
            .copied()
            .filter(|m| cursors.contains(to_ashpd_cursor(*m)))
            .collect(),
        source_types: SourceType::ALL
            .iter()
            .copied()
            .filter(|s| sources.contains(to_ashpd_source(*s)))
            .collect(),
    })
}

fn to_ashpd_cursor(m: CursorMode) -> AshpdCursor {
    match m {
        CursorMode::Hidden => AshpdCursor::Hidden,
        CursorMode::Embedded => AshpdCursor::Embedded,
        CursorMode::Metadata => AshpdCursor::Metadata,
    }
}

fn to_ashpd_source(s: SourceType) -> AshpdSource {
    match s {
        SourceType::Monitor => AshpdSource::Monitor,
        SourceType::Window => AshpdSource::Window,
        SourceType::Virtual => AshpdSource::Virtual,
    }
}

fn from_ashpd_source(s: AshpdSource) -> SourceType {
    match s {
        AshpdSource::Monitor => SourceType::Monitor,
        AshpdSource::Window => SourceType::Window,
        AshpdSource::Virtual => SourceType::Virtual,
    }
}

fn map_err(e: ashpd::Error) -> PortalError {
    use ashpd::desktop::ResponseError;
    match e {
        ashpd::Error::Response(ResponseError::Cancelled) => PortalError::Cancelled,
        ashpd::Error::Portal(ashpd::PortalError::Cancelled(_)) => PortalError::Cancelled,
        ashpd::Error::Response(ResponseError::Other) => PortalError::Failed(RequestFailed::Refused),
        ashpd::Error::PortalNotFound(_) => PortalError::ScreenCastUnsupported,
        other => PortalError::Failed(RequestFailed::Portal(Arc::new(other))),
    }
}

/// Reads the portal's version, cursor modes and source types.
pub async fn capabilities() -> Result<PortalCapabilities, PortalError> {
    let conn = connect().await?;
    let proxy = screencast_proxy(&conn).await?;
    read_caps(&proxy).await
}

/// Deletes stored restore tokens so the next session asks again.
pub fn forget_tokens() -> std::io::Result<()> {
    let Some(dir) = tokens::state_dir() else {
        return Ok(());
    };
    for s in SourceType::ALL {
        tokens::remove(&dir, *s)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;
    use tokens::SourceRecord;

    /// The warning names itself and what differs, and tells the user the way out.
    #[test]
    fn restore_check_names_the_difference_and_the_fix() {
        let chosen = SourceRecord {
            kind: Some(SourceType::Monitor),
            position: Some((0, 0)),
            size: Some((1280, 720)),
        };
        assert_eq!(restore_check(&chosen, &chosen), None);
        let moved = SourceRecord {
            position: Some((200, 100)),
            size: Some((1024, 768)),
            ..chosen.clone()
        };
        let w = restore_check(&chosen, &moved).expect("a warning");
        assert_eq!(w.name, RESTORED_SOURCE_DIFFERS);
        for part in [
            "monitor at 200,100 1024x768",
            "monitor at 0,0 1280x720 was chosen",
            "position, size differs",
            "--no-restore",
            "forget-sources",
        ] {
            assert!(w.message.contains(part), "{part:?} in {}", w.message);
        }
    }

    /// A window's place and size are not part of what is compared; a monitor's are; the type
    /// is the one asked, whatever the stream says.
    #[test]
    fn only_a_monitor_records_its_geometry() {
        let (fd, _other) = std::os::unix::net::UnixStream::pair().unwrap();
        let s = Stream {
            fd: fd.into(),
            node_id: 1,
            size: Some((800, 600)),
            position: Some((10, 20)),
            restored: true,
            kind: Some(SourceType::Window),
        };
        assert_eq!(
            s.record(SourceType::Window),
            SourceRecord {
                kind: Some(SourceType::Window),
                position: None,
                size: None
            }
        );
        assert_eq!(
            s.record(SourceType::Monitor),
            SourceRecord {
                kind: Some(SourceType::Monitor),
                position: Some((10, 20)),
                size: Some((800, 600))
            }
        );
    }

    /// The messages read as the strings built before the causes were kept typed (the D-Bus
    /// `PortalUnavailable` / `Failed` messages are these), and the cause is the `source()`.
    #[test]
    fn messages_unchanged_and_cause_kept() {
        assert_eq!(
            PortalError::Unavailable(Unreachable::NotRunning).to_string(),
            "xdg-desktop-portal is not available: org.freedesktop.portal.Desktop is not running \
             on the session bus and cannot be activated (install and start xdg-desktop-portal \
             and a backend for your desktop)"
        );
        let e = zbus::Error::InvalidReply;
        let text = e.to_string();
        let e = PortalError::Unavailable(Unreachable::SessionBus(Arc::new(e)));
        assert_eq!(
            e.to_string(),
            format!("xdg-desktop-portal is not available: cannot connect to the D-Bus session bus: {text}")
        );
        let cause = e.source().and_then(|s| s.source()).expect("the zbus error");
        assert!(cause.is::<Arc<zbus::Error>>(), "{cause:?}");
        assert_eq!(
            PortalError::Failed(RequestFailed::NoStreams).to_string(),
            "portal request failed: Start returned no streams"
        );
        assert_eq!(
            PortalError::Failed(RequestFailed::Refused).to_string(),
            "portal request failed: the portal refused the request"
        );
    }
}
