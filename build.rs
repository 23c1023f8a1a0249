//! Generates the gRPC types from `proto/` with protox (pure Rust: no system `protoc`).
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fds = protox::compile(["arogya/auth/v1/auth.proto"], ["proto"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    // The descriptor set feeds server reflection (v1 and v1alpha).
    std::fs::write(
        out.join("auth_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
