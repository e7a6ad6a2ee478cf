//! End-to-end on whatever Vulkan device is present (lavapipe in CI): memfd as DMA_BUF LINEAR →
//! VkBuffer import → NV12/BGRx convert → OPAQUE_FD export → re-import in a second VkDevice
//! (the stand-in for CUDA) → byte comparison with the CPU reference.
//!
//! These tests need a Vulkan driver with VK_EXT_external_memory_dma_buf (Mesa lavapipe has
//! it); they fail rather than skip without one, since CI installs it.

use std::os::fd::AsFd;
use std::sync::Once;
use std::time::Duration;
use zerocast_interop::cpu::{self, SrcFrame};
use zerocast_interop::format::PixelCode;
use zerocast_interop::testing::{memfd_frame, read_exported};
use zerocast_interop::*;

/// Says on the suite's output that `test` did not run (all or part of it) here and why, in the
/// project's `SKIPPED: <test>: <why>` form that `scripts/test.sh` counts. Written straight to
/// stderr, not with `println!`/`eprintln!`: libtest captures those for a passing test, and a
/// skip must never read as a pass. (The same as `zerocast_testdesk::skipped`, which this crate
/// does not depend on.)
fn skipped(test: &str, why: &str) {
    let line = format!("SKIPPED: {test}: {why}\n");
    // One write, so parallel tests do not interleave their lines.
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
}

fn setup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // lavapipe's WSI code warns without it; harmless but noisy.
        if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
            let dir = std::env::temp_dir().join(format!("zerocast-xdg-{}", std::process::id()));
            let _ = std::fs::create_dir_all(&dir);
            // SAFETY: set before any thread of this test binary reads the environment.
            unsafe { std::env::set_var("XDG_RUNTIME_DIR", &dir) };
        }
    });
}

fn ctx(handle_type: HandleType) -> VulkanContext {
    setup();
    VulkanContext::new(DeviceSelector {
        drm_dev: None,
        handle_type,
    })
    .expect("a Vulkan device with dma-buf import (lavapipe: mesa-vulkan-drivers)")
}

fn reference(
    fourcc: Fourcc,
    w: u32,
    h: u32,
    stride: u32,
    seed: u32,
    layout: &FrameLayout,
) -> Vec<u8> {
    let mut src = vec![0u8; stride as usize * h as usize];
    cpu::fill_pattern(&mut src, stride as usize, w, h, seed);
    let mut want = vec![0u8; layout.size as usize];
    let code: PixelCode = fourcc.pixel_code().unwrap();
    cpu::convert(
        &SrcFrame {
            data: &src,
            stride: stride as usize,
            width: w,
            height: h,
            code,
        },
        layout,
        &mut want,
    );
    want
}

/// One LINEAR plane at offset 0: how a memfd frame is described to the importer.
fn linear_plane(fd: &std::os::fd::OwnedFd, stride: u32) -> [DmabufPlane<'_>; 1] {
    [DmabufPlane {
        fd: fd.as_fd(),
        offset: 0,
        stride,
    }]
}

fn linear_desc<'a>(
    planes: &'a [DmabufPlane<'a>],
    width: u32,
    height: u32,
    fourcc: Fourcc,
) -> DmabufDesc<'a> {
    DmabufDesc {
        width,
        height,
        fourcc,
        modifier: Modifier::LINEAR,
        planes,
        memory_size: None,
    }
}

