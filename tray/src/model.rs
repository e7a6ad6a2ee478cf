//! What the tray knows about the daemon, and what it shows for it: pure data and pure functions,
//! so every label, flag, icon and tooltip is unit-tested without a bus.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

use zerocast_client::State;

/// How many finished recordings the menu lists.
pub const RECENT: usize = 5;

/// One recording object of the daemon, as far as its properties and signals told us.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recording {
    /// `None` until the daemon named it (shown as starting).
    pub state: Option<State>,
    /// The file, once there is one (a replay has one only when it saves at stop or is kept).
    pub path: Option<String>,
    pub duration: f64,
    pub bytes: u64,
    pub encoder: String,
    pub capture_path: String,
    /// Replay mode: the ring's length in seconds (`replay` in its `Options`); `None` for a
    /// normal recording, or while the options have not been read.
    pub replay: Option<f64>,
    /// A replay that writes its ring to `path` when it stops (`save-on-stop`).
    pub save_on_stop: bool,
    /// The session's named warnings' messages (`Warnings`, e.g. a restored source that is not
    /// the one chosen), shown in the tooltip while the recording runs.
    pub warnings: Vec<String>,
}

impl Recording {
    pub fn is_over(&self) -> bool {
        self.state.is_some_and(State::is_over)
    }

    /// A replay that holds packets a save can write.
    pub fn can_save_replay(&self) -> bool {
        self.replay.is_some() && self.state.is_some_and(State::is_running)
    }
}

/// The tray's picture of the world. Changed only by the event loop (`bus.rs`).
#[derive(Debug, Clone, Default)]
pub struct Model {
    /// `org.zerocast.Recorder1` has an owner.
    pub daemon: bool,
    /// Recording objects by their number (the last path element).
    pub recordings: BTreeMap<u64, Recording>,
    /// Finished files, newest first.
    pub recent: VecDeque<PathBuf>,
    /// A call sent from this tray that has not returned yet.
    pub pending: Pending,
    /// The last error of an action started here, shown in the tooltip until the next action.
    pub last_error: Option<String>,
    /// The last replay clip saved from this tray (file name and seconds), shown in the tooltip
    /// until the next action.
    pub last_saved: Option<(String, f64)>,
}

/// The long call sent from this tray that has not returned yet. One at a time: `Start` is sent
/// only when nothing records and `SaveReplay` only for a running replay, so a newer one means
/// the older no longer shows (its answer clears nothing: [`Pending::clear`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pending {
    #[default]
    Nothing,
    /// `Start`: returns once frames flow, after the portal dialog (shown as starting).
    Start,
    /// `SaveReplay`: returns once the clip is written ("Saving replay…").
    Save,
}

impl Pending {
    /// `call` returned: nothing is pending any more, unless a newer call is.
    pub fn clear(&mut self, call: Pending) {
        if *self == call {
            *self = Pending::Nothing;
        }
    }
}

/// The state the icon shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    Unavailable,
    Idle,
    Starting,
    Recording,
    Paused,
    Finishing,
}

impl Model {
    /// The recording the menu acts on: the newest one that has not ended.
    pub fn current(&self) -> Option<(u64, &Recording)> {
        self.recordings
            .iter()
            .rev()
            .find(|(_, r)| !r.is_over())
            .map(|(id, r)| (*id, r))
    }

    pub fn shown(&self) -> Shown {
        match self.current() {
            Some((_, r)) => match r.state {
                Some(State::Recording) => Shown::Recording,
                Some(State::Paused) => Shown::Paused,
                Some(State::Finishing) => Shown::Finishing,
                _ => Shown::Starting,
            },
            None if self.pending == Pending::Start => Shown::Starting,
            None if self.daemon => Shown::Idle,
            None => Shown::Unavailable,
        }
    }

    /// Remembers a finished file (newest first, no duplicates, at most [`RECENT`]). The client
    /// crate already turns the bus's "" (nothing written) into no file; an empty path is still
    /// no file here.
    pub fn add_recent(&mut self, path: PathBuf) {
        if path.as_os_str().is_empty() {
            return;
        }
        self.recent.retain(|p| p != &path);
        self.recent.push_front(path);
        self.recent.truncate(RECENT);
    }

