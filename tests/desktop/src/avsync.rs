//! The A/V sync client: about once a second it turns the whole screen white and plays a beep
//! **at the same instant**, so a recording can be checked for A/V offset (flash onsets vs beep
//! onsets).
//!
//! - When: instants `T_k = start + Schedule::at(k)`, an aperiodic [`Schedule`] (intervals of
//!   0.6–1.4 s from a fixed pseudo-random sequence). With a fixed period, audio shifted by a
//!   whole period (what a clip cut at the wrong keyframe would do) pairs every beep with the
//!   next flash and reads as in sync; with uneven intervals only the true pairing lines the
//!   two sequences up, so [`measure`] finds it and reports the shift.
//! - The screen: a full-screen overlay layer surface, black, white for `FLASH` from each
//!   `T_k`. The white buffer is committed half a refresh before `T_k`, so the compositor
//!   presents it at the refresh nearest to `T_k`.
//! - The beep: a PipeWire playback stream (to the default sink) that plays silence and a
//!   1 kHz tone for `BEEP` from each `T_k`, placed sample-exactly: in each process call the
//!   time the buffer's first sample will be heard is `pw_time.now + delay + buffered + queued`.
//!
//! What really happened is written to the log file given with `--log` (CLOCK_MONOTONIC ns):
//! `beep k t_k heard` (when the beep's first sample is heard) and `flash k t_k shown` (when
//! the compositor drew the output frame with the white surface, from its frame callback, ms). Under load a
//! flash can be presented a few refreshes late: a test compares the file against what was
//! presented, not against the plan.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use pipewire as pw;
use smithay_client_toolkit::{
    compositor::{CompositorHandler, CompositorState, FrameCallbackData},
    delegate_registry,
    output::{OutputHandler, OutputState},
    reexports::{
        calloop::{
            timer::{TimeoutAction, Timer},
            EventLoop,
        },
        calloop_wayland_source::WaylandSource,
        client::{
            globals::registry_queue_init,
            protocol::{wl_output, wl_shm, wl_surface},
            Connection, QueueHandle,
        },
    },
    registry::{ProvidesRegistryState, RegistryState},
    registry_handlers,
    shell::{
        wlr_layer::{
            Anchor, KeyboardInteractivity, Layer, LayerShell, LayerShellHandler, LayerSurface,
            LayerSurfaceConfigure,
        },
        WaylandSurface,
    },
    shm::{
        slot::{Buffer, SlotPool},
        Shm, ShmHandler,
    },
};

/// How long the screen stays white.
pub const FLASH: Duration = Duration::from_millis(200);
/// How long the beep lasts.
pub const BEEP: Duration = Duration::from_millis(100);
const RATE: u32 = 48_000;
const BEEP_HZ: f64 = 1000.0;

/// The instants of the flashes and beeps relative to the first: interval `k` (from `T_k` to
/// `T_{k+1}`) is 600–1400 ms, from a fixed xorshift sequence, and differs from the one before
/// by at least `MIN_STEP`, so that no shift by one or more events lines most flashes up with
/// beeps (that needs runs of near-equal intervals). Fixed, so a log or a test can recompute it.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// `at[k]`: ns from `T_0` to `T_k`.
    at: Vec<i64>,
}

/// Shortest and longest interval between events. The shortest leaves room for the longest
/// flash (`FLASH`) and for pairing within ±[`PAIR_WITHIN`] without reaching a neighbour.
pub const MIN_INTERVAL: Duration = Duration::from_millis(600);
pub const MAX_INTERVAL: Duration = Duration::from_millis(1400);
/// Least difference between two consecutive intervals (more than twice [`MATCH_WITHIN`]).
const MIN_STEP_MS: u64 = 250;
/// Events in the schedule: more than an hour, longer than any test runs the client.
const EVENTS: usize = 4000;

impl Schedule {
    pub fn new() -> Schedule {
        let span = (MAX_INTERVAL - MIN_INTERVAL).as_millis() as u64 + 1;
        let min = MIN_INTERVAL.as_millis() as u64;
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            min + x % span
        };
        let mut at = Vec::with_capacity(EVENTS);
        let (mut t, mut prev) = (0i64, 0u64);
        for _ in 0..EVENTS {
            at.push(t);
            let mut i = next();
            while i.abs_diff(prev) < MIN_STEP_MS {
                i = next();
            }
            prev = i;
            t += i as i64 * 1_000_000;
        }
        Schedule { at }
    }

    /// ns from `T_0` to `T_k` (`k` beyond the schedule: the last instant, never reached).
    pub fn at(&self, k: i64) -> i64 {
        self.at[(k.max(0) as usize).min(self.at.len() - 1)]
    }

    /// The last event at or before `rel` ns after `T_0`, and how long ago it was.
    pub fn last_at(&self, rel: i64) -> Option<(i64, i64)> {
        let n = self.at.partition_point(|&a| a <= rel);
        let k = n.checked_sub(1)?;
        Some((k as i64, rel - self.at[k]))
    }
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule::new()
    }
}