fn roundtrip(mode: OutputMode, fourcc: Fourcc, w: u32, h: u32, stride: u32) {
    let vk = ctx(HandleType::DmaBuf);
    let cuda_stand_in = ctx(HandleType::OpaqueFd);
    let seed = w ^ (h << 8) ^ fourcc.0;
    let fd = memfd_frame(w, h, stride, seed).unwrap();
    let mut importer = DmabufImporter::new(&vk).unwrap();
    let planes = linear_plane(&fd, stride);
    let desc = linear_desc(&planes, w, h, fourcc);
    let mut conv = GpuConverter::new(
        &vk,
        ConverterConfig {
            host_readback: true,
            ..ConverterConfig::new(mode, w, h)
        },
    )
    .unwrap();
    let releaser = conv.releaser();
    let exports = conv.export_slots().unwrap();
    let want = reference(fourcc, w, h, stride, seed, conv.layout());
    // Several frames, so every slot of the ring is written and re-used.
    for n in 0..5 {
        let imported = importer.import(7, &desc).unwrap();
        assert_eq!(imported.kind(), ImportKind::Buffer);
        let frame = conv.convert(imported).unwrap();
        assert!(vk.wait_for(frame.value, Duration::from_secs(10)).unwrap());
        let got = read_exported(&cuda_stand_in, &exports[frame.slot], frame.layout.size).unwrap();
        if let Err(e) = cpu::compare(&frame.layout, &got, &want) {
            panic!("{mode:?} {fourcc:?} {w}x{h} stride {stride}, frame {n}, exported slot: {e}");
        }
        let host = conv.host_frame(&frame).unwrap();
        if let Err(e) = cpu::compare(&frame.layout, host, &want) {
            panic!("{mode:?} {fourcc:?} {w}x{h}, frame {n}, host readback: {e}");
        }
        releaser.release(&frame);
    }
    assert_eq!(importer.len(), 1, "one import per buffer, not per frame");
    importer.forget(7).unwrap();
    assert!(importer.is_empty());
}

#[test]
fn nv12_xr24_1080p_padded_stride() {
    roundtrip(
        OutputMode::Nv12,
        Fourcc::XRGB8888,
        1920,
        1080,
        1920 * 4 + 256,
    );
}

#[test]
fn nv12_odd_size_all_formats() {
    for f in [Fourcc::XRGB8888, Fourcc::ABGR8888, Fourcc::XRGB2101010] {
        roundtrip(OutputMode::Nv12, f, 333, 177, 333 * 4 + 4);
    }
}

#[test]
fn bgrx_passthrough() {
    roundtrip(OutputMode::Bgrx, Fourcc::XBGR8888, 641, 361, 641 * 4);
    roundtrip(OutputMode::Bgrx, Fourcc::ARGB8888, 640, 360, 640 * 4);
}

#[test]
fn ring_full_then_release() {
    let vk = ctx(HandleType::DmaBuf);
    let (w, h) = (64, 32);
    let fd = memfd_frame(w, h, w * 4, 1).unwrap();
    let planes = [DmabufPlane {
        fd: fd.as_fd(),
        offset: 0,
        stride: w * 4,
    }];
    let desc = DmabufDesc {
        width: w,
        height: h,
        fourcc: Fourcc::XRGB8888,
        modifier: Modifier::LINEAR,
        planes: &planes,
        memory_size: None,
    };
    let mut importer = DmabufImporter::new(&vk).unwrap();
    let mut conv = GpuConverter::new(
        &vk,
        ConverterConfig {
            slots: 2,
            ..ConverterConfig::new(OutputMode::Nv12, w, h)
        },
    )
    .unwrap();
    let a = conv.convert(importer.import(1, &desc).unwrap()).unwrap();
    let _b = conv.convert(importer.import(1, &desc).unwrap()).unwrap();
    let err = conv
        .convert(importer.import(1, &desc).unwrap())
        .unwrap_err();
    assert_eq!(err.fallback(), Fallback::DropFrame, "{err}");
    conv.releaser().release(&a);
    let c = conv.convert(importer.import(1, &desc).unwrap()).unwrap();
    assert_eq!(c.slot, a.slot);
    assert!(c.value > a.value);
}

