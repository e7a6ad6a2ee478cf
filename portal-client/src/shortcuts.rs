//! What `zerocast probe` says about global shortcuts: which mechanism is in effect and why.
//!
//! The tray binds the shortcuts (`tray/src/shortcuts.rs`) and publishes what it got on its own
//! bus name, so a running tray is asked first: only it knows whether the desktop bound the keys
//! (the user may have declined GNOME's dialog). Without a tray the probe looks at what the tray
//! would look at — the portal's `GlobalShortcuts` and the GNOME extension — and says what
//! starting the tray would bring.

use std::collections::BTreeMap;
use std::collections::HashMap;

use zbus::names::{BusName, InterfaceName};
use zbus::zvariant::OwnedValue;

// The tray's, the portal's and the extension's names and readings, shared with the tray.
pub use zerocast_client::shortcuts::why_no_portal;
use zerocast_client::shortcuts::{
    extension_active as enabled, extension_info, portal_version, EXTENSION_UUID, TRAY_IFACE,
    TRAY_NAME, TRAY_PATH,
};

/// The shortcut mechanism in effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShortcutsReport {
    /// `portal` (bound by the tray), `gnome-extension`, `pending` (the tray is still binding)
    /// or `none`.
    pub mechanism: String,
    /// Why, for a user.
    pub reason: String,
    /// The portal's `GlobalShortcuts` version, when it has the interface.
    pub portal_version: Option<u32>,
    /// Shortcut id → the key the desktop shows (from the tray; empty: none assigned).
    pub bound: BTreeMap<String, String>,
    /// A zerocast tray holds the shortcuts on this session bus.
    pub tray: bool,
}

/// Asks the running tray, else works out what the tray would do.
pub async fn shortcuts() -> ShortcutsReport {
    let conn = match zbus::Connection::session().await {
        Ok(c) => c,
        Err(e) => {
            return ShortcutsReport {
                mechanism: "none".into(),
                reason: format!("cannot connect to the D-Bus session bus: {e}"),
                portal_version: None,
                bound: BTreeMap::new(),
                tray: false,
            }
        }
    };
    let portal = portal_version(&conn).await;
    if let Some(mut report) = from_tray(&conn).await {
        report.portal_version = report.portal_version.or(portal.as_ref().ok().copied());
        return report;
    }
    without_tray(portal, extension_active(&conn).await)
}

/// What the tray would do, told without it: the GNOME extension wins while enabled; else the
/// portal's shortcuts need the tray running.
pub fn without_tray(portal: Result<u32, String>, extension_active: bool) -> ShortcutsReport {
    let (mechanism, reason) = match (&portal, extension_active) {
        (_, true) => (
            "gnome-extension",
            format!(
                "the GNOME extension {EXTENSION_UUID} is enabled: its keybindings (Super+Alt+R, \
                 Super+Alt+P by default; its settings change them) are the shortcuts, and the \
                 tray binds none"
            ),
        ),
        (Ok(v), false) => (
            "none",
            format!(
                "the portal offers GlobalShortcuts (version {v}), but no zerocast tray is \
                 running to bind them: start `zerocast tray` (scripts/install.sh --autostart \
                 starts it at login)"
            ),
        ),
        (Err(why), false) => ("none", why.clone()),
    };
    ShortcutsReport {
        mechanism: mechanism.into(),
        reason,
        portal_version: portal.ok(),
        bound: BTreeMap::new(),
        tray: false,
    }
}

async fn extension_active(conn: &zbus::Connection) -> bool {
    extension_info(conn).await.is_ok_and(|info| enabled(&info))
}

/// The running tray's own account (`org.zerocast.Tray1`), if a tray runs.
async fn from_tray(conn: &zbus::Connection) -> Option<ShortcutsReport> {
    let dbus = zbus::fdo::DBusProxy::new(conn).await.ok()?;
    let name = BusName::try_from(TRAY_NAME).ok()?;
    if !dbus.name_has_owner(name).await.ok()? {
        return None;
    }
    let props = zbus::fdo::PropertiesProxy::builder(conn)
        .destination(TRAY_NAME)
        .ok()?
        .path(TRAY_PATH)
        .ok()?
        .build()
        .await
        .ok()?;
    let all = props
        .get_all(InterfaceName::try_from(TRAY_IFACE).ok()?)
        .await
        .ok()?;
    Some(from_tray_properties(&all))
}

/// Reads the tray's `Shortcuts*` properties.
pub fn from_tray_properties(all: &HashMap<String, OwnedValue>) -> ShortcutsReport {
    let text = |k: &str| {
        all.get(k)
            .and_then(|v| String::try_from(v.try_clone().ok()?).ok())
            .unwrap_or_default()
    };
    let version = all
        .get("ShortcutsPortalVersion")
        .and_then(|v| u32::try_from(v).ok())
        .filter(|v| *v > 0);
    let bound: BTreeMap<String, String> = all
        .get("ShortcutsBound")
        .and_then(|v| HashMap::<String, String>::try_from(v.try_clone().ok()?).ok())
        .map(|m| m.into_iter().collect())
        .unwrap_or_default();
    ShortcutsReport {
        mechanism: text("ShortcutsMechanism"),
        reason: text("ShortcutsReason"),
        portal_version: version,
        bound,
        tray: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zbus::zvariant::Value;

    #[test]
    fn without_a_tray() {
        let r = without_tray(Ok(1), false);
        assert_eq!(r.mechanism, "none");
        assert!(r.reason.contains("zerocast tray"), "{}", r.reason);
        assert_eq!(r.portal_version, Some(1));
        let r = without_tray(Ok(1), true);
        assert_eq!(r.mechanism, "gnome-extension");
        let r = without_tray(Err("no portal".into()), true);
        assert_eq!(r.mechanism, "gnome-extension");
        let r = without_tray(Err("no portal".into()), false);
        assert_eq!(
            (r.mechanism.as_str(), r.reason.as_str()),
            ("none", "no portal")
        );
    }

    #[test]
    fn reasons() {
        let r = why_no_portal(
            "org.freedesktop.DBus.Error.InvalidArgs",
            "No such interface",
        );
        assert!(r.contains("no GlobalShortcuts"), "{r}");
        let r = why_no_portal("org.freedesktop.DBus.Error.ServiceUnknown", "x");
        assert!(r.contains("no xdg-desktop-portal"), "{r}");
    }

    #[test]
    fn reads_the_tray() {
        let own = |v: Value<'_>| v.try_to_owned().unwrap();
        let all = HashMap::from([
            ("ShortcutsMechanism".to_owned(), own(Value::from("portal"))),
            ("ShortcutsReason".to_owned(), own(Value::from("bound"))),
            ("ShortcutsPortalVersion".to_owned(), own(Value::from(1u32))),
            (
                "ShortcutsBound".to_owned(),
                own(Value::from(HashMap::from([(
                    "toggle-recording".to_owned(),
                    "Ctrl+Alt+R".to_owned(),
                )]))),
            ),
        ]);
        let r = from_tray_properties(&all);
        assert_eq!(r.mechanism, "portal");
        assert_eq!(r.portal_version, Some(1));
        assert_eq!(r.bound["toggle-recording"], "Ctrl+Alt+R");
        assert!(r.tray);
    }
}
