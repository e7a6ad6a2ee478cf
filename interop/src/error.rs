//! The one error type of this crate, and the fallback each failure implies.

use crate::format::{Fourcc, Modifier};
use ash::vk;

/// What the recorder should do after an [`InteropError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// Remove this (format, modifier) pair from the offered EnumFormat pods and renegotiate;
    /// other modifiers may still import.
    DropModifier { fourcc: Fourcc, modifier: Modifier },
    /// Zero-copy is impossible on this system for this stream: renegotiate SHM buffers and take
    /// the CPU capture path.
    Shm,
    /// Capture via Vulkan works, but frames cannot reach CUDA: read NV12 back to host memory
    /// (`GpuConverter` readback) and use a software encoder.
    CpuEncode,
    /// Transient: skip this frame (count it as dropped) and go on.
    DropFrame,
}

/// Every failure of the interop bridge. Each variant says *why* in its message; use
/// [`InteropError::fallback`] to pick the recovery.
#[derive(Debug, thiserror::Error)]
pub enum InteropError {
    #[error("Vulkan loader (libvulkan.so.1) not found: {0}")]
    NoVulkanLoader(#[source] ash::LoadingError),
    #[error("Vulkan call {call} failed: {result}")]
    Vk {
        call: &'static str,
        #[source]
        result: vk::Result,
    },
    #[error("no Vulkan device usable for interop: {0}")]
    NoDevice(String),
    #[error("no Vulkan device matches the compositor's DRM device {major}:{minor}; candidates: {candidates}")]
    DrmDeviceMismatch {
        major: u32,
        minor: u32,
        candidates: String,
    },
    #[error("Vulkan device {device} lacks {what}")]
    MissingFeature { device: String, what: &'static str },
    #[error("format {0:?} is not supported by the interop path")]
    UnsupportedFormat(Fourcc),
    #[error("{fourcc:?} with modifier {modifier:?} cannot be imported: {why}")]
    UnsupportedModifier {
        fourcc: Fourcc,
        modifier: Modifier,
        why: String,
    },
    #[error("invalid dma-buf description: {0}")]
    InvalidDmabuf(String),
    #[error("dma-buf import failed for {fourcc:?}/{modifier:?}: {why}")]
    ImportFailed {
        fourcc: Fourcc,
        modifier: Modifier,
        why: String,
    },
    #[error("unknown imported buffer id {0}")]
    UnknownBuffer(u64),
    #[error(
        "frame size {width}x{height} does not match the converter's {expected_w}x{expected_h}"
    )]
    SizeMismatch {
        width: u32,
        height: u32,
        expected_w: u32,
        expected_h: u32,
    },
    #[error("all {0} output slots are still held by the consumer")]
    RingFull(usize),
    #[error("out of memory: {0}")]
    OutOfMemory(String),
    #[error("CUDA driver library (libcuda.so.1) not found")]
    NoCudaLibrary,
    #[error("CUDA call {call} failed: {code:?}")]
    Cuda {
        call: &'static str,
        code: cudarc::driver::sys::CUresult,
    },
    #[error("no CUDA device has the Vulkan device's UUID {vk_uuid}; CUDA devices: {cuda}")]
    CudaDeviceMismatch { vk_uuid: String, cuda: String },
    #[error("GPU device lost")]
    DeviceLost,
    #[error("I/O error on a dma-buf fd: {0}")]
    Io(#[from] std::io::Error),
}

impl InteropError {
    /// The recovery the recorder should take.
    pub fn fallback(&self) -> Fallback {
        use InteropError::*;
        match self {
            UnsupportedModifier {
                fourcc, modifier, ..
            }
            | ImportFailed {
                fourcc, modifier, ..
            } => Fallback::DropModifier {
                fourcc: *fourcc,
                modifier: *modifier,
            },
            RingFull(_) => Fallback::DropFrame,
            NoCudaLibrary | Cuda { .. } | CudaDeviceMismatch { .. } => Fallback::CpuEncode,
            Vk { result, .. } if *result == vk::Result::ERROR_OUT_OF_DEVICE_MEMORY => {
                Fallback::DropFrame
            }
            _ => Fallback::Shm,
        }
    }

    pub(crate) fn vk(call: &'static str) -> impl FnOnce(vk::Result) -> InteropError {
        move |result| {
            if result == vk::Result::ERROR_DEVICE_LOST {
                InteropError::DeviceLost
            } else {
                InteropError::Vk { call, result }
            }
        }
    }
}

pub type Result<T, E = InteropError> = std::result::Result<T, E>;
