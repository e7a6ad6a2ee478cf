//! What `zerocast probe` says about the portal set-up beyond ScreenCast's own properties: which
//! backends run (xdg-desktop-portal-gnome behaves differently from -wlr: it shows a share
//! dialog on every `Start` unless a stored restore token is accepted, and offers window
//! sources and the metadata cursor mode), and which restore tokens are stored.

use crate::{tokens, PortalError, SourceType};

const IMPL_PREFIX: &str = "org.freedesktop.impl.portal.desktop.";

/// The portal backends running on the session bus (`gnome`, `wlr`, `kde`, `gtk`, …).
pub async fn running_backends() -> Result<Vec<String>, PortalError> {
    let conn = zbus::Connection::session()
        .await
        .map_err(|e| PortalError::Unavailable(e.to_string()))?;
    let dbus = zbus::fdo::DBusProxy::new(&conn)
        .await
        .map_err(|e| PortalError::Unavailable(e.to_string()))?;
    let names = dbus
        .list_names()
        .await
        .map_err(|e| PortalError::Failed(e.to_string()))?;
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
