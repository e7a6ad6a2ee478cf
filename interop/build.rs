//! Compiles the WGSL compute shaders in `shaders/` to SPIR-V with naga.
//!
//! Why naga: it is pure Rust (a build-dependency, no system tool such as glslc or a C++ shaderc
//! build on CI's 2 cores), it validates the shader at build time, and its SPIR-V runs on both
//! lavapipe and NVIDIA. `common.wgsl` is prepended to each entry file because WGSL has no
//! include.

use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let common = std::fs::read_to_string("shaders/common.wgsl").expect("read shaders/common.wgsl");
    println!("cargo:rerun-if-changed=shaders/common.wgsl");
    for name in ["buffer", "image"] {
        let path = format!("shaders/{name}.wgsl");
        println!("cargo:rerun-if-changed={path}");
        let body = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
        let source = format!("{common}\n{body}");
        let module = naga::front::wgsl::parse_str(&source)
            .unwrap_or_else(|e| panic!("{path}: {}", e.emit_to_string(&source)));
        let info = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::IMMEDIATES,
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{path}: {}", e.emit_to_string(&source)));
        let options = naga::back::spv::Options {
            // Vulkan 1.1 is the floor we ask for; SPIR-V 1.3 keeps StorageBuffer core.
            lang_version: (1, 3),
            ..Default::default()
        };
        // Two variants per source, by the `SCALED` override: the plain conversion (one source
        // read per output pixel, the code it always was) and the filtered one, so the common
        // unscaled case carries no trace of the filter, not even a branch.
        for (suffix, scaled) in [("", 0.0), ("_scaled", 1.0)] {
            let mut constants = naga::back::PipelineConstants::default();
            constants.insert("SCALED".to_string(), scaled);
            let (module, info) =
                naga::back::pipeline_constants::process_overrides(&module, &info, None, &constants)
                    .unwrap_or_else(|e| panic!("{path}: SCALED={scaled}: {e}"));
            let words = naga::back::spv::write_vec(&module, &info, &options, None)
                .unwrap_or_else(|e| panic!("{path}: SPIR-V: {e}"));
            let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
            std::fs::write(out.join(format!("{name}{suffix}.spv")), bytes).expect("write SPIR-V");
        }
    }
}
