//! The workspace's shape: the examples crate holds programs only (no
//! library target for tests to lean on), and no other package depends on
//! it, so every test runs on the library crates, the demo's own crates
//! and the rigs under `tests/`.

use serde_json::Value;

fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

#[test]
fn no_package_depends_on_the_examples_crate_and_it_has_no_library() {
    let meta = metadata();
    let packages = meta["packages"].as_array().expect("packages");
    let examples = packages.iter().find(|p| p["name"] == "vox-examples").expect("the examples crate is a member");
    let kinds: Vec<&str> = examples["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .flat_map(|t| t["kind"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    assert!(kinds.iter().all(|k| *k == "bin"), "vox-examples holds programs only, found targets {kinds:?}");
    for package in packages {
        for dep in package["dependencies"].as_array().expect("dependencies") {
            assert_ne!(dep["name"], "vox-examples", "{} depends on vox-examples", package["name"]);
        }
    }
}
