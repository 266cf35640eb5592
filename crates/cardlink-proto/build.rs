//! Compiles proto/cardlink/v1 with protox (a protobuf compiler in Rust), so
//! no system `protoc` is needed.

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let file = root.join("cardlink/v1/cardlink.proto");
    println!("cargo:rerun-if-changed={}", file.display());
    let descriptors = protox::compile([&file], [&root]).expect("proto/cardlink/v1 compiles");
    prost_build::Config::new().compile_fds(descriptors).expect("prost generates Rust");
}
