//! Records the model crate's version for trace files (`trace::MODEL_VERSION`): a trace written
//! by another model version is refused when read.
fn main() {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/Cargo.toml");
    println!("cargo:rerun-if-changed={}", manifest.display());
    let text = std::fs::read_to_string(&manifest).expect("model/Cargo.toml is readable");
    let version = text
        .lines()
        .map(str::trim)
        .find_map(|line| {
            let rest = line
                .strip_prefix("version")?
                .trim_start()
                .strip_prefix('=')?;
            Some(rest.trim().trim_matches('"').to_owned())
        })
        .expect("model/Cargo.toml names a version");
    println!("cargo:rustc-env=INSYNC_MODEL_VERSION={version}");
}
