//! The convert compute pipelines (SPIR-V compiled from `shaders/` by build.rs) and their
//! descriptor set layouts.

use crate::cpu::OutputMode;
use crate::error::{InteropError, Result};
use crate::format::ImportKind;
use ash::vk;

const BUFFER_SPV: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/buffer.spv"));
const IMAGE_SPV: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/image.spv"));
const BUFFER_SCALED_SPV: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/buffer_scaled.spv"));
const IMAGE_SCALED_SPV: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/image_scaled.spv"));

/// Workgroup size of every entry point (`@workgroup_size(16, 8)`), in 4x2-pixel blocks.
pub(crate) const WG_X: u32 = 16;
pub(crate) const WG_Y: u32 = 8;

/// Push constants, `Params` in shaders/common.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct Params {
    pub width: u32,
    pub height: u32,
    pub src_offset: u32,
    pub src_stride: u32,
    pub dst_pitch: u32,
    pub dst_uv_offset: u32,
    pub fmt: u32,
    pub src_xy: u32,
    pub src_wh: u32,
    pub dst_xy: u32,
    pub dst_wh: u32,
    pub step_x: u32,
    pub step_y: u32,
}

/// Size of [`Params`] as pushed (within the 128 bytes every device allows).
pub(crate) const PARAMS_SIZE: usize = 52;

impl Params {
    pub fn bytes(&self) -> [u8; PARAMS_SIZE] {
        let w = [
            self.width,
            self.height,
            self.src_offset,
            self.src_stride,
            self.dst_pitch,
            self.dst_uv_offset,
            self.fmt,
            self.src_xy,
            self.src_wh,
            self.dst_xy,
            self.dst_wh,
            self.step_x,
            self.step_y,
        ];
        let mut out = [0u8; PARAMS_SIZE];
        for (i, v) in w.iter().enumerate() {
            out[i * 4..i * 4 + 4].copy_from_slice(&v.to_ne_bytes());
        }
        out
    }
}

pub(crate) struct Kernels {
    /// Set 0 by import kind: [Buffer, Image].
    pub src_layouts: [vk::DescriptorSetLayout; 2],
    /// Set 1: the output storage buffer.
    pub dst_layout: vk::DescriptorSetLayout,
    pub pipeline_layouts: [vk::PipelineLayout; 2],
    /// [kind][scaled][mode]: `scaled` — the filtered variant (`SCALED` in the shaders).
    pub pipelines: [[[vk::Pipeline; 2]; 2]; 2],
}

pub(crate) fn kind_index(k: ImportKind) -> usize {
    match k {
        ImportKind::Buffer => 0,
        ImportKind::Image => 1,
    }
}

pub(crate) fn mode_index(m: OutputMode) -> usize {
    match m {
        OutputMode::Nv12 => 0,
        OutputMode::Bgrx => 1,
    }
}

fn set_layout(device: &ash::Device, ty: vk::DescriptorType) -> Result<vk::DescriptorSetLayout> {
    let bindings = [vk::DescriptorSetLayoutBinding::default()
        .binding(0)
        .descriptor_type(ty)
        .descriptor_count(1)
        .stage_flags(vk::ShaderStageFlags::COMPUTE)];
    let info = vk::DescriptorSetLayoutCreateInfo::default().bindings(&bindings);
    // SAFETY: valid create info.
    unsafe { device.create_descriptor_set_layout(&info, None) }
        .map_err(InteropError::vk("vkCreateDescriptorSetLayout"))
}

fn shader(device: &ash::Device, spv: &[u8]) -> Result<vk::ShaderModule> {
    // read_spv copies into aligned words (build.rs wrote little-endian words).
    let words = ash::util::read_spv(&mut std::io::Cursor::new(spv)).map_err(InteropError::Io)?;
    let info = vk::ShaderModuleCreateInfo::default().code(&words);
    // SAFETY: valid SPIR-V produced and validated by naga at build time.
    unsafe { device.create_shader_module(&info, None) }
        .map_err(InteropError::vk("vkCreateShaderModule"))
}

impl Kernels {
    pub fn new(device: &ash::Device) -> Result<Self> {
        let mut k = Kernels {
            src_layouts: [vk::DescriptorSetLayout::null(); 2],
            dst_layout: vk::DescriptorSetLayout::null(),
            pipeline_layouts: [vk::PipelineLayout::null(); 2],
            pipelines: [[[vk::Pipeline::null(); 2]; 2]; 2],
        };
        // On error, `k` is destroyed with whatever was created (null handles are ignored).
        let r = k.build(device);
        if let Err(e) = r {
            // SAFETY: nothing uses the partially built objects.
            unsafe { k.destroy(device) };
            return Err(e);
        }
        Ok(k)
    }

    fn build(&mut self, device: &ash::Device) -> Result<()> {
        self.src_layouts[0] = set_layout(device, vk::DescriptorType::STORAGE_BUFFER)?;
        self.src_layouts[1] = set_layout(device, vk::DescriptorType::SAMPLED_IMAGE)?;
        self.dst_layout = set_layout(device, vk::DescriptorType::STORAGE_BUFFER)?;
        let push = [vk::PushConstantRange::default()
            .stage_flags(vk::ShaderStageFlags::COMPUTE)
            .offset(0)
            .size(PARAMS_SIZE as u32)];
        for i in 0..2 {
            let sets = [self.src_layouts[i], self.dst_layout];
            let info = vk::PipelineLayoutCreateInfo::default()
                .set_layouts(&sets)
                .push_constant_ranges(&push);
            // SAFETY: valid create info.
            self.pipeline_layouts[i] = unsafe { device.create_pipeline_layout(&info, None) }
                .map_err(InteropError::vk("vkCreatePipelineLayout"))?;
        }
        let spvs = [
            (0, 0, BUFFER_SPV),
            (0, 1, BUFFER_SCALED_SPV),
            (1, 0, IMAGE_SPV),
            (1, 1, IMAGE_SCALED_SPV),
        ];
        for (i, scaled, spv) in spvs {
            let module = shader(device, spv)?;
            let infos: Vec<_> = [c"nv12", c"bgrx_copy"]
                .iter()
                .map(|name| {
                    vk::ComputePipelineCreateInfo::default()
                        .stage(
                            vk::PipelineShaderStageCreateInfo::default()
                                .stage(vk::ShaderStageFlags::COMPUTE)
                                .module(module)
                                .name(name),
                        )
                        .layout(self.pipeline_layouts[i])
                })
                .collect();
            // SAFETY: valid create infos; the module outlives the call.
            let r =
                unsafe { device.create_compute_pipelines(vk::PipelineCache::null(), &infos, None) };
            // SAFETY: pipelines keep what they need from the module.
            unsafe { device.destroy_shader_module(module, None) };
            let p = r.map_err(|(_, e)| InteropError::vk("vkCreateComputePipelines")(e))?;
            self.pipelines[i][scaled] = [p[0], p[1]];
        }
        Ok(())
    }

    /// # Safety
    /// No pending GPU work may use the pipelines, and no descriptor set of these layouts may
    /// be used again.
    pub unsafe fn destroy(&self, device: &ash::Device) {
        // SAFETY: per the caller's contract; destroying null handles is a no-op.
        unsafe {
            for p in self.pipelines.iter().flatten().flatten() {
                device.destroy_pipeline(*p, None);
            }
            for l in self.pipeline_layouts {
                device.destroy_pipeline_layout(l, None);
            }
            for l in self.src_layouts.iter().chain([&self.dst_layout]) {
                device.destroy_descriptor_set_layout(*l, None);
            }
        }
    }
}
