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

/// A crop region (window casts) is converted at its own size byte-exact, and a region of
/// another size than the output is scaled nearest-neighbour — exactly as the CPU reference of
/// the same pixel selection.
#[test]
fn crop_region_and_scaling_match_the_cpu_reference() {
    let vk = ctx(HandleType::DmaBuf);
    let (w, h, stride) = (320u32, 240u32, 320 * 4);
    let fourcc = Fourcc::XRGB8888;
    let seed = 77;
    let fd = memfd_frame(w, h, stride, seed).unwrap();
    let mut src = vec![0u8; (stride * h) as usize];
    cpu::fill_pattern(&mut src, stride as usize, w, h, seed);
    let planes = linear_plane(&fd, stride);
    let desc = linear_desc(&planes, w, h, fourcc);
    let mut importer = DmabufImporter::new(&vk).unwrap();
    let region = Region {
        x: 40,
        y: 30,
        width: 160,
        height: 120,
    };
    // (output size) — same as the region: a pure crop; half and odd: scaled.
    for (ow, oh) in [(160, 120), (80, 60), (101, 77)] {
        let mut conv = GpuConverter::new(
            &vk,
            ConverterConfig {
                host_readback: true,
                ..ConverterConfig::new(OutputMode::Nv12, ow, oh)
            },
        )
        .unwrap();
        // The pixels the shader is specified to read: rx + x * rw / ow (x clamped to ow - 1).
        let (cw, ch) = (ow + (ow & 1), oh + (oh & 1));
        let mut picked = vec![0u8; (cw * ch * 4) as usize];
        for y in 0..ch {
            for x in 0..cw {
                let sx = region.x + x.min(ow - 1) * region.width / ow;
                let sy = region.y + y.min(oh - 1) * region.height / oh;
                let s = (sy * stride + sx * 4) as usize;
                let d = ((y * cw + x) * 4) as usize;
                picked[d..d + 4].copy_from_slice(&src[s..s + 4]);
            }
        }
        let mut want = vec![0u8; conv.layout().size as usize];
        cpu::convert(
            &SrcFrame {
                data: &picked,
                stride: (cw * 4) as usize,
                width: ow,
                height: oh,
                code: fourcc.pixel_code().unwrap(),
            },
            conv.layout(),
            &mut want,
        );
        let imported = importer.import(1, &desc).unwrap();
        let frame = conv.convert_region(imported, region).unwrap();
        let got = conv.host_frame(&frame).unwrap();
        if let Err(e) = cpu::compare(&frame.layout, got, &want) {
            panic!("region {region:?} → {ow}x{oh}: {e}");
        }
        conv.releaser().release(&frame);
    }
    // A region outside the frame is refused, not read out of bounds.
    let mut conv = GpuConverter::new(&vk, ConverterConfig::new(OutputMode::Nv12, 64, 64)).unwrap();
    let imported = importer.import(1, &desc).unwrap();
    let outside = Region {
        x: 300,
        y: 0,
        width: 64,
        height: 64,
    };
    assert!(conv.convert_region(imported, outside).is_err());
}
