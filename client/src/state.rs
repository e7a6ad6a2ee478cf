//! A recording's lifecycle state, as the `State` property names it.

use std::fmt;
use std::str::FromStr;

/// `org.zerocast.Recording1.State`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    /// Waiting for the portal dialog and the first frames.
    Starting,
    Recording,
    Paused,
    /// Stopped; the file is being finalized.
    Finishing,
    Finished,
    Failed,
}

impl State {
    /// Every state, in lifecycle order (the GNOME extension's names are checked against it).
    pub const ALL: [State; 6] = [
        State::Starting,
        State::Recording,
        State::Paused,
        State::Finishing,
        State::Finished,
        State::Failed,
    ];

    /// The name on the bus.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Recording => "recording",
            State::Paused => "paused",
            State::Finishing => "finishing",
            State::Finished => "finished",
            State::Failed => "failed",
        }
    }

    /// Ended: the object only lingers for its outcome.
    pub fn is_over(self) -> bool {
        matches!(self, State::Finished | State::Failed)
    }

    /// Frames are flowing or held: pause/resume and a replay save apply.
    pub fn is_running(self) -> bool {
        matches!(self, State::Recording | State::Paused)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `State` value this client does not know (a newer daemon).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown recording state {0:?}")]
pub struct UnknownState(pub String);

impl FromStr for State {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        State::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in State::ALL {
            assert_eq!(s.as_str().parse::<State>(), Ok(s));
            assert_eq!(s.to_string(), s.as_str());
        }
        assert_eq!(
            "stopped".parse::<State>(),
            Err(UnknownState("stopped".into()))
        );
    }

    /// The GNOME extension keeps its JavaScript; its state names are these.
    #[test]
    fn the_gnome_extension_names_the_same_states() {
        let js = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shell/gnome/src/zerocast.js"),
        )
        .expect("shell/gnome/src/zerocast.js");
        let list = js
            .split("const RUNNING_STATES = [")
            .nth(1)
            .and_then(|rest| rest.split(']').next())
            .expect("RUNNING_STATES in zerocast.js");
        let running: Vec<&str> = list
            .split(',')
            .map(|s| s.trim().trim_matches('\''))
            .collect();
        let ours: Vec<&str> = State::ALL
            .into_iter()
            .filter(|s| !s.is_over())
            .map(State::as_str)
            .collect();
        assert_eq!(running, ours);
        // Every state it compares with is one of ours.
        for cmp in ["state === '", "state !== '"] {
            for rest in js.split(cmp).skip(1) {
                let name = rest.split('\'').next().unwrap_or("");
                assert!(
                    name.parse::<State>().is_ok(),
                    "zerocast.js compares with {name:?}"
                );
            }
        }
    }

    #[test]
    fn over_and_running() {
        let over: Vec<_> = State::ALL.into_iter().filter(|s| s.is_over()).collect();
        assert_eq!(over, [State::Finished, State::Failed]);
        let running: Vec<_> = State::ALL.into_iter().filter(|s| s.is_running()).collect();
        assert_eq!(running, [State::Recording, State::Paused]);
    }
}
