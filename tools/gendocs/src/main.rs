//! `zerocast-gendocs OUTDIR`: writes zerocast's man pages and shell completions from the clap
//! definitions the binary itself parses with (src/cli.rs, included below), so the pages never
//! drift from `--help`. Used by scripts/package-deb.sh; the shipped binaries carry none of this.
//!
//! OUTDIR/man/zerocast.1, zerocast-<sub>.1 (one page per subcommand, as git does),
//! zerocast-tray.1, and OUTDIR/completions/{zerocast.bash,_zerocast,zerocast.fish}.

use std::path::Path;

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;

// The very file src/main.rs uses (`mod cli`). Only the definitions are read here.
#[allow(
    dead_code,
    reason = "the parsed values are read by zerocast, not by the generator"
)]
#[path = "../../../src/cli.rs"]
mod cli;
// The tray's --help text (the tray parses its flags by hand).
#[path = "../../../tray/src/help.rs"]
mod tray_help;

fn main() -> Result<()> {
    let out = std::env::args_os()
        .nth(1)
        .context("usage: zerocast-gendocs OUTDIR")?;
    let out = Path::new(&out);
    let man = out.join("man");
    let comp = out.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&comp)?;

    // The pages leave out the `help` subcommands (help for help: no page of their own); the
    // completions below keep them, as the binary has them.
    let mut cmd = without_help_subcommand(cli::Cli::command());
    cmd.build();
    write_pages(&cmd, &man, "")?;
    std::fs::write(man.join("zerocast-tray.1"), tray_page()?)?;

    for (shell, name) in [
        (Shell::Bash, "zerocast"),
        (Shell::Zsh, "_zerocast"),
        (Shell::Fish, "zerocast.fish"),
    ] {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cli::Cli::command(), "zerocast", &mut buf);
        std::fs::write(comp.join(name), buf)?;
    }
    Ok(())
}

/// zerocast.1, then zerocast-record.1, zerocast-ctl.1, zerocast-ctl-start.1, …
fn write_pages(cmd: &clap::Command, dir: &Path, prefix: &str) -> Result<()> {
    let name = if prefix.is_empty() {
        cmd.get_name().to_string()
    } else {
        format!("{prefix}-{}", cmd.get_name())
    };
    // Each page titled and named as the command line spells it: `zerocast-ctl-start`.
    let page = cmd.clone().display_name(name.clone());
    let mut buf = Vec::new();
    clap_mangen::Man::new(page)
        .date("")
        .source(format!("zerocast {}", env!("CARGO_PKG_VERSION")))
        .manual("zerocast manual")
        .render(&mut buf)?;
    std::fs::write(dir.join(format!("{name}.1")), buf)?;
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() {
            continue;
        }
        write_pages(sub, dir, &name)?;
    }
    Ok(())
}

fn without_help_subcommand(cmd: clap::Command) -> clap::Command {
    cmd.disable_help_subcommand(true)
        .mut_subcommands(without_help_subcommand)
}

/// zerocast-tray(1) from the tray's own help text: the first line is the name line, the
/// `Usage:` line the synopsis, the rest the description.
fn tray_page() -> Result<Vec<u8>> {
    let help = tray_help::HELP;
    let (head, rest) = help
        .split_once("\n\n")
        .context("tray help: no blank line")?;
    let about = head
        .split_once(": ")
        .map(|(_, a)| a)
        .context("tray help: first line is not 'name: what'")?;
    let (usage, body) = rest.split_once("\n\n").context("tray help: no usage")?;
    let usage = usage.trim_start_matches("Usage: ");
    let esc = |s: &str| s.replace('\\', "\\\\").replace('-', "\\-");
    let mut page = String::new();
    page.push_str(&format!(
        ".TH zerocast-tray 1 \"\" \"zerocast {}\" \"zerocast manual\"\n",
        env!("CARGO_PKG_VERSION")
    ));
    page.push_str(&format!(".SH NAME\nzerocast\\-tray \\- {}\n", esc(about)));
    page.push_str(&format!(
        ".SH SYNOPSIS\n\\fBzerocast\\-tray\\fR [\\fB\\-v\\fR]\n.br\n{}\n",
        esc(usage)
    ));
    page.push_str(".SH DESCRIPTION\n");
    for line in body.lines() {
        // A line starting with a dot or quote would be a roff request.
        let line = esc(line);
        if line.starts_with('.') || line.starts_with('\'') {
            page.push_str("\\&");
        }
        page.push_str(&line);
        page.push('\n');
    }
    page.push_str(
        ".SH OPTIONS\n.TP\n\\fB\\-v\\fR, \\fB\\-\\-verbose\\fR\nMore logging (repeat for more).\n\
         .TP\n\\fB\\-h\\fR, \\fB\\-\\-help\\fR\nPrint help.\n.SH SEE ALSO\n\\fBzerocast\\fR(1)\n",
    );
    Ok(page.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every help text of `cmd` and its subcommands (about, before/after help, each argument's
    /// help), with the command path it belongs to.
    fn help_texts(cmd: &clap::Command, path: &str, out: &mut Vec<(String, String)>) {
        let path = format!("{path} {}", cmd.get_name()).trim().to_owned();
        let texts = [
            cmd.get_about(),
            cmd.get_long_about(),
            cmd.get_before_help(),
            cmd.get_before_long_help(),
            cmd.get_after_help(),
            cmd.get_after_long_help(),
        ];
        let args = cmd
            .get_arguments()
            .flat_map(|a| [a.get_help(), a.get_long_help()]);
        for t in texts.into_iter().chain(args).flatten() {
            out.push((path.clone(), t.to_string()));
        }
        for sub in cmd.get_subcommands() {
            help_texts(sub, &path, out);
        }
    }

    /// A help line reads as one run of words: no leading indentation and no run of spaces
    /// inside. A string literal continued onto the next source line without `\` carries the
    /// source's indentation into the help (`zerocast record --help` once showed 16 spaces in
    /// the middle of a sentence); clap only adds its own column gaps around these texts.
    fn spaced(line: &str) -> bool {
        line.starts_with(' ') || line.trim_end().contains("  ")
    }

    /// Every `--help` of `zerocast` (`record`, `ctl start`, every other subcommand) and of
    /// `zerocast-tray`: no run of spaces inside a line of text.
    #[test]
    fn no_run_of_spaces_in_any_help() {
        let mut texts = Vec::new();
        help_texts(&cli::Cli::command(), "", &mut texts);
        let paths: Vec<&str> = texts.iter().map(|(p, _)| p.as_str()).collect();
        for sub in ["zerocast record", "zerocast ctl start", "zerocast daemon"] {
            assert!(paths.contains(&sub), "{sub} not read: {paths:?}");
        }
        texts.push(("zerocast-tray".into(), tray_help::HELP.into()));
        let bad: Vec<String> = texts
            .iter()
            .flat_map(|(path, t)| {
                t.lines()
                    .filter(|l| spaced(l))
                    .map(move |l| format!("{path}: {l:?}"))
            })
            .collect();
        assert!(
            bad.is_empty(),
            "runs of spaces in help text:\n{}",
            bad.join("\n")
        );
    }

    /// The check itself: the line `record --help` once showed fails, a plain one passes.
    #[test]
    fn the_check_sees_a_continued_literal() {
        let leaked = "Cursor (default: embedded; metadata is refused: the pointer would be missing
                from the file)";
        assert!(leaked.lines().any(spaced));
        assert!(!"Cursor (default: embedded)".lines().any(spaced));
    }
}
