//! Every configuration key of this build as Markdown, printed by `tessera config-keys` and
//! committed as `docs/configuration.md`: the kernel's sections, then each built-in module's
//! `[modules.<name>]` section (its `Settings` type) and the `url` the binary reads for it.
//! Descriptions are the settings fields' doc comments, defaults the base layer's values.

use std::fmt::Write as _;

use kernel::config::{AppEnv, KeyDoc, Settings};

use crate::modules;

/// The document. Deterministic: kernel sections in declaration order, then modules in
/// start-up order.
///
/// # Errors
/// Only if the embedded defaults or a module's default section do not parse.
pub fn configuration_markdown() -> anyhow::Result<String> {
    let defaults = Settings::defaults(AppEnv::Development)?;
    let mut keys = Settings::kernel_keys()?;
    for plug in modules::plugs() {
        let name = plug.name();
        keys.push(KeyDoc {
            key: format!("modules.{name}.url"),
            kind: "string (optional)".into(),
            default: None,
            secret: false,
            description: format!(
                "Where the {name} module is served (its base URL, e.g. \
                 `http://{name}:8080`) for a binary built without it: its neighbours then call \
                 its REST API there (split deployments). Unset: built in, or not needed."
            ),
        });
        keys.extend(plug.config_keys(&defaults)?);
    }

    let mut out = String::from(
        "# Configuration\n\n\
         <!-- Generated from the settings types by `tessera config-keys` (src/config_doc.rs). \
         Do not edit: regenerate with `cargo run -- config-keys > docs/configuration.md` \
         (or `UPDATE_DOCS=1 cargo test config_keys`). -->\n\n\
         Every key Tessera reads. Layers, later ones win: `config/default.toml` (compiled into \
         the binary; the defaults below), then `config/{TESSERA_ENV}.toml` from the working \
         directory (`TESSERA_ENV` is `development` by default, `test` or `production`), then \
         environment variables: `TESSERA__` and the key's parts in upper case joined by `__`. \
         A bad value, an unknown key or an unknown `TESSERA_ENV` stops the binary with a \
         message naming it.\n",
    );
    let mut section = String::new();
    for key in &keys {
        let (head, _) = key.key.rsplit_once('.').unwrap_or(("", &key.key));
        if head != section {
            section = head.to_owned();
            let _ = write!(
                out,
                "\n## `[{section}]`\n\n\
                 | key | environment variable | type | default | what it does |\n\
                 |---|---|---|---|---|\n"
            );
        }
        let default = match (&key.default, key.secret) {
            (_, true) => "a development value".to_owned(),
            (Some(value), false) => format!("`{value}`"),
            (None, false) => "unset".to_owned(),
        };
        let _ = writeln!(
            out,
            "| `{}` | `{}` | {} | {} | {} |",
            key.key,
            key.env_var(),
            cell(&key.kind),
            cell(&default),
            cell(&key.description)
        );
    }
    Ok(out)
}

/// Text that stays inside its table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_a_description_and_an_environment_variable() {
        let doc = configuration_markdown().unwrap();
        let rows: Vec<&str> = doc.lines().filter(|l| l.starts_with("| `")).collect();
        assert!(rows.len() > 30, "{doc}");
        for row in rows {
            let cells: Vec<&str> = row.split(" | ").collect();
            assert_eq!(cells.len(), 5, "{row}");
            assert!(cells[1].starts_with("`TESSERA__"), "{row}");
            assert!(cells[4].len() > 10, "no description: {row}");
        }
    }

    #[test]
    fn secrets_show_no_value() {
        let doc = configuration_markdown().unwrap();
        let secret = Settings::defaults(AppEnv::Development)
            .unwrap()
            .auth
            .jwt_secret;
        assert!(!doc.contains(&secret));
        assert!(doc.contains("| `auth.jwt_secret` |"));
    }

    /// The keys `config/default.toml` sets or shows in a comment (`# key = …`), by section.
    fn keys_in_default_toml() -> Vec<String> {
        let mut section = String::new();
        let mut keys = Vec::new();
        for line in kernel::config::DEFAULT_CONFIG.lines() {
            let line = line.trim_start_matches('#').trim();
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.to_owned();
            } else if let Some((key, _)) = line.split_once(" = ")
                && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
            {
                keys.push(format!("{section}.{key}"));
            }
        }
        keys
    }

    #[test]
    fn config_default_toml_shows_every_key() {
        let shown = keys_in_default_toml();
        let mut missing = Vec::new();
        for row in configuration_markdown().unwrap().lines() {
            let Some(key) = row.strip_prefix("| `").and_then(|r| r.split('`').next()) else {
                continue;
            };
            // One commented example stands for every module's `url`.
            let url_example = key.starts_with("modules.") && key.ends_with(".url");
            if !shown.iter().any(|k| k == key) && !url_example {
                missing.push(key.to_owned());
            }
        }
        assert!(
            missing.is_empty(),
            "config/default.toml neither sets nor shows (as `# key = …`): {missing:?}"
        );
        assert!(
            shown
                .iter()
                .any(|k| k.starts_with("modules.") && k.ends_with(".url"))
        );
    }
}