#[derive(Debug, Clone)]
pub struct AvSyncOptions {
    /// First flash this long after start-up.
    pub lead_in: Duration,
    /// Refresh rate of the output (to commit half a refresh early).
    pub refresh_hz: u32,
    pub log: Option<std::path::PathBuf>,
    /// Play the beep to this node instead of the default sink.
    pub target: Option<String>,
    /// Node/application name of the playback stream.
    pub app_name: String,
    /// Cover only a band of this many rows at the bottom of the output (full width) instead of
    /// the whole output, so that what is under the rest (the painter's counter strip) stays
    /// on screen; measure such a recording with [`onsets`] and the same band.
    pub band: Option<u32>,
}

impl Default for AvSyncOptions {
    fn default() -> Self {
        AvSyncOptions {
            lead_in: Duration::from_millis(1500),
            refresh_hz: 120,
            log: None,
            target: None,
            app_name: "zerocast-avsync".into(),
            band: None,
        }
    }
}

/// The log file, shared by the beeper and the flasher: one `write_all` per line.
#[derive(Clone)]
struct Log(Arc<std::sync::Mutex<std::fs::File>>);

impl Log {
    fn line(&self, line: String) {
        let mut f = match self.0.lock() {
            Ok(f) => f,
            Err(e) => e.into_inner(),
        };
        let _ = f.write_all(line.as_bytes());
    }
}

pub fn monotonic_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// Runs until the compositor closes the surface or `stop` is set.
pub fn run(opts: AvSyncOptions, stop: Arc<AtomicBool>) -> Result<()> {
    let start = monotonic_ns() + opts.lead_in.as_nanos() as i64;
    let log = match &opts.log {
        Some(p) => Some(Log(Arc::new(std::sync::Mutex::new(
            std::fs::File::create(p).with_context(|| format!("{}", p.display()))?,
        )))),
        None => None,
    };
    let audio = {
        let opts = opts.clone();
        let stop = Arc::clone(&stop);
        let log = log.clone();
        std::thread::Builder::new()
            .name("avsync-audio".into())
            .spawn(move || beeper(start, &opts, log, &stop))?
    };
    let r = flasher(start, &opts, log, &stop);
    stop.store(true, Ordering::Relaxed);
    let a = audio
        .join()
        .map_err(|_| anyhow::anyhow!("beeper panicked"))?;
    r.and(a)
}

// ---------------------------------------------------------------------------------- beeper

struct Beep {
    start: i64,
    schedule: Schedule,
    phase: f64,
    log: Option<Log>,
    last_logged: i64,
}

