//! Compiles the event log's protobuf schema (`proto/`) into Rust. protox is a pure-Rust protobuf
//! compiler, so building video-status needs no `protoc` on the machine.

const PROTO_ROOT: &str = "proto";
const PROTO_FILES: &[&str] = &["proto/video_status/v1/events.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A directory is scanned recursively, so a new .proto file also triggers a rebuild.
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    println!("cargo:rerun-if-changed=build.rs");

    let descriptors = protox::compile(PROTO_FILES, [PROTO_ROOT])?;
    prost_build::Config::new()
        // `bytes::Bytes` for `bytes` fields: the raw body is shared, not copied, on decode.
        .bytes(["."])
        .compile_fds(descriptors)?;
    Ok(())
}