    pub fn menu(&self) -> Menu {
        let shown = self.shown();
        let idle = matches!(shown, Shown::Idle | Shown::Unavailable);
        let current = self.current().and_then(|(_, r)| r.state);
        let replay = self.current().is_some_and(|(_, r)| r.can_save_replay());
        Menu {
            record_screen: idle,
            record_window: idle,
            pause_label: if current == Some(State::Paused) {
                "Resume"
            } else {
                "Pause"
            },
            pause_resume: current.is_some_and(State::is_running),
            stop: matches!(
                current,
                Some(State::Starting | State::Recording | State::Paused)
            ),
            save_replay_label: if self.pending == Pending::Save {
                "Saving replay…"
            } else {
                "Save replay"
            },
            save_replay: replay && self.pending != Pending::Save,
            forget_source: idle,
            recent: self
                .recent
                .iter()
                .map(|p| menu_label(&file_name(p)))
                .collect(),
        }
    }

    /// The freedesktop status: `NeedsAttention` while recording (hosts emphasise it).
    pub fn status(&self) -> ksni::Status {
        match self.shown() {
            Shown::Recording | Shown::Starting | Shown::Finishing => ksni::Status::NeedsAttention,
            _ => ksni::Status::Active,
        }
    }

    pub fn icon(&self, own_icons: bool) -> &'static str {
        let shown = self.shown();
        if own_icons {
            match shown {
                Shown::Unavailable => "zerocast-unavailable",
                Shown::Idle => "zerocast-idle",
                Shown::Recording | Shown::Starting | Shown::Finishing => "zerocast-recording",
                Shown::Paused => "zerocast-paused",
            }
        } else {
            // Names every freedesktop icon theme has.
            match shown {
                Shown::Unavailable | Shown::Idle => "video-display",
                Shown::Recording | Shown::Starting | Shown::Finishing => "media-record",
                Shown::Paused => "media-playback-pause",
            }
        }
    }

    /// Tooltip title and body.
    pub fn tooltip(&self) -> (String, String) {
        let (title, mut body) = match (self.shown(), self.current()) {
            (Shown::Unavailable, _) => (
                "zerocast: daemon not running".to_owned(),
                "Record starts it (D-Bus activation).".to_owned(),
            ),
            (Shown::Idle, _) => (
                "zerocast: idle".to_owned(),
                "Click to record the screen.".to_owned(),
            ),
            (shown, Some((_, r))) => {
                let word = match shown {
                    Shown::Recording => "recording",
                    Shown::Paused => "paused",
                    Shown::Finishing => "finishing",
                    _ => "starting",
                };
                // A replay's bytes are what its ring holds in memory, not a file's size.
                let mut body = match r.replay {
                    Some(_) => format!("{} · {} in memory", clock(r.duration), size(r.bytes)),
                    None => format!("{} · {}", clock(r.duration), size(r.bytes)),
                };
                for extra in [&r.capture_path, &r.encoder] {
                    if !extra.is_empty() {
                        body.push_str(" · ");
                        body.push_str(extra);
                    }
                }
                // A replay writes its path only when saved at stop.
                if let Some(path) = r
                    .path
                    .as_ref()
                    .filter(|_| r.replay.is_none() || r.save_on_stop)
                {
                    body.push('\n');
                    if r.replay.is_some() {
                        body.push_str("Saved at stop to ");
                    }
                    body.push_str(path);
                }
                for w in &r.warnings {
                    body.push_str("\nWarning: ");
                    body.push_str(w);
                }
                let title = match (shown, r.replay) {
                    (Shown::Recording, Some(s)) => {
                        format!("zerocast: replay (last {})", span(s))
                    }
                    (_, Some(s)) => format!("zerocast: replay {word} (last {})", span(s)),
                    (_, None) => format!("zerocast: {word} {}", clock(r.duration)),
                };
                (title, body)
            }
            (_, None) => (
                "zerocast: starting".to_owned(),
                "Waiting for the screen-cast dialog.".to_owned(),
            ),
        };
        if let Some((name, secs)) = &self.last_saved {
            body.push_str(&format!("\nReplay saved: {name} ({secs:.1} s)"));
        }
        if let Some(e) = &self.last_error {
            body.push_str("\nLast error: ");
            body.push_str(e);
        }
        (title, body)
    }
}

