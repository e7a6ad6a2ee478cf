//! The audio PipeWire thread: connects to the user's PipeWire daemon (audio does not come
//! through the portal's remote), owns its main loop, context, core, registry and one capture
//! stream per slot, and hands samples out through preallocated [`Chunk`]s.
//!
//! The process callback runs on PipeWire's realtime data thread (`RT_PROCESS`): it only
//! dequeues, copies into a free chunk and queues back. No allocation, no lock that anyone holds
//! for long (a slot's free list is behind an uncontended mutex only so that a slot can move to
//! a new stream of the same application).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use pipewire as pw;
use pw::spa;
use spa::pod::Pod;
use tokio::sync::mpsc::UnboundedSender;

use super::ring::{Chunk, CHUNK_FRAMES};
use super::timing::frames_to_ns;
use super::{AudioError, AudioSource, CHANNELS, RATE};

/// What kind of audio node a name refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// `Audio/Sink`: recorded through its monitor.
    Sink,
    /// `Audio/Source` (microphones, virtual sources).
    Source,
    /// `Stream/Output/Audio`: an application playing sound.
    App,
}

/// An audio node on the PipeWire daemon (for `probe`, validation and application capture).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioNode {
    pub id: u32,
    pub serial: u64,
    pub name: String,
    pub description: Option<String>,
    /// `application.name` (applications' streams).
    pub app: Option<String>,
    /// `application.process.binary`.
    pub binary: Option<String>,
    pub kind: NodeKind,
}

impl AudioNode {
    /// Whether this application stream belongs to the application `name` (its name, its binary
    /// or its stream's node name, case-insensitive).
    pub fn matches_app(&self, name: &str) -> bool {
        self.kind == NodeKind::App
            && [
                self.app.as_deref(),
                self.binary.as_deref(),
                Some(&self.name),
            ]
            .into_iter()
            .flatten()
            .any(|n| n.eq_ignore_ascii_case(name))
    }

    fn from_global(g: &pw::registry::GlobalObject<&spa::utils::dict::DictRef>) -> Option<Self> {
        if g.type_ != pw::types::ObjectType::Node {
            return None;
        }
        let props = g.props?;
        let kind = match props.get("media.class")? {
            "Audio/Sink" | "Audio/Duplex" => NodeKind::Sink,
            "Audio/Source" | "Audio/Source/Virtual" => NodeKind::Source,
            "Stream/Output/Audio" => NodeKind::App,
            _ => return None,
        };
        // Our own capture streams are Stream/Input: never listed.
        Some(AudioNode {
            id: g.id,
            serial: props
                .get("object.serial")
                .and_then(|s| s.parse().ok())
                .unwrap_or(g.id as u64),
            name: props.get("node.name").unwrap_or_default().to_string(),
            description: props.get("node.description").map(str::to_string),
            app: props.get("application.name").map(str::to_string),
            binary: props.get("application.process.binary").map(str::to_string),
            kind,
        })
    }
}

fn init() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(pw::init);
}

/// The user's PipeWire daemon cannot be reached (or refused a main loop, context or core).
fn no_server(e: pw::Error) -> AudioError {
    AudioError::NoServer(e.into())
}