fn beeper(start: i64, opts: &AvSyncOptions, log: Option<Log>, stop: &AtomicBool) -> Result<()> {
    pw::init();
    let mainloop = pw::main_loop::MainLoopRc::new(None)?;
    let context = pw::context::ContextRc::new(&mainloop, None)?;
    let core = context.connect_rc(None).context("connecting to PipeWire")?;
    let mut props = pw::properties::properties! {
        *pw::keys::MEDIA_TYPE => "Audio",
        *pw::keys::MEDIA_CATEGORY => "Playback",
        *pw::keys::MEDIA_ROLE => "Music",
        *pw::keys::APP_NAME => opts.app_name.as_str(),
        *pw::keys::NODE_NAME => opts.app_name.as_str(),
        *pw::keys::NODE_LATENCY => "256/48000",
    };
    if let Some(t) = &opts.target {
        props.insert(*pw::keys::TARGET_OBJECT, t.as_str());
    }
    let stream = pw::stream::StreamRc::new(core.clone(), "avsync-beep", props)?;
    let data = Beep {
        start,
        schedule: Schedule::new(),
        phase: 0.0,
        log,
        last_logged: -1,
    };
    let _listener = stream
        .add_local_listener_with_user_data(data)
        .process(|stream, b| {
            // SAFETY: inside process; a null return means no buffer.
            let buf = unsafe { stream.dequeue_raw_buffer() };
            if buf.is_null() {
                return;
            }
            // When the first sample of the buffer we queue now will be heard.
            let heard = stream.time().ok().map(|t| {
                let r = t.rate();
                let ticks = t.delay() + t.buffered() as i64;
                let dev = if r.denom == 0 {
                    0
                } else {
                    ticks * 1_000_000_000 * r.num as i64 / r.denom as i64
                };
                t.now() + dev + t.queued() as i64 * 1_000_000_000 / RATE as i64
            });
            // SAFETY: `buf` is dequeued until queued below; datas[0] is mapped (MAP_BUFFERS).
            unsafe {
                let sb = (*buf).buffer;
                let d = &mut *(*sb).datas;
                let max = d.maxsize as usize / 8;
                let mut n = if (*buf).requested > 0 {
                    ((*buf).requested as usize).min(max)
                } else {
                    max.min(256)
                };
                if d.data.is_null() {
                    n = 0;
                }
                let out = std::slice::from_raw_parts_mut(d.data as *mut f32, n * 2);
                fill(b, heard.unwrap_or_else(monotonic_ns), out);
                let c = &mut *d.chunk;
                c.offset = 0;
                c.stride = 8;
                c.size = (n * 8) as u32;
                (*buf).size = n as u64;
                stream.queue_raw_buffer(buf);
            }
        })
        .register()?;
    let mut info = pw::spa::param::audio::AudioInfoRaw::new();
    info.set_format(pw::spa::param::audio::AudioFormat::F32LE);
    info.set_rate(RATE);
    info.set_channels(2);
    let mut pos = [0u32; pw::spa::param::audio::MAX_CHANNELS];
    pos[0] = pw::spa::sys::SPA_AUDIO_CHANNEL_FL;
    pos[1] = pw::spa::sys::SPA_AUDIO_CHANNEL_FR;
    info.set_position(pos);
    let bytes = pw::spa::pod::serialize::PodSerializer::serialize(
        std::io::Cursor::new(Vec::new()),
        &pw::spa::pod::Value::Object(pw::spa::pod::Object {
            type_: pw::spa::utils::SpaTypes::ObjectParamFormat.as_raw(),
            id: pw::spa::param::ParamType::EnumFormat.as_raw(),
            properties: info.into(),
        }),
    )?
    .0
    .into_inner();
    let mut params = [pw::spa::pod::Pod::from_bytes(&bytes).context("format pod")?];
    stream.connect(
        pw::spa::utils::Direction::Output,
        None,
        pw::stream::StreamFlags::AUTOCONNECT
            | pw::stream::StreamFlags::MAP_BUFFERS
            | pw::stream::StreamFlags::RT_PROCESS,
        &mut params,
    )?;
    while !stop.load(Ordering::Relaxed) {
        mainloop
            .loop_()
            .iterate(pw::loop_::Timeout::Finite(Duration::from_millis(50)));
    }
    let _ = stream.disconnect();
    Ok(())
}

/// Fills `out` (interleaved stereo) whose first frame is heard at `t0`.
fn fill(b: &mut Beep, t0: i64, out: &mut [f32]) {
    let beep_ns = BEEP.as_nanos() as i64;
    for (i, frame) in out.chunks_exact_mut(2).enumerate() {
        let t = t0 + i as i64 * 1_000_000_000 / RATE as i64;
        let rel = t - b.start;
        let v = if let Some((k, since)) = b.schedule.last_at(rel).filter(|e| e.1 < beep_ns) {
            if k != b.last_logged && since < 1_000_000_000 / RATE as i64 + 1 {
                b.last_logged = k;
                if let Some(l) = &b.log {
                    l.line(format!("beep {k} {} {t}\n", b.start + b.schedule.at(k)));
                }
                b.phase = 0.0;
            }
            b.phase += 2.0 * std::f64::consts::PI * BEEP_HZ / RATE as f64;
            (b.phase.sin() * 0.5) as f32
        } else {
            0.0
        };
        frame[0] = v;
        frame[1] = v;
    }
}

// --------------------------------------------------------------------------------- flasher

struct Flasher {
    registry_state: RegistryState,
    output_state: OutputState,
    shm: Shm,
    layer: LayerSurface,
    pool: Option<SlotPool>,
    /// Two black and two white buffers, painted once.
    black: Vec<Buffer>,
    white: Vec<Buffer>,
    size: (u32, u32),
    configured: bool,
    exit: bool,
    qh: QueueHandle<Flasher>,
    log: Option<Log>,
    /// `(k, T_k)` of the next white commit.
    flash: Option<(i64, i64)>,
    /// White commits whose frame callback is pending, oldest first.
    shown: Vec<(i64, i64)>,
}

