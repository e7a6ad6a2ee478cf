//! The output-path rules, the same for every surface:
//! - a template: `%d` date (`2026-08-21`), `%t` time (`14-03-59`), `%%` a percent sign; any
//!   other `%` sequence is an error;
//! - `~/…` is the home folder; an absolute path is taken as is; a relative path goes to the
//!   videos folder (`$XDG_VIDEOS_DIR`, else xdg-user-dirs' `user-dirs.dirs`, else `~/Videos`);
//! - no extension: the container's is added; an extension decides the container;
//! - the default name is [`DEFAULT_NAME`] in the videos folder;
//! - before the portal is asked: the directory exists (the videos folder itself is created),
//!   the path is a writable regular file or can be created, and an existing file is only
//!   replaced with `overwrite`.

use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use zerocast_recorder::Container;

/// The file name when none is given (the container's extension is added): one name for the
/// CLI and D-Bus alike.
pub const DEFAULT_NAME: &str = "zerocast-%d-%t";

/// A path typed in a terminal (`record -o`, `ctl start -o`, `ctl keep -o`): relative to the
/// terminal's directory, made absolute here at the shell's edge, so the rules above keep one
/// meaning for a relative path (the videos folder) for every surface that has no working
/// directory, the daemon's included. `~/…` and templates are left to those rules.
pub fn from_cwd(p: &str) -> std::io::Result<String> {
    if Path::new(p).is_absolute() || p.starts_with("~/") {
        return Ok(p.to_owned());
    }
    Ok(std::env::current_dir()?
        .join(p)
        .to_string_lossy()
        .into_owned())
}

/// Where relative paths go and what `%d`/`%t` expand to. Separate from the process
/// environment so the parsers are testable.
#[derive(Debug, Clone, PartialEq)]
pub struct PathContext {
    /// Base of relative paths; created if missing (it is the user's videos folder).
    pub videos_dir: PathBuf,
    /// For a leading `~/`.
    pub home: PathBuf,
    /// `%d`, e.g. `2026-08-21`.
    pub date: String,
    /// `%t`, e.g. `14-03-59` (no colons: they upset file managers and other OSes).
    pub time: String,
}

impl PathContext {
    /// Videos folder from `$XDG_VIDEOS_DIR`, xdg-user-dirs' `user-dirs.dirs`, else `~/Videos`;
    /// date and time from the local clock.
    pub fn from_env() -> Self {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| "/".into());
        let videos_dir = videos_dir(&home);
        let (date, time) = local_date_time();
        PathContext {
            videos_dir,
            home,
            date,
            time,
        }
    }
}

/// Why an output path cannot be used: the path rules' part of
/// [`RequestError`](crate::RequestError), which words it for each surface (`From` below).
#[derive(Debug, Clone, PartialEq)]
pub enum PathError {
    /// The path template or name is malformed.
    BadPath { reason: String },
    /// The extension names another container than the one asked for.
    ContainerMismatch { container: Container, ext: String },
    /// The output cannot be created.
    NotWritable { path: PathBuf, reason: String },
    /// The output exists and `overwrite` was not given.
    Exists { path: PathBuf },
}

fn bad_path(reason: impl Into<String>) -> PathError {
    PathError::BadPath {
        reason: reason.into(),
    }
}

/// `path` as a template that names exactly it: `%` doubled. For a path that was already
/// expanded and is given back as a template (a recording's `Options` property, `Keep`'s default).
pub fn literal(path: &str) -> String {
    path.replace('%', "%%")
}

