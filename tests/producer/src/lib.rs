//! Test support for the recorder's tests (`recorder/tests/{dmabuf,cuda,sync_host}.rs`, which
//! `use zerocast_testproducer as producer`): a private PipeWire daemon (+ WirePlumber, which
//! links streams) and a video producer stream offering DMA-BUF (memfd-backed LINEAR "dma-bufs",
//! which lavapipe imports as DMA_BUF), SHM, or both. It can hand out buffers that fail to
//! import. Also the checks those tests run on the recorded files.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pipewire as pw;
use pw::spa;
use spa::param::format::{FormatProperties, MediaSubtype, MediaType};
use spa::param::video::{VideoFlags, VideoFormat, VideoInfoRaw};
use spa::param::ParamType;
use spa::pod::serialize::PodSerializer;
use spa::pod::{ChoiceValue, Object, Pod, Property, PropertyFlags, Value};
use spa::utils::{Choice, ChoiceEnum, ChoiceFlags, Fraction, Id, Rectangle, SpaTypes};

/// pipewire + wireplumber in a temp runtime dir; killed on drop.
pub struct Daemon {
    children: Vec<Child>,
    dir: tempfile::TempDir,
}

impl Daemon {
    pub fn start() -> Daemon {
        let dir = tempfile::Builder::new()
            .prefix("zerocast-pw-")
            .tempdir()
            .unwrap();
        let env = |c: &mut Command| {
            let log = dir
                .path()
                .join(format!("{}.log", c.get_program().to_string_lossy()));
            c.env("XDG_RUNTIME_DIR", dir.path())
                .env("PIPEWIRE_RUNTIME_DIR", dir.path())
                .env("XDG_CONFIG_HOME", dir.path().join("config"))
                .env("XDG_STATE_HOME", dir.path().join("state"))
                // No session bus here; WirePlumber's D-Bus parts are optional.
                .env("DBUS_SESSION_BUS_ADDRESS", "disabled:")
                .stdout(Stdio::null())
                .stderr(Stdio::from(std::fs::File::create(log).unwrap()));
        };
        let mut pw = Command::new("pipewire");
        env(&mut pw);
        let mut children = vec![pw.spawn().expect("pipewire (apt: pipewire)")];
        let socket = dir.path().join("pipewire-0");
        let t0 = Instant::now();
        while UnixStream::connect(&socket).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "pipewire did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut wp = Command::new("wireplumber");
        env(&mut wp);
        children.push(wp.spawn().expect("wireplumber"));
        Daemon { children, dir }
    }

    /// A new connection to the daemon, as the portal's OpenPipeWireRemote would hand out.
    pub fn remote(&self) -> OwnedFd {
        UnixStream::connect(self.dir.path().join("pipewire-0"))
            .unwrap()
            .into()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        for c in self.children.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// What the producer offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    Dmabuf,
    Shm,
    Both,
}

#[derive(Debug, Clone)]
pub struct ProducerOptions {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub offer: Offer,
    /// Modifiers of the DMA-BUF pod (LINEAR = 0 is what the memfds really are).
    pub modifiers: Vec<u64>,
    /// DMA-BUF buffers with this index or higher get a memfd too small for a frame, so their
    /// import fails (SHM buffers are always good).
    pub bad_from: Option<usize>,
    /// Crop region (x, y, w, h) sent as VideoCrop meta, as window casts do.
    pub crop: Option<(u32, u32, u32, u32)>,
    /// From frame N on, this crop region instead (of `crop`, or of the whole frame): the
    /// recorded picture changes size mid-stream, as when the monitor's mode changes.
    pub crop_from: Option<(u64, (u32, u32, u32, u32))>,
    pub backing: Backing,
    /// Offer explicit sync (SyncTimeline meta, acquire/release timelines per buffer) with the
    /// DMA-BUF buffers (`Backing::VulkanOpaque` only: the timelines are Vulkan OPAQUE_FD
    /// exports standing in for DRM syncobjs).
    pub sync: bool,
    /// SHM buffers show the picture turned by 180° (see [`rotated_rgb`]).
    pub shm_rotated: bool,
}

impl Default for ProducerOptions {
    fn default() -> Self {
        ProducerOptions {
            width: 320,
            height: 240,
            fps: 60,
            offer: Offer::Dmabuf,
            modifiers: vec![0],
            bad_from: None,
            crop: None,
            crop_from: None,
            backing: Backing::Memfd,
            sync: false,
            shm_rotated: false,
        }
    }
}

/// What the producer's DMA-BUF buffers are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backing {
    /// memfds holding LINEAR pixels (lavapipe imports them as DMA_BUF).
    Memfd,
    /// Images of the Vulkan device with the negotiated modifier (tiled on NVIDIA), exported as
    /// OPAQUE_FD: the stand-in for a compositor's dma-bufs where the driver has no dma-buf
    /// import (the recorder must run with `ZEROCAST_IMPORT_OPAQUE_FD=1`).
    VulkanOpaque,
}

/// Counters the test reads.
#[derive(Debug, Default)]
pub struct ProducerStats {
    pub frames: AtomicU64,
    /// Formats fixed with a modifier / without.
    pub dmabuf_formats: AtomicU64,
    pub shm_formats: AtomicU64,
    /// Explicit sync: buffers handed out with acquire/release points.
    pub sync_frames: AtomicU64,
    /// Buffers that came back and whose release point had been signalled by then (or within
    /// a second), and those whose release point never came.
    pub releases_seen: AtomicU64,
    pub releases_missing: AtomicU64,
}