fn flasher(start: i64, opts: &AvSyncOptions, log: Option<Log>, stop: &AtomicBool) -> Result<()> {
    let conn = Connection::connect_to_env().context("connecting to the Wayland compositor")?;
    let (globals, queue) = registry_queue_init(&conn)?;
    let qh: QueueHandle<Flasher> = queue.handle();
    let compositor = CompositorState::bind(&globals, &qh).context("wl_compositor")?;
    let layer_shell = LayerShell::bind(&globals, &qh).context("zwlr_layer_shell_v1")?;
    let shm = Shm::bind(&globals, &qh).context("wl_shm")?;
    let surface = compositor.create_surface(&qh);
    let layer = layer_shell.create_layer_surface(
        &qh,
        surface,
        Layer::Overlay,
        Some("zerocast-avsync"),
        None,
    );
    match opts.band {
        Some(rows) => {
            layer.set_anchor(Anchor::BOTTOM | Anchor::LEFT | Anchor::RIGHT);
            layer.set_size(0, rows);
        }
        None => {
            layer.set_anchor(Anchor::TOP | Anchor::BOTTOM | Anchor::LEFT | Anchor::RIGHT);
            layer.set_size(0, 0);
        }
    }
    layer.set_exclusive_zone(-1);
    layer.set_keyboard_interactivity(KeyboardInteractivity::None);
    layer.commit();
    let mut event_loop: EventLoop<Flasher> = EventLoop::try_new()?;
    let handle = event_loop.handle();
    WaylandSource::new(conn.clone(), queue)
        .insert(handle.clone())
        .map_err(|e| anyhow::anyhow!("inserting the Wayland source: {e}"))?;
    let mut f = Flasher {
        registry_state: RegistryState::new(&globals),
        output_state: OutputState::new(&globals, &qh),
        shm,
        layer,
        pool: None,
        black: Vec::new(),
        white: Vec::new(),
        size: (0, 0),
        configured: false,
        exit: false,
        qh: qh.clone(),
        log,
        flash: None,
        shown: Vec::new(),
    };
    // Transitions: white at T_k − half a refresh, black at T_k + FLASH − half a refresh.
    let early = 500_000_000 / opts.refresh_hz.max(1) as i64;
    let flash = FLASH.as_nanos() as i64;
    let to_instant = |t: i64| {
        let now = monotonic_ns();
        Instant::now() + Duration::from_nanos((t - now).max(0) as u64)
    };
    let schedule = Schedule::new();
    let mut k: i64 = 0;
    let mut white_next = true;
    let first = to_instant(start - early);
    handle
        .insert_source(Timer::from_deadline(first), move |_, _, f: &mut Flasher| {
            if white_next {
                f.flash = Some((k, start + schedule.at(k)));
            }
            f.show(white_next);
            let next = if white_next {
                start + schedule.at(k) + flash - early
            } else {
                k += 1;
                start + schedule.at(k) - early
            };
            white_next = !white_next;
            TimeoutAction::ToInstant(to_instant(next))
        })
        .map_err(|e| anyhow::anyhow!("timer: {e}"))?;
    while !f.exit && !stop.load(Ordering::Relaxed) {
        event_loop.dispatch(Some(Duration::from_millis(50)), &mut f)?;
    }
    Ok(())
}

impl Flasher {
    fn show(&mut self, white: bool) {
        let (Some(pool), true) = (self.pool.as_mut(), self.configured) else {
            return;
        };
        let list = if white { &self.white } else { &self.black };
        // A buffer the compositor does not hold (it releases the previous one of a colour
        // long before that colour is shown again).
        let Some(buf) = list
            .iter()
            .find(|b| b.canvas(pool).is_some())
            .or(list.first())
        else {
            return;
        };
        let s = self.layer.wl_surface();
        s.damage_buffer(0, 0, self.size.0 as i32, self.size.1 as i32);
        if buf.attach_to(s).is_ok() {
            if let (true, Some((k, t_k))) = (white, self.flash.take()) {
                // sway does not answer wp_presentation feedback for layer surfaces; the
                // frame callback's time (ms) is when the output frame showing it was drawn.
                s.frame(&self.qh, FrameCallbackData(s.clone()));
                self.shown.push((k, t_k));
            }
            self.layer.commit();
        }
    }

    fn resize(&mut self, w: u32, h: u32) -> Result<()> {
        if self.size == (w, h) {
            return Ok(());
        }
        self.black.clear();
        self.white.clear();
        let stride = w as i32 * 4;
        let len = stride as usize * h as usize;
        let mut pool = SlotPool::new(len * 4, &self.shm)?;
        for i in 0..4 {
            let (buf, canvas) =
                pool.create_buffer(w as i32, h as i32, stride, wl_shm::Format::Xrgb8888)?;
            let white = i >= 2;
            canvas.fill(if white { 0xff } else { 0 });
            if white {
                self.white.push(buf);
            } else {
                self.black.push(buf);
            }
        }
        self.pool = Some(pool);
        self.size = (w, h);
        Ok(())
    }
}

impl CompositorHandler for Flasher {
    fn scale_factor_changed(
        &mut self,
        _: &Connection,
        _: &QueueHandle<Self>,
        _: &wl_surface::WlSurface,
        _: i32,
    ) {
    }
    fn transform_changed(
        &mut self,
        _: &Connection,
        _: &QueueHandle<Self>,
        _: &wl_surface::WlSurface,
        _: wl_output::Transform,
    ) {
    }
    fn frame(
        &mut self,
        _: &Connection,
        _: &QueueHandle<Self>,
        _: &wl_surface::WlSurface,
        time_ms: u32,
    ) {
        if self.shown.is_empty() {
            return;
        }
        let (k, t_k) = self.shown.remove(0);
        // The callback's time is CLOCK_MONOTONIC in ms, wrapped at 2^32: unwrap it near now.
        let now_ms = monotonic_ns() / 1_000_000;
        let back = (now_ms as u32).wrapping_sub(time_ms) as i64;
        let at = (now_ms - back) * 1_000_000;
        if let Some(l) = &self.log {
            l.line(format!("flash {k} {t_k} {at}\n"));
        }
    }
    fn surface_enter(
        &mut self,
        _: &Connection,
        _: &QueueHandle<Self>,
        _: &wl_surface::WlSurface,
        _: &wl_output::WlOutput,
    ) {
    }
    fn surface_leave(
        &mut self,
        _: &Connection,
        _: &QueueHandle<Self>,
        _: &wl_surface::WlSurface,
        _: &wl_output::WlOutput,
    ) {
    }
}

