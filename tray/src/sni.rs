//! The StatusNotifierItem and its dbusmenu (ksni). It renders the [`Model`] and turns clicks into
//! [`Action`]s for the event loop; it never talks to the daemon itself (ksni calls us under its
//! lock, so a callback only sends a message).

use std::path::PathBuf;

use ksni::menu::{MenuItem, StandardItem};
use tokio::sync::mpsc::UnboundedSender;
use tracing::{info, warn};

use crate::model::{Model, RECENT};

/// What a click asks for; carried out by the event loop.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Start with `source` (`monitor` or `window`).
    Start(&'static str),
    PauseResume,
    Stop,
    /// Write what the current replay holds (`SaveReplay`, default options).
    SaveReplay,
    /// Left click: stop the current recording (save a replay), else record the screen.
    Toggle,
    /// The "toggle recording" global shortcut: stop the current recording, a replay too, else
    /// record the screen — what the GNOME extension's shortcut does. Unlike a click it stops a
    /// replay: "save replay" has a key of its own, and a replay must be stoppable by key.
    ToggleRecording,
    OpenFolder,
    Open(PathBuf),
    ForgetSources,
    Quit,
    /// Not a click: the watcher refused or missed our registration (a watcher that takes its
    /// name before it serves its object answers `UnknownObject`); serve the item anew.
    Reregister,
}

pub struct ZerocastTray {
    pub model: Model,
    /// Our scalable state icons are installed (else freedesktop names are used).
    pub own_icons: bool,
    pub actions: UnboundedSender<Action>,
}

impl ZerocastTray {
    fn send(&self, a: Action) {
        // The loop only goes away when the process exits.
        let _ = self.actions.send(a);
    }
}

fn item(label: impl Into<String>, enabled: bool, action: Action) -> MenuItem<ZerocastTray> {
    StandardItem {
        label: label.into(),
        enabled,
        activate: Box::new(move |t: &mut ZerocastTray| t.send(action.clone())),
        ..Default::default()
    }
    .into()
}

impl ksni::Tray for ZerocastTray {
    fn id(&self) -> String {
        "zerocast".into()
    }

    fn title(&self) -> String {
        "zerocast".into()
    }

    fn category(&self) -> ksni::Category {
        ksni::Category::ApplicationStatus
    }

    fn status(&self) -> ksni::Status {
        self.model.status()
    }

    fn icon_name(&self) -> String {
        self.model.icon(self.own_icons).into()
    }

    fn attention_icon_name(&self) -> String {
        self.model.icon(self.own_icons).into()
    }

    fn tool_tip(&self) -> ksni::ToolTip {
        let (title, description) = self.model.tooltip();
        ksni::ToolTip {
            icon_name: self.model.icon(self.own_icons).into(),
            icon_pixmap: Vec::new(),
            title,
            description,
        }
    }

    fn activate(&mut self, _x: i32, _y: i32) {
        self.send(Action::Toggle);
    }

    /// Always the same items in the same order; state changes only labels, `enabled` and the
    /// recent slots' `visible`.
    fn menu(&self) -> Vec<MenuItem<Self>> {
        let m = self.model.menu();
        let mut items = vec![
            item("Record screen", m.record_screen, Action::Start("monitor")),
            item("Record window", m.record_window, Action::Start("window")),
            item(m.pause_label, m.pause_resume, Action::PauseResume),
            item("Stop", m.stop, Action::Stop),
            item(m.save_replay_label, m.save_replay, Action::SaveReplay),
            MenuItem::Separator,
            item("Open recordings folder", true, Action::OpenFolder),
        ];
        for slot in 0..RECENT {
            let path = self.model.recent.get(slot).cloned();
            let mut it = StandardItem {
                label: m.recent.get(slot).cloned().unwrap_or_default(),
                visible: path.is_some(),
                enabled: path.is_some(),
                ..Default::default()
            };
            if let Some(p) = path {
                it.activate = Box::new(move |t: &mut ZerocastTray| t.send(Action::Open(p.clone())));
            }
            items.push(it.into());
        }
        items.extend([
            MenuItem::Separator,
            item(
                "Forget remembered source",
                m.forget_source,
                Action::ForgetSources,
            ),
            item("Quit", true, Action::Quit),
        ]);
        items
    }

    fn watcher_online(&self) {
        info!("registered with the StatusNotifierWatcher");
    }

    fn watcher_offline(&self, reason: ksni::OfflineReason) -> bool {
        match reason {
            // Gone: ksni registers again when a watcher appears.
            ksni::OfflineReason::No
            | ksni::OfflineReason::Error(ksni::Error::Watcher(zbus::fdo::Error::ServiceUnknown(
                _,
            ))) => info!("no StatusNotifierWatcher; waiting for one"),
            // A watcher is there but registering failed: ksni would wait for the *next*
            // watcher, so the loop serves the item again.
            reason => {
                warn!(?reason, "registering with the StatusNotifierWatcher failed");
                self.send(Action::Reregister);
            }
        }
        true
    }
}