pub struct Producer {
    pub node_id: u32,
    pub stats: Arc<ProducerStats>,
    stop: pw::channel::Sender<()>,
    join: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Producer {
    fn drop(&mut self) {
        let _ = self.stop.send(());
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

/// The colour of the quadrant holding (x, y), as (R, G, B): red, green / blue, white.
pub fn quadrant_rgb(x: u32, y: u32, w: u32, h: u32) -> [u8; 3] {
    match (x >= w / 2, y >= h / 2) {
        (false, false) => [220, 30, 30],
        (true, false) => [30, 200, 40],
        (false, true) => [40, 40, 210],
        (true, true) => [235, 235, 235],
    }
}

/// The picture turned by 180°: what SHM buffers show with `ProducerOptions::shm_rotated`.
pub fn rotated_rgb(x: u32, y: u32, w: u32, h: u32) -> [u8; 3] {
    quadrant_rgb(w - 1 - x, h - 1 - y, w, h)
}

fn draw(dst: &mut [u8], stride: usize, w: u32, h: u32) {
    draw_with(dst, stride, w, h, quadrant_rgb)
}

fn draw_with(
    dst: &mut [u8],
    stride: usize,
    w: u32,
    h: u32,
    colour: fn(u32, u32, u32, u32) -> [u8; 3],
) {
    for y in 0..h {
        for x in 0..w {
            let [r, g, b] = colour(x, y, w, h);
            let o = y as usize * stride + x as usize * 4;
            dst[o..o + 4].copy_from_slice(&[b, g, r, 255]); // BGRx
        }
    }
}

/// Sequence stamp: two 16×16 grey blocks in the top-left corner, the low and the high 3 bits of
/// the frame number as one of 8 grey levels each (flat macroblocks survive x264 at CRF 23).
const STAMP: usize = 16;

fn stamp_level(k: u64) -> u8 {
    16 + 30 * (k % 8) as u8
}

fn stamp_sequence(dst: &mut [u8], stride: usize, seq: u64) {
    for (block, k) in [(0, seq % 8), (1, (seq / 8) % 8)] {
        let v = stamp_level(k);
        for y in 0..STAMP {
            for x in block * STAMP..(block + 1) * STAMP {
                let o = y * stride + x * 4;
                if o + 4 <= dst.len() {
                    dst[o..o + 4].copy_from_slice(&[v, v, v, 255]);
                }
            }
        }
    }
}

/// The sequence number (mod 64) stamped in a decoded RGB frame `w` pixels wide.
pub fn read_sequence(frame: &[u8], w: u32) -> u64 {
    let level = |x: usize| {
        let o = ((STAMP / 2) * w as usize + x) * 3;
        let g = frame[o + 1] as f64;
        ((g - 16.0) / 30.0).round().clamp(0.0, 7.0) as u64
    };
    level(STAMP / 2) + 8 * level(STAMP + STAMP / 2)
}

/// Every frame of the file is a new one: consecutive frames carry increasing sequence stamps
/// (mod 64; skipped or dropped frames are fine, a repeated or stale one is not). The very last
/// frame may repeat: a recording ends with its last picture held until the stop time.
pub fn check_fresh_frames(summary: &zerocast_recorder::Summary, w: u32, h: u32) {
    let frames = decode_rgb(
        summary
            .path
            .as_deref()
            .expect("a normal recording writes its file"),
        w,
        h,
    );
    assert!(frames.len() >= 10, "only {} frames decoded", frames.len());
    let seqs: Vec<u64> = frames.iter().map(|f| read_sequence(f, w)).collect();
    let body = &seqs[..seqs.len() - 1];
    for (i, pair) in body.windows(2).enumerate() {
        let step = (pair[1] + 64 - pair[0]) % 64;
        assert!(
            (1..=32).contains(&step),
            "frames {i} and {} carry stamps {} and {}: a repeated or out-of-order frame \
             (stamps: {seqs:?})",
            i + 1,
            pair[0],
            pair[1]
        );
    }
}

fn serialize(obj: Object) -> Vec<u8> {
    PodSerializer::serialize(std::io::Cursor::new(Vec::new()), &Value::Object(obj))
        .unwrap()
        .0
        .into_inner()
}

fn enum_format(o: &ProducerOptions, modifiers: Option<&[u64]>) -> Vec<u8> {
    let mut props = vec![
        Property::new(
            FormatProperties::MediaType.as_raw(),
            Value::Id(Id(MediaType::Video.as_raw())),
        ),
        Property::new(
            FormatProperties::MediaSubtype.as_raw(),
            Value::Id(Id(MediaSubtype::Raw.as_raw())),
        ),
        Property::new(
            FormatProperties::VideoFormat.as_raw(),
            Value::Id(Id(VideoFormat::BGRx.as_raw())),
        ),
        Property::new(
            FormatProperties::VideoSize.as_raw(),
            Value::Rectangle(Rectangle {
                width: o.width,
                height: o.height,
            }),
        ),
        Property::new(
            FormatProperties::VideoFramerate.as_raw(),
            Value::Fraction(Fraction { num: 0, denom: 1 }),
        ),
        Property::new(
            FormatProperties::VideoMaxFramerate.as_raw(),
            Value::Fraction(Fraction {
                num: o.fps,
                denom: 1,
            }),
        ),
    ];
    if let Some(m) = modifiers {
        props.push(Property {
            key: FormatProperties::VideoModifier.as_raw(),
            flags: PropertyFlags::MANDATORY,
            value: Value::Choice(ChoiceValue::Long(Choice(
                ChoiceFlags::empty(),
                ChoiceEnum::Enum {
                    default: m[0] as i64,
                    alternatives: m.iter().map(|&v| v as i64).collect(),
                },
            ))),
        });
    }
    serialize(Object {
        type_: SpaTypes::ObjectParamFormat.as_raw(),
        id: ParamType::EnumFormat.as_raw(),
        properties: props,
    })
}

fn buffers_param(o: &ProducerOptions, dmabuf: bool, sync: bool) -> Vec<u8> {
    let stride = o.width as i32 * 4;
    let ty = if dmabuf {
        spa::sys::SPA_DATA_DmaBuf
    } else {
        spa::sys::SPA_DATA_MemFd
    };
    let int = |v: i32| Value::Int(v);
    let mut properties = vec![
        Property::new(
            spa::sys::SPA_PARAM_BUFFERS_buffers,
            Value::Choice(ChoiceValue::Int(Choice(
                ChoiceFlags::empty(),
                ChoiceEnum::Range {
                    default: 4,
                    min: 2,
                    max: 8,
                },
            ))),
        ),
        // Explicit sync: the plane plus the acquire and release timelines.
        Property::new(
            spa::sys::SPA_PARAM_BUFFERS_blocks,
            int(if sync { 3 } else { 1 }),
        ),
        Property::new(
            spa::sys::SPA_PARAM_BUFFERS_size,
            int(stride * o.height as i32),
        ),
        Property::new(spa::sys::SPA_PARAM_BUFFERS_stride, int(stride)),
        Property::new(
            spa::sys::SPA_PARAM_BUFFERS_dataType,
            Value::Choice(ChoiceValue::Int(Choice(
                ChoiceFlags::empty(),
                ChoiceEnum::Flags {
                    default: 1 << ty,
                    flags: vec![],
                },
            ))),
        ),
    ];
    if sync {
        // Only valid together with the SyncTimeline meta, as compositors offer it.
        properties.push(Property {
            key: spa::sys::SPA_PARAM_BUFFERS_metaType,
            flags: PropertyFlags::MANDATORY,
            value: int(1 << spa::sys::SPA_META_SyncTimeline),
        });
    }
    serialize(Object {
        type_: SpaTypes::ObjectParamBuffers.as_raw(),
        id: ParamType::Buffers.as_raw(),
        properties,
    })
}

/// A Meta param: metadata of type `ty` and `size` bytes on every buffer. Built here, not with
/// the recorder's builders: the producer stands in for the compositor's side.
fn meta_param(ty: u32, size: usize) -> Vec<u8> {
    serialize(Object {
        type_: SpaTypes::ObjectParamMeta.as_raw(),
        id: ParamType::Meta.as_raw(),
        properties: vec![
            Property::new(spa::sys::SPA_PARAM_META_type, Value::Id(Id(ty))),
            Property::new(spa::sys::SPA_PARAM_META_size, Value::Int(size as i32)),
        ],
    })
}

fn sync_meta() -> Vec<u8> {
    meta_param(
        spa::sys::SPA_META_SyncTimeline,
        std::mem::size_of::<spa::sys::spa_meta_sync_timeline>(),
    )
}

fn crop_meta() -> Vec<u8> {
    meta_param(
        spa::sys::SPA_META_VideoCrop,
        std::mem::size_of::<spa::sys::spa_meta_region>(),
    )
}

fn header_meta() -> Vec<u8> {
    meta_param(
        spa::sys::SPA_META_Header,
        std::mem::size_of::<spa::sys::spa_meta_header>(),
    )
}

/// A buffer's memory: a memfd the producer mapped once and drew into, or a Vulkan image.
struct Slot {
    _fd: Option<OwnedFd>,
    map: *mut libc::c_void,
    len: usize,
    _image: Option<zerocast_interop::testing::ProducerImage>,
    offset: u32,
    stride: u32,
    /// Explicit sync: (acquire, release) timelines and the release point last handed out.
    sync: Option<(
        zerocast_interop::testing::ProducerTimeline,
        zerocast_interop::testing::ProducerTimeline,
    )>,
    last_release: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if !self.map.is_null() {
            // SAFETY: `map` is our own mapping of `len` bytes.
            unsafe { libc::munmap(self.map, self.len) };
        }
    }
}

struct State {
    opts: ProducerOptions,
    stats: Arc<ProducerStats>,
    dmabuf: Option<bool>,
    slots: HashMap<usize, Slot>,
    /// The fixed modifier of the current DMA-BUF format.
    modifier: u64,
    /// Explicit sync: the last timeline point handed out (all timelines share the counter, so
    /// each one only moves up).
    next_point: u64,
    /// Backing::VulkanOpaque: the "compositor's" device.
    vk: Option<zerocast_interop::VulkanContext>,
    /// Buffers added since the last format (the index `bad_from` counts).
    added: usize,
    next_key: usize,
}

fn memfd(len: usize) -> OwnedFd {
    // SAFETY: static name; returns a new fd or -1.
    let fd = unsafe { libc::memfd_create(c"zerocast-producer".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0);
    // SAFETY: a new fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: valid fd.
    assert_eq!(unsafe { libc::ftruncate(fd.as_raw_fd(), len as i64) }, 0);
    fd
}

/// Fills a buffer PipeWire allocated the skeleton of (ALLOC_BUFFERS): one memfd per buffer.
///
/// # Safety
/// `b` is a live buffer of the stream, in add_buffer.
unsafe fn add_buffer(st: &mut State, b: *mut pw::sys::pw_buffer) {
    let dmabuf = st.dmabuf.unwrap_or(false);
    if dmabuf && st.opts.backing == Backing::VulkanOpaque {
        // SAFETY: forwarded caller contract.
        unsafe { add_vulkan_buffer(st, b) };
        return;
    }
    let (w, h) = (st.opts.width, st.opts.height);
    let stride = w as usize * 4;
    let full = stride * h as usize;
    let bad = dmabuf && st.opts.bad_from.is_some_and(|n| st.added >= n);
    st.added += 1;
    let len = if bad { full / 2 } else { full };
    let fd = memfd(len);
    // SAFETY: mapping our own memfd of `len` bytes.
    let map = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        )
    };
    assert_ne!(map, libc::MAP_FAILED);
    if !bad {
        // SHM frames can show another picture than the DMA-BUF ones, so a test can tell which
        // path a frame in the file came through (a stale GPU frame is not an SHM frame).
        let colour = if !dmabuf && st.opts.shm_rotated {
            rotated_rgb
        } else {
            quadrant_rgb
        };
        // SAFETY: the mapping is `len` = `full` bytes.
        draw_with(
            unsafe { std::slice::from_raw_parts_mut(map as *mut u8, len) },
            stride,
            w,
            h,
            colour,
        );
    }
    // SAFETY: add_buffer runs before the buffer is used; datas has n_datas (1) entries.
    unsafe {
        let d = &mut *(*(*b).buffer).datas;
        d.type_ = if dmabuf {
            spa::sys::SPA_DATA_DmaBuf
        } else {
            spa::sys::SPA_DATA_MemFd
        };
        d.flags = spa::sys::SPA_DATA_FLAG_READABLE;
        d.fd = fd.as_raw_fd() as i64;
        d.mapoffset = 0;
        // Bad buffers claim the full size: only the importer, which sizes the fd, notices.
        d.maxsize = full as u32;
        d.data = if dmabuf { std::ptr::null_mut() } else { map };
        (*b).user_data = st.next_key as *mut libc::c_void;
    }
    st.slots.insert(
        st.next_key,
        Slot {
            _fd: Some(fd),
            map,
            len,
            _image: None,
            offset: 0,
            stride: stride as u32,
            sync: None,
            last_release: 0,
        },
    );
    st.next_key += 1;
}

/// A tiled Vulkan image with the quadrants, exported as OPAQUE_FD, as the buffer's one plane.
///
/// # Safety
/// As [`add_buffer`].
unsafe fn add_vulkan_buffer(st: &mut State, b: *mut pw::sys::pw_buffer) {
    let ctx = st.vk.as_ref().expect("Backing::VulkanOpaque has a device");
    let (w, h) = (st.opts.width, st.opts.height);
    // A bad buffer hands out a memfd where the image's OPAQUE_FD should be: the import fails.
    let bad = st.opts.bad_from.is_some_and(|n| st.added >= n);
    let bogus = bad.then(|| memfd(4096));
    let image = zerocast_interop::testing::ProducerImage::with_pixels(
        ctx,
        zerocast_interop::Fourcc::XRGB8888,
        zerocast_interop::Modifier(st.modifier),
        w,
        h,
        |bytes, stride| draw(bytes, stride, w, h),
    )
    .expect("producer image");
    // SAFETY: add_buffer runs before the buffer is used.
    let n_datas = unsafe { (*(*b).buffer).n_datas };
    let sync = (n_datas >= 3).then(|| {
        let t = || zerocast_interop::testing::ProducerTimeline::new(ctx).expect("timeline");
        (t(), t())
    });
    if let Some((acquire, release)) = &sync {
        // SAFETY: datas has n_datas >= 3 entries: the plane, then acquire and release.
        unsafe {
            for (i, t) in [(1, acquire), (2, release)] {
                let d = &mut *(*(*b).buffer).datas.add(i);
                d.type_ = spa::sys::SPA_DATA_SyncObj;
                // Not mappable memory: nobody may mmap a timeline fd.
                d.flags = 0;
                d.fd = t.fd.as_raw_fd() as i64;
                d.mapoffset = 0;
                d.maxsize = 0;
                d.data = std::ptr::null_mut();
            }
        }
    }
    // SAFETY: add_buffer runs before the buffer is used; datas has at least one entry.
    unsafe {
        let d = &mut *(*(*b).buffer).datas;
        d.type_ = spa::sys::SPA_DATA_DmaBuf;
        d.flags = spa::sys::SPA_DATA_FLAG_READABLE;
        d.fd = bogus.as_ref().unwrap_or(&image.fd).as_raw_fd() as i64;
        d.mapoffset = 0;
        // OPAQUE_FD imports need the exporter's allocation size.
        d.maxsize = image.alloc_size as u32;
        d.data = std::ptr::null_mut();
        (*b).user_data = st.next_key as *mut libc::c_void;
    }
    st.added += 1;
    st.slots.insert(
        st.next_key,
        Slot {
            _fd: bogus,
            map: std::ptr::null_mut(),
            len: 0,
            offset: image.offset,
            stride: image.stride,
            _image: Some(image),
            sync,
            last_release: 0,
        },
    );
    st.next_key += 1;
}

impl Producer {
    /// Starts the producer on its own thread and waits until its node exists.
    pub fn start(daemon: &Daemon, opts: ProducerOptions) -> Producer {
        let fd = daemon.remote();
        let stats = Arc::new(ProducerStats::default());
        let (stop_tx, stop_rx) = pw::channel::channel::<()>();
        let (id_tx, id_rx) = std::sync::mpsc::channel();
        let st = Arc::clone(&stats);
        let join = std::thread::Builder::new()
            .name("test-producer".into())
            .spawn(move || run(fd, opts, st, stop_rx, id_tx))
            .unwrap();
        let node_id = id_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("producer node");
        Producer {
            node_id,
            stats,
            stop: stop_tx,
            join: Some(join),
        }
    }
}

fn run(
    fd: OwnedFd,
    opts: ProducerOptions,
    stats: Arc<ProducerStats>,
    stop: pw::channel::Receiver<()>,
    id_tx: std::sync::mpsc::Sender<u32>,
) {
    pw::init();
    let mainloop = pw::main_loop::MainLoopRc::new(None).unwrap();
    let context = pw::context::ContextRc::new(&mainloop, None).unwrap();
    let core = context.connect_fd_rc(fd, None).unwrap();
    let stream = pw::stream::StreamRc::new(
        core,
        "zerocast-test-producer",
        pw::properties::properties! {
            *pw::keys::MEDIA_CLASS => "Video/Source",
            *pw::keys::MEDIA_TYPE => "Video",
            *pw::keys::MEDIA_CATEGORY => "Source",
            *pw::keys::MEDIA_ROLE => "Screen",
            *pw::keys::NODE_NAME => "zerocast-test-producer",
        },
    )
    .unwrap();
    let sent_id = Arc::new(AtomicBool::new(false));
    let state = State {
        opts: opts.clone(),
        stats,
        dmabuf: None,
        slots: HashMap::new(),
        modifier: 0,
        next_point: 0,
        vk: (opts.backing == Backing::VulkanOpaque).then(|| {
            zerocast_interop::VulkanContext::new(zerocast_interop::DeviceSelector {
                drm_dev: None,
                handle_type: zerocast_interop::HandleType::OpaqueFd,
            })
            .expect("producer Vulkan device")
        }),
        added: 0,
        next_key: 1,
    };
    let _listener = stream
        .add_local_listener_with_user_data(state)
        .state_changed(move |s, _, _, new| {
            if matches!(new, pw::stream::StreamState::Paused)
                && !sent_id.swap(true, Ordering::Relaxed)
            {
                let _ = id_tx.send(s.node_id());
            }
        })
        .param_changed(|s, st, id, param| {
            if id != ParamType::Format.as_raw() {
                return;
            }
            let Some(param) = param else { return };
            let mut info = VideoInfoRaw::default();
            if info.parse(param).is_err() {
                return;
            }
            let dmabuf = info.flags().contains(VideoFlags::MODIFIER);
            if dmabuf {
                st.stats.dmabuf_formats.fetch_add(1, Ordering::Relaxed);
            } else {
                st.stats.shm_formats.fetch_add(1, Ordering::Relaxed);
            }
            st.dmabuf = Some(dmabuf);
            if dmabuf {
                st.modifier = info.modifier();
            }
            st.added = 0;
            let sync = dmabuf && st.opts.sync;
            let bs = buffers_param(&st.opts, dmabuf, true);
            let b = buffers_param(&st.opts, dmabuf, false);
            let m = header_meta();
            let c = crop_meta();
            let sm = sync_meta();
            let mut pods = Vec::new();
            if sync {
                pods.push(Pod::from_bytes(&bs).unwrap());
            }
            pods.extend([Pod::from_bytes(&b).unwrap(), Pod::from_bytes(&m).unwrap()]);
            if st.opts.crop.is_some() || st.opts.crop_from.is_some() {
                pods.push(Pod::from_bytes(&c).unwrap());
            }
            if sync {
                pods.push(Pod::from_bytes(&sm).unwrap());
            }
            s.update_params(&mut pods).unwrap();
        })
        .add_buffer(|_, st, b| {
            // SAFETY: PipeWire calls this with a live buffer of this stream.
            unsafe { add_buffer(st, b) }
        })
        .remove_buffer(|_, st, b| {
            // SAFETY: a live buffer; user_data is the slot key set in add_buffer.
            let key = unsafe { (*b).user_data } as usize;
            st.slots.remove(&key);
        })
        .process(|s, st| {
            // SAFETY: loop thread; the buffer is queued back below.
            let b = unsafe { s.dequeue_raw_buffer() };
            if b.is_null() {
                return;
            }
            // SAFETY: dequeued, valid until queued; metas/datas within their counts.
            unsafe {
                let sb = (*b).buffer;
                for i in 0..(*sb).n_metas as usize {
                    let m = &*(*sb).metas.add(i);
                    if m.type_ == spa::sys::SPA_META_Header {
                        let h = &mut *(m.data as *mut spa::sys::spa_meta_header);
                        h.pts = monotonic_ns();
                        h.flags = 0;
                        h.seq = st.stats.frames.load(Ordering::Relaxed);
                    }
                    if m.type_ == spa::sys::SPA_META_VideoCrop {
                        let n = st.stats.frames.load(Ordering::Relaxed);
                        let crop = match st.opts.crop_from {
                            Some((from, c)) if n >= from => Some(c),
                            Some(_) => st.opts.crop.or(Some((0, 0, st.opts.width, st.opts.height))),
                            None => st.opts.crop,
                        };
                        if let Some((x, y, w, h)) = crop {
                            let r = &mut *(m.data as *mut spa::sys::spa_meta_region);
                            r.region.position.x = x as i32;
                            r.region.position.y = y as i32;
                            r.region.size.width = w;
                            r.region.size.height = h;
                        }
                    }
                }
                let key = (*b).user_data as usize;
                if let Some(slot) = st.slots.get_mut(&key) {
                    if let Some((acquire, release)) = &slot.sync {
                        // The consumer must have signalled the release point we gave this
                        // buffer last time (on the GPU after reading it, or from the CPU when
                        // it skipped it) before we may draw into it again.
                        if slot.last_release > 0 {
                            let done = release
                                .wait(slot.last_release, Duration::from_secs(1))
                                .unwrap_or(false);
                            let counter = if done {
                                &st.stats.releases_seen
                            } else {
                                &st.stats.releases_missing
                            };
                            counter.fetch_add(1, Ordering::Relaxed);
                        }
                        st.next_point += 1;
                        let point = st.next_point;
                        for i in 0..(*sb).n_metas as usize {
                            let m = &*(*sb).metas.add(i);
                            if m.type_ == spa::sys::SPA_META_SyncTimeline {
                                let t = &mut *(m.data as *mut spa::sys::spa_meta_sync_timeline);
                                t.flags = 0;
                                t.acquire_point = point;
                                t.release_point = point;
                            }
                        }
                        // "Rendering" is done: the consumer's GPU wait on it may pass.
                        acquire.signal(point).expect("signal acquire");
                        slot.last_release = point;
                        st.stats.sync_frames.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let d = &mut *(*sb).datas;
                let c = &mut *d.chunk;
                let (offset, stride) = st
                    .slots
                    .get(&key)
                    .map_or((0, st.opts.width * 4), |s| (s.offset, s.stride));
                c.offset = offset;
                c.stride = stride as i32;
                c.size = stride * st.opts.height;
                c.flags = 0;
                // Memory we draw with the CPU (memfd "dma-bufs", SHM): stamp the frame's
                // sequence number, so the test can tell a fresh frame from a repeated one.
                let seq = st.stats.frames.load(Ordering::Relaxed);
                if let Some(slot) = st.slots.get(&key).filter(|s| !s.map.is_null() && s.len > 0) {
                    let bytes = std::slice::from_raw_parts_mut(slot.map as *mut u8, slot.len);
                    stamp_sequence(bytes, slot.stride as usize, seq);
                } else if let Some(image) = st.slots.get(&key).and_then(|s| s._image.as_ref()) {
                    // The GPU-backed buffers get the stamp through a copy on the GPU, as a
                    // compositor re-renders the damaged part of a buffer it got back.
                    image
                        .write_region(2 * STAMP as u32, STAMP as u32, |bytes, stride| {
                            stamp_sequence(bytes, stride, seq)
                        })
                        .expect("stamp the producer image");
                }
                s.queue_raw_buffer(b);
            }
            st.stats.frames.fetch_add(1, Ordering::Relaxed);
        })
        .register()
        .unwrap();

    let dmabuf = enum_format(&opts, Some(&opts.modifiers));
    let shm = enum_format(&opts, None);
    let bytes: Vec<&Vec<u8>> = match opts.offer {
        Offer::Dmabuf => vec![&dmabuf],
        Offer::Shm => vec![&shm],
        Offer::Both => vec![&dmabuf, &shm],
    };
    let mut pods: Vec<&Pod> = bytes.iter().map(|b| Pod::from_bytes(b).unwrap()).collect();
    stream
        .connect(
            spa::utils::Direction::Output,
            None,
            pw::stream::StreamFlags::DRIVER | pw::stream::StreamFlags::ALLOC_BUFFERS,
            &mut pods,
        )
        .unwrap();

    let s2 = stream.clone();
    let timer = mainloop.loop_().add_timer(move |_| {
        if s2.state() == pw::stream::StreamState::Streaming {
            let _ = s2.trigger_process();
        }
    });
    let period = Duration::from_secs_f64(1.0 / opts.fps as f64);
    timer
        .update_timer(Some(period), Some(period))
        .into_result()
        .unwrap();
    let ml = mainloop.downgrade();
    let _stop = stop.attach(mainloop.loop_(), move |()| {
        if let Some(l) = ml.upgrade() {
            l.quit();
        }
    });
    mainloop.run();
    let _ = stream.disconnect();
}

pub fn monotonic_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// The recording's frames as packed RGB: its file is `w`×`h` and holds at least `min` frames.
pub fn frames_of(summary: &zerocast_recorder::Summary, w: u32, h: u32, min: usize) -> Vec<Vec<u8>> {
    let file = summary
        .path
        .as_deref()
        .expect("a normal recording writes its file");
    assert_eq!(video_size(file), (w, h), "{}", file.display());
    let frames = decode_rgb(file, w, h);
    assert!(frames.len() >= min, "{} frames", frames.len());
    frames
}

/// Every frame (packed RGB, half of `sw`×`sh`) shows the test pattern's four quadrants at their
/// halved centres (within 16 per channel).
pub fn assert_half_scale_quadrants(frames: &[Vec<u8>], sw: u32, sh: u32) {
    let (w, h) = (sw / 2, sh / 2);
    for f in frames {
        let px = |x: u32, y: u32| {
            let i = ((y * w + x) * 3) as usize;
            [f[i], f[i + 1], f[i + 2]]
        };
        for (qx, qy) in [(0, 0), (sw - 1, 0), (0, sh - 1), (sw - 1, sh - 1)] {
            let (x, y) = (
                (qx * 2 / sw) * (w / 2) + w / 4,
                (qy * 2 / sh) * (h / 2) + h / 4,
            );
            let want = quadrant_rgb(qx, qy, sw, sh);
            let got = px(x, y);
            assert!(
                got.iter().zip(want).all(|(p, q)| p.abs_diff(q) <= 16),
                "({x},{y}): {got:?}, want {want:?}"
            );
        }
    }
}

/// A crop region of a `w`×`h` frame whose aspect (2:1 of a 4:3 frame, 8:3 of a 16:9 one) is
/// wider than the frame's: the top-left three quarters of the top half — the red quadrant and
/// half of the green one.
pub fn letterbox_strip(w: u32, h: u32) -> (u32, u32, u32, u32) {
    (0, 0, w * 3 / 4, h / 2)
}

/// The frames (packed RGB, `w`×`h`) of a recording whose picture became
/// [`letterbox_strip`] mid-stream: first the whole picture (the quadrants), then the strip
/// scaled to the full width with its aspect kept — `w`×`2h/3` at `h/6`, red up to `2w/3`,
/// green after — between black bars, never stretched over the whole height.
pub fn assert_letterboxed_after_size_change(frames: &[Vec<u8>], w: u32, h: u32) {
    let close = |a: [u8; 3], b: [u8; 3]| a.iter().zip(b).all(|(p, q)| p.abs_diff(q) <= 16);
    let red = quadrant_rgb(0, 0, w, h);
    let green = quadrant_rgb(w - 1, 0, w, h);
    let (mut whole, mut boxed) = (0, 0);
    for (n, f) in frames.iter().enumerate() {
        let px = |x: u32, y: u32| {
            let i = ((y * w + x) * 3) as usize;
            [f[i], f[i + 1], f[i + 2]]
        };
        if check_quadrants(f, w, h).is_ok() {
            assert_eq!(
                boxed, 0,
                "frame {n}: the whole picture after the size change"
            );
            whole += 1;
            continue;
        }
        // The bars (h/6 high), sampled away from their inner edges.
        for x in [w / 32, w / 2, w - w / 32] {
            for y in [h / 24, h / 12, h / 8] {
                for y in [y, h - 1 - y] {
                    assert!(
                        close(px(x, y), [0, 0, 0]),
                        "frame {n}: bar at ({x},{y}) is {:?}",
                        px(x, y)
                    );
                }
            }
        }
        for (x, y, want) in [
            (5 * w / 16, h / 2, red),
            (19 * w / 32, h / 4, red),
            (3 * w / 4, 3 * h / 4, green),
            (15 * w / 16, h / 2, green),
        ] {
            assert!(
                close(px(x, y), want),
                "frame {n}: ({x},{y}) is {:?}, want {want:?}",
                px(x, y)
            );
        }
        boxed += 1;
    }
    assert!(
        whole >= 3 && boxed >= 10,
        "{whole} whole frames, {boxed} letterboxed"
    );
}

/// Decodes every frame of `path` to packed RGB24 at `w`×`h`, in process (FFmpeg's libraries:
/// no `ffmpeg` program needed, so this also runs on the GPU machine).
pub fn decode_rgb(path: &Path, w: u32, h: u32) -> Vec<Vec<u8>> {
    use ffmpeg_next as ff;
    ff::init().unwrap();
    let mut input = ff::format::input(&path).expect("open the recording");
    let stream = input
        .streams()
        .best(ff::media::Type::Video)
        .expect("a video stream");
    let index = stream.index();
    let mut dec = ff::codec::context::Context::from_parameters(stream.parameters())
        .unwrap()
        .decoder()
        .video()
        .unwrap();
    let mut frames = Vec::new();
    let mut sws: Option<ff::software::scaling::Context> = None;
    let mut decoded = ff::frame::Video::empty();
    let mut rgb = ff::frame::Video::empty();
    let mut drain = |dec: &mut ff::decoder::Video, frames: &mut Vec<Vec<u8>>| {
        while dec.receive_frame(&mut decoded).is_ok() {
            let s = sws.get_or_insert_with(|| {
                let mut c = ff::software::scaling::Context::get(
                    decoded.format(),
                    decoded.width(),
                    decoded.height(),
                    ff::format::Pixel::RGB24,
                    w,
                    h,
                    ff::software::scaling::Flags::BILINEAR,
                )
                .unwrap();
                // The recordings are BT.709 limited range (the GPU converter's and the CPU
                // path's matrix); swscale assumes BT.601 unless told.
                // SAFETY: a live context; coefficient tables are static.
                unsafe {
                    let bt709 = ff::ffi::sws_getCoefficients(ff::ffi::SWS_CS_ITU709);
                    ff::ffi::sws_setColorspaceDetails(
                        c.as_mut_ptr(),
                        bt709,
                        0,
                        bt709,
                        1,
                        0,
                        1 << 16,
                        1 << 16,
                    );
                }
                c
            });
            s.run(&decoded, &mut rgb).unwrap();
            let stride = rgb.stride(0);
            let mut packed = Vec::with_capacity((w * h * 3) as usize);
            for row in rgb.data(0).chunks(stride).take(h as usize) {
                packed.extend_from_slice(&row[..(w * 3) as usize]);
            }
            frames.push(packed);
        }
    };
    for (s, packet) in input.packets() {
        if s.index() == index {
            dec.send_packet(&packet).unwrap();
            drain(&mut dec, &mut frames);
        }
    }
    dec.send_eof().unwrap();
    drain(&mut dec, &mut frames);
    frames
}

/// Checks the centre of each quadrant of a decoded frame against what the producer drew.
pub fn check_quadrants(frame: &[u8], w: u32, h: u32) -> Result<(), String> {
    check_picture(frame, w, h, quadrant_rgb)
}

/// Checks the centre of each quadrant of a decoded frame against `colour`.
pub fn check_picture(
    frame: &[u8],
    w: u32,
    h: u32,
    colour: fn(u32, u32, u32, u32) -> [u8; 3],
) -> Result<(), String> {
    for (qx, qy) in [(1, 1), (3, 1), (1, 3), (3, 3)] {
        let (x, y) = (qx * w / 4, qy * h / 4);
        let want = colour(x, y, w, h);
        let o = (y * w + x) as usize * 3;
        let got = &frame[o..o + 3];
        if got
            .iter()
            .zip(want)
            .any(|(&g, w)| (g as i32 - w as i32).abs() > 12)
        {
            return Err(format!("pixel ({x},{y}) is {got:?}, drawn {want:?}"));
        }
    }
    Ok(())
}

pub fn tmp_output(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

/// CPU time (user + system) per thread name of this process, in clock ticks.
fn thread_cpu() -> HashMap<String, u64> {
    let mut out = HashMap::new();
    for e in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // "tid (comm) state ..." — comm may hold spaces, so split at the last ')'.
        let (Some(a), Some(b)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[a + 1..b];
        let f: Vec<&str> = stat[b + 2..].split(' ').collect();
        let ticks = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
        let group = if comm.starts_with("llvmpipe") || comm.starts_with("lp:") {
            "lavapipe (GPU emulation)".to_string()
        } else {
            comm.to_string()
        };
        *out.entry(group).or_default() += ticks;
    }
    out
}

/// User + system CPU time of the whole process (getrusage: threads that ended count too).
fn process_cpu() -> Duration {
    // SAFETY: an all-zero rusage is valid; getrusage only writes into it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Records 5 s per producer configuration, one after the other in this process, and prints the
/// CPU time per received frame of each recorder thread: the figures of one run are comparable.
pub async fn bench_paths(runs: &[(&str, ProducerOptions)]) {
    use zerocast_recorder::{PipeWireSource, Recording, RecordingOptions};
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let mut totals = Vec::new();
    for (label, opts) in runs {
        let daemon = Daemon::start();
        let producer = Producer::start(&daemon, opts.clone());
        let dir = tempfile::tempdir().unwrap();
        let source = PipeWireSource {
            fd: daemon.remote(),
            node_id: producer.node_id,
            size: None,
            position: None,
        };
        let rec = Recording::start(source, RecordingOptions::new(dir.path().join("b.mkv")))
            .await
            .unwrap();
        // Let start-up (imports, encoder warm-up) settle before measuring.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (c0, s0, p0) = (thread_cpu(), rec.stats().borrow().clone(), process_cpu());
        tokio::time::sleep(Duration::from_secs(5)).await;
        let (c1, s1, p1) = (thread_cpu(), rec.stats().borrow().clone(), process_cpu());
        let summary = rec.stop().await.unwrap();
        let received = (s1.frames_received - s0.frames_received).max(1) as f64;
        let written = s1.frames_written - s0.frames_written;
        let dropped = s1.frames_dropped - s0.frames_dropped;
        println!(
            "{label}: {}x{}, path {}, encoder {}, {received} received / {written} written / \
             {dropped} dropped in 5 s",
            opts.width, opts.height, summary.stats.capture_path, summary.stats.encoder
        );
        let mut rows: Vec<_> = c1
            .iter()
            .map(|(k, v)| (k.clone(), v - c0.get(k).copied().unwrap_or(0)))
            .filter(|(_, d)| *d > 0)
            .collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r.1));
        let mut total = 0.0;
        let mut capture = 0.0;
        for (name, d) in rows {
            let ms = d as f64 * 1000.0 / hz;
            if name != "test-producer" {
                total += ms;
            }
            if name == "zerocast-pipewi" || name == "zerocast-pipewire" {
                capture = ms / received;
            }
            println!("  {name:28} {:7.3} ms/frame received", ms / received);
        }
        println!(
            "  {:28} {:7.3} ms/frame received (live threads, excl. test-producer)",
            "TOTAL recorder",
            total / received
        );
        // Includes threads that ended in between (the per-thread view misses those).
        println!(
            "  {:28} {:7.3} ms/frame received (getrusage, incl. test-producer)",
            "TOTAL process",
            (p1 - p0).as_secs_f64() * 1000.0 / received
        );
        totals.push((label.to_string(), capture, total / received));
    }
    if let [(a, ca, ta), (b, cb, tb)] = &totals[..] {
        println!(
            "ratio {a}/{b}: capture thread ×{:.2}, recorder total ×{:.2}",
            ca / cb.max(1e-9),
            ta / tb.max(1e-9)
        );
    }
}

/// Everything the recorder logs in this test process, for assertions on negotiation messages.
fn logs() -> &'static Arc<std::sync::Mutex<Vec<u8>>> {
    static LOGS: std::sync::OnceLock<Arc<std::sync::Mutex<Vec<u8>>>> = std::sync::OnceLock::new();
    LOGS.get_or_init(Default::default)
}

#[derive(Clone)]
struct LogWriter(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        std::io::stderr().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the log capture (once per process; `RUST_LOG` overrides `default_filter`).
pub fn init_logging(default_filter: &str) {
    let w = LogWriter(Arc::clone(logs()));
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| default_filter.into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(move || w.clone())
        .try_init();
}

pub fn logged(needle: &str) -> bool {
    String::from_utf8_lossy(&logs().lock().unwrap()).contains(needle)
}

/// Records `producer` for `secs` into a temporary mkv.
pub async fn record(
    daemon: &Daemon,
    producer: &Producer,
    secs: f64,
) -> (zerocast_recorder::Summary, tempfile::TempDir) {
    record_with(daemon, producer, secs, |_| {}).await
}

/// [`record`] with the recording's options adjusted by `adjust`.
pub async fn record_with(
    daemon: &Daemon,
    producer: &Producer,
    secs: f64,
    adjust: impl FnOnce(&mut zerocast_recorder::RecordingOptions),
) -> (zerocast_recorder::Summary, tempfile::TempDir) {
    use zerocast_recorder::{PipeWireSource, Recording, RecordingOptions};
    let dir = tempfile::tempdir().unwrap();
    let source = PipeWireSource {
        fd: daemon.remote(),
        node_id: producer.node_id,
        size: None,
        position: None,
    };
    let mut opts = RecordingOptions::new(dir.path().join("out.mkv"));
    adjust(&mut opts);
    let rec = Recording::start(source, opts)
        .await
        .expect("recording starts");
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    let summary = rec.stop().await.expect("recording finishes");
    (summary, dir)
}

/// Every decoded frame (at least `min_frames`) shows what the producer drew.
pub fn check_file(
    summary: &zerocast_recorder::Summary,
    w: u32,
    h: u32,
    min_frames: usize,
) -> usize {
    let frames = decode_rgb(
        summary
            .path
            .as_deref()
            .expect("a normal recording writes its file"),
        w,
        h,
    );
    assert!(
        frames.len() >= min_frames,
        "only {} frames decoded",
        frames.len()
    );
    for (i, f) in frames.iter().enumerate() {
        if let Err(e) = check_quadrants(f, w, h) {
            panic!("frame {i} of {}: {e}", frames.len());
        }
    }
    frames.len()
}

/// Width and height of the video stream of `path` (FFmpeg's demuxer; no `ffprobe` needed).
pub fn video_size(path: &Path) -> (u32, u32) {
    use ffmpeg_next as ff;
    ff::init().unwrap();
    let input = ff::format::input(&path).expect("open the recording");
    let stream = input
        .streams()
        .best(ff::media::Type::Video)
        .expect("a video stream");
    // SAFETY: codecpar of a live stream of an open input.
    let par = unsafe { &*stream.parameters().as_ptr() };
    (par.width as u32, par.height as u32)
}

/// Process-wide set-up, once per test binary, before any test thread reads the environment: a
/// runtime dir (lavapipe and the recorder want one), the given variables, the log capture.
pub fn setup_process(vars: &[(&str, &str)], log_filter: &str) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
            let dir = std::env::temp_dir().join(format!("zerocast-xdg-{}", std::process::id()));
            let _ = std::fs::create_dir_all(&dir);
            // SAFETY: every test calls this first; under the Once no other thread of this
            // binary reads the environment yet.
            unsafe { std::env::set_var("XDG_RUNTIME_DIR", &dir) };
        }
        for (k, v) in vars {
            // SAFETY: as above.
            unsafe { std::env::set_var(k, v) };
        }
        init_logging(log_filter);
    });
}

