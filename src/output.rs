//! Output path handling: templates, defaults, and the checks that must fail *before* the portal
//! is asked (a user should not pick a screen only to learn the file cannot be written).

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

/// Expands `%d` (YYYY-MM-DD) and `%t` (HH-MM-SS) with the local time.
pub fn expand_template(template: &str) -> String {
    let (date, time) = local_date_time();
    template.replace("%d", &date).replace("%t", &time)
}

fn local_date_time() -> (String, String) {
    // SAFETY: time(NULL) has no preconditions; localtime_r writes only into `tm`.
    let tm = unsafe {
        let t = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&t, &mut tm);
        tm
    };
    (
        format!(
            "{:04}-{:02}-{:02}",
            tm.tm_year + 1900,
            tm.tm_mon + 1,
            tm.tm_mday
        ),
        format!("{:02}-{:02}-{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec),
    )
}

/// `$XDG_VIDEOS_DIR` (from user-dirs.dirs), else `~/Videos`.
pub fn videos_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_VIDEOS_DIR") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".config"));
    if let Ok(text) = std::fs::read_to_string(config.join("user-dirs.dirs")) {
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("XDG_VIDEOS_DIR=") {
                let v = v
                    .trim()
                    .trim_matches('"')
                    .replace("$HOME", &home.to_string_lossy());
                return PathBuf::from(v);
            }
        }
    }
    home.join("Videos")
}

/// Checks that `path` can be created: its directory exists and is writable, and it does not
/// exist yet unless `overwrite`.
pub fn check_writable(path: &Path, overwrite: bool) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        bail!(
            "cannot write {}: directory {} does not exist",
            path.display(),
            dir.display()
        );
    }
    if path.is_dir() {
        bail!("cannot write {}: it is a directory", path.display());
    }
    if path.exists() && !overwrite {
        bail!(
            "{} already exists (use --overwrite to replace it)",
            path.display()
        );
    }
    // Try it for real: access(W_OK) says yes to root even on read-only mounts and /proc.
    let probe = dir.join(format!(".zerocast-write-test-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
        }
        Err(e) => bail!(
            "cannot write {}: directory {} is not writable ({e})",
            path.display(),
            dir.display()
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_expands() {
        let s = expand_template("rec-%d_%t.mkv");
        assert!(!s.contains('%'), "{s}");
        assert_eq!(s.len(), "rec-2026-01-01_00-00-00.mkv".len());
    }

    #[test]
    fn missing_dir_and_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = check_writable(&dir.path().join("nope/a.mkv"), false).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
        let f = dir.path().join("a.mkv");
        std::fs::write(&f, b"x").unwrap();
        assert!(check_writable(&f, false)
            .unwrap_err()
            .to_string()
            .contains("--overwrite"));
        check_writable(&f, true).unwrap();
    }
}