/// Lists the audio nodes of the user's PipeWire daemon (sinks, sources, applications playing).
/// Blocking (one registry round trip, at most 3 s): call from a blocking context.
pub fn list_sources() -> Result<Vec<AudioNode>, AudioError> {
    init();
    let mainloop = pw::main_loop::MainLoopRc::new(None).map_err(no_server)?;
    let context = pw::context::ContextRc::new(&mainloop, None).map_err(no_server)?;
    let core = context.connect_rc(None).map_err(no_server)?;
    let registry = core.get_registry_rc().map_err(no_server)?;
    let nodes = Rc::new(RefCell::new(Vec::new()));
    let found = Rc::clone(&nodes);
    let _reg = registry
        .add_listener_local()
        .global(move |g| {
            if let Some(n) = AudioNode::from_global(g) {
                found.borrow_mut().push(n);
            }
        })
        .register();
    let done = Rc::new(std::cell::Cell::new(false));
    let pending = core.sync(0).map_err(no_server)?;
    let (quit, done2) = (mainloop.downgrade(), Rc::clone(&done));
    let _core = core
        .add_listener_local()
        .done(move |id, seq| {
            if id == pw::core::PW_ID_CORE && seq == pending {
                done2.set(true);
                if let Some(l) = quit.upgrade() {
                    l.quit();
                }
            }
        })
        .register();
    let quit = mainloop.downgrade();
    let timer = mainloop.loop_().add_timer(move |_| {
        if let Some(l) = quit.upgrade() {
            l.quit();
        }
    });
    let _ = timer.update_timer(Some(Duration::from_secs(3)), None);
    mainloop.run();
    if !done.get() {
        return Err(AudioError::NoAnswer);
    }
    let mut v = nodes.take();
    v.sort_by(|a, b| (a.kind as u8, &a.name).cmp(&(b.kind as u8, &b.name)));
    Ok(v)
}

/// One capture slot: a source (an application may fill several slots, one per stream) and the
/// free list of its chunks.
pub struct SlotSpec {
    pub source: AudioSource,
    pub free: Receiver<Chunk>,
}

/// What the audio PipeWire thread reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioEvent {
    /// A slot's stream is streaming (`node` is what it records, when known).
    Streaming { slot: usize },
    /// A slot's stream stopped (node gone, error): silence from now on.
    Lost { slot: usize, reason: String },
}

/// Test hook: the capture callback sleeps once, `after` into the recording, for `len` (a stall
/// of our audio thread; the tests check that sync comes back). From `ZEROCAST_AUDIO_STALL`
/// = `AFTER_MS:LEN_MS`.
pub const STALL_ENV: &str = "ZEROCAST_AUDIO_STALL";

#[derive(Debug, Clone, Copy)]
struct Stall {
    at_ns: i64,
    len: Duration,
}

fn stall_from_env() -> Option<Stall> {
    let v = std::env::var(STALL_ENV).ok()?;
    let (a, l) = v.split_once(':')?;
    Some(Stall {
        at_ns: crate::clock::monotonic_ns() + a.parse::<i64>().ok()? * 1_000_000,
        len: Duration::from_millis(l.parse().ok()?),
    })
}

enum Cmd {
    Stop,
}

/// Handle to the audio PipeWire thread.
pub struct AudioCapture {
    commands: pw::channel::Sender<Cmd>,
    join: Option<JoinHandle<()>>,
    /// Frames PipeWire delivered that found no free chunk (the consumer is behind).
    pub lost_frames: Arc<AtomicU64>,
}

