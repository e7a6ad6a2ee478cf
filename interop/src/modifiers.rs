//! Which (fourcc, modifier) pairs this device can import for the convert shader.

use crate::error::{InteropError, Result};
use crate::format::{Fourcc, ImportKind, Modifier};
use crate::vk::context::{ContextInner, VulkanContext};
use ash::vk;
use std::fmt;

#[derive(Debug, Clone)]
pub struct ModifierInfo {
    pub modifier: Modifier,
    pub kind: ImportKind,
    /// Memory planes the driver wants for this modifier (1 unless it adds e.g. a CCS plane).
    pub planes: u32,
    pub max_width: u32,
    pub max_height: u32,
    /// The external memory of this modifier must be a dedicated allocation.
    pub dedicated_only: bool,
}

/// Importable modifiers of one fourcc.
#[derive(Debug, Clone)]
pub struct FormatModifiers {
    pub fourcc: Fourcc,
    pub modifiers: Vec<ModifierInfo>,
    /// Why the list is empty, when it is.
    pub why_none: Option<String>,
}

/// The importable modifiers per accepted fourcc, in the order to offer them to PipeWire.
#[derive(Debug, Clone)]
pub struct ModifierSet {
    pub formats: Vec<FormatModifiers>,
}

impl ModifierSet {
    /// Queries the device (once, at setup: several driver calls per format).
    pub fn query(ctx: &VulkanContext) -> Result<Self> {
        let shared = &ctx.shared;
        let formats = Fourcc::ACCEPTED
            .iter()
            .map(|&fourcc| {
                let r = if shared.drm_modifier.is_some() {
                    image_modifiers(shared, fourcc)
                } else {
                    buffer_linear(shared, fourcc)
                };
                r.map(|mods| {
                    let why_none = mods.is_empty().then(|| {
                        if shared.drm_modifier.is_some() {
                            format!(
                                "no modifier supports SAMPLED import as {:?}",
                                shared.handle_type
                            )
                        } else {
                            format!(
                                "LINEAR buffers are not importable as {:?}",
                                shared.handle_type
                            )
                        }
                    });
                    FormatModifiers {
                        fourcc,
                        modifiers: mods,
                        why_none,
                    }
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ModifierSet { formats })
    }

    /// The modifiers to offer for `fourcc` (empty: offer it only as SHM).
    pub fn modifiers(&self, fourcc: Fourcc) -> impl Iterator<Item = Modifier> + '_ {
        self.formats
            .iter()
            .filter(move |f| f.fourcc == fourcc)
            .flat_map(|f| f.modifiers.iter().map(|m| m.modifier))
    }

    pub fn info(&self, fourcc: Fourcc, modifier: Modifier) -> Option<&ModifierInfo> {
        self.formats
            .iter()
            .find(|f| f.fourcc == fourcc)?
            .modifiers
            .iter()
            .find(|m| m.modifier == modifier)
    }

    /// Forget a pair whose import failed (the recorder then renegotiates without it).
    pub fn remove(&mut self, fourcc: Fourcc, modifier: Modifier) {
        for f in self.formats.iter_mut().filter(|f| f.fourcc == fourcc) {
            f.modifiers.retain(|m| m.modifier != modifier);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.formats.iter().all(|f| f.modifiers.is_empty())
    }
}

impl fmt::Display for ModifierSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for fm in &self.formats {
            write!(f, "  {:?}:", fm.fourcc)?;
            if let Some(why) = &fm.why_none {
                writeln!(f, " none ({why})")?;
                continue;
            }
            writeln!(f)?;
            for m in &fm.modifiers {
                writeln!(
                    f,
                    "    {:?} ({:?}, {} plane{}, max {}x{}{})",
                    m.modifier,
                    m.kind,
                    m.planes,
                    if m.planes == 1 { "" } else { "s" },
                    m.max_width,
                    m.max_height,
                    if m.dedicated_only { ", dedicated" } else { "" }
                )?;
            }
        }
        Ok(())
    }
}

/// Usage of imported images: sampled by the convert shader.
pub(crate) const IMPORT_IMAGE_USAGE: vk::ImageUsageFlags = vk::ImageUsageFlags::SAMPLED;
/// Usage of imported LINEAR buffers: read by the convert shader.
pub(crate) const IMPORT_BUFFER_USAGE: vk::BufferUsageFlags = vk::BufferUsageFlags::STORAGE_BUFFER;

fn drm_modifier_list(
    shared: &ContextInner,
    format: vk::Format,
) -> Vec<vk::DrmFormatModifierPropertiesEXT> {
    let inst = &shared.instance.instance;
    let mut list = vk::DrmFormatModifierPropertiesListEXT::default();
    {
        let mut props = vk::FormatProperties2::default().push_next(&mut list);
        // SAFETY: first call of the two-call idiom: only the count is written.
        unsafe { inst.get_physical_device_format_properties2(shared.physical, format, &mut props) };
    }
    let n = list.drm_format_modifier_count as usize;
    let mut out = vec![vk::DrmFormatModifierPropertiesEXT::default(); n];
    let mut list =
        vk::DrmFormatModifierPropertiesListEXT::default().drm_format_modifier_properties(&mut out);
    {
        let mut props = vk::FormatProperties2::default().push_next(&mut list);
        // SAFETY: the array has room for the count from the first call.
        unsafe { inst.get_physical_device_format_properties2(shared.physical, format, &mut props) };
    }
    let got = list.drm_format_modifier_count as usize;
    out.truncate(got);
    out
}

fn image_modifiers(shared: &ContextInner, fourcc: Fourcc) -> Result<Vec<ModifierInfo>> {
    let format = fourcc
        .vk_format()
        .ok_or(InteropError::UnsupportedFormat(fourcc))?;
    let mut out = Vec::new();
    for m in drm_modifier_list(shared, format) {
        if !m
            .drm_format_modifier_tiling_features
            .contains(vk::FormatFeatureFlags::SAMPLED_IMAGE)
        {
            continue;
        }
        if let Some(info) = check_image_modifier(shared, format, Modifier(m.drm_format_modifier))? {
            out.push(ModifierInfo {
                planes: m.drm_format_modifier_plane_count,
                ..info
            });
        }
    }
    Ok(out)
}

/// Per-modifier image-format check with the external handle type (None: not importable).
pub(crate) fn check_image_modifier(
    shared: &ContextInner,
    format: vk::Format,
    modifier: Modifier,
) -> Result<Option<ModifierInfo>> {
    let mut drm = vk::PhysicalDeviceImageDrmFormatModifierInfoEXT::default()
        .drm_format_modifier(modifier.0)
        .sharing_mode(vk::SharingMode::EXCLUSIVE);
    let mut ext =
        vk::PhysicalDeviceExternalImageFormatInfo::default().handle_type(shared.handle_type.vk());
    let info = vk::PhysicalDeviceImageFormatInfo2::default()
        .format(format)
        .ty(vk::ImageType::TYPE_2D)
        // VUID-VkPhysicalDeviceImageFormatInfo2-tiling-02249: modifier info chained with this tiling.
        .tiling(vk::ImageTiling::DRM_FORMAT_MODIFIER_EXT)
        .usage(IMPORT_IMAGE_USAGE)
        .push_next(&mut drm)
        .push_next(&mut ext);
    let mut ext_props = vk::ExternalImageFormatProperties::default();
    let mut props = vk::ImageFormatProperties2::default().push_next(&mut ext_props);
    // SAFETY: valid chain, our physical device.
    let r = unsafe {
        shared
            .instance
            .instance
            .get_physical_device_image_format_properties2(shared.physical, &info, &mut props)
    };
    let e = props.image_format_properties.max_extent;
    match r {
        Ok(()) => {}
        Err(vk::Result::ERROR_FORMAT_NOT_SUPPORTED) => return Ok(None),
        Err(e) => {
            return Err(InteropError::vk(
                "vkGetPhysicalDeviceImageFormatProperties2",
            )(e))
        }
    }
    let feats = ext_props
        .external_memory_properties
        .external_memory_features;
    if !feats.contains(vk::ExternalMemoryFeatureFlags::IMPORTABLE) {
        return Ok(None);
    }
    Ok(Some(ModifierInfo {
        modifier,
        kind: ImportKind::Image,
        planes: 1,
        max_width: e.width,
        max_height: e.height,
        dedicated_only: feats.contains(vk::ExternalMemoryFeatureFlags::DEDICATED_ONLY),
    }))
}

fn buffer_linear(shared: &ContextInner, _fourcc: Fourcc) -> Result<Vec<ModifierInfo>> {
    let info = vk::PhysicalDeviceExternalBufferInfo::default()
        .usage(IMPORT_BUFFER_USAGE)
        .handle_type(shared.handle_type.vk());
    let mut props = vk::ExternalBufferProperties::default();
    // SAFETY: plain query on our physical device.
    unsafe {
        shared
            .instance
            .instance
            .get_physical_device_external_buffer_properties(shared.physical, &info, &mut props)
    };
    let feats = props.external_memory_properties.external_memory_features;
    if !feats.contains(vk::ExternalMemoryFeatureFlags::IMPORTABLE) {
        return Ok(Vec::new());
    }
    // The shader indexes 32-bit words of one storage buffer binding.
    let max = shared.limits.max_image_dimension2_d.max(8192);
    Ok(vec![ModifierInfo {
        modifier: Modifier::LINEAR,
        kind: ImportKind::Buffer,
        planes: 1,
        max_width: max,
        max_height: max,
        dedicated_only: feats.contains(vk::ExternalMemoryFeatureFlags::DEDICATED_ONLY),
    }])
}