#[test]
fn modifiers_and_errors_name_the_fallback() {
    let vk = ctx(HandleType::DmaBuf);
    let set = ModifierSet::query(&vk).unwrap();
    let xr24: Vec<_> = set.modifiers(Fourcc::XRGB8888).collect();
    assert!(!xr24.is_empty(), "no importable XR24 modifier:\n{set}");
    println!("{}\n{set}", vk.device_info());
    if !vk.device_info().has_drm_format_modifier {
        assert_eq!(xr24, vec![Modifier::LINEAR]);
        // A tiled modifier cannot be imported without the modifier extension.
        let fd = memfd_frame(16, 16, 64, 0).unwrap();
        let planes = [DmabufPlane {
            fd: fd.as_fd(),
            offset: 0,
            stride: 64,
        }];
        let m = Modifier(0x0300_0000_0060_6014);
        let desc = DmabufDesc {
            width: 16,
            height: 16,
            fourcc: Fourcc::XRGB8888,
            modifier: m,
            planes: &planes,
            memory_size: None,
        };
        let mut importer = DmabufImporter::new(&vk).unwrap();
        let err = importer
            .import(1, &desc)
            .err()
            .expect("tiled import must fail here");
        assert_eq!(
            err.fallback(),
            Fallback::DropModifier {
                fourcc: Fourcc::XRGB8888,
                modifier: m
            },
            "{err}"
        );
    }
    // A frame larger than the memory behind the fd is rejected, not read out of bounds.
    let fd = memfd_frame(16, 16, 64, 0).unwrap();
    let planes = [DmabufPlane {
        fd: fd.as_fd(),
        offset: 0,
        stride: 64,
    }];
    let desc = DmabufDesc {
        width: 16,
        height: 64,
        fourcc: Fourcc::XRGB8888,
        modifier: Modifier::LINEAR,
        planes: &planes,
        memory_size: None,
    };
    let mut importer = DmabufImporter::new(&vk).unwrap();
    assert!(importer.import(1, &desc).is_err());
}

#[test]
fn drm_device_mismatch_is_explained() {
    setup();
    // 226:250 is a DRM minor no test machine has.
    let dev = libc_makedev(226, 250);
    let err = VulkanContext::new(DeviceSelector {
        drm_dev: Some(dev),
        handle_type: HandleType::DmaBuf,
    })
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("226:250"), "{msg}");
    assert_eq!(err.fallback(), Fallback::Shm);
}

fn libc_makedev(major: u64, minor: u64) -> u64 {
    ((major & 0xfffff000) << 32)
        | ((major & 0xfff) << 8)
        | ((minor & 0xffffff00) << 12)
        | (minor & 0xff)
}

#[test]
fn probe_reports_why() {
    setup();
    let r = probe();
    let text = r.to_string();
    println!("{text}");
    assert!(!r.vulkan_devices.is_empty(), "{text}");
    assert!(text.contains("Zero-copy path"));
    if r.cuda_error.is_some() {
        assert!(!r.zero_copy);
        assert!(
            r.zero_copy_why_not.iter().any(|w| w.contains("CUDA")),
            "{text}"
        );
    }
}

/// The CUDA half needs an NVIDIA GPU: it runs on the GPU machine through
/// `scripts/gpu/interop-check.sh` (the `interop-check` binary). Here it says why it is skipped.
#[test]
fn cuda_bridge_needs_nvidia() {
    setup();
    if let Err(e) = cuda_init() {
        skipped(
            "cuda_bridge_needs_nvidia",
            &format!(
                "needs libcuda and an NVIDIA GPU ({e}); scripts/gpu/interop-check.sh runs it there"
            ),
        );
        assert_eq!(e.fallback(), Fallback::CpuEncode);
        return;
    }
    let vk = ctx(HandleType::DmaBuf);
    let conv = GpuConverter::new(&vk, ConverterConfig::new(OutputMode::Nv12, 64, 32)).unwrap();
    match CudaBridge::new(&vk, &conv) {
        Ok(b) => assert!(
            b.frame(&ConvertedFrame {
                slot: 0,
                value: 1,
                layout: *conv.layout()
            })
            .y != 0
        ),
        Err(e) => skipped(
            "cuda_bridge_needs_nvidia",
            &format!("no CUDA device shares the Vulkan device's UUID ({e})"),
        ),
    }
}

