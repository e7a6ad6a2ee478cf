//! The painter: a full-screen Wayland client that draws known, changing content.
//!
//! Layout and colours: [`crate::layout`]. A wlr-layer-shell overlay surface anchored to all
//! edges covers the output; the four quadrants never change, the strip at the top changes
//! `fps` times per second (a 24-bit frame counter and a moving bar). A static screen makes
//! xdpw send no frames at all, which is why something must always move.
//!
//! Cost: the quadrants are painted once per buffer; each tick rewrites only the strip rows of a
//! free buffer from a 3-buffer pool and damages only the strip. Rows are built once and
//! memcpy'd, so even a debug build is cheap (~1-2% of a core at 60 fps, 720p).
//!
//! [`Content::FullMotion`] (for benchmarks) instead scrolls a page that was rendered once at
//! configure time: each tick is one memcpy of a whole frame out of that texture into a pooled
//! buffer (3.7 MB at 720p, ~0.3 ms) and damages the whole surface. The painter stays a small
//! share of a core, so the compositor and the recorder under test keep the CPU.
//!
//! On compositors without wlr-layer-shell (mutter), or when asked (`--toplevel`, KWin: a window
//! the portal can cast), it is a fullscreen xdg-shell toplevel instead, which also covers the
//! output (and GNOME Shell's panel).
//!
//! Runs as the `zerocast-painter` binary (preferred: own PID) or, when that binary cannot be
//! found, on a thread of the test process ([`PainterThread`]).

