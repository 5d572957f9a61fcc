//! What the README tells a user to type and set is real: its configuration variables are
//! keys of the generated reference, and its single-module build compiles only that module.

use std::process::Command;

use crate::helpers::full_build;

fn readme() -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .unwrap()
}

full_build! {
    /// Every `TESSERA__…` variable the README names is a key of the reference (or the start of
    /// some keys' variables, such as `TESSERA__MODULES__<NAME>__URL`).
    #[test]
    fn the_readme_names_only_real_configuration_keys() {
        let doc = tessera::configuration_markdown().unwrap();
        let vars: Vec<&str> = doc
            .lines()
            .filter_map(|row| row.split(" | `").nth(1))
            .filter_map(|cell| cell.split('`').next())
            .collect();
        let readme = readme();
        let mut unknown = Vec::new();
        for (at, _) in readme.match_indices("TESSERA__") {
            let name: String = readme[at..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            let known = vars.contains(&name.as_str())
                || (name.ends_with("__") && vars.iter().any(|v| v.starts_with(&name)));
            if !known {
                unknown.push(name);
            }
        }
        assert!(
            unknown.is_empty(),
            "README.md names unknown keys: {unknown:?}"
        );
    }
}

/// The README's `cargo build … --no-default-features --features <module>` line, run as
/// `cargo tree` with the same arguments: no other module's crate is in the build.
#[test]
fn the_readmes_single_module_build_compiles_only_that_module() {
    let readme = readme();
    let line = readme
        .lines()
        .find(|l| l.starts_with("cargo build") && l.contains("--no-default-features"))
        .expect("a single-module build command in README.md");
    let args: Vec<&str> = line
        .split_whitespace()
        .skip(2)
        .filter(|a| *a != "--release")
        .collect();
    let module = args
        .iter()
        .position(|a| *a == "--features")
        .and_then(|i| args.get(i + 1))
        .copied()
        .unwrap();
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["tree", "--offline", "-e", "normal", "--prefix", "none"])
        .args(&args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    let built: std::collections::BTreeSet<&str> =
        ["product", "order", "payment", "patient", "contract"]
            .into_iter()
            .filter(|m| tree.lines().any(|l| l.starts_with(&format!("{m} v"))))
            .collect();
    assert_eq!(
        built.into_iter().collect::<Vec<_>>(),
        [module],
        "`{line}` builds other modules' crates"
    );
}
