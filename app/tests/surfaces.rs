//! The same requests through both surfaces' parsers — `zerocast record`'s flags and D-Bus
//! `Start`'s `a{sv}` — give equal `RecordingRequest`s or equal named errors: the default name,
//! templates, `~`, relative paths, every range, every codec/container/encoder combination, the
//! `cursor=metadata` refusal, the audio tracks, codecs and bitrates.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use clap::Parser;
use zbus::zvariant::{OwnedValue, Value};
use zerocast_app::cli::RequestArgs;
use zerocast_app::options::spec;
use zerocast_app::{PathContext, RecordingRequest, RequestError};
use zerocast_recorder::{Codec, Container, EncoderChoice, RateControl};

/// `zerocast record`'s request flags, as the binary flattens them.
#[derive(Parser)]
struct Record {
    #[command(flatten)]
    request: RequestArgs,
}

/// One option value, written the way each surface writes it.
#[derive(Clone, Debug)]
enum V {
    S(&'static str),
    Path(PathBuf),
    U(i64),
    D(f64),
    B(bool),
    /// A list: the CLI repeats the flag, D-Bus sends `as`.
    L(&'static [&'static str]),
}

fn ctx(dir: &Path) -> PathContext {
    PathContext {
        videos_dir: dir.join("Videos"),
        home: dir.join("home"),
        date: "2026-08-21".into(),
        time: "14-03-59".into(),
    }
}

fn cli(ctx: &PathContext, opts: &[(&str, V)]) -> Result<RecordingRequest, RequestError> {
    let mut args: Vec<String> = vec!["record".into()];
    for (key, v) in opts {
        let flag = spec(key).flag.expect("the CLI has this option");
        match (v, *key) {
            // Flags without a value: present means the non-default.
            (V::B(true), "overwrite") => args.push(flag.into()),
            (V::B(false), "restore") => args.push(flag.into()),
            (V::B(_), _) => continue,
            (V::S(s), _) => args.extend([flag.to_string(), s.to_string()]),
            (V::Path(p), _) => args.extend([flag.to_string(), p.display().to_string()]),
            (V::U(n), _) => args.extend([flag.to_string(), n.to_string()]),
            (V::D(d), _) => args.extend([flag.to_string(), d.to_string()]),
            (V::L(items), _) => {
                for s in *items {
                    args.extend([flag.to_string(), s.to_string()]);
                }
            }
        }
    }
    let parsed = Record::try_parse_from(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    parsed.request.parse_in(ctx)
}

fn dbus(ctx: &PathContext, opts: &[(&str, V)]) -> Result<RecordingRequest, RequestError> {
    let dict: HashMap<String, OwnedValue> = opts
        .iter()
        .map(|(k, v)| {
            let v = match v {
                V::S(s) => Value::from(*s),
                V::Path(p) => Value::from(p.to_str().unwrap()),
                // `busctl … framerate u 60`; negative values as `i`, as a script would send them.
                V::U(n) if *n >= 0 && *n <= u32::MAX as i64 => Value::from(*n as u32),
                V::U(n) => Value::from(*n),
                V::D(d) => Value::from(*d),
                V::B(b) => Value::from(*b),
                V::L(items) => Value::from(items.to_vec()),
            };
            (k.to_string(), v.try_to_owned().unwrap())
        })
        .collect();
    zerocast_app::dbus::parse_options_in(&dict, ctx)
}

/// Both parsers, same request, same environment: the same outcome. Returns it.
#[track_caller]
fn same(ctx: &PathContext, opts: &[(&str, V)]) -> Result<RecordingRequest, RequestError> {
    let a = cli(ctx, opts);
    let b = dbus(ctx, opts);
    assert_eq!(a, b, "CLI and D-Bus disagree on {opts:?}");
    a
}

#[track_caller]
fn ok(ctx: &PathContext, opts: &[(&str, V)]) -> RecordingRequest {
    same(ctx, opts).unwrap_or_else(|e| panic!("{opts:?} refused: {e}"))
}

#[track_caller]
fn refused(ctx: &PathContext, opts: &[(&str, V)], key: &str, words: &str) -> RequestError {
    let e = same(ctx, opts).expect_err("accepted");
    assert_eq!(e.key(), key, "{opts:?}: {e}");
    assert!(e.to_string().contains(words), "{opts:?}: {e}");
    e
}

fn setup() -> (tempfile::TempDir, PathContext) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("home")).unwrap();
    let c = ctx(dir.path());
    (dir, c)
}