impl LayerShellHandler for Flasher {
    fn closed(&mut self, _: &Connection, _: &QueueHandle<Self>, _: &LayerSurface) {
        self.exit = true;
    }

    fn configure(
        &mut self,
        _: &Connection,
        _: &QueueHandle<Self>,
        _: &LayerSurface,
        configure: LayerSurfaceConfigure,
        _serial: u32,
    ) {
        let (w, h) = configure.new_size;
        if w == 0 || h == 0 || self.resize(w, h).is_err() {
            self.exit = true;
            return;
        }
        self.configured = true;
        self.show(false);
    }
}

impl ShmHandler for Flasher {
    fn shm_state(&mut self) -> &mut Shm {
        &mut self.shm
    }
}

impl ProvidesRegistryState for Flasher {
    fn registry(&mut self) -> &mut RegistryState {
        &mut self.registry_state
    }
    registry_handlers![OutputState];
}

delegate_registry!(Flasher);
smithay_client_toolkit::delegate_dispatch2!(Flasher);

impl OutputHandler for Flasher {
    fn output_state(&mut self) -> &mut OutputState {
        &mut self.output_state
    }
    fn new_output(&mut self, _: &Connection, _: &QueueHandle<Self>, _: wl_output::WlOutput) {}
    fn update_output(&mut self, _: &Connection, _: &QueueHandle<Self>, _: wl_output::WlOutput) {}
    fn output_destroyed(&mut self, _: &Connection, _: &QueueHandle<Self>, _: wl_output::WlOutput) {}
}

// ----------------------------------------------------------------------------- measurement

/// Flash and beep onsets found in a recording, paired.
#[derive(Debug, Clone, Default)]
pub struct Offsets {
    /// Flash onsets (video, s into the file).
    pub flashes: Vec<f64>,
    /// Beep onsets (audio, s into the file).
    pub beeps: Vec<f64>,
    /// (flash onset, beep onset − flash onset) for every flash whose beep was found (see
    /// [`pair`]).
    pub pairs: Vec<(f64, f64)>,
}

impl Offsets {
    fn abs_sorted(&self) -> Vec<f64> {
        let mut v: Vec<f64> = self.pairs.iter().map(|p| p.1.abs()).collect();
        v.sort_by(f64::total_cmp);
        v
    }

    /// Median |offset|, seconds.
    pub fn median_abs(&self) -> f64 {
        let v = self.abs_sorted();
        if v.is_empty() {
            return f64::NAN;
        }
        v[v.len() / 2]
    }

    /// Median signed offset (positive: audio after video), seconds.
    pub fn median(&self) -> f64 {
        let mut v: Vec<f64> = self.pairs.iter().map(|p| p.1).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    }

    pub fn worst_abs(&self) -> f64 {
        self.abs_sorted().last().copied().unwrap_or(f64::NAN)
    }

    /// Trend of the offset over the file (Theil–Sen: the median of pairwise slopes, robust to
    /// a few late frames), in ms of offset per minute of recording.
    pub fn slope_ms_per_min(&self) -> f64 {
        let p = &self.pairs;
        let mut s = Vec::new();
        for i in 0..p.len() {
            for j in i + 1..p.len() {
                let dt = p[j].0 - p[i].0;
                if dt > 5.0 {
                    s.push((p[j].1 - p[i].1) / dt);
                }
            }
        }
        if s.is_empty() {
            return f64::NAN;
        }
        s.sort_by(f64::total_cmp);
        s[s.len() / 2] * 1000.0 * 60.0
    }

    /// Pairs whose flash is at or after `t` seconds.
    pub fn after(&self, t: f64) -> Offsets {
        Offsets {
            flashes: self.flashes.iter().copied().filter(|&f| f >= t).collect(),
            beeps: self.beeps.iter().copied().filter(|&b| b >= t).collect(),
            pairs: self.pairs.iter().copied().filter(|p| p.0 >= t).collect(),
        }
    }

