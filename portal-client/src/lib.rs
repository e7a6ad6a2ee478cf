//! xdg-desktop-portal ScreenCast client: session lifecycle, restore tokens, error mapping.
//!
//! API CONTRACT (bodies being implemented): `ScreencastSession::open` runs CreateSession →
//! SelectSources → Start → OpenPipeWireRemote and returns the session (keep it alive while
//! recording; dropping/closing it ends the cast) and the stream to connect PipeWire to.

use std::fmt;
use std::os::fd::OwnedFd;
use std::str::FromStr;

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

macro_rules! str_enum {
    ($ty:ident, $what:literal, { $($variant:ident => $s:literal),+ $(,)? }) => {
        impl $ty {
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $s),+ }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s.to_ascii_lowercase().as_str() {
                    $($s => Ok($ty::$variant),)+
                    _ => Err(format!(
                        concat!("invalid ", $what, " '{}': expected one of ", $($s, " "),+),
                        s
                    )),
                }
            }
        }
    };
}

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
    /// True when a stored restore token was accepted (no source selection happened).
    pub restored: bool,
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
    Unavailable(String),
    #[error("the screen-cast request was cancelled")]
    Cancelled,
    #[error("this xdg-desktop-portal has no ScreenCast support (no backend for this desktop?)")]
    ScreenCastUnsupported,
    #[error("the portal does not offer {what} '{value}' (available: {available})")]
    Unsupported { what: &'static str, value: String, available: String },
    #[error("portal request failed: {0}")]
    Failed(String),
}

/// An open ScreenCast session. Keep it alive for as long as the stream is recorded.
pub struct ScreencastSession {
    _private: (),
}

impl ScreencastSession {
    pub async fn open(_opts: &SourceOptions) -> Result<(ScreencastSession, Stream), PortalError> {
        Err(PortalError::Unavailable("not implemented yet".into()))
    }

    /// Ends the cast (portal Session.Close).
    pub async fn close(self) {}
}

/// Reads the portal's version, cursor modes and source types.
pub async fn capabilities() -> Result<PortalCapabilities, PortalError> {
    Err(PortalError::Unavailable("not implemented yet".into()))
}

/// Deletes stored restore tokens so the next session asks again.
pub fn forget_tokens() -> std::io::Result<()> {
    Ok(())
}