use std::time::{Duration, Instant};

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::layout::{xrgb, Content, Layout, Quadrant, COUNTER_MASK};
use anyhow::{Context, Result};
use smithay_client_toolkit::{
    compositor::{CompositorHandler, CompositorState, FrameCallbackData},
    delegate_registry,
    output::{OutputHandler, OutputState},
    reexports::{
        calloop::{
            timer::{TimeoutAction, Timer},
            EventLoop, LoopHandle, LoopSignal,
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
        xdg::{
            window::{Window, WindowConfigure, WindowDecorations, WindowHandler},
            XdgShell,
        },
        WaylandSurface,
    },
    shm::{
        slot::{Buffer, SlotPool},
        Shm, ShmHandler,
    },
};

/// Buffers in flight: one shown, one possibly held by the compositor for screencopy, one to draw.
const BUFFERS: usize = 3;

struct Slot {
    buffer: Buffer,
    /// Whether the static quadrants are already in this buffer.
    painted: bool,
}

pub(crate) struct Painter {
    registry_state: RegistryState,
    // CompositorState's surfaces track which outputs they are on, so an OutputState is needed.
    output_state: OutputState,
    shm: Shm,
    surface: PainterSurface,
    pool: Option<SlotPool>,
    slots: Vec<Slot>,
    layout: Option<Layout>,
    /// Scratch rows for the two strip bands, rebuilt each tick and memcpy'd into the buffer.
    counter_row: Vec<u32>,
    bar_row: Vec<u32>,
    content: Content,
    /// `Content::FullMotion`'s page ([`Layout::motion_texture`]), built once per size.
    texture: Vec<u32>,
    fps: u32,
    start: Option<Instant>,
    tick: u64,
    ready_file: Option<PathBuf>,
    ready: bool,
    exit: bool,
    qh: QueueHandle<Painter>,
    handle: LoopHandle<'static, Painter>,
    frames_drawn: u64,
    ticks_skipped: u64,
}

/// What the painter draws.
#[derive(Debug, Clone)]
pub struct PainterOptions {
    /// Content changes per second; 0 draws once and then stays static.
    pub fps: u32,
    /// What to draw; the counter strip by default.
    pub content: Content,
    /// Created once the compositor has presented the first frame.
    pub ready_file: Option<PathBuf>,
    /// Be a fullscreen xdg-shell toplevel even where wlr-layer-shell exists (KWin: a window
    /// can be cast as a window, and only toplevels are windows to the portal).
    pub toplevel: bool,
}

impl Default for PainterOptions {
    fn default() -> Self {
        PainterOptions {
            fps: 60,
            content: Content::Strip,
            ready_file: None,
            toplevel: false,
        }
    }
}

/// Counters reported when the painter exits.
#[derive(Debug, Clone, Copy, Default)]
pub struct PainterStats {
    pub frames_drawn: u64,
    pub ticks_skipped: u64,
}

/// Runs the painter on `conn` until the compositor goes away or `stop` is set (and the loop
/// woken through the [`LoopSignal`] handed to `on_start`).
pub fn run(
    conn: Connection,
    opts: &PainterOptions,
    stop: Arc<AtomicBool>,
    on_start: impl FnOnce(LoopSignal),
) -> Result<PainterStats> {
    let (globals, event_queue) = registry_queue_init(&conn)?;
    let qh: QueueHandle<Painter> = event_queue.handle();

    let compositor = CompositorState::bind(&globals, &qh).context("wl_compositor")?;
    let shm = Shm::bind(&globals, &qh).context("wl_shm")?;

    let surface = compositor.create_surface(&qh);
    let layer_shell = if opts.toplevel {
        None
    } else {
        LayerShell::bind(&globals, &qh).ok()
    };
    let surface = match layer_shell {
        Some(layer_shell) => {
            let layer = layer_shell.create_layer_surface(
                &qh,
                surface,
                Layer::Overlay,
                Some("zerocast-painter"),
                None,
            );
            // Size 0×0 + all anchors = "as large as the output"; exclusive zone -1 ignores
            // panels.
            layer.set_anchor(Anchor::TOP | Anchor::BOTTOM | Anchor::LEFT | Anchor::RIGHT);
            layer.set_size(0, 0);
            layer.set_exclusive_zone(-1);
            layer.set_keyboard_interactivity(KeyboardInteractivity::None);
            PainterSurface::Layer(layer)
        }
        // mutter has no layer shell: a fullscreen toplevel covers the output (and the panel).
        // On KWin it is asked for, so that the painter is a window the portal can cast.
        None => {
            let xdg =
                XdgShell::bind(&globals, &qh).context("neither layer shell nor xdg_wm_base")?;
            let window = xdg.create_window(surface, WindowDecorations::None, &qh);
            window.set_title("zerocast-painter");
            window.set_app_id("zerocast-painter");
            window.set_fullscreen(None);
            PainterSurface::Window(window)
        }
    };
    // The initial commit without a buffer asks the compositor for the first configure.
    surface.commit();

    let mut event_loop: EventLoop<Painter> = EventLoop::try_new()?;
    let handle = event_loop.handle();
    WaylandSource::new(conn.clone(), event_queue)
        .insert(handle.clone())
        .map_err(|e| anyhow::anyhow!("inserting the Wayland source: {e}"))?;

    let mut painter = Painter {
        registry_state: RegistryState::new(&globals),
        output_state: OutputState::new(&globals, &qh),
        shm,
        surface,
        pool: None,
        slots: Vec::new(),
        layout: None,
        counter_row: Vec::new(),
        bar_row: Vec::new(),
        content: opts.content,
        texture: Vec::new(),
        fps: opts.fps,
        start: None,
        tick: 0,
        ready_file: opts.ready_file.clone(),
        ready: false,
        exit: false,
        qh: qh.clone(),
        handle,
        frames_drawn: 0,
        ticks_skipped: 0,
    };
    on_start(event_loop.get_signal());

    while !painter.exit && !stop.load(Ordering::Relaxed) {
        event_loop.dispatch(None, &mut painter)?;
    }
    Ok(PainterStats {
        frames_drawn: painter.frames_drawn,
        ticks_skipped: painter.ticks_skipped,
    })
}

/// The painter on a thread of this process, for when the binary is not available.
pub struct PainterThread {
    stop: Arc<AtomicBool>,
    signal: LoopSignal,
    thread: Option<JoinHandle<Result<PainterStats>>>,
}

impl PainterThread {
    /// Connects to the Wayland socket at `socket` and starts painting.
    pub fn spawn(socket: &Path, opts: PainterOptions) -> Result<PainterThread> {
        let stream = UnixStream::connect(socket)
            .with_context(|| format!("connecting to {}", socket.display()))?;
        let conn = Connection::from_socket(stream)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let thread_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name("zerocast-painter".into())
            .spawn(move || {
                run(conn, &opts, thread_stop, |signal| {
                    let _ = tx.send(signal);
                })
            })?;
        match rx.recv() {
            Ok(signal) => Ok(PainterThread {
                stop,
                signal,
                thread: Some(thread),
            }),
            // The thread failed before its loop started; report its error.
            Err(_) => Err(thread
                .join()
                .map_err(|_| anyhow::anyhow!("painter thread panicked"))?
                .err()
                .unwrap_or_else(|| anyhow::anyhow!("painter thread ended early"))),
        }
    }

    /// Stops the thread and returns its counters.
    pub fn stop(mut self) -> Result<PainterStats> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Result<PainterStats> {
        self.stop.store(true, Ordering::Relaxed);
        self.signal.wakeup();
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| anyhow::anyhow!("painter thread panicked"))?,
            None => Ok(PainterStats::default()),
        }
    }
}