#[test]
fn default_name_and_defaults() {
    let (_dir, c) = setup();
    // The videos folder does not exist yet: it is created (and only it).
    let r = ok(&c, &[]);
    assert_eq!(
        r.path,
        c.videos_dir.join("zerocast-2026-08-21-14-03-59.mkv")
    );
    assert!(c.videos_dir.is_dir());
    assert!(!r.path.exists(), "the write probe is removed");
    assert_eq!(r.container, Container::Mkv);
    assert_eq!(r.codec, None, "chosen with the encoder");
    assert_eq!(r.encoder, EncoderChoice::Auto);
    assert_eq!(r.rate, RateControl::Quality(23));
    assert_eq!((r.framerate, r.duration), (None, None));
    assert!(r.restore && !r.overwrite && !r.stop_on_disconnect);
    // The default name takes the container's extension.
    let r = ok(&c, &[("container", V::S("webm"))]);
    assert_eq!(
        r.path,
        c.videos_dir.join("zerocast-2026-08-21-14-03-59.webm")
    );
    // Two recordings in the same second: the default name counts up; a name the user gave
    // stays an error without `overwrite`.
    std::fs::write(c.videos_dir.join("zerocast-2026-08-21-14-03-59.mkv"), b"").unwrap();
    let r = ok(&c, &[]);
    assert_eq!(
        r.path,
        c.videos_dir.join("zerocast-2026-08-21-14-03-59-2.mkv")
    );
    refused(
        &c,
        &[("path", V::S("zerocast-%d-%t.mkv"))],
        "path",
        "already exists",
    );
}

#[test]
fn templates_home_relative_and_absolute_paths() {
    let (dir, c) = setup();
    let r = ok(&c, &[("path", V::S("clip-%d_%t%%.mp4"))]);
    assert_eq!(r.path, c.videos_dir.join("clip-2026-08-21_14-03-59%.mp4"));
    assert_eq!(r.container, Container::Mp4);
    refused(&c, &[("path", V::S("a-%x.mkv"))], "path", "%x");
    refused(&c, &[("path", V::S("a%"))], "path", "trailing %");
    refused(&c, &[("path", V::S(""))], "path", "empty");
    refused(&c, &[("path", V::S("sub/"))], "path", "not a directory");

    let r = ok(&c, &[("path", V::S("~/a.mkv"))]);
    assert_eq!(r.path, c.home.join("a.mkv"));
    refused(
        &c,
        &[("path", V::S("~/nope/a.mkv"))],
        "path",
        "does not exist",
    );

    // Relative: into the videos folder, whose subfolders must exist.
    let r = ok(&c, &[("path", V::S("take"))]);
    assert_eq!(r.path, c.videos_dir.join("take.mkv"));
    refused(&c, &[("path", V::S("sub/a.mkv"))], "path", "does not exist");
    std::fs::create_dir_all(c.videos_dir.join("sub")).unwrap();
    let r = ok(&c, &[("path", V::S("sub/a.mkv"))]);
    assert_eq!(r.path, c.videos_dir.join("sub/a.mkv"));

    let abs = dir.path().join("abs.webm");
    let r = ok(&c, &[("path", V::Path(abs.clone()))]);
    assert_eq!((r.path, r.container), (abs, Container::Webm));
    refused(&c, &[("path", V::S("a.avi"))], "path", ".avi");
    refused(
        &c,
        &[("path", V::S("a.mp4")), ("container", V::S("mkv"))],
        "container",
        "ends in .mp4",
    );
    refused(
        &c,
        &[("path", V::S("/nonexistent-dir/a.mkv"))],
        "path",
        "does not exist",
    );
    refused(
        &c,
        &[("path", V::S("/sys/zerocast-test.mkv"))],
        "path",
        "not writable",
    );
}

