//! Restore-token store: one file per source type under `$XDG_STATE_HOME/zerocast/`, mode 0600.
//!
//! A restore token lets the portal skip the source-selection dialog. The spec calls tokens
//! single-use and every successful Start returns one, which replaces the stored one
//! (xdg-desktop-portal 1.16–1.20 hands a restored session its token back unchanged; stored
//! anyway, so a portal that does rotate them is followed).

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::SourceType;

/// Directory holding zerocast's state (`$XDG_STATE_HOME/zerocast`, else `~/.local/state/zerocast`).
pub fn state_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local").join("state"))
        })?;
    Some(base.join("zerocast"))
}

/// Path of the token file for `source`.
pub fn token_path(dir: &Path, source: SourceType) -> PathBuf {
    dir.join(format!("restore-token-{source}"))
}

/// What a restore token stood for when it was stored: the source the user chose (its type, and
/// for a monitor where it was in the desktop and its size, as the portal's stream said), so a
/// restored session can be checked against it. `None` fields were not reported and are not
/// compared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceRecord {
    pub kind: Option<SourceType>,
    pub position: Option<(i32, i32)>,
    pub size: Option<(u32, u32)>,
}

impl std::fmt::Display for SourceRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            Some(k) => write!(f, "{k}")?,
            None => write!(f, "source")?,
        }
        if let Some((x, y)) = self.position {
            write!(f, " at {x},{y}")?;
        }
        if let Some((w, h)) = self.size {
            write!(f, " {w}x{h}")?;
        }
        Ok(())
    }
}

impl SourceRecord {
    /// What differs between the stored source (`self`) and the restored one, by field name
    /// (`source type`, `position`, `size`); empty when they match as far as both say.
    pub fn differences(&self, restored: &SourceRecord) -> Vec<&'static str> {
        fn differs<T: PartialEq>(a: &Option<T>, b: &Option<T>) -> bool {
            matches!((a, b), (Some(a), Some(b)) if a != b)
        }
        let mut out = Vec::new();
        if differs(&self.kind, &restored.kind) {
            out.push("source type");
        }
        if differs(&self.position, &restored.position) {
            out.push("position");
        }
        if differs(&self.size, &restored.size) {
            out.push("size");
        }
        out
    }

    /// `key=value` lines after the token (see [`store`]).
    fn lines(&self) -> String {
        let mut s = String::new();
        if let Some(k) = self.kind {
            s.push_str(&format!("source={k}\n"));
        }
        if let Some((x, y)) = self.position {
            s.push_str(&format!("position={x},{y}\n"));
        }
        if let Some((w, h)) = self.size {
            s.push_str(&format!("size={w}x{h}\n"));
        }
        s
    }

    /// Reads the lines [`SourceRecord::lines`] wrote; unknown or malformed lines are skipped
    /// (a file from another version still yields its token).
    fn parse<'a>(lines: impl Iterator<Item = &'a str>) -> Option<SourceRecord> {
        let mut r = SourceRecord::default();
        let mut any = false;
        for line in lines {
            let Some((key, value)) = line.trim().split_once('=') else {
                continue;
            };
            let pair = |sep: char| value.split_once(sep);
            match key {
                "source" => r.kind = value.parse().ok(),
                "position" => {
                    r.position =
                        pair(',').and_then(|(x, y)| Some((x.parse().ok()?, y.parse().ok()?)))
                }
                "size" => {
                    r.size = pair('x').and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
                }
                _ => continue,
            }
            any = true;
        }
        any.then_some(r)
    }
}

/// A stored token and, when it was stored with one, the source it stood for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub token: String,
    pub source: Option<SourceRecord>,
}

/// The token file: the token on the first line (all a file of an older zerocast holds), then
/// the [`SourceRecord`] as `key=value` lines.
pub fn load(dir: &Path, source: SourceType) -> Option<Stored> {
    let text = fs::read_to_string(token_path(dir, source)).ok()?;
    let mut lines = text.lines();
    let token = lines.next()?.trim();
    (!token.is_empty()).then(|| Stored {
        token: token.to_string(),
        source: SourceRecord::parse(lines),
    })
}