    /// The recorder's own error: each pair's offset less the offset the client really produced
    /// for that flash (`heard − presented` from its log), so a flash the compositor presented
    /// late under load does not count against the recording. `zero_ns` is the file's time zero
    /// on CLOCK_MONOTONIC (the recorder logs it); it only picks which flash a pair is (they are
    /// at least [`MIN_INTERVAL`] apart). Pairs without both log lines are left out.
    pub fn against(&self, log: &ClientLog, zero_ns: i64) -> Offsets {
        let pairs = self
            .pairs
            .iter()
            .filter_map(|&(f, d)| {
                let at = zero_ns + (f * 1e9) as i64;
                let e = log
                    .events
                    .iter()
                    .min_by_key(|e| (e.presented - at).abs())
                    .filter(|e| (e.presented - at).abs() < 300_000_000)?;
                Some((f, d - (e.heard - e.presented) as f64 * 1e-9))
            })
            .collect();
        Offsets {
            flashes: self.flashes.clone(),
            beeps: self.beeps.clone(),
            pairs,
        }
    }

    /// Every pair as `flash_s:offset_ms`, for the log of a failed run.
    pub fn table(&self) -> String {
        let v: Vec<String> = self
            .pairs
            .iter()
            .map(|(f, d)| format!("{f:.2}:{:+.1}", d * 1e3))
            .collect();
        format!("pairs (flash s: offset ms) {}", v.join(" "))
    }

    pub fn summary(&self) -> String {
        format!(
            "{} flashes, {} beeps, {} pairs: median |offset| {:.1} ms (signed {:+.1} ms), worst {:.1} ms, trend {:+.2} ms/min",
            self.flashes.len(),
            self.beeps.len(),
            self.pairs.len(),
            self.median_abs() * 1e3,
            self.median() * 1e3,
            self.worst_abs() * 1e3,
            self.slope_ms_per_min()
        )
    }
}

/// One flash and its beep as the client logged them (CLOCK_MONOTONIC ns).
#[derive(Debug, Clone, Copy)]
pub struct ClientEvent {
    pub k: i64,
    /// The planned instant.
    pub planned: i64,
    /// When the compositor presented the white frame.
    pub presented: i64,
    /// When the beep's first sample was heard.
    pub heard: i64,
}

/// The client's `--log`, flashes joined with their beeps.
#[derive(Debug, Clone, Default)]
pub struct ClientLog {
    pub events: Vec<ClientEvent>,
}

impl ClientLog {
    pub fn read(path: &std::path::Path) -> Result<ClientLog> {
        let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
        let mut flashes = std::collections::BTreeMap::new();
        let mut beeps = std::collections::BTreeMap::new();
        for line in text.lines() {
            let v: Vec<&str> = line.split_whitespace().collect();
            let [kind, k, planned, at] = v[..] else {
                continue;
            };
            let (Ok(k), Ok(planned), Ok(at)) =
                (k.parse::<i64>(), planned.parse::<i64>(), at.parse::<i64>())
            else {
                continue;
            };
            match kind {
                "flash" => {
                    flashes.insert(k, (planned, at));
                }
                "beep" => {
                    beeps.insert(k, at);
                }
                _ => {}
            }
        }
        let events = flashes
            .into_iter()
            .filter_map(|(k, (planned, presented))| {
                Some(ClientEvent {
                    k,
                    planned,
                    presented,
                    heard: *beeps.get(&k)?,
                })
            })
            .collect();
        Ok(ClientLog { events })
    }

    /// Flashes presented more than `ms` after their plan.
    pub fn late(&self, ms: i64) -> usize {
        self.events
            .iter()
            .filter(|e| e.presented - e.planned > ms * 1_000_000)
            .count()
    }
}