#[test]
fn existing_file_needs_overwrite() {
    let (dir, c) = setup();
    let f = dir.path().join("x.mkv");
    std::fs::write(&f, b"keep me").unwrap();
    let e = refused(&c, &[("path", V::Path(f.clone()))], "path", "--overwrite");
    assert!(e.is_not_writable(), "D-Bus says OutputNotWritable: {e}");
    let r = ok(
        &c,
        &[("path", V::Path(f.clone())), ("overwrite", V::B(true))],
    );
    assert!(r.overwrite);
    assert_eq!(
        std::fs::read(&f).unwrap(),
        b"keep me",
        "parsing writes nothing"
    );
}

#[test]
fn every_range() {
    let (_dir, c) = setup();
    // (key, accepted values, refused values)
    let ints: &[(&str, &[i64], &[i64])] = &[
        ("framerate", &[1, 60, 1000], &[0, -5, 1001, 1 << 40]),
        ("bitrate", &[1, 8000, 1_000_000], &[0, -1, 1_000_001]),
        ("quality", &[0, 23, 63], &[-1, 64, 500]),
        ("audio-bitrate", &[6, 96, 512], &[0, 5, -1, 513]),
    ];
    for (key, good, bad) in ints {
        // The audio options need a track to apply to.
        let with = |n: i64| -> Vec<(&str, V)> {
            let mut o = vec![(*key, V::U(n))];
            if *key == "audio-bitrate" {
                o.push(("audio", V::L(&["desktop"])));
            }
            o
        };
        for n in *good {
            let r = ok(&c, &with(*n));
            let n = *n as u32;
            match *key {
                "framerate" => assert_eq!(r.framerate, Some(n)),
                "bitrate" => assert_eq!(r.rate, RateControl::Bitrate(n)),
                "audio-bitrate" => assert_eq!(r.audio.unwrap().bitrate, Some(n)),
                _ => assert_eq!(r.rate, RateControl::Quality(n)),
            }
        }
        for n in *bad {
            let e = refused(&c, &with(*n), key, &format!("got {n}"));
            assert!(matches!(e, RequestError::OutOfRange { .. }), "{e}");
        }
    }
    assert_eq!(
        refused(&c, &[("quality", V::U(500))], "quality", "").to_string(),
        "'quality' must be >= 0 and <= 63, got 500"
    );
    for d in [0.5, 2.0, 31_536_000.0] {
        let r = ok(&c, &[("duration", V::D(d))]);
        assert_eq!(r.duration.unwrap().as_secs_f64(), d);
    }
    for d in [0.0, -1.0, 31_536_001.0, 1e300, f64::NAN, f64::INFINITY] {
        refused(&c, &[("duration", V::D(d))], "duration", "must be > 0");
    }
    refused(
        &c,
        &[("bitrate", V::U(100)), ("quality", V::U(20))],
        "quality",
        "cannot be combined with 'bitrate'",
    );
}

#[test]
fn every_codec_container_encoder_combination() {
    let (_dir, c) = setup();
    for container in Container::ALL {
        for codec in Codec::ALL {
            for encoder in EncoderChoice::ALL {
                let opts = [
                    ("path", V::S("combo")),
                    ("container", V::S(container.as_str())),
                    ("codec", V::S(codec.as_str())),
                    ("encoder", V::S(encoder.as_str())),
                ];
                let r = same(&c, &opts);
                if container.supports(*codec) {
                    let r = r.unwrap_or_else(|e| panic!("{opts:?}: {e}"));
                    assert_eq!(
                        (r.container, r.codec, r.encoder),
                        (*container, Some(*codec), *encoder)
                    );
                    assert_eq!(r.path, c.videos_dir.join(format!("combo.{container}")));
                } else {
                    let e = r.expect_err("webm takes no h264/hevc");
                    assert_eq!(e.key(), "codec");
                    // The one wording of the rule (the recorder uses it too).
                    assert_eq!(
                        e.to_string(),
                        format!("'codec' {codec} cannot be stored in {container}; {container} takes av1, vp9")
                    );
                }
            }
        }
    }
    refused(
        &c,
        &[("codec", V::S("h266"))],
        "codec",
        "one of h264, hevc, av1, vp9",
    );
    refused(
        &c,
        &[("encoder", V::S("vaapi"))],
        "encoder",
        "one of auto, nvenc, software",
    );
    refused(
        &c,
        &[("container", V::S("avi"))],
        "container",
        "one of mkv, mp4, webm",
    );
}

