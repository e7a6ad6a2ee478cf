//! The daemon's recordings, followed. One subscription order for every client that shows them:
//! subscribe to the daemon's signals first, then read, so no change falls in between; read
//! through the daemon's unique name, so following never activates a daemon; and follow the
//! daemon across restarts (NameOwnerChanged).

use std::collections::{BTreeMap, HashMap};

use std::pin::Pin;

use futures_util::{Stream, StreamExt};
use zbus::fdo::{DBusProxy, PropertiesProxy};
use zbus::message::Type as MessageType;
use zbus::names::{BusName, InterfaceName, OwnedUniqueName, WellKnownName};
use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};
use zbus::{Connection, MatchRule, Message, MessageStream};

use crate::{id_of, State, BUS_NAME, MANAGER_IFACE, MANAGER_PATH, RECORDING_IFACE};

/// What talking to the daemon can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Bus(#[from] zbus::Error),
    #[error(transparent)]
    Fdo(#[from] zbus::fdo::Error),
    #[error("the daemon sent {0}")]
    Value(#[from] zbus::zvariant::Error),
    #[error(transparent)]
    State(#[from] crate::UnknownState),
}

/// One recording object, as far as its properties and signals told us.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Entry {
    /// `State`, parsed; `None` until a read or a signal named it.
    pub state: Option<State>,
    /// The other properties by their D-Bus names, without variant wrappers.
    pub props: BTreeMap<String, OwnedValue>,
    /// Read with `GetAll`, not only seen in signals: `Options` is const, so no signal ever
    /// carries it.
    pub read: bool,
    /// `Finished`'s statistics (`duration`, `frames`, …), once it came.
    pub stats: HashMap<String, OwnedValue>,
    /// `Failed`'s error name and message, once it came.
    pub failure: Option<(String, String)>,
}

impl Entry {
    /// A string property (`Path`, `Encoder`, `CapturePath`).
    pub fn str(&self, prop: &str) -> Option<&str> {
        match self.props.get(prop).map(|v| &**v) {
            Some(Value::Str(s)) => Some(s.as_str()),
            _ => None,
        }
    }

    pub fn f64(&self, prop: &str) -> Option<f64> {
        match self.props.get(prop).map(|v| &**v) {
            Some(Value::F64(x)) => Some(*x),
            _ => None,
        }
    }

    /// `Path`: the recording's file, `None` while there is none (a replay writes one only when
    /// kept or saved at stop; the bus says "").
    pub fn file(&self) -> Option<&str> {
        self.str("Path").filter(|p| !p.is_empty())
    }

    pub fn u64(&self, prop: &str) -> Option<u64> {
        match self.props.get(prop).map(|v| &**v) {
            Some(Value::U64(x)) => Some(*x),
            _ => None,
        }
    }

    /// One key of the `Options` dictionary (the request as the daemon took it).
    pub fn option(&self, key: &str) -> Option<&Value<'_>> {
        let Some(Value::Dict(opts)) = self.props.get("Options").map(|v| &**v) else {
            return None;
        };
        opts.iter()
            .find(|(k, _)| matches!(unwrap(k), Value::Str(s) if s.as_str() == key))
            .map(|(_, v)| unwrap(v))
    }

    /// `Warnings`: the session's named warnings (name → message, e.g.
    /// `restored-source-differs`), sorted by name; empty when there are none or before a read.
    pub fn warnings(&self) -> BTreeMap<String, String> {
        let Some(Value::Dict(w)) = self.props.get("Warnings").map(|v| &**v) else {
            return BTreeMap::new();
        };
        w.iter()
            .filter_map(|(k, v)| match (unwrap(k), unwrap(v)) {
                (Value::Str(k), Value::Str(v)) => Some((k.to_string(), v.to_string())),
                _ => None,
            })
            .collect()
    }

    /// Applies property values from `GetAll` (`read`) or `PropertiesChanged`. A signalled end
    /// (`finished` / `failed`) is taken from the `Finished` / `Failed` signals only, which come
    /// right after and carry the outcome, so a client never shows an end without it; a read one
    /// is taken as it is (the signals went before we looked).
    pub fn apply<'a>(&mut self, props: impl Iterator<Item = (&'a str, &'a Value<'a>)>, read: bool) {
        for (k, v) in props {
            let v = unwrap(v);
            if k == "State" {
                if let Value::Str(s) = v {
                    match s.parse::<State>() {
                        Ok(st) if st.is_over() && !read => {}
                        Ok(st) => self.state = Some(st),
                        Err(_) => {}
                    }
                }
                continue;
            }
            if let Ok(v) = v.try_to_owned() {
                self.props.insert(k.to_owned(), v);
            }
        }
    }
}