/// Labels and enabled flags of the menu. The items never move (ksni renumbers items when the
/// structure changes); only these values do.
#[derive(Debug, Clone, PartialEq)]
pub struct Menu {
    pub record_screen: bool,
    pub record_window: bool,
    pub pause_label: &'static str,
    pub pause_resume: bool,
    pub stop: bool,
    pub save_replay_label: &'static str,
    pub save_replay: bool,
    pub forget_source: bool,
    /// Labels of the recent files, newest first (at most [`RECENT`]).
    pub recent: Vec<String>,
}

pub fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.to_string_lossy().into_owned())
}

/// dbusmenu reads `_` as an access-key marker; `__` is a literal underscore.
pub fn menu_label(s: &str) -> String {
    s.replace('_', "__")
}

/// `m:ss`, or `h:mm:ss` from an hour on (the daemon reports seconds as a float).
pub fn clock(secs: f64) -> String {
    zerocast_client::human::clock(secs.max(0.0) as u64)
}

/// A replay's length: `30 s`, `2 min`, else as [`clock`].
pub fn span(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    if s < 60 {
        format!("{s} s")
    } else if s.is_multiple_of(60) {
        format!("{} min", s / 60)
    } else {
        clock(secs)
    }
}

pub use zerocast_client::human::size;

#[cfg(test)]
mod tests {
    use super::*;

    fn with(state: &str) -> Model {
        let mut m = Model {
            daemon: true,
            ..Model::default()
        };
        m.recordings.insert(
            3,
            Recording {
                state: Some(state.parse().unwrap()),
                path: Some("/v/a_b.mkv".into()),
                duration: 75.4,
                bytes: 3_400_000,
                encoder: "libx264".into(),
                capture_path: "shm-cpu".into(),
                ..Recording::default()
            },
        );
        m
    }

    fn replay(state: &str) -> Model {
        let mut m = with(state);
        let r = m.recordings.get_mut(&3).unwrap();
        r.replay = Some(30.0);
        r.path = Some("/v/zerocast-1.mkv".into());
        m
    }

    #[test]
    fn idle_enables_start_only() {
        let m = Model {
            daemon: true,
            ..Model::default()
        };
        let menu = m.menu();
        assert!(menu.record_screen && menu.record_window && menu.forget_source);
        assert!(!menu.pause_resume && !menu.stop);
        assert_eq!(m.shown(), Shown::Idle);
        assert_eq!(m.status(), ksni::Status::Active);
    }

    #[test]
    fn unavailable_still_starts_through_activation() {
        let m = Model::default();
        assert_eq!(m.shown(), Shown::Unavailable);
        assert!(m.menu().record_screen);
        assert_eq!(m.icon(true), "zerocast-unavailable");
        assert!(m.tooltip().0.contains("not running"));
    }

    #[test]
    fn recording_and_paused() {
        let m = with("recording");
        let menu = m.menu();
        assert!(!menu.record_screen && menu.pause_resume && menu.stop);
        assert_eq!(menu.pause_label, "Pause");
        assert_eq!(m.status(), ksni::Status::NeedsAttention);
        assert_eq!(m.icon(false), "media-record");
        let (title, body) = m.tooltip();
        assert_eq!(title, "zerocast: recording 1:15");
        assert!(body.contains("3.4 MB") && body.contains("shm-cpu") && body.contains("libx264"));
        assert!(body.contains("/v/a_b.mkv"));

        let m = with("paused");
        assert_eq!(m.menu().pause_label, "Resume");
        assert!(m.menu().pause_resume);
        assert_eq!(m.status(), ksni::Status::Active);
        assert_eq!(m.icon(true), "zerocast-paused");
    }

    #[test]
    fn starting_can_be_stopped_not_paused() {
        let m = with("starting");
        let menu = m.menu();
        assert!(menu.stop && !menu.pause_resume && !menu.record_screen);
    }

    #[test]
    fn ended_recordings_are_not_current() {
        let mut m = with("finished");
        assert!(m.current().is_none());
        assert_eq!(m.shown(), Shown::Idle);
        m.pending = Pending::Start;
        assert_eq!(m.shown(), Shown::Starting);
        assert!(!m.menu().record_screen);
    }

