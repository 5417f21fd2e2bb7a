//! Links the kernel with linker.ld (only for the ppc64 target: host unit tests link normally)
//! and rebuilds when the assembly in boot/ changes.
fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    println!("cargo:rerun-if-changed=linker.ld");
    println!("cargo:rerun-if-changed=boot/entry.S");
    println!("cargo:rerun-if-changed=boot/vectors.S");
    println!("cargo:rerun-if-changed=boot/user.S");
    if target.contains("powerpc64") {
        println!("cargo:rustc-link-arg=-T{dir}/linker.ld");
        println!("cargo:rustc-link-arg=--no-dynamic-linker");
        println!("cargo:rustc-link-arg=-znorelro");
        println!("cargo:rustc-link-arg=--build-id=none");
    }
}