/// A DMA-BUF → SHM fall back in one file: every frame is one of the two pictures, and from the
/// first SHM frame on every frame is the SHM one (a frame still showing the DMA-BUF picture
/// after that would be stale, e.g. an encoder input that was never refilled).
pub fn check_fallback_file(summary: &zerocast_recorder::Summary, w: u32, h: u32) {
    let frames = decode_rgb(
        summary
            .path
            .as_deref()
            .expect("a normal recording writes its file"),
        w,
        h,
    );
    assert!(frames.len() >= 20, "only {} frames decoded", frames.len());
    let mut shm_from = None;
    for (i, f) in frames.iter().enumerate() {
        let shm = check_picture(f, w, h, rotated_rgb).is_ok();
        let dmabuf = check_quadrants(f, w, h).is_ok();
        assert!(
            shm || dmabuf,
            "frame {i}: neither picture ({:?})",
            check_quadrants(f, w, h)
        );
        if shm {
            shm_from.get_or_insert(i);
        } else if let Some(first) = shm_from {
            panic!("frame {i} shows the DMA-BUF picture after SHM frame {first}: a stale frame");
        }
    }
    let first = shm_from.expect("the file has SHM frames after the fall back");
    println!(
        "{} frames: {first} through DMA-BUF, then {} through SHM",
        frames.len(),
        frames.len() - first
    );
}