/// The value inside any `v` wrappers.
fn unwrap<'a>(mut v: &'a Value<'a>) -> &'a Value<'a> {
    while let Value::Value(inner) = v {
        v = inner;
    }
    v
}

/// Something the daemon said, received but not applied yet (see [`Follower::recv`]).
#[derive(Debug)]
pub enum Signal {
    /// `org.zerocast.Recorder1` got a new owner, or none.
    Owner(Option<OwnedUniqueName>),
    /// A signal from the daemon's objects.
    Message(Message),
}

/// What applying a [`Signal`] changed.
#[derive(Debug)]
pub enum Update {
    /// The daemon appeared (`Some` owner) or left; the snapshot was reset and, if it appeared,
    /// read again. `error`: reading its recordings failed.
    Daemon {
        owner: Option<OwnedUniqueName>,
        error: Option<Error>,
    },
    /// The list of recordings changed; `added` were read for the first time (an ended one among
    /// them finished before we looked).
    Listed { added: Vec<u64> },
    /// Properties of recording `id` changed.
    Changed { id: u64 },
    /// Recording `id` finished; `path` is the file, `None` when nothing was written (a replay
    /// stopped without save-on-stop: the bus says "").
    Finished { id: u64, path: Option<String> },
    /// Recording `id` failed.
    Failed {
        id: u64,
        error_name: String,
        message: String,
    },
    /// Nothing a client shows (another signal, or one that did not parse).
    Nothing,
}

/// The daemon's recordings, kept current by its signals.
///
/// [`Follower::recv`] only waits for the next signal (cancel-safe, for `tokio::select!`
/// beside other work); [`Follower::apply`] then applies it, reading new objects as needed.
pub struct Follower {
    conn: Connection,
    /// NameOwnerChanged of the daemon's name and the signals of its objects, as one stream.
    signals: Pin<Box<dyn Stream<Item = Signal> + Send>>,
    owner: Option<OwnedUniqueName>,
    recordings: BTreeMap<u64, Entry>,
}

impl Follower {
    /// Subscribes to the daemon's signals, then reads its recordings (in that order: nothing
    /// falls in between). A missing daemon is no error: the snapshot is empty until one comes.
    /// Returns the follower and what the first read found.
    pub async fn subscribe(conn: &Connection) -> Result<(Follower, Update), Error> {
        let dbus = DBusProxy::new(conn).await?;
        let owners = dbus
            .receive_name_owner_changed_with_args(&[(0, BUS_NAME)])
            .await?
            .filter_map(|sig| {
                let owner = sig
                    .args()
                    .ok()
                    .map(|a| a.new_owner().as_ref().map(|o| o.to_owned().into()));
                std::future::ready(owner.map(Signal::Owner))
            });
        let rule = MatchRule::builder()
            .msg_type(MessageType::Signal)
            .sender(BUS_NAME)?
            .path_namespace(MANAGER_PATH)?
            .build();
        let messages = MessageStream::for_match_rule(rule, conn, Some(64))
            .await?
            .filter_map(|m| std::future::ready(m.ok().map(Signal::Message)));
        let owner = dbus
            .get_name_owner(BusName::WellKnown(
                WellKnownName::from_static_str_unchecked(BUS_NAME),
            ))
            .await
            .ok();
        let mut f = Follower {
            conn: conn.clone(),
            signals: Box::pin(futures_util::stream::select(owners, messages)),
            owner: None,
            recordings: BTreeMap::new(),
        };
        let first = f.apply(Signal::Owner(owner)).await;
        Ok((f, first))
    }