impl Drop for PainterThread {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}

impl Painter {
    fn resize(&mut self, width: u32, height: u32) -> Result<()> {
        let layout = Layout::new(width, height);
        if self.layout == Some(layout) {
            return Ok(());
        }
        let stride = width as i32 * 4;
        let len = stride as usize * height as usize;
        // Drop the old buffers before their pool so that their slots are released first.
        self.slots.clear();
        let mut pool = SlotPool::new(len * BUFFERS, &self.shm).context("creating shm pool")?;
        for _ in 0..BUFFERS {
            let (buffer, _) = pool
                .create_buffer(
                    width as i32,
                    height as i32,
                    stride,
                    wl_shm::Format::Xrgb8888,
                )
                .context("creating shm buffer")?;
            self.slots.push(Slot {
                buffer,
                painted: false,
            });
        }
        self.pool = Some(pool);
        self.layout = Some(layout);
        self.counter_row = vec![0; width as usize];
        self.bar_row = vec![0; width as usize];
        if self.content == Content::FullMotion {
            self.texture = layout.motion_texture();
        }
        eprintln!(
            "zerocast-painter: configured {width}x{height}, fps {}, {:?}",
            self.fps, self.content
        );
        Ok(())
    }

    /// Draws the frame for `counter` into a buffer the compositor does not hold and commits
    /// it. Returns false when every buffer is busy (the tick is skipped, content-wise).
    fn draw(&mut self, qh: &QueueHandle<Self>, counter: u32) -> bool {
        let (Some(layout), Some(pool)) = (self.layout, self.pool.as_mut()) else {
            return false;
        };
        let Some(idx) = self
            .slots
            .iter()
            .position(|s| s.buffer.canvas(pool).is_some())
        else {
            return false;
        };
        let slot = &mut self.slots[idx];
        let canvas = slot.buffer.canvas(pool).expect("checked free above");
        let w = layout.width as usize;
        let row_bytes = w * 4;

        if self.content == Content::FullMotion {
            let o = layout.motion_offset(counter) as usize * w;
            let frame = as_bytes(&self.texture[o..o + w * layout.height as usize]);
            canvas[..frame.len()].copy_from_slice(frame);
            return self.commit(idx, (layout.width, layout.height), qh);
        }

        let full = !slot.painted;
        if full {
            paint_quadrants(&layout, canvas);
            slot.painted = true;
        }
        layout.counter_row(counter, &mut self.counter_row);
        layout.bar_row(counter, &mut self.bar_row);
        let counter_bytes = as_bytes(&self.counter_row);
        let bar_bytes = as_bytes(&self.bar_row);
        let cb = layout.counter_band();
        for y in cb.y..cb.y + cb.h {
            let o = y as usize * row_bytes;
            canvas[o..o + row_bytes].copy_from_slice(counter_bytes);
        }
        let bb = layout.bar_band();
        for y in bb.y..bb.y + bb.h {
            let o = y as usize * row_bytes;
            canvas[o..o + row_bytes].copy_from_slice(bar_bytes);
        }

        // Every buffer holds the same quadrants once painted, so only the strip differs from
        // whatever buffer was shown before.
        let damage = if full {
            (layout.width, layout.height)
        } else {
            (layout.width, layout.strip_height())
        };
        self.commit(idx, damage, qh)
    }

