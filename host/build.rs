//! Builds the guest workspace (`plugins/`) for wasm32-wasip2 so the built-in
//! plugins can be embedded in the `runner` binary, and exposes the test
//! plugins' directory to the host's tests.
//!
//! The nested cargo gets its own target dir (sharing the outer one can
//! deadlock on the build lock) and a scrubbed environment: flags meant for the
//! host build (RUSTFLAGS, wrappers, coverage) must not leak into wasm builds.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
/// Shipped inside `runner`.
const BUILTINS: &[&str] = &["openclaw", "hermes"];

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let repo = manifest_dir
        .parent()
        .expect("host/ has a parent")
        .to_path_buf();
    let plugins = repo.join("plugins");
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());

    for watched in [
        "sdk",
        "openclaw",
        "hermes",
        "testing",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", plugins.join(watched).display());
    }
    println!("cargo:rerun-if-changed={}", repo.join("wit").display());

    let target_dir = wasm_target_dir(&out_dir);
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&plugins)
        .args([
            "build",
            "--release",
            "--locked",
            "--workspace",
            "--target",
            TARGET,
        ])
        .arg("--target-dir")
        .arg(&target_dir);
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_PROFILE_RELEASE_DEBUG",
        "LLVM_PROFILE_FILE",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("could not run cargo for plugins/: {e}"));
    if !status.success() {
        panic!(
            "building the plugins for {TARGET} failed (see above). If the target is missing, \
             install it with `rustup toolchain install --no-self-update` (reads rust-toolchain.toml) \
             or `rustup target add {TARGET}`."
        );
    }

    let wasm_dir = target_dir.join(TARGET).join("release");
    let mut embedded = String::from(
        "/// Built-in plugins: (name, component bytes).\npub static BUILTINS: &[(&str, &[u8])] = &[\n",
    );
    for name in BUILTINS {
        let file = wasm_dir.join(format!("{}.wasm", name.replace('-', "_")));
        if !file.exists() {
            panic!(
                "built-in plugin {name} was not produced at {}",
                file.display()
            );
        }
        embedded.push_str(&format!(
            "    ({name:?}, include_bytes!({:?})),\n",
            file.display().to_string()
        ));
    }
    embedded.push_str("];\n");
    std::fs::write(out_dir.join("builtins.rs"), embedded).expect("write builtins.rs");
    println!(
        "cargo:rustc-env=RUNNER_WASM_PLUGIN_DIR={}",
        wasm_dir.display()
    );
}

/// `<outer target dir>/wasm-plugins`, shared by every profile of the outer
/// build so debug, release and test builds compile the guests only once.
/// Cargo marks its target root with `CACHEDIR.TAG`; without one, stay in
/// OUT_DIR.
fn wasm_target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .find(|p| p.join("CACHEDIR.TAG").is_file())
        .unwrap_or(out_dir)
        .join("wasm-plugins")
}