    /// The daemon's unique name, while it is on the bus.
    pub fn owner(&self) -> Option<&OwnedUniqueName> {
        self.owner.as_ref()
    }

    /// Recording objects by their number.
    pub fn recordings(&self) -> &BTreeMap<u64, Entry> {
        &self.recordings
    }

    /// The next signal; `None` when the connection is gone. Cancel-safe.
    pub async fn recv(&mut self) -> Option<Signal> {
        self.signals.next().await
    }

    /// Applies a signal from [`Follower::recv`] to the snapshot.
    pub async fn apply(&mut self, signal: Signal) -> Update {
        match signal {
            Signal::Owner(owner) => {
                self.recordings.clear();
                self.owner = owner.clone();
                let error = match &owner {
                    Some(o) => self.read_list(o).await.err(),
                    None => None,
                };
                Update::Daemon { owner, error }
            }
            Signal::Message(msg) => self.on_message(&msg).await.unwrap_or(Update::Nothing),
        }
    }

    async fn read_list(&mut self, owner: &OwnedUniqueName) -> Result<(), Error> {
        let v = self
            .props(owner, MANAGER_PATH)
            .await?
            .get(
                InterfaceName::from_static_str_unchecked(MANAGER_IFACE),
                "Recordings",
            )
            .await?;
        self.sync(&Vec::<OwnedObjectPath>::try_from(v)?).await;
        Ok(())
    }

    async fn props(
        &self,
        owner: &OwnedUniqueName,
        path: &str,
    ) -> zbus::Result<PropertiesProxy<'static>> {
        PropertiesProxy::builder(&self.conn)
            .destination(owner.clone())?
            .path(path.to_owned())?
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
    }

    /// Adopts the daemon's list: drops removed objects, reads those not read yet (also those
    /// seen only in signals so far: `Options` comes with `GetAll` only). Returns the ids read
    /// for the first time.
    async fn sync(&mut self, list: &[OwnedObjectPath]) -> Vec<u64> {
        let ids: Vec<(u64, &OwnedObjectPath)> = list
            .iter()
            .filter_map(|p| Some((id_of(p.as_str())?, p)))
            .collect();
        self.recordings
            .retain(|id, _| ids.iter().any(|(i, _)| i == id));
        let Some(owner) = self.owner.clone() else {
            return Vec::new();
        };
        let mut added = Vec::new();
        for (id, path) in ids {
            let seen = self.recordings.get(&id);
            if seen.is_some_and(|r| r.read) {
                continue;
            }
            let new = seen.is_none();
            let all = match self.props(&owner, path.as_str()).await {
                Ok(p) => {
                    p.get_all(InterfaceName::from_static_str_unchecked(RECORDING_IFACE))
                        .await
                }
                Err(e) => Err(e.into()),
            };
            // An error: removed between the list and the read, nothing to show.
            if let Ok(all) = all {
                let r = self.recordings.entry(id).or_default();
                r.apply(all.iter().map(|(k, v)| (k.as_str(), &**v)), true);
                r.read = true;
                if new {
                    added.push(id);
                }
            }
        }
        added
    }

    async fn on_message(&mut self, msg: &Message) -> Option<Update> {
        let header = msg.header();
        let path = header.path()?.as_str().to_owned();
        match header.member()?.as_str() {
            "PropertiesChanged" => {
                let sig = zbus::fdo::PropertiesChanged::from_message(msg.clone())?;
                let args = sig.args().ok()?;
                let changed: &HashMap<&str, Value<'_>> = args.changed_properties();
                if path == MANAGER_PATH {
                    let v = changed.get("Recordings")?;
                    let list =
                        Vec::<OwnedObjectPath>::try_from(OwnedValue::try_from(v).ok()?).ok()?;
                    let added = self.sync(&list).await;
                    Some(Update::Listed { added })
                } else {
                    let id = id_of(&path)?;
                    // Also a recording not listed yet (its Recordings change is next).
                    let r = self.recordings.entry(id).or_default();
                    r.apply(changed.iter().map(|(k, v)| (*k, v)), false);
                    Some(Update::Changed { id })
                }
            }
            "Finished" => {
                let id = id_of(&path)?;
                let (file, stats) = msg
                    .body()
                    .deserialize::<(String, HashMap<String, OwnedValue>)>()
                    .ok()?;
                let r = self.recordings.entry(id).or_default();
                r.state = Some(State::Finished);
                r.props.insert(
                    "Path".into(),
                    OwnedValue::from(zbus::zvariant::Str::from(file.clone())),
                );
                r.stats = stats;
                let path = Some(file).filter(|f| !f.is_empty());
                Some(Update::Finished { id, path })
            }
            "Failed" => {
                let id = id_of(&path)?;
                let (error_name, message) = msg.body().deserialize::<(String, String)>().ok()?;
                let r = self.recordings.entry(id).or_default();
                r.state = Some(State::Failed);
                r.failure = Some((error_name.clone(), message.clone()));
                Some(Update::Failed {
                    id,
                    error_name,
                    message,
                })
            }
            _ => None,
        }
    }
}