/// `path` if nothing is there, else the first of `stem-2.ext`, `stem-3.ext`, … that is free.
pub fn first_free(path: PathBuf) -> PathBuf {
    if std::fs::symlink_metadata(&path).is_err() {
        return path;
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    (2u32..)
        .map(|n| path.with_file_name(format!("{stem}-{n}{ext}")))
        .find(|p| std::fs::symlink_metadata(p).is_err())
        .expect("some suffix is free")
}

/// Expands `template` and settles the container: the extension decides unless `container`
/// is given (then they must agree); a missing extension is added.
pub fn resolve_path(
    template: &str,
    container: Option<Container>,
    ctx: &PathContext,
) -> Result<(PathBuf, Container), PathError> {
    if template.is_empty() {
        return Err(bad_path("must not be empty"));
    }
    let expanded = expand(template, ctx)?;
    let mut path = if let Some(rest) = expanded.strip_prefix("~/") {
        // `~//x` is `$HOME//x`, the home folder's x (as in a shell); `join` would take `/x` as
        // absolute and leave the home folder (found by fuzz/, target path_template).
        ctx.home.join(rest.trim_start_matches('/'))
    } else {
        let p = PathBuf::from(&expanded);
        if p.is_absolute() {
            p
        } else {
            ctx.videos_dir.join(p)
        }
    };
    // `.` or `..` last names a directory too; `Path` drops a trailing `.` (`Videos/.` has the
    // file name `Videos`), so `.` became `Videos.mkv`, beside the videos folder (found by
    // fuzz/, target path_template).
    let last = expanded.rsplit('/').next().unwrap_or_default();
    if last.is_empty() || last == "." || last == ".." || path.file_name().is_none() {
        return Err(bad_path("must name a file, not a directory"));
    }

    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_owned);
    let from_ext = Container::from_path(&path);
    let container = match (ext, from_ext, container) {
        (None, _, c) => {
            let c = c.unwrap_or(Container::Mkv);
            let mut name = path.file_name().expect("checked above").to_os_string();
            name.push(".");
            name.push(c.as_str());
            path.set_file_name(name);
            c
        }
        (Some(_), Some(e), None) => e,
        (Some(_), Some(e), Some(c)) if e == c => c,
        (Some(ext), Some(_), Some(c)) => {
            return Err(PathError::ContainerMismatch { container: c, ext })
        }
        (Some(ext), None, _) => {
            let known: Vec<String> = Container::ALL.iter().map(|c| format!(".{c}")).collect();
            return Err(bad_path(format!(
                "has extension .{ext}; use {} or none",
                known.join(", ")
            )));
        }
    };
    Ok((path, container))
}

/// `%d`, `%t` and `%%`; anything else after `%` is an error (a typo should not end up in the
/// file name).
fn expand(template: &str, ctx: &PathContext) -> Result<String, PathError> {
    let mut expanded = String::with_capacity(template.len() + 16);
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            expanded.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => expanded.push_str(&ctx.date),
            Some('t') => expanded.push_str(&ctx.time),
            Some('%') => expanded.push('%'),
            other => {
                let seq = other
                    .map(|c| format!("%{c}"))
                    .unwrap_or_else(|| "a trailing %".into());
                return Err(bad_path(format!(
                    "has {seq}; the template knows %d (date), %t (time) and %%"
                )));
            }
        }
    }
    Ok(expanded)
}

/// Fails now, before a portal dialog, if the output cannot be created, or exists and may not
/// be replaced. Creates the videos folder itself if missing (like other recorders do), but no
/// other directory: a typo in a directory name should be an error, not a new folder.
pub fn check_writable(path: &Path, overwrite: bool, videos_dir: &Path) -> Result<(), PathError> {
    let not_writable = |reason: String| PathError::NotWritable {
        path: path.to_owned(),
        reason,
    };
    let dir = path.parent().unwrap_or(Path::new("/"));
    if dir == videos_dir && !dir.exists() {
        std::fs::create_dir_all(dir)
            .map_err(|e| not_writable(format!("cannot create {}: {e}", dir.display())))?;
    }
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(not_writable(format!(
                "{} is not a directory",
                dir.display()
            )))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(not_writable(format!(
                "directory {} does not exist",
                dir.display()
            )))
        }
        Err(e) => return Err(not_writable(format!("{}: {e}", dir.display()))),
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Err(not_writable("it is a directory".into())),
        // A FIFO or device would block or misbehave; refuse anything but a plain file.
        Ok(m) if !m.is_file() => Err(not_writable("it exists and is not a regular file".into())),
        Ok(_) if !overwrite => Err(PathError::Exists {
            path: path.to_owned(),
        }),
        // Existing file: opening for write without truncating proves we may replace it.
        Ok(_) => OpenOptions::new()
            .write(true)
            .open(path)
            .map(drop)
            .map_err(|e| not_writable(format!("it is not writable ({e})"))),
        // Create and remove it: the only check that is right for ACLs, read-only mounts and
        // root alike (access(2) says yes to root on a read-only sysfs).
        Err(_) => match OpenOptions::new().write(true).create_new(true).open(path) {
            Ok(f) => {
                drop(f);
                let _ = std::fs::remove_file(path);
                Ok(())
            }
            Err(e) => Err(not_writable(format!(
                "directory {} is not writable ({e})",
                dir.display()
            ))),
        },
    }
}

/// `$XDG_VIDEOS_DIR`, else the `XDG_VIDEOS_DIR=` line of `$XDG_CONFIG_HOME/user-dirs.dirs`,
/// else `~/Videos`.
pub fn videos_dir(home: &Path) -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_VIDEOS_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".config"));
    if let Ok(text) = std::fs::read_to_string(config.join("user-dirs.dirs")) {
        if let Some(d) = parse_user_dirs(&text, home) {
            return d;
        }
    }
    home.join("Videos")
}