    /// Damages `damage` (from the top-left corner), attaches buffer `idx` and commits.
    fn commit(&mut self, idx: usize, damage: (u32, u32), qh: &QueueHandle<Self>) -> bool {
        let surface = self.surface.wl_surface();
        surface.damage_buffer(0, 0, damage.0 as i32, damage.1 as i32);
        if !self.ready {
            // The first frame callback tells us the compositor has presented our content.
            surface.frame(qh, FrameCallbackData(surface.clone()));
        }
        if let Err(e) = self.slots[idx].buffer.attach_to(surface) {
            eprintln!("zerocast-painter: attach failed: {e:?}");
            return false;
        }
        self.surface.commit();
        self.frames_drawn += 1;
        true
    }

    /// A configure of `(w, h)` (0 = "pick your size"): size the buffers, draw, start ticking.
    fn configured(&mut self, qh: &QueueHandle<Self>, w: u32, h: u32) {
        let (w, h) = if w == 0 || h == 0 {
            // A toplevel may be told to pick its own size before fullscreen applies: use the
            // output's mode.
            match self.output_size() {
                Some(size) => size,
                None => {
                    eprintln!("zerocast-painter: 0-sized configure and no output mode");
                    self.exit = true;
                    return;
                }
            }
        } else {
            (w, h)
        };
        if let Err(e) = self.resize(w, h) {
            eprintln!("zerocast-painter: {e:#}");
            self.exit = true;
            return;
        }
        let counter = (self.tick & COUNTER_MASK as u64) as u32;
        self.draw(qh, counter);
        if self.start.is_none() {
            self.start_ticking();
        }
    }

    fn output_size(&self) -> Option<(u32, u32)> {
        let out = self.output_state.outputs().next()?;
        let info = self.output_state.info(&out)?;
        let (w, h) = info
            .logical_size
            .or_else(|| info.modes.iter().find(|m| m.current).map(|m| m.dimensions))?;
        Some((u32::try_from(w).ok()?, u32::try_from(h).ok()?))
    }

    fn start_ticking(&mut self) {
        let start = Instant::now();
        self.start = Some(start);
        if self.fps == 0 {
            return;
        }
        let period = Duration::from_secs_f64(1.0 / self.fps as f64);
        let timer = Timer::from_deadline(start + period);
        let res = self
            .handle
            .insert_source(timer, move |deadline, _, p: &mut Painter| {
                // The counter is the tick index derived from wall time, so a late tick shows up as
                // a jump in the counter rather than as slowed-down content.
                let now = Instant::now();
                let elapsed = now.saturating_duration_since(start);
                let tick = (elapsed.as_secs_f64() * p.fps as f64) as u64;
                if tick > p.tick + 1 {
                    p.ticks_skipped += tick - p.tick - 1;
                }
                p.tick = tick.max(p.tick + 1);
                let qh = p.qh.clone();
                if !p.draw(&qh, (p.tick & COUNTER_MASK as u64) as u32) {
                    p.ticks_skipped += 1;
                }
                let next = start + period.mul_f64((p.tick + 1) as f64);
                TimeoutAction::ToInstant(next.max(deadline))
            });
        if let Err(e) = res {
            eprintln!("zerocast-painter: cannot insert timer: {e}");
            self.exit = true;
        }
    }
}

fn paint_quadrants(layout: &Layout, canvas: &mut [u8]) {
    let row_bytes = layout.width as usize * 4;
    // Build one row per quadrant pair and memcpy it: cheap even in a debug build.
    for (left, right) in [
        (Quadrant::TopLeft, Quadrant::TopRight),
        (Quadrant::BottomLeft, Quadrant::BottomRight),
    ] {
        let (l, r) = (layout.quadrant_rect(left), layout.quadrant_rect(right));
        let mut row = vec![xrgb(left.color()); layout.width as usize];
        row[r.x as usize..].fill(xrgb(right.color()));
        let bytes = as_bytes(&row);
        for y in l.y..l.y + l.h {
            let o = y as usize * row_bytes;
            canvas[o..o + row_bytes].copy_from_slice(bytes);
        }
    }
}