/// The recording a client acts on: the newest one that has not ended.
pub fn current(recordings: &BTreeMap<u64, Entry>) -> Option<(u64, &Entry)> {
    recordings
        .iter()
        .rev()
        .find(|(_, r)| !r.state.is_some_and(State::is_over))
        .map(|(id, r)| (*id, r))
}

/// A D-Bus error as a user reads it: the error's name (for scripts) and its message.
pub fn describe(e: &zbus::Error) -> String {
    match e {
        zbus::Error::MethodError(name, msg, _) => {
            format!("{}: {}", name.as_str(), msg.as_deref().unwrap_or(""))
        }
        e => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_reads_wrapped_values_and_options() {
        let mut e = Entry::default();
        let state = Value::from("paused");
        let wrapped = Value::Value(Box::new(Value::from(2.5f64)));
        let path = Value::from("/v/a.mkv");
        let options = Value::from(HashMap::from([(
            "replay".to_owned(),
            Value::Value(Box::new(Value::from(5.0f64))),
        )]));
        e.apply(
            [
                ("State", &state),
                ("Duration", &wrapped),
                ("Path", &path),
                ("Options", &options),
            ]
            .into_iter(),
            false,
        );
        assert_eq!(e.state, Some(State::Paused));
        assert_eq!(e.f64("Duration"), Some(2.5));
        assert_eq!(e.str("Path"), Some("/v/a.mkv"));
        assert_eq!(e.option("replay"), Some(&Value::from(5.0f64)));
        assert_eq!(e.option("save-on-stop"), None);
        assert!(!e.props.contains_key("State"));
    }

    #[test]
    fn a_signalled_end_waits_for_its_signal() {
        let mut e = Entry::default();
        let finished = Value::from("finished");
        e.apply([("State", &finished)].into_iter(), false);
        assert_eq!(e.state, None);
        // Read after the end: the signals went before.
        e.apply([("State", &finished)].into_iter(), true);
        assert_eq!(e.state, Some(State::Finished));
    }

    #[test]
    fn current_is_the_newest_not_over() {
        let rec = |s| Entry {
            state: Some(s),
            ..Entry::default()
        };
        let mut m = BTreeMap::new();
        assert!(current(&m).is_none());
        m.insert(1, rec(State::Recording));
        m.insert(2, rec(State::Finished));
        assert_eq!(current(&m).map(|(id, _)| id), Some(1));
        m.insert(3, Entry::default());
        assert_eq!(current(&m).map(|(id, _)| id), Some(3));
        m.insert(3, rec(State::Failed));
        m.insert(1, rec(State::Finished));
        assert!(current(&m).is_none());
    }
}
