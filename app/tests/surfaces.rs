//! The same requests through both surfaces' parsers — `zerocast record`'s flags and D-Bus
//! `Start`'s `a{sv}` — give equal `RecordingRequest`s or equal named errors: the default name,
//! templates, `~`, relative paths, every range, every codec/container/encoder combination, the
//! `cursor=metadata` refusal, the audio tracks, codecs and bitrates. And each surface in its own
//! words: the same refusal names `--replay-max-mb` in MiB on the command line and
//! `'replay-max-bytes'` in bytes on D-Bus; the helps likewise. `zerocast ctl start` takes
//! `record`'s flags and sends them as `Start` options: it is checked beside both.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use clap::{CommandFactory, Parser};
use zbus::zvariant::{OwnedValue, Value};
use zerocast_app::cli::RequestArgs;
use zerocast_app::options::{help, spec, Surface, OPTIONS};
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

/// The request flags as `zerocast record` (and `zerocast ctl start`, which flattens the same
/// arguments) parse them.
fn flags(opts: &[(&str, V)]) -> RequestArgs {
    let mut args: Vec<String> = vec!["record".into()];
    for (key, v) in opts {
        let flag = spec(key).flag.expect("the CLI has this option");
        match (v, *key) {
            // Flags without a value: present means the non-default.
            (V::B(true), "overwrite" | "save-on-stop") => args.push(flag.into()),
            (V::B(false), "restore") => args.push(flag.into()),
            (V::B(_), _) => continue,
            (V::S(s), _) => args.extend([flag.to_string(), s.to_string()]),
            (V::Path(p), _) => args.extend([flag.to_string(), p.display().to_string()]),
            // The CLI takes MiB where D-Bus takes bytes.
            (V::U(n), _) => {
                let n = *n / spec(key).scale(Surface::Cli) as i64;
                args.extend([flag.to_string(), n.to_string()])
            }
            (V::D(d), _) => args.extend([flag.to_string(), d.to_string()]),
            (V::L(items), _) => {
                for s in *items {
                    args.extend([flag.to_string(), s.to_string()]);
                }
            }
        }
    }
    let parsed = Record::try_parse_from(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    parsed.request
}

fn cli(ctx: &PathContext, opts: &[(&str, V)]) -> Result<RecordingRequest, RequestError> {
    flags(opts).parse_in(ctx)
}

/// `zerocast ctl start`: the same flags, sent as `Start` options (a number the wire cannot
/// carry is refused before sending) and parsed by the daemon.
fn ctl(ctx: &PathContext, opts: &[(&str, V)]) -> Result<RecordingRequest, RequestError> {
    let sent = flags(opts).to_raw().to_dbus()?;
    zerocast_app::dbus::parse_options_in(&sent, ctx)
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

/// Both parsers, same request, same environment: the same outcome (and `ctl start`, the CLI's
/// flags through D-Bus, too). Returns it.
#[track_caller]
fn same(ctx: &PathContext, opts: &[(&str, V)]) -> Result<RecordingRequest, RequestError> {
    let a = cli(ctx, opts);
    let b = dbus(ctx, opts);
    assert_eq!(a, b, "CLI and D-Bus disagree on {opts:?}");
    assert_eq!(
        ctl(ctx, opts),
        a,
        "record and ctl start disagree on {opts:?}"
    );
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
fn region_size_and_scale() {
    use zerocast_recorder::{OutputSize, Region};
    let (_dir, c) = setup();
    let region = |x, y, width, height| {
        Some(Region {
            x,
            y,
            width,
            height,
        })
    };
    // slurp's form, the comma form, and a monitor left of the primary one.
    assert_eq!(
        ok(&c, &[("region", V::S("100,50 640x360"))]).region,
        region(100, 50, 640, 360)
    );
    assert_eq!(
        ok(&c, &[("region", V::S("100,50,640x360"))]).region,
        region(100, 50, 640, 360)
    );
    assert_eq!(
        ok(&c, &[("region", V::S("-1920,0 800x600"))]).region,
        region(-1920, 0, 800, 600)
    );
    for bad in [
        "100,50",
        "100 640x360",
        "a,b cxd",
        "10,10 0x100",
        "10,10 100x",
    ] {
        refused(
            &c,
            &[("region", V::S(bad))],
            "region",
            "\"X,Y WxH\" or \"X,Y,WxH\"",
        );
    }
    refused(
        &c,
        &[("region", V::S("0,0 10x10")), ("source", V::S("window"))],
        "region",
        "cannot be combined with",
    );
    let fixed = |width, height| OutputSize::Fixed { width, height };
    assert_eq!(ok(&c, &[]).output_size, OutputSize::Native);
    assert_eq!(
        ok(&c, &[("size", V::S("640x360"))]).output_size,
        fixed(Some(640), Some(360))
    );
    assert_eq!(
        ok(&c, &[("size", V::S("640x"))]).output_size,
        fixed(Some(640), None)
    );
    assert_eq!(
        ok(&c, &[("size", V::S("x480"))]).output_size,
        fixed(None, Some(480))
    );
    for bad in ["x", "641x360", "640", "0x0", "99999x2", "-640x360"] {
        refused(&c, &[("size", V::S(bad))], "size", "WxH, Wx or xH");
    }
    assert_eq!(
        ok(&c, &[("scale", V::D(0.5))]).output_size,
        OutputSize::Scale(0.5)
    );
    for bad in [0.0, -0.5, 1.5, f64::NAN] {
        refused(&c, &[("scale", V::D(bad))], "scale", "must be > 0 and <= 1");
    }
    refused(
        &c,
        &[("size", V::S("640x360")), ("scale", V::D(0.5))],
        "scale",
        "cannot be combined with",
    );
    // What the recorder is told.
    let r = ok(
        &c,
        &[("region", V::S("10,20 300x200")), ("scale", V::D(0.5))],
    );
    let selected = zerocast_recorder::encode::select_encoder(
        Some(Codec::H264),
        EncoderChoice::Software,
        Container::Mkv,
    )
    .unwrap()
    .1;
    let o = r.recording_options(Codec::H264, selected);
    assert_eq!(
        (o.region, o.output_size),
        (region(10, 20, 300, 200), OutputSize::Scale(0.5))
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

/// The same bad request on both surfaces: the CLI's message and D-Bus's, exactly.
#[track_caller]
fn worded(c: &PathContext, opts: &[(&str, V)], cli_says: &str, dbus_says: &str) {
    let e = same(c, opts).expect_err("accepted");
    assert_eq!(e.render(Surface::Cli), cli_says, "{opts:?}");
    assert_eq!(e.render(Surface::Dbus), dbus_says, "{opts:?}");
    // D-Bus clients read `Display` (InvalidOption's message): it stays in D-Bus words.
    assert_eq!(e.to_string(), dbus_says);
    for o in OPTIONS {
        let Some(flag) = o.flag else { continue };
        let key = format!("'{}'", o.key);
        assert!(!cli_says.contains(&key), "the CLI says {key}: {cli_says}");
        if flag != format!("--{}", o.key) {
            assert!(!dbus_says.contains(flag), "D-Bus says {flag}: {dbus_says}");
        }
    }
}

#[test]
fn each_surface_names_what_it_calls_the_option() {
    let (dir, c) = setup();
    const MIB: i64 = 1 << 20;
    worded(
        &c,
        &[("replay-max-bytes", V::U(5 * MIB))],
        "--replay-max-mb needs --replay",
        "'replay-max-bytes' needs 'replay'",
    );
    worded(
        &c,
        &[("save-on-stop", V::B(true))],
        "--save-on-stop needs --replay",
        "'save-on-stop' needs 'replay'",
    );
    worded(
        &c,
        &[("replay", V::D(30.0)), ("replay-max-bytes", V::U(0))],
        "--replay-max-mb must be >= 1 and <= 262144 MiB, got 0",
        "'replay-max-bytes' must be >= 1048576 and <= 274877906944 bytes, got 0",
    );
    worded(
        &c,
        &[
            ("replay", V::D(30.0)),
            ("replay-max-bytes", V::U(300_000 * MIB)),
        ],
        "--replay-max-mb must be >= 1 and <= 262144 MiB, got 300000",
        "'replay-max-bytes' must be >= 1048576 and <= 274877906944 bytes, got 314572800000",
    );
    worded(
        &c,
        &[("replay", V::D(0.0))],
        "--replay must be > 0 and <= 3600 seconds, got 0",
        "'replay' must be > 0 and <= 3600 seconds, got 0",
    );
    worded(
        &c,
        &[("framerate", V::U(0))],
        "--framerate must be > 0 and <= 1000, got 0",
        "'framerate' must be > 0 and <= 1000, got 0",
    );
    worded(
        &c,
        &[("audio-bitrate", V::U(5)), ("audio", V::L(&["desktop"]))],
        "--audio-bitrate must be > 5 and <= 512, got 5",
        "'audio-bitrate' must be > 5 and <= 512, got 5",
    );
    worded(
        &c,
        &[("duration", V::D(-1.0))],
        "--duration must be > 0 and <= 31536000 seconds, got -1",
        "'duration' must be > 0 and <= 31536000 seconds, got -1",
    );
    worded(
        &c,
        &[("bitrate", V::U(100)), ("quality", V::U(20))],
        "--quality cannot be combined with --bitrate",
        "'quality' cannot be combined with 'bitrate'",
    );
    worded(
        &c,
        &[("codec", V::S("h266"))],
        "--codec must be one of h264, hevc, av1, vp9, got 'h266'",
        "'codec' must be one of h264, hevc, av1, vp9, got 'h266'",
    );
    worded(
        &c,
        &[("cursor", V::S("metadata"))],
        &format!("--cursor {}", zerocast_app::request::METADATA_CURSOR),
        &format!("'cursor' {}", zerocast_app::request::METADATA_CURSOR),
    );
    worded(
        &c,
        &[("audio-codec", V::S("opus"))],
        "--audio-codec needs --audio (e.g. --audio desktop)",
        "'audio-codec' needs 'audio' (e.g. --audio desktop, audio=[\"desktop\"])",
    );
    worded(
        &c,
        &[("audio", V::L(&[""]))],
        "--audio audio source \"\" is empty; use desktop, mic, node:NAME, app:NAME or a+b",
        "'audio' audio source \"\" is empty; use desktop, mic, node:NAME, app:NAME or a+b",
    );
    worded(
        &c,
        &[("path", V::S("a.avi"))],
        "--output has extension .avi; use .mkv, .mp4, .webm or none",
        "'path' has extension .avi; use .mkv, .mp4, .webm or none",
    );
    worded(
        &c,
        &[("path", V::S("a.mp4")), ("container", V::S("mkv"))],
        "--container is mkv but --output ends in .mp4",
        "'container' is mkv but the path ends in .mp4",
    );
    worded(
        &c,
        &[("path", V::S("a.webm")), ("codec", V::S("h264"))],
        "--codec h264 cannot be stored in webm; webm takes av1, vp9",
        "'codec' h264 cannot be stored in webm; webm takes av1, vp9",
    );
    let f = dir.path().join("x.mkv");
    std::fs::write(&f, b"").unwrap();
    worded(
        &c,
        &[("path", V::Path(f.clone()))],
        &format!(
            "--output {} already exists; add --overwrite to replace it",
            f.display()
        ),
        &format!(
            "'path' {} already exists; set 'overwrite' (--overwrite) to replace it",
            f.display()
        ),
    );
}

/// `zerocast record --help`: flags, CLI units, and no run of spaces inside a sentence.
#[test]
fn cli_help_in_cli_words() {
    let text = Record::command().render_long_help().to_string();
    for line in text.lines() {
        assert!(
            !line.trim().contains("  "),
            "a run of spaces inside a help line: {line:?}"
        );
    }
    let rmb = text
        .split("--replay-max-mb <MIB>")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .expect("--replay-max-mb in the help");
    assert!(
        rmb.contains("in MiB") && rmb.contains("[1–262144]"),
        "{rmb}"
    );
    assert!(!rmb.contains("1048576") && !rmb.contains("bytes"), "{rmb}");
    // Another option is named as the user types it.
    assert!(rmb.contains("needs --replay"), "{rmb}");
    let no_restore = text
        .split("--no-restore")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .unwrap();
    assert!(
        no_restore.contains("Ask for the source every time"),
        "{no_restore}"
    );
    for o in OPTIONS.iter().filter(|o| o.flag.is_some()) {
        let h = help(o.key, Surface::Cli);
        assert!(!h.contains("  "), "{}: {h}", o.key);
        for other in OPTIONS {
            if other.flag.is_some() {
                assert!(!h.contains(&format!("'{}'", other.key)), "{}: {h}", o.key);
            }
        }
    }
}

/// D-Bus `Start` help and `Capabilities`: keys and D-Bus units.
#[test]
fn dbus_help_in_dbus_words() {
    for o in OPTIONS {
        let h = help(o.key, Surface::Dbus);
        assert!(!h.contains("  "), "{}: {h}", o.key);
        for other in OPTIONS {
            if let Some(flag) = other.flag.filter(|f| *f != format!("--{}", other.key)) {
                assert!(!h.contains(flag), "{} says {flag}: {h}", o.key);
            }
        }
    }
    let h = help("replay-max-bytes", Surface::Dbus);
    assert!(
        h.contains("in bytes")
            && h.contains("needs 'replay'")
            && h.ends_with("[1048576–274877906944]"),
        "{h}"
    );
    let caps: HashMap<&str, OwnedValue> = zerocast_app::dbus::capability_tables()
        .into_iter()
        .collect();
    let ranges =
        HashMap::<String, (f64, f64)>::try_from(caps["ranges"].try_clone().unwrap()).unwrap();
    assert_eq!(ranges["replay-max-bytes"], (1048576.0, 274877906944.0));
}