/// Pixels as the little-endian bytes wl_shm expects (XRGB8888 = B, G, R, X in memory).
fn as_bytes(px: &[u32]) -> &[u8] {
    // SAFETY: u32 has no padding and any byte pattern is a valid u8; the length covers exactly
    // the same memory, and u8's alignment (1) divides u32's. The painter only runs on
    // little-endian machines, where this is the XRGB8888 byte order.
    unsafe { std::slice::from_raw_parts(px.as_ptr().cast::<u8>(), std::mem::size_of_val(px)) }
}

impl CompositorHandler for Painter {
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

    fn frame(&mut self, _: &Connection, _: &QueueHandle<Self>, _: &wl_surface::WlSurface, _: u32) {
        if self.ready {
            return;
        }
        self.ready = true;
        eprintln!("zerocast-painter: first frame presented");
        if let Some(path) = &self.ready_file {
            if let Err(e) = std::fs::write(path, b"ready\n") {
                eprintln!("zerocast-painter: cannot write {}: {e}", path.display());
            }
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

impl LayerShellHandler for Painter {
    fn closed(&mut self, _: &Connection, _: &QueueHandle<Self>, _: &LayerSurface) {
        self.exit = true;
    }

    fn configure(
        &mut self,
        _: &Connection,
        qh: &QueueHandle<Self>,
        _: &LayerSurface,
        configure: LayerSurfaceConfigure,
        _serial: u32,
    ) {
        let (w, h) = configure.new_size;
        if w == 0 || h == 0 {
            eprintln!("zerocast-painter: compositor sent a 0-sized configure");
            self.exit = true;
            return;
        }
        self.configured(qh, w, h);
    }
}

impl WindowHandler for Painter {
    fn request_close(&mut self, _: &Connection, _: &QueueHandle<Self>, _: &Window) {
        self.exit = true;
    }

    fn configure(
        &mut self,
        _: &Connection,
        qh: &QueueHandle<Self>,
        _: &Window,
        configure: WindowConfigure,
        _serial: u32,
    ) {
        let (w, h) = configure.new_size;
        self.configured(qh, w.map_or(0, |v| v.get()), h.map_or(0, |v| v.get()));
    }
}

impl ShmHandler for Painter {
    fn shm_state(&mut self) -> &mut Shm {
        &mut self.shm
    }
}

impl ProvidesRegistryState for Painter {
    fn registry(&mut self) -> &mut RegistryState {
        &mut self.registry_state
    }
    registry_handlers![OutputState];
}

delegate_registry!(Painter);
smithay_client_toolkit::delegate_dispatch2!(Painter);

/// The painter's role: a layer-shell overlay (sway) or a fullscreen toplevel (mutter).
enum PainterSurface {
    Layer(LayerSurface),
    Window(Window),
}

impl PainterSurface {
    fn wl_surface(&self) -> &wl_surface::WlSurface {
        match self {
            PainterSurface::Layer(l) => l.wl_surface(),
            PainterSurface::Window(w) => w.wl_surface(),
        }
    }

    fn commit(&self) {
        match self {
            PainterSurface::Layer(l) => l.commit(),
            PainterSurface::Window(w) => w.commit(),
        }
    }
}

impl OutputHandler for Painter {
    fn output_state(&mut self) -> &mut OutputState {
        &mut self.output_state
    }
    fn new_output(&mut self, _: &Connection, _: &QueueHandle<Self>, _: wl_output::WlOutput) {}
    fn update_output(&mut self, _: &Connection, _: &QueueHandle<Self>, _: wl_output::WlOutput) {}
    fn output_destroyed(&mut self, _: &Connection, _: &QueueHandle<Self>, _: wl_output::WlOutput) {}
}
