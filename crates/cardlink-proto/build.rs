//! Compiles proto/cardlink/v1 with protox (a protobuf compiler in Rust), so
//! no system `protoc` is needed.

fn main() {
    // Read when the script runs, not when it is compiled: a build script
    // binary can be reused for another checkout sharing the target folder.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = std::path::Path::new(&manifest).join("../../proto");
    let file = root.join("cardlink/v1/cardlink.proto");
    println!("cargo:rerun-if-changed={}", file.display());
    let descriptors = protox::compile([&file], [&root]).expect("proto/cardlink/v1 compiles");
    prost_build::Config::new().compile_fds(descriptors).expect("prost generates Rust");
}