/// A crop region (window casts) is converted at its own size byte-exact; a region of another
/// size than the output is scaled bilinear over the whole output, or placed with its aspect
/// kept (black bars) — exactly as the CPU reference.
#[test]
fn crop_region_and_scaling_match_the_cpu_reference() {
    let vk = ctx(HandleType::DmaBuf);
    let (w, h, stride) = (320u32, 240u32, 320 * 4);
    let seed = 77;
    let fd = memfd_frame(w, h, stride, seed).unwrap();
    let mut src = vec![0u8; (stride * h) as usize];
    cpu::fill_pattern(&mut src, stride as usize, w, h, seed);
    let planes = linear_plane(&fd, stride);
    let mut importer = DmabufImporter::new(&vk).unwrap();
    let region = Region {
        x: 40,
        y: 30,
        width: 160,
        height: 120,
    };
    let whole = Region::whole(w, h);
    let cases = [
        // Same size as the region: a pure crop (no filter).
        (OutputMode::Nv12, 160, 120, Framing::fill(region, 160, 120)),
        // Half, odd and larger sizes: bilinear over the whole output.
        (OutputMode::Nv12, 80, 60, Framing::fill(region, 80, 60)),
        (OutputMode::Nv12, 101, 77, Framing::fill(region, 101, 77)),
        (OutputMode::Nv12, 250, 190, Framing::fill(region, 250, 190)),
        (OutputMode::Bgrx, 101, 77, Framing::fill(region, 101, 77)),
        // Another aspect: 4:3 into 16:9 pillarboxed, 4:3 into 21:9-ish letterboxed the other
        // way, and a picture at its own size in bars (no scaling, bars only).
        (OutputMode::Nv12, 256, 144, Framing::fit(whole, 256, 144)),
        (OutputMode::Bgrx, 256, 144, Framing::fit(whole, 256, 144)),
        (OutputMode::Nv12, 128, 160, Framing::fit(region, 128, 160)),
        (OutputMode::Nv12, 200, 160, Framing::fit(region, 200, 160)),
    ];
    // 8- and 10-bit: the filter blends the 8 bits both paths keep.
    for (id, fourcc) in [(1, Fourcc::XRGB8888), (2, Fourcc::XRGB2101010)] {
        let desc = linear_desc(&planes, w, h, fourcc);
        let frame = SrcFrame {
            data: &src,
            stride: stride as usize,
            width: w,
            height: h,
            code: fourcc.pixel_code().unwrap(),
        };
        for (mode, ow, oh, place) in cases {
            let mut conv = GpuConverter::new(
                &vk,
                ConverterConfig {
                    host_readback: true,
                    ..ConverterConfig::new(mode, ow, oh)
                },
            )
            .unwrap();
            let mut want = vec![0u8; conv.layout().size as usize];
            cpu::convert_placed(&frame, &place, conv.layout(), &mut want);
            let imported = importer.import(id, &desc).unwrap();
            let out = conv.convert_synced(imported, place, None).unwrap();
            let got = conv.host_frame(&out).unwrap();
            if let Err(e) = cpu::compare(&out.layout, got, &want) {
                panic!("{fourcc:?} {mode:?} {place:?} → {ow}x{oh}: {e}");
            }
            conv.releaser().release(&out);
        }
    }
    // A region outside the frame is refused, not read out of bounds; so is a destination
    // outside the output.
    let mut conv = GpuConverter::new(&vk, ConverterConfig::new(OutputMode::Nv12, 64, 64)).unwrap();
    let desc = linear_desc(&planes, w, h, Fourcc::XRGB8888);
    let imported = importer.import(1, &desc).unwrap();
    let outside = Region {
        x: 300,
        y: 0,
        width: 64,
        height: 64,
    };
    assert!(conv.convert_region(imported, outside).is_err());
    let beyond = Framing {
        src: Region::whole(64, 64),
        dst: Region {
            x: 8,
            y: 0,
            width: 64,
            height: 64,
        },
    };
    let imported = importer.import(1, &desc).unwrap();
    assert!(conv.convert_synced(imported, beyond, None).is_err());
}