/// The Vulkan device the GPU-machine tests need: one that makes DRM-modifier images and exports
/// them as OPAQUE_FD (the stand-in for a compositor's dma-bufs there), and the modifier to use —
/// the tiled one with the tallest blocks (what NVIDIA compositors pick), else LINEAR. `Err` says
/// why this machine cannot run them.
pub fn opaque_fd_device() -> Result<(zerocast_interop::VulkanContext, u64), String> {
    use zerocast_interop::{DeviceSelector, Fourcc, HandleType, ModifierSet, VulkanContext};
    let ctx = VulkanContext::new(DeviceSelector {
        drm_dev: None,
        handle_type: HandleType::OpaqueFd,
    })
    .map_err(|e| format!("no Vulkan device for OPAQUE_FD images: {e}"))?;
    if ctx.device_info().device_type == zerocast_interop::ash::vk::PhysicalDeviceType::CPU {
        // lavapipe: no DRM modifiers for the producer's images.
        return Err("the Vulkan device is a software renderer".into());
    }
    let set = ModifierSet::query(&ctx).map_err(|e| format!("modifier query: {e}"))?;
    let mods: Vec<u64> = set.modifiers(Fourcc::XRGB8888).map(|m| m.0).collect();
    let modifier = mods
        .iter()
        .copied()
        .filter(|&m| m != 0)
        .max()
        .or(mods.first().copied())
        .ok_or_else(|| "the device imports no XR24 modifier".to_string())?;
    Ok((ctx, modifier))
}

/// Says on the suite's output that `test` did not run and why. Straight to stderr (not
/// `eprintln!`, which the harness captures), in one write so parallel tests do not interleave:
/// a skip must be visible, not look like a pass.
pub fn skipped(test: &str, why: &str) {
    let line =
        format!("SKIPPED: {test}: {why} (runs on the GPU machine: scripts/gpu/cuda-e2e.sh)\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
}