impl AudioCapture {
    /// Connects to the default PipeWire daemon and starts one capture stream per slot (for
    /// applications: one per stream of the application, now or later). Returns once connected
    /// (a missing daemon is an error here, not later).
    pub fn spawn(
        slots: Vec<SlotSpec>,
        filled: SyncSender<Chunk>,
        events: UnboundedSender<AudioEvent>,
        span: tracing::Span,
    ) -> Result<AudioCapture, AudioError> {
        let (tx, rx) = pw::channel::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let lost_frames = Arc::new(AtomicU64::new(0));
        let lost = Arc::clone(&lost_frames);
        let join = std::thread::Builder::new()
            .name("zerocast-audio-pw".into())
            .spawn(move || {
                let _enter = span.enter();
                if let Err(e) = run(slots, filled, events, rx, lost, &ready_tx) {
                    tracing::error!(error = %e, "audio PipeWire thread failed");
                    let _ = ready_tx.try_send(Err(e));
                }
            })
            .map_err(|e| AudioError::Thread(e.into()))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(AudioCapture {
                commands: tx,
                join: Some(join),
                lost_frames,
            }),
            Ok(Err(e)) => {
                let _ = join.join();
                Err(e)
            }
            Err(_) => {
                let _ = join.join();
                Err(AudioError::ThreadEnded)
            }
        }
    }

    /// Disconnects every stream and waits for the thread. Blocking.
    pub fn stop(mut self) {
        let _ = self.commands.send(Cmd::Stop);
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

impl Drop for AudioCapture {
    fn drop(&mut self) {
        let _ = self.commands.send(Cmd::Stop);
    }
}

/// Per-stream state of the process callback.
struct StreamData {
    slot: usize,
    free: Arc<Mutex<Receiver<Chunk>>>,
    filled: SyncSender<Chunk>,
    lost: Arc<AtomicU64>,
    stall: Option<Stall>,
    events: UnboundedSender<AudioEvent>,
    streamed: bool,
    /// The negotiated format is ours (F32, 48 kHz, stereo).
    format_ok: bool,
}

/// A live stream and the listener that points into it (dropped before the stream).
struct Live {
    slot: usize,
    /// The application node this stream records (application slots only).
    app_node: Option<u32>,
    _listener: pw::stream::StreamListener<StreamData>,
    stream: pw::stream::StreamRc,
}

struct Shared {
    core: pw::core::CoreRc,
    slots: Vec<AudioSource>,
    free: Vec<Arc<Mutex<Receiver<Chunk>>>>,
    filled: SyncSender<Chunk>,
    events: UnboundedSender<AudioEvent>,
    lost: Arc<AtomicU64>,
    stall: Option<Stall>,
    live: RefCell<Vec<Live>>,
    nodes: RefCell<Vec<AudioNode>>,
    /// Whether the first registry round trip is done (fixed streams created).
    synced: std::cell::Cell<bool>,
}

fn run(
    slots: Vec<SlotSpec>,
    filled: SyncSender<Chunk>,
    events: UnboundedSender<AudioEvent>,
    commands: pw::channel::Receiver<Cmd>,
    lost: Arc<AtomicU64>,
    ready: &SyncSender<Result<(), AudioError>>,
) -> Result<(), AudioError> {
    init();
    let mainloop = pw::main_loop::MainLoopRc::new(None).map_err(no_server)?;
    let context = pw::context::ContextRc::new(&mainloop, None).map_err(no_server)?;
    let core = context.connect_rc(None).map_err(no_server)?;
    let registry = core.get_registry_rc().map_err(no_server)?;
    let shared = Rc::new(Shared {
        core: core.clone(),
        slots: slots.iter().map(|s| s.source.clone()).collect(),
        free: slots
            .into_iter()
            .map(|s| Arc::new(Mutex::new(s.free)))
            .collect(),
        filled,
        events,
        lost,
        stall: stall_from_env(),
        live: RefCell::new(Vec::new()),
        nodes: RefCell::new(Vec::new()),
        synced: std::cell::Cell::new(false),
    });

    let sh = Rc::clone(&shared);
    let sh_rm = Rc::clone(&shared);
    let _reg = registry
        .add_listener_local()
        .global(move |g| {
            let Some(n) = AudioNode::from_global(g) else {
                return;
            };
            sh.nodes.borrow_mut().push(n.clone());
            if sh.synced.get() && n.kind == NodeKind::App {
                attach_app_node(&sh, &n);
            }
        })
        .global_remove(move |id| {
            sh_rm.nodes.borrow_mut().retain(|n| n.id != id);
            let mut live = sh_rm.live.borrow_mut();
            if let Some(i) = live.iter().position(|l| l.app_node == Some(id)) {
                let l = live.remove(i);
                tracing::info!(slot = l.slot, node = id, "application stream ended");
                let _ = l.stream.disconnect();
                let _ = sh_rm.events.send(AudioEvent::Lost {
                    slot: l.slot,
                    reason: "the application's stream ended".into(),
                });
            }
        })
        .register();

    let pending = core.sync(0).map_err(no_server)?;
    let sh = Rc::clone(&shared);
    let ready = ready.clone();
    let _core_listener = core
        .add_listener_local()
        .done(move |id, seq| {
            if id != pw::core::PW_ID_CORE || seq != pending || sh.synced.get() {
                return;
            }
            sh.synced.set(true);
            let r = start_fixed_streams(&sh);
            let ok = r.is_ok();
            let _ = ready.try_send(r);
            if ok {
                let apps: Vec<AudioNode> = sh
                    .nodes
                    .borrow()
                    .iter()
                    .filter(|n| n.kind == NodeKind::App)
                    .cloned()
                    .collect();
                for n in &apps {
                    attach_app_node(&sh, n);
                }
            }
        })
        .error(|id, _seq, res, msg| {
            tracing::warn!(id, res, msg, "audio PipeWire core error");
        })
        .register();

    let quit = mainloop.downgrade();
    let sh = Rc::clone(&shared);
    let _commands = commands.attach(mainloop.loop_(), move |cmd| match cmd {
        Cmd::Stop => {
            for l in sh.live.borrow().iter() {
                let _ = l.stream.disconnect();
            }
            if let Some(l) = quit.upgrade() {
                l.quit();
            }
        }
    });
    mainloop.run();
    // Listeners before streams (field order in Live), then everything else.
    shared.live.borrow_mut().clear();
    Ok(())
}

/// Desktop, mic and named-node slots: one stream each, from the start.
fn start_fixed_streams(sh: &Rc<Shared>) -> Result<(), AudioError> {
    for (slot, source) in sh.slots.iter().enumerate() {
        let mut props = base_props();
        match source {
            AudioSource::Desktop => {
                // The default sink's monitor; WirePlumber moves the stream when the default
                // sink changes.
                props.insert(*pw::keys::STREAM_CAPTURE_SINK, "true");
            }
            AudioSource::Mic => {}
            AudioSource::Node(name) => {
                let kind = sh
                    .nodes
                    .borrow()
                    .iter()
                    .find(|n| &n.name == name)
                    .map(|n| n.kind);
                if kind == Some(NodeKind::Sink) {
                    props.insert(*pw::keys::STREAM_CAPTURE_SINK, "true");
                }
                props.insert(*pw::keys::TARGET_OBJECT, name.as_str());
                // If the node goes away, record silence rather than some other device.
                props.insert(*pw::keys::NODE_DONT_RECONNECT, "true");
                props.insert("node.dont-fallback", "true");
            }
            AudioSource::App(_) => continue,
        }
        let live = make_stream(sh, slot, props, None)?;
        sh.live.borrow_mut().push(live);
    }
    Ok(())
}

/// A new application stream: record it in a free slot of the matching application source.
fn attach_app_node(sh: &Rc<Shared>, n: &AudioNode) {
    let free_slot = {
        let live = sh.live.borrow();
        if live.iter().any(|l| l.app_node == Some(n.id)) {
            return;
        }
        sh.slots.iter().enumerate().find_map(|(i, s)| match s {
            AudioSource::App(name) if n.matches_app(name) && !live.iter().any(|l| l.slot == i) => {
                Some(i)
            }
            _ => None,
        })
    };
    let Some(slot) = free_slot else {
        if sh
            .slots
            .iter()
            .any(|s| matches!(s, AudioSource::App(name) if n.matches_app(name)))
        {
            tracing::warn!(node = n.id, name = %n.name, "no free slot for another stream of this application; not recorded");
        }
        return;
    };
    let mut props = base_props();
    props.insert(*pw::keys::TARGET_OBJECT, n.serial.to_string());
    props.insert(*pw::keys::NODE_DONT_RECONNECT, "true");
    props.insert("node.dont-fallback", "true");
    match make_stream(sh, slot, props, Some(n.id)) {
        Ok(l) => {
            tracing::info!(slot, node = n.id, app = ?n.app, name = %n.name, "recording application stream");
            sh.live.borrow_mut().push(l);
        }
        Err(e) => tracing::warn!(error = %e, node = n.id, "cannot record application stream"),
    }
}

fn base_props() -> pw::properties::PropertiesBox {
    pw::properties::properties! {
        *pw::keys::MEDIA_TYPE => "Audio",
        *pw::keys::MEDIA_CATEGORY => "Capture",
        *pw::keys::APP_NAME => "zerocast",
        *pw::keys::NODE_NAME => "zerocast-audio",
        // The graph's usual quantum; smaller would only cost wake-ups.
        *pw::keys::NODE_LATENCY => "1024/48000",
    }
}

/// The EnumFormat we accept: F32 interleaved, 48 kHz, stereo (PipeWire converts the rest).
fn format_pod() -> Vec<u8> {
    let mut info = spa::param::audio::AudioInfoRaw::new();
    info.set_format(spa::param::audio::AudioFormat::F32LE);
    info.set_rate(RATE);
    info.set_channels(CHANNELS as u32);
    let mut pos = [0u32; spa::sys::SPA_AUDIO_MAX_CHANNELS as usize];
    pos[0] = spa::sys::SPA_AUDIO_CHANNEL_FL;
    pos[1] = spa::sys::SPA_AUDIO_CHANNEL_FR;
    info.set_position(pos);
    let obj = spa::pod::Object {
        type_: spa::utils::SpaTypes::ObjectParamFormat.as_raw(),
        id: spa::param::ParamType::EnumFormat.as_raw(),
        properties: info.into(),
    };
    spa::pod::serialize::PodSerializer::serialize(
        std::io::Cursor::new(Vec::new()),
        &spa::pod::Value::Object(obj),
    )
    .expect("a fixed audio format serializes")
    .0
    .into_inner()
}

fn make_stream(
    sh: &Rc<Shared>,
    slot: usize,
    props: pw::properties::PropertiesBox,
    app_node: Option<u32>,
) -> Result<Live, AudioError> {
    let err = |e: pw::Error| AudioError::Stream(e.into());
    let stream =
        pw::stream::StreamRc::new(sh.core.clone(), "zerocast-audio", props).map_err(err)?;
    let data = StreamData {
        slot,
        free: Arc::clone(&sh.free[slot]),
        filled: sh.filled.clone(),
        lost: Arc::clone(&sh.lost),
        stall: sh.stall,
        events: sh.events.clone(),
        streamed: false,
        format_ok: false,
    };
    let listener = stream
        .add_local_listener_with_user_data(data)
        .state_changed(|_s, d, old, new| {
            tracing::info!(slot = d.slot, ?old, ?new, "audio stream state");
            match new {
                pw::stream::StreamState::Streaming => {
                    d.streamed = true;
                    let _ = d.events.send(AudioEvent::Streaming { slot: d.slot });
                }
                pw::stream::StreamState::Error(msg) => {
                    let _ = d.events.send(AudioEvent::Lost {
                        slot: d.slot,
                        reason: msg,
                    });
                }
                _ => {}
            }
        })
        .param_changed(|_s, d, id, param| {
            if id != spa::param::ParamType::Format.as_raw() {
                return;
            }
            let Some(param) = param else { return };
            let mut info = spa::param::audio::AudioInfoRaw::new();
            d.format_ok = info.parse(param).is_ok()
                && info.format() == spa::param::audio::AudioFormat::F32LE
                && info.rate() == RATE
                && info.channels() as usize == CHANNELS;
            if !d.format_ok {
                tracing::warn!(slot = d.slot, format = ?info.format(), rate = info.rate(), channels = info.channels(), "unexpected audio format; slot records silence");
            }
        })
        .process(on_process)
        .register()
        .map_err(err)?;
    let pod = format_pod();
    let mut params = [Pod::from_bytes(&pod).expect("serialized above")];
    stream
        .connect(
            spa::utils::Direction::Input,
            None,
            pw::stream::StreamFlags::AUTOCONNECT
                | pw::stream::StreamFlags::MAP_BUFFERS
                | pw::stream::StreamFlags::RT_PROCESS,
            &mut params,
        )
        .map_err(err)?;
    Ok(Live {
        slot,
        app_node,
        _listener: listener,
        stream,
    })
}

/// The realtime callback: copy every queued buffer into free chunks, stamped with the capture
/// time of their first frame.
fn on_process(stream: &pw::stream::Stream, d: &mut StreamData) {
    if let Some(s) = d.stall {
        if crate::clock::monotonic_ns() >= s.at_ns {
            d.stall = None;
            tracing::info!(
                ms = s.len.as_millis() as u64,
                "test hook: stalling the audio capture thread"
            );
            std::thread::sleep(s.len);
        }
    }
    // The delay from the device to us (a capture stream's samples are older than the cycle
    // that delivers them by this much).
    let delay_ns = stream
        .time()
        .ok()
        .map(|t| {
            let r = t.rate();
            if r.denom == 0 {
                0
            } else {
                t.delay() * 1_000_000_000 * r.num as i64 / r.denom as i64
            }
        })
        .unwrap_or(0);
    loop {
        // SAFETY: on the stream's data thread inside process; a null return ends the loop.
        let b = unsafe { stream.dequeue_raw_buffer() };
        if b.is_null() {
            return;
        }
        // SAFETY: `b` is dequeued until queued back below; PipeWire keeps it valid.
        unsafe { copy_out(b, d, delay_ns) };
        // SAFETY: `b` came from this stream's dequeue and is queued exactly once.
        unsafe { stream.queue_raw_buffer(b) };
    }
}

/// Copies the samples of a dequeued buffer into chunks.
///
/// # Safety
/// `b` is a buffer dequeued from a live, mapped (MAP_BUFFERS) stream and not yet queued back.
unsafe fn copy_out(b: *mut pw::sys::pw_buffer, d: &mut StreamData, delay_ns: i64) {
    // SAFETY: per the contract the pw_buffer, its spa_buffer, data and chunk are valid while
    // dequeued; the mapped region is `maxsize` bytes and offset+size are clamped to it.
    let (samples, time) = unsafe {
        let sb = (*b).buffer;
        if sb.is_null() || (*sb).n_datas == 0 {
            return;
        }
        let data = &*(*sb).datas;
        if data.data.is_null() || data.chunk.is_null() {
            return;
        }
        let c = &*data.chunk;
        let offset = (c.offset % data.maxsize.max(1)) as usize;
        let size = (c.size as usize).min(data.maxsize as usize - offset);
        let ptr = (data.data as *const u8).add(offset);
        if ptr.align_offset(std::mem::align_of::<f32>()) != 0 {
            return;
        }
        let n = size / std::mem::size_of::<f32>() / CHANNELS * CHANNELS;
        (
            std::slice::from_raw_parts(ptr.cast::<f32>(), n),
            (*b).time as i64,
        )
    };
    if !d.format_ok || samples.is_empty() {
        return;
    }
    // pw_buffer.time is the cycle's CLOCK_MONOTONIC time (PipeWire ≥ 1.0.5); older versions
    // leave it 0 and "now" is the best we have.
    let cycle = if time > 0 {
        time
    } else {
        crate::clock::monotonic_ns()
    };
    let t0 = cycle - delay_ns;
    let free = match d.free.lock() {
        Ok(f) => f,
        Err(e) => e.into_inner(),
    };
    for (k, piece) in samples.chunks(CHUNK_FRAMES * CHANNELS).enumerate() {
        let Ok(mut chunk) = free.try_recv() else {
            d.lost
                .fetch_add((piece.len() / CHANNELS) as u64, Ordering::Relaxed);
            continue;
        };
        chunk.data.clear();
        chunk.data.extend_from_slice(piece);
        chunk.source = d.slot;
        chunk.time_ns = t0 + frames_to_ns((k * CHUNK_FRAMES) as i64);
        // The filled queue holds every chunk of every slot: it is never full.
        let _ = d.filled.try_send(chunk);
    }
}
