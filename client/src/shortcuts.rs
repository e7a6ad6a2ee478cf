//! What the tray (which binds the global shortcuts) and `zerocast probe` (which reports them)
//! both need: the names of the tray's `org.zerocast.Tray1`, of the portal's
//! `GlobalShortcuts` and of the GNOME extension, and the readings both make of them.

use std::collections::HashMap;

use zbus::zvariant::OwnedValue;
use zbus::Connection;

/// The tray's own well-known name: one tray per session holds the shortcuts (only one live
/// portal session per app receives `Activated`), and `zerocast probe` reads the state here.
pub const TRAY_NAME: &str = "org.zerocast.Tray";
pub const TRAY_PATH: &str = "/org/zerocast/Tray";
pub const TRAY_IFACE: &str = "org.zerocast.Tray1";
/// The GNOME Shell extension whose keybindings take over on GNOME (`shell/gnome`).
pub const EXTENSION_UUID: &str = "zerocast@zerocast.github.io";

pub const PORTAL: &str = "org.freedesktop.portal.Desktop";
pub const PORTAL_PATH: &str = "/org/freedesktop/portal/desktop";
pub const GS_IFACE: &str = "org.freedesktop.portal.GlobalShortcuts";
pub const SHELL: &str = "org.gnome.Shell";
pub const SHELL_PATH: &str = "/org/gnome/Shell";
pub const EXTENSIONS_IFACE: &str = "org.gnome.Shell.Extensions";
/// `ExtensionState.ENABLED` (GNOME 43–45), renamed `ACTIVE` in 46+: the same number.
const EXTENSION_ACTIVE: f64 = 1.0;

/// `GetExtensionInfo`'s `state` (a double) says enabled.
pub fn extension_active(info: &HashMap<String, OwnedValue>) -> bool {
    info.get("state")
        .and_then(|v| f64::try_from(v).ok())
        .is_some_and(|s| s == EXTENSION_ACTIVE)
}

/// Why reading `GlobalShortcuts.version` failed, for a user (the tray's words, and
/// `zerocast probe`'s without a tray).
pub fn why_no_portal(error_name: &str, message: &str) -> String {
    let instead = "bind keys to `zerocast ctl …` in the compositor instead (README: Global \
                   shortcuts)";
    match error_name {
        "org.freedesktop.DBus.Error.ServiceUnknown"
        | "org.freedesktop.DBus.Error.NameHasNoOwner"
        | "org.freedesktop.DBus.Error.Spawn.ChildExited"
        | "org.freedesktop.DBus.Error.Spawn.Failed" => {
            format!("no xdg-desktop-portal on the session bus ({message}); {instead}")
        }
        "org.freedesktop.DBus.Error.InvalidArgs"
        | "org.freedesktop.DBus.Error.UnknownInterface"
        | "org.freedesktop.DBus.Error.UnknownProperty" => format!(
            "the portal has no GlobalShortcuts (it needs xdg-desktop-portal 1.17+ and a backend \
             with it: KDE 6, GNOME 48+, Hyprland); {instead}"
        ),
        _ => format!("cannot ask the portal for GlobalShortcuts: {error_name}: {message}"),
    }
}

/// The portal's `GlobalShortcuts` version (the call starts xdg-desktop-portal on demand), or
/// why there is none, for a user.
pub async fn portal_version(conn: &Connection) -> Result<u32, String> {
    let r = conn
        .call_method(
            Some(PORTAL),
            PORTAL_PATH,
            Some("org.freedesktop.DBus.Properties"),
            "Get",
            &(GS_IFACE, "version"),
        )
        .await
        .and_then(|m| m.body().deserialize::<OwnedValue>());
    match r {
        Ok(v) => u32::try_from(&v)
            .map_err(|_| format!("the portal's GlobalShortcuts version is not a number: {v:?}")),
        Err(zbus::Error::MethodError(name, msg, _)) => {
            Err(why_no_portal(name.as_str(), msg.as_deref().unwrap_or("")))
        }
        Err(e) => Err(format!("cannot ask the portal for GlobalShortcuts: {e}")),
    }
}

/// `GetExtensionInfo` of the zerocast extension; an error off GNOME (no `org.gnome.Shell`)
/// or on a shell without extensions.
pub async fn extension_info(conn: &Connection) -> zbus::Result<HashMap<String, OwnedValue>> {
    conn.call_method(
        Some(SHELL),
        SHELL_PATH,
        Some(EXTENSIONS_IFACE),
        "GetExtensionInfo",
        &(EXTENSION_UUID,),
    )
    .await?
    .body()
    .deserialize()
}
