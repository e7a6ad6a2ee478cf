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

pub fn load(dir: &Path, source: SourceType) -> Option<String> {
    let token = fs::read_to_string(token_path(dir, source)).ok()?;
    let token = token.trim();
    (!token.is_empty()).then(|| token.to_string())
}

/// Writes the token atomically (temp file + rename) so a crash never leaves half a token, and
/// with mode 0600 from creation on because a token grants screen access without asking.
pub fn store(dir: &Path, source: SourceType, token: &str) -> io::Result<()> {
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
        f.write_all(token.as_bytes())?;
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
    fn store_is_private_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("zerocast");
        assert_eq!(load(&d, SourceType::Monitor), None);
        store(&d, SourceType::Monitor, "abc").unwrap();
        store(&d, SourceType::Monitor, "def").unwrap();
        assert_eq!(load(&d, SourceType::Monitor).as_deref(), Some("def"));
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
}