/// The file's time zero on CLOCK_MONOTONIC as zerocast logged it (`file time zero`, the last
/// correction wins), from its stderr.
pub fn zero_from_log(stderr: &str) -> Option<i64> {
    // Colours (tracing's ANSI codes hold digits) off first.
    let mut plain = String::with_capacity(stderr.len());
    let mut it = stderr.chars();
    while let Some(c) = it.next() {
        if c == '\x1b' {
            for c in it.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
        .lines()
        .filter(|l| l.contains("file time zero"))
        .filter_map(|l| {
            let rest = l.split("zero_ns").nth(1)?;
            let digits: String = rest
                .chars()
                .skip_while(|c| !c.is_ascii_digit())
                .take_while(|c| c.is_ascii_digit())
                .collect();
            digits.parse().ok()
        })
        .next_back()
}

/// Finds flash onsets (ends of black, `blackdetect`) in the first video stream and beep
/// onsets (ends of silence, `silencedetect`) in audio stream `audio` of `path`, and pairs them.
pub fn measure(path: &std::path::Path, audio: usize) -> Result<Offsets> {
    measure_filtered(path, audio, None)
}

/// [`measure`] for a track where a steady tone below `hz` plays under the beeps (a second
/// source mixed in): it would fill the silences that mark the beeps, so it is filtered out
/// first. Four 2nd-order high-passes at `hz` take ~35 dB off a tone at 0.6·`hz` and ~6 dB off
/// the 1 kHz beep (for `hz` = 800); their delay at 1 kHz is well under a millisecond.
pub fn measure_above(path: &std::path::Path, audio: usize, hz: u32) -> Result<Offsets> {
    measure_filtered(path, audio, Some(hz))
}

fn measure_filtered(
    path: &std::path::Path,
    audio: usize,
    highpass: Option<u32>,
) -> Result<Offsets> {
    let (flashes, beeps) = detect(path, audio, highpass, None)?;
    let pairs = pair(&flashes, &beeps);
    Ok(Offsets {
        flashes,
        beeps,
        pairs,
    })
}

/// Flash and beep onsets (s into the file) of a recording of a client started with `--band
/// ROWS` (only the bottom `band` rows flash; `None`: the whole picture), unpaired. For long
/// recordings: pair them with [`pair_windowed`].
pub fn onsets(
    path: &std::path::Path,
    audio: usize,
    band: Option<u32>,
) -> Result<(Vec<f64>, Vec<f64>)> {
    detect(path, audio, None, band)
}

fn detect(
    path: &std::path::Path,
    audio: usize,
    highpass: Option<u32>,
    band: Option<u32>,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let mut af = String::new();
    if let Some(hz) = highpass {
        af = format!("highpass=f={hz},").repeat(4);
    }
    af.push_str("silencedetect=n=-30dB:d=0.05");
    let mut vf = String::new();
    if let Some(rows) = band {
        vf = format!("crop=iw:{rows}:0:ih-{rows},");
    }
    vf.push_str("blackdetect=d=0.05:pix_th=0.3");
    let out = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-nostats", "-i"])
        .arg(path)
        .args(["-map", "0:v:0", "-vf", &vf])
        .args(["-map", &format!("0:a:{audio}"), "-af", &af])
        .args(["-f", "null", "-"])
        .output()
        .context("running ffmpeg")?;
    let log = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        anyhow::bail!("ffmpeg failed on {}: {log}", path.display());
    }
    let find = |key: &str| -> Vec<f64> {
        log.split(key)
            .skip(1)
            .filter_map(|rest| {
                rest.trim_start()
                    .split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
                    .next()
                    .and_then(|s| s.parse().ok())
            })
            .collect()
    };
    // blackdetect reports the end of the stream as a black_end when the picture is black up
    // to it: that is not a flash.
    let duration = log
        .split("Duration:")
        .nth(1)
        .and_then(|r| r.trim_start().split(',').next())
        .and_then(|hms| {
            let mut it = hms.trim().split(':').map(|v| v.parse::<f64>().ok());
            Some(it.next()?? * 3600.0 + it.next()?? * 60.0 + it.next()??)
        })
        .unwrap_or(f64::INFINITY);
    let flashes: Vec<f64> = find("black_end:")
        .into_iter()
        .filter(|&f| f < duration - 0.05)
        .collect();
    let beeps = find("silence_end:");
    Ok((flashes, beeps))
}

/// [`pair`] over consecutive windows of `window` seconds: [`pair`] tries every flash–beep
/// difference as the alignment (quartic in the events), which is instant for a minute and
/// hours for an hour. Each window is aligned on its own, so a shift that appears mid-file
/// (audio a whole event late after a fault) shows in the windows after it. Beeps are taken
/// from [`PAIR_WITHIN`] around the window so that a flash at its edge keeps its beep.
pub fn pair_windowed(flashes: &[f64], beeps: &[f64], window: f64) -> Vec<(f64, f64)> {
    let end = flashes.iter().copied().fold(0.0, f64::max);
    let mut out = Vec::new();
    let mut t = 0.0;
    while t <= end {
        let f: Vec<f64> = flashes
            .iter()
            .copied()
            .filter(|&x| x >= t && x < t + window)
            .collect();
        let b: Vec<f64> = beeps
            .iter()
            .copied()
            .filter(|&x| x >= t - 2.0 * PAIR_WITHIN && x < t + window + 2.0 * PAIR_WITHIN)
            .collect();
        out.extend(pair(&f, &b));
        t += window;
    }
    out
}

/// A flash and a beep are the same event when the beep is this close to where the alignment
/// puts it (s). Under load a flash is presented a few refreshes late; less than half of
/// `MIN_STEP_MS`, so a shift by whole events cannot line up consecutive flashes.
const MATCH_WITHIN: f64 = 0.1;
/// Once aligned, a flash's beep is the nearest within this (s) of the alignment: under half
/// the shortest interval, so never a neighbour's beep.
pub const PAIR_WITHIN: f64 = 0.25;

/// Pairs flashes with beeps (onsets, s) by the alignment of the two sequences, not by
/// nearness: the shift `d` (any size) under which the most flashes have a beep within
/// [`MATCH_WITHIN`] of `flash + d`. The schedule's intervals are uneven, so only the true
/// shift lines up more than a few; audio a whole interval late pairs at that offset and fails
/// an A/V bound, where nearest-beep pairing of a periodic schedule would have read it as in
/// sync. Each flash then takes the beep nearest `flash + d`, within [`PAIR_WITHIN`].
pub fn pair(flashes: &[f64], beeps: &[f64]) -> Vec<(f64, f64)> {
    let near = |t: f64, tol: f64| -> Option<f64> {
        beeps
            .iter()
            .copied()
            .min_by(|a, b| (a - t).abs().total_cmp(&(b - t).abs()))
            .filter(|b| (b - t).abs() <= tol)
    };
    let count = |d: f64| {
        flashes
            .iter()
            .filter(|&&f| near(f + d, MATCH_WITHIN).is_some())
            .count()
    };
    // Candidates: every flash–beep difference. Most matches wins; among equals the smaller
    // shift (two clusters tie only with two or three events, where either is a guess).
    let mut best: Option<(usize, f64)> = None;
    for &f in flashes {
        for &b in beeps {
            let d = b - f;
            let c = count(d);
            if best.is_none_or(|(bc, bd)| c > bc || (c == bc && d.abs() < bd.abs())) {
                best = Some((c, d));
            }
        }
    }
    let Some((_, d0)) = best else {
        return Vec::new();
    };
    // The candidate was one pair's difference; centre on the median of the matched ones.
    let mut ds: Vec<f64> = flashes
        .iter()
        .filter_map(|&f| Some(near(f + d0, MATCH_WITHIN)? - f))
        .collect();
    ds.sort_by(f64::total_cmp);
    let d = ds.get(ds.len() / 2).copied().unwrap_or(d0);
    flashes
        .iter()
        .filter_map(|&f| Some((f, near(f + d, PAIR_WITHIN)? - f)))
        .collect()
}

/// Where the `zerocast-avsync` binary is: `$ZEROCAST_AVSYNC`, or next to the running test or
/// example binary (`target/<profile>/`).
pub fn binary() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("ZEROCAST_AVSYNC") {
        return Some(p.into());
    }
    let exe = std::env::current_exe().ok()?;
    let mut dir = exe.parent()?;
    for _ in 0..2 {
        let p = dir.join("zerocast-avsync");
        if p.exists() {
            return Some(p);
        }
        dir = dir.parent()?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Onsets (s) of events `from..to` of the schedule, `shift` s later, `t0` the file's zero.
    fn onsets(s: &Schedule, from: i64, to: i64, t0: f64, shift: f64) -> Vec<f64> {
        (from..to)
            .map(|k| s.at(k) as f64 * 1e-9 - t0 + shift)
            .collect()
    }

    #[test]
    fn schedule_is_aperiodic_and_bounded() {
        let s = Schedule::new();
        let mut prev = 0;
        for k in 0..EVENTS as i64 - 1 {
            let i = s.at(k + 1) - s.at(k);
            assert!((600_000_000..=1_400_000_000).contains(&i), "{k}: {i}");
            assert!(i.abs_diff(prev) >= MIN_STEP_MS * 1_000_000, "{k}");
            prev = i;
        }
        assert_eq!(s.last_at(-1), None);
        assert_eq!(s.last_at(s.at(3) + 5), Some((3, 5)));
        // Fixed: the client and a later analysis agree.
        assert_eq!(Schedule::new().at(100), s.at(100));
    }

    #[test]
    fn pairs_true_events_and_exposes_a_shift_by_whole_events() {
        let s = Schedule::new();
        let t0 = s.at(20) as f64 * 1e-9 - 0.3;
        for n in [6, 60] {
            let flashes = onsets(&s, 20, 20 + n, t0, 0.0);
            // In sync, with 20 ms of jitter on the video side.
            let jittered: Vec<f64> = flashes
                .iter()
                .enumerate()
                .map(|(i, f)| f + if i % 2 == 0 { 0.02 } else { -0.01 })
                .collect();
            let p = pair(&jittered, &flashes);
            assert_eq!(p.len(), n as usize);
            assert!(p.iter().all(|x| x.1.abs() <= 0.021), "{p:?}");
            // Audio late by one event's interval, by exactly 1 s (the old period), or early
            // by two events: every pair carries the shift.
            for shift in [
                (s.at(21) - s.at(20)) as f64 * 1e-9,
                1.0,
                -((s.at(22) - s.at(20)) as f64 * 1e-9),
            ] {
                let beeps = onsets(&s, 15, 25 + n, t0, shift);
                let p = pair(&flashes, &beeps);
                let mut d: Vec<f64> = p.iter().map(|x| x.1).collect();
                d.sort_by(f64::total_cmp);
                let median = d[d.len() / 2];
                assert!((median - shift).abs() < 0.001, "{shift}: {p:?}");
            }
        }
    }
}