/// The shell-like format xdg-user-dirs writes: `XDG_VIDEOS_DIR="$HOME/Videos"`.
fn parse_user_dirs(text: &str, home: &Path) -> Option<PathBuf> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("XDG_VIDEOS_DIR="))?;
    let value = line["XDG_VIDEOS_DIR=".len()..].trim_matches('"');
    let path = if let Some(rest) = value.strip_prefix("$HOME") {
        let mut s = home.as_os_str().to_owned();
        s.push(rest);
        PathBuf::from(s)
    } else {
        PathBuf::from(value)
    };
    // xdg-user-dirs uses "$HOME/" to mean "disabled"; fall back then.
    (path.is_absolute() && path != home).then_some(path)
}

fn local_date_time() -> (String, String) {
    // SAFETY: time(NULL) has no preconditions; localtime_r writes only into `tm`, which is a
    // plain C struct for which all-zero is a valid value.
    unsafe {
        let t = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return ("0000-00-00".into(), "00-00-00".into());
        }
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
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn ctx(dir: &Path) -> PathContext {
        PathContext {
            videos_dir: dir.join("Videos"),
            home: dir.to_owned(),
            date: "2026-08-21".into(),
            time: "14-03-59".into(),
        }
    }

    #[test]
    fn first_free_counts_up_past_taken_names() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("zerocast-x.mkv");
        assert_eq!(first_free(p.clone()), p);
        std::fs::write(&p, b"").unwrap();
        assert_eq!(first_free(p.clone()), dir.path().join("zerocast-x-2.mkv"));
        std::fs::write(dir.path().join("zerocast-x-2.mkv"), b"").unwrap();
        assert_eq!(first_free(p), dir.path().join("zerocast-x-3.mkv"));
    }

    #[test]
    fn template_expansion_and_extension() {
        let dir = tempfile::tempdir().unwrap();
        let c = ctx(dir.path());
        let (p, k) = resolve_path("rec-%d_%t%%", Some(Container::Webm), &c).unwrap();
        assert_eq!(p, c.videos_dir.join("rec-2026-08-21_14-03-59%.webm"));
        assert_eq!(k, Container::Webm);
        let (p, _) = resolve_path("~/x.mkv", None, &c).unwrap();
        assert_eq!(p, dir.path().join("x.mkv"));
    }

    #[test]
    fn templates_that_end_in_a_directory_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let c = ctx(dir.path());
        for t in [
            ".", "..", "./", "a/.", "a/..", "~/.", "~/..", "/tmp/.", "x.mkv/.", "%d/.",
        ] {
            let e = resolve_path(t, None, &c).unwrap_err();
            assert!(
                matches!(&e, PathError::BadPath { reason } if reason.contains("not a directory")),
                "{t}: {e:?}"
            );
        }
        // A dot inside a name, or `..` before the name, is still a file name.
        let (p, _) = resolve_path("a./.b", None, &c).unwrap();
        assert_eq!(p, c.videos_dir.join("a./.b.mkv"));
        let (p, _) = resolve_path("../x", None, &c).unwrap();
        assert_eq!(p, c.videos_dir.join("../x.mkv"));
        let (p, _) = resolve_path("~//y", None, &c).unwrap();
        assert_eq!(p, dir.path().join("y.mkv"));
    }

    #[test]
    fn user_dirs_file() {
        let home = Path::new("/home/u");
        let text = "# comment\nXDG_DESKTOP_DIR=\"$HOME/Desktop\"\nXDG_VIDEOS_DIR=\"$HOME/Filme\"\n";
        assert_eq!(
            parse_user_dirs(text, home),
            Some(PathBuf::from("/home/u/Filme"))
        );
        assert_eq!(parse_user_dirs("XDG_VIDEOS_DIR=\"$HOME/\"", home), None);
        assert_eq!(
            parse_user_dirs("XDG_VIDEOS_DIR=\"/v\"", home),
            Some(PathBuf::from("/v"))
        );
    }

    #[test]
    fn missing_dir_and_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let videos = dir.path().join("Videos");
        let err = check_writable(&dir.path().join("nope/a.mkv"), false, &videos).unwrap_err();
        assert!(
            matches!(&err, PathError::NotWritable { reason, .. } if reason.contains("does not exist")),
            "{err:?}"
        );
        let f = dir.path().join("a.mkv");
        std::fs::write(&f, b"x").unwrap();
        // (How each surface words it, `--overwrite` or 'overwrite': tests/surfaces.rs.)
        assert_eq!(
            check_writable(&f, false, &videos),
            Err(PathError::Exists { path: f.clone() })
        );
        check_writable(&f, true, &videos).unwrap();
        assert_eq!(
            std::fs::read(&f).unwrap(),
            b"x",
            "the check changes nothing"
        );
    }
}
