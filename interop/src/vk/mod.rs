//! Vulkan plumbing shared by the importer, the converter and the probe.

pub mod context;
pub(crate) mod kernels;
pub(crate) mod memory;
pub(crate) mod sync;
