//! The configuration keys as documentation (`tessera config-keys`, committed as
//! `docs/configuration.md`): read from the settings types themselves — each field's doc
//! comment through its `ToSchema` derive, its default from the base layer — so the list
//! cannot drift from the code. A field marked `#[schema(format = Password)]` is a secret:
//! its default is not printed.

use anyhow::Context;
use config::{Config, File, FileFormat};
use serde_json::Value;
use utoipa::{
    PartialSchema,
    openapi::{RefOr, Schema},
};

use super::{DEFAULT_CONFIG, Settings};

/// One configuration key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDoc {
    /// Dotted path, e.g. `server.port`, `modules.order.payment_timeout_secs`.
    pub key: String,
    /// Its type in words: `integer`, `string`, `list of strings`, `one of "pretty", "json"`…
    pub kind: String,
    /// Its value in the base layer as JSON, `None` when unset (or a secret).
    pub default: Option<String>,
    /// Whether it holds a secret (its default is not shown).
    pub secret: bool,
    /// What it does: the field's doc comment, on one line.
    pub description: String,
}

impl KeyDoc {
    /// Its environment variable: `TESSERA__` and the path's parts in upper case, joined by
    /// `__`; a map's entries take one more part, `__<NAME>`.
    pub fn env_var(&self) -> String {
        let mut var = format!("TESSERA__{}", self.key.replace('.', "__").to_uppercase());
        if self.kind.starts_with("map") {
            var.push_str("__<NAME>");
        }
        var
    }
}

impl Settings {
    /// The kernel's keys (every section but `modules`), with the defaults of the embedded
    /// `config/default.toml`.
    ///
    /// # Errors
    /// Only if the embedded defaults do not parse, which a unit test rules out.
    pub fn kernel_keys() -> anyhow::Result<Vec<KeyDoc>> {
        let defaults: Value = Config::builder()
            .add_source(File::from_str(DEFAULT_CONFIG, FileFormat::Toml))
            .build()
            .and_then(Config::try_deserialize)
            .context("read the embedded config/default.toml")?;
        Ok(keys_of("", &Settings::schema(), &defaults))
    }
}

/// The keys of a settings type whose schema is `schema`, under `prefix` (`""` or a dotted
/// path such as `modules.order`), in declaration order, with their values in `defaults`.
/// Nested objects with properties of their own are sections: their keys are listed, not the
/// section.
pub fn keys_of(prefix: &str, schema: &RefOr<Schema>, defaults: &Value) -> Vec<KeyDoc> {
    let mut keys = Vec::new();
    collect(prefix, schema, defaults, &mut keys);
    keys
}

fn collect(prefix: &str, schema: &RefOr<Schema>, defaults: &Value, keys: &mut Vec<KeyDoc>) {
    let RefOr::T(Schema::Object(object)) = schema else {
        return;
    };
    for (name, property) in &object.properties {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let value = defaults.get(name).unwrap_or(&Value::Null);
        if matches!(property, RefOr::T(Schema::Object(o)) if !o.properties.is_empty()) {
            collect(&key, property, value, keys);
            continue;
        }
        let property = merged(&serde_json::to_value(property).unwrap_or_default());
        let password = |v: &Value| v.get("format").and_then(Value::as_str) == Some("password");
        let secret =
            password(&property) || property.get("additionalProperties").is_some_and(password);
        keys.push(KeyDoc {
            key,
            kind: kind(&property),
            default: (!secret && !value.is_null()).then(|| value.to_string()),
            secret,
            description: property
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        });
    }
}

/// A property whose type is given with `allOf` (an inlined type plus the field's own
/// description) as one schema: the first type given wins, the last description.
fn merged(property: &Value) -> Value {
    let Some(parts) = property.get("allOf").and_then(Value::as_array) else {
        return property.clone();
    };
    let mut out = serde_json::Map::new();
    for part in parts.iter().chain(std::iter::once(property)) {
        for (k, v) in part.as_object().into_iter().flatten() {
            if k == "allOf" || (k == "type" && out.contains_key("type")) {
                continue;
            }
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

/// A property's type in words.
fn kind(property: &Value) -> String {
    if let Some(values) = property.get("enum").and_then(Value::as_array) {
        let values: Vec<String> = values.iter().map(Value::to_string).collect();
        return format!("one of {}", values.join(", "));
    }
    let types: Vec<&str> = match property.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let optional = types.contains(&"null");
    let base = match types.iter().find(|t| **t != "null").copied() {
        Some("array") => format!(
            "list of {}s",
            property
                .get("items")
                .map_or_else(|| "value".to_owned(), kind)
        ),
        Some("object") => format!(
            "map of {}s",
            property
                .get("additionalProperties")
                .map_or_else(|| "value".to_owned(), kind)
        ),
        Some(other) => other.to_owned(),
        None => "value".to_owned(),
    };
    if optional {
        format!("{base} (optional)")
    } else {
        base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key<'a>(keys: &'a [KeyDoc], name: &str) -> &'a KeyDoc {
        keys.iter()
            .find(|k| k.key == name)
            .unwrap_or_else(|| panic!("no key {name}"))
    }

    #[test]
    fn every_kernel_key_is_listed_with_its_default_type_and_description() {
        let keys = Settings::kernel_keys().unwrap();
        let port = key(&keys, "server.port");
        assert_eq!(port.default.as_deref(), Some("8080"));
        assert_eq!(port.kind, "integer");
        assert_eq!(port.env_var(), "TESSERA__SERVER__PORT");
        let origins = key(&keys, "http.cors_origins");
        assert_eq!(
            (origins.kind.as_str(), origins.default.as_deref()),
            ("list of strings", Some("[]"))
        );
        let nats = key(&keys, "bus.nats_url");
        assert_eq!(
            (nats.kind.as_str(), nats.default.as_deref()),
            ("string (optional)", None)
        );
        assert_eq!(key(&keys, "log.format").kind, r#"one of "pretty", "json""#);
        let secret = key(&keys, "auth.jwt_secret");
        assert!(secret.secret && secret.default.is_none());
        assert!(!keys.iter().any(|k| k.key.starts_with("modules")));
        assert_eq!(keys[0].key, "server.host", "in declaration order");
        for k in &keys {
            assert!(!k.description.is_empty(), "{} has no description", k.key);
        }
    }

    #[test]
    fn a_map_takes_one_environment_variable_per_entry() {
        let map = KeyDoc {
            key: "modules.patient.encryption_keys".into(),
            kind: "map of strings".into(),
            default: None,
            secret: true,
            description: String::new(),
        };
        assert_eq!(
            map.env_var(),
            "TESSERA__MODULES__PATIENT__ENCRYPTION_KEYS__<NAME>"
        );
    }
}