/// Writes the token (and what it stands for) atomically (temp file + rename) so a crash never
/// leaves half a token, and with mode 0600 from creation on because a token grants screen
/// access without asking. A token that would not read back as itself (empty, a line break,
/// spaces around it) is refused with `InvalidInput`: its second line would be read as the
/// source record (found by fuzz/, target token_file).
pub fn store(
    dir: &Path,
    source: SourceType,
    token: &str,
    record: Option<&SourceRecord>,
) -> io::Result<()> {
    if token.is_empty() || token.trim() != token || token.contains(['\n', '\r']) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("restore token {token:?} is not one line without surrounding spaces"),
        ));
    }
    fs::create_dir_all(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    let path = token_path(dir, source);
    let tmp = path.with_extension("tmp");
    {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        let mut text = format!("{token}\n");
        if let Some(r) = record {
            text.push_str(&r.lines());
        }
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    fs::rename(&tmp, &path)
}

pub fn remove(dir: &Path, source: SourceType) -> io::Result<()> {
    match fs::remove_file(token_path(dir, source)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_that_would_not_read_back_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["", " t", "t ", "t\nsource=window", "t\r"] {
            let e = store(dir.path(), SourceType::Monitor, bad, None).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
        // Nothing written: before, `t\nsource=window` loaded as token `t` of a window.
        assert_eq!(load(dir.path(), SourceType::Monitor), None);
    }

    #[test]
    fn store_is_private_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("zerocast");
        assert_eq!(load(&d, SourceType::Monitor), None);
        store(&d, SourceType::Monitor, "abc", None).unwrap();
        let rec = SourceRecord {
            kind: Some(SourceType::Monitor),
            position: Some((-1280, 0)),
            size: Some((1280, 720)),
        };
        store(&d, SourceType::Monitor, "def", Some(&rec)).unwrap();
        let stored = load(&d, SourceType::Monitor).unwrap();
        assert_eq!(stored.token, "def");
        assert_eq!(stored.source.as_ref(), Some(&rec));
        assert_eq!(load(&d, SourceType::Window), None);
        let mode = fs::metadata(token_path(&d, SourceType::Monitor))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        remove(&d, SourceType::Monitor).unwrap();
        remove(&d, SourceType::Monitor).unwrap();
        assert_eq!(load(&d, SourceType::Monitor), None);
    }

    /// A file of an older zerocast (the token alone, as the test desktops seed them) still
    /// gives its token, with nothing to compare; unknown lines are skipped.
    #[test]
    fn token_only_and_unknown_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = token_path(dir.path(), SourceType::Monitor);
        fs::write(&path, "tok\n").unwrap();
        let s = load(dir.path(), SourceType::Monitor).unwrap();
        assert_eq!((s.token.as_str(), s.source), ("tok", None));
        fs::write(&path, "tok\nfuture=1\nsize=640x480\nposition=oops\n").unwrap();
        let s = load(dir.path(), SourceType::Monitor).unwrap();
        assert_eq!(
            s.source,
            Some(SourceRecord {
                size: Some((640, 480)),
                ..Default::default()
            })
        );
    }

    #[test]
    fn differences_name_what_changed() {
        let chosen = SourceRecord {
            kind: Some(SourceType::Monitor),
            position: Some((0, 0)),
            size: Some((1280, 720)),
        };
        assert!(chosen.differences(&chosen).is_empty());
        let moved = SourceRecord {
            position: Some((1280, 0)),
            ..chosen.clone()
        };
        assert_eq!(chosen.differences(&moved), ["position"]);
        let other = SourceRecord {
            kind: Some(SourceType::Window),
            position: None,
            size: Some((800, 600)),
        };
        // A field one side does not know is not compared.
        assert_eq!(chosen.differences(&other), ["source type", "size"]);
        assert!(chosen.differences(&SourceRecord::default()).is_empty());
        assert_eq!(moved.to_string(), "monitor at 1280,0 1280x720");
    }
}