#[test]
fn cursor_source_restore() {
    let (_dir, c) = setup();
    let e = refused(
        &c,
        &[("cursor", V::S("metadata"))],
        "cursor",
        "embedded or hidden",
    );
    assert_eq!(e, RequestError::MetadataCursor);
    refused(
        &c,
        &[("cursor", V::S("pointer"))],
        "cursor",
        "one of hidden, embedded",
    );
    refused(
        &c,
        &[("source", V::S("screen"))],
        "source",
        "one of monitor, window, virtual",
    );
    let r = ok(
        &c,
        &[
            ("cursor", V::S("hidden")),
            ("source", V::S("window")),
            ("restore", V::B(false)),
        ],
    );
    let s = r.source_options();
    assert_eq!(
        (s.cursor.as_str(), s.source.as_str(), s.restore),
        ("hidden", "window", false)
    );
    for source in ["monitor", "window", "virtual"] {
        assert_eq!(ok(&c, &[("source", V::S(source))]).source.as_str(), source);
    }
}

#[test]
fn audio_tracks_codecs_and_bitrate() {
    use zerocast_recorder::audio::{AudioCodec, AudioSource};
    let (_dir, c) = setup();
    assert_eq!(ok(&c, &[]).audio, None, "no audio unless asked");
    // Two tracks, the first a mix; the codec follows the container.
    let r = ok(
        &c,
        &[
            ("path", V::S("a.mp4")),
            ("audio", V::L(&["desktop+mic", "app:firefox"])),
        ],
    );
    let a = r.audio.clone().unwrap();
    assert_eq!(a.codec, AudioCodec::Aac);
    assert_eq!(a.bitrate, None);
    assert_eq!(a.tracks.len(), 2);
    assert_eq!(
        a.tracks[0].sources,
        vec![AudioSource::Desktop, AudioSource::Mic]
    );
    // The recorder gets them as they are (sources are looked up before the portal).
    let o = r.recording_options(
        Codec::H264,
        zerocast_recorder::encode::select_encoder(
            Some(Codec::H264),
            EncoderChoice::Software,
            Container::Mp4,
        )
        .unwrap()
        .1,
    );
    assert_eq!(o.audio, r.audio);
    // The effective options round-trip through D-Bus.
    let back = zerocast_app::dbus::parse_options_in(&zerocast_app::dbus::to_dbus(&r), &c).unwrap();
    assert_eq!(back.audio, r.audio);
    for (container, codec) in [("mkv", "opus"), ("webm", "opus"), ("mp4", "aac")] {
        let r = ok(
            &c,
            &[("container", V::S(container)), ("audio", V::L(&["mic"]))],
        );
        assert_eq!(r.audio.unwrap().codec.as_str(), codec, "{container}");
    }
    let r = ok(
        &c,
        &[
            ("audio", V::L(&["node:alsa_output.x"])),
            ("audio-codec", V::S("flac")),
        ],
    );
    assert_eq!(r.audio.unwrap().codec, AudioCodec::Flac);
    refused(
        &c,
        &[
            ("container", V::S("webm")),
            ("audio", V::L(&["desktop"])),
            ("audio-codec", V::S("aac")),
        ],
        "audio-codec",
        "webm takes opus",
    );
    refused(
        &c,
        &[("audio", V::L(&["desktop"])), ("audio-codec", V::S("mp3"))],
        "audio-codec",
        "one of opus, aac, flac",
    );
    refused(&c, &[("audio", V::L(&["bogus:x"]))], "audio", "bogus");
    refused(&c, &[("audio", V::L(&[""]))], "audio", "empty");
    // Codec or bitrate without a track names the key that was given.
    refused(
        &c,
        &[("audio-codec", V::S("opus"))],
        "audio-codec",
        "needs 'audio'",
    );
    refused(
        &c,
        &[("audio-bitrate", V::U(96))],
        "audio-bitrate",
        "needs 'audio'",
    );
}