    #[test]
    fn newest_running_wins() {
        let mut m = with("recording");
        m.recordings.insert(
            5,
            Recording {
                state: Some(State::Paused),
                ..Recording::default()
            },
        );
        assert_eq!(m.current().unwrap().0, 5);
    }

    #[test]
    fn recent_is_bounded_and_escaped() {
        let mut m = Model::default();
        for i in 0..7 {
            m.add_recent(PathBuf::from(format!("/v/clip_{i}.mkv")));
        }
        m.add_recent(PathBuf::from("/v/clip_3.mkv"));
        let labels = m.menu().recent;
        assert_eq!(labels.len(), RECENT);
        assert_eq!(labels[0], "clip__3.mkv");
        assert_eq!(labels[1], "clip__6.mkv");
    }

    #[test]
    fn save_replay_only_for_a_running_replay() {
        for state in ["starting", "recording", "paused", "finishing"] {
            assert!(!with(state).menu().save_replay, "normal recording {state}");
            let enabled = replay(state).menu().save_replay;
            assert_eq!(enabled, matches!(state, "recording" | "paused"), "{state}");
        }
        assert!(!replay("finished").menu().save_replay);
        let idle = Model {
            daemon: true,
            ..Model::default()
        };
        assert!(!idle.menu().save_replay);
        assert_eq!(idle.menu().save_replay_label, "Save replay");

        let mut m = replay("recording");
        m.pending = Pending::Save;
        let menu = m.menu();
        assert!(!menu.save_replay);
        assert_eq!(menu.save_replay_label, "Saving replay…");
    }

    #[test]
    fn replay_tooltip() {
        let m = replay("recording");
        let (title, body) = m.tooltip();
        assert_eq!(title, "zerocast: replay (last 30 s)");
        assert!(body.contains("3.4 MB in memory"), "{body}");
        // Nothing is written there unless it saves at stop.
        assert!(!body.contains("zerocast-1.mkv"), "{body}");
        assert_eq!(m.status(), ksni::Status::NeedsAttention);

        let mut m = replay("paused");
        m.recordings.get_mut(&3).unwrap().save_on_stop = true;
        m.last_saved = Some(("zerocast-replay-1.mkv".into(), 12.04));
        let (title, body) = m.tooltip();
        assert_eq!(title, "zerocast: replay paused (last 30 s)");
        assert!(
            body.contains("Saved at stop to /v/zerocast-1.mkv"),
            "{body}"
        );
        assert!(
            body.contains("Replay saved: zerocast-replay-1.mkv (12.0 s)"),
            "{body}"
        );
    }

    /// A session's warning (a restored source that is not the one chosen) is shown with the
    /// running recording, under its file.
    #[test]
    fn session_warnings_are_in_the_tooltip() {
        let mut m = with("recording");
        let (_, body) = m.tooltip();
        assert!(!body.contains("Warning"), "{body}");
        m.recordings.get_mut(&3).unwrap().warnings =
            vec!["the restored source is monitor at 0,0 1024x768 (--no-restore chooses)".into()];
        let (_, body) = m.tooltip();
        assert!(
            body.ends_with("/v/a_b.mkv\nWarning: the restored source is monitor at 0,0 1024x768 (--no-restore chooses)"),
            "{body}"
        );
    }

    #[test]
    fn empty_path_is_not_recent() {
        let mut m = Model::default();
        m.add_recent(PathBuf::from("/v/a.mkv"));
        m.add_recent(PathBuf::new());
        assert_eq!(m.menu().recent, vec!["a.mkv".to_owned()]);
    }

    #[test]
    fn an_answer_clears_only_its_own_call() {
        let mut p = Pending::Save;
        p.clear(Pending::Start);
        assert_eq!(p, Pending::Save);
        p.clear(Pending::Save);
        assert_eq!(p, Pending::Nothing);
    }

    #[test]
    fn spans() {
        assert_eq!(span(5.0), "5 s");
        assert_eq!(span(120.0), "2 min");
        assert_eq!(span(90.0), "1:30");
    }

    #[test]
    fn clock_and_size() {
        assert_eq!(clock(0.4), "0:00");
        assert_eq!(clock(3725.0), "1:02:05");
        assert_eq!(size(1_500_000_000), "1.50 GB");
    }
}