/// The GPU's BGRx output of a frame drawn by `draw(x, y) -> grey level`, scaled to `ow`×`oh`
/// (checked byte-exact against the CPU reference), as rows of grey levels.
fn scaled_grey(w: u32, h: u32, ow: u32, oh: u32, draw: impl Fn(u32, u32) -> u8) -> Vec<Vec<u8>> {
    let vk = ctx(HandleType::DmaBuf);
    let stride = w * 4;
    let mut src = vec![0u8; (stride * h) as usize];
    for y in 0..h {
        for x in 0..w {
            let g = draw(x, y) as u32;
            let o = (y * stride + x * 4) as usize;
            src[o..o + 4].copy_from_slice(&(g << 16 | g << 8 | g).to_le_bytes());
        }
    }
    let fd = zerocast_interop::testing::memfd_bytes(&src).unwrap();
    let planes = linear_plane(&fd, stride);
    let desc = linear_desc(&planes, w, h, Fourcc::XRGB8888);
    let mut importer = DmabufImporter::new(&vk).unwrap();
    let mut conv = GpuConverter::new(
        &vk,
        ConverterConfig {
            host_readback: true,
            ..ConverterConfig::new(OutputMode::Bgrx, ow, oh)
        },
    )
    .unwrap();
    let place = Framing::fill(Region::whole(w, h), ow, oh);
    let mut want = vec![0u8; conv.layout().size as usize];
    let frame = SrcFrame {
        data: &src,
        stride: stride as usize,
        width: w,
        height: h,
        code: PixelCode::Xrgb8,
    };
    cpu::convert_placed(&frame, &place, conv.layout(), &mut want);
    let out = conv.convert(importer.import(1, &desc).unwrap()).unwrap();
    let got = conv.host_frame(&out).unwrap();
    if let Err(e) = cpu::compare(&out.layout, got, &want) {
        panic!("{w}x{h} → {ow}x{oh}: {e}");
    }
    let pitch = out.layout.pitch as usize;
    (0..oh as usize)
        .map(|y| (0..ow as usize).map(|x| got[y * pitch + x * 4]).collect())
        .collect()
}

/// Scaling filters: a sharp black/white edge at an odd column, scaled by 0.5, by 0.625 and by
/// 1.5625, comes out as a ramp — pixels across the edge take values between black and white,
/// where nearest-neighbour would only ever pick 0 or 255 — and the flat areas stay exact.
#[test]
fn scaling_is_bilinear_not_nearest() {
    let edge = |x: u32, _y: u32| if x < 33 { 0 } else { 255 };
    // 0.5: output column 16 covers source columns 32 (black) and 33 (white): their mean.
    let half = scaled_grey(64, 8, 32, 4, edge);
    for row in &half {
        assert_eq!(&row[..16], &[0; 16], "{row:?}");
        assert!(row[16].abs_diff(128) <= 1, "{row:?}");
        assert!(row[17..].iter().all(|&v| v == 255), "{row:?}");
    }
    // A non-integer factor down (64 → 40) and up (64 → 100): a monotonic ramp with at least
    // one intermediate value per row, black and white away from the edge.
    for ow in [40, 100] {
        let rows = scaled_grey(64, 8, ow, 8, edge);
        for row in &rows {
            assert_eq!(row[0], 0, "{ow}: {row:?}");
            assert_eq!(row[ow as usize - 1], 255, "{ow}: {row:?}");
            assert!(row.windows(2).all(|p| p[0] <= p[1]), "{ow}: {row:?}");
            let mid = row.iter().filter(|&&v| v > 8 && v < 247).count();
            assert!(
                mid >= 1,
                "{ow}: no intermediate value, nearest-like: {row:?}"
            );
        }
    }
    // One-pixel checkerboard at 0.5: every output pixel is a 2×2 mean (grey), not a copy of
    // one source pixel (which would give a solid black or white picture).
    let checker = |x: u32, y: u32| if (x + y).is_multiple_of(2) { 0 } else { 255 };
    for row in scaled_grey(64, 64, 32, 32, checker) {
        assert!(row.iter().all(|&v| v.abs_diff(128) <= 1), "{row:?}");
    }
}
