//! What a request body may not contain whatever its type says.
//!
//! - [`Strict`]: a `serde` view of a parsed body that refuses a JSON array where a struct is
//!   expected. `serde_json::Value`'s own deserializer hands an array to a struct's
//!   `visit_seq` (derived structs accept their fields in order), so `[]` passed as a body whose
//!   fields all default was taken for "change nothing", and `[100, "EUR"]` for a price.
//! - [`unstorable`]: strings no database column can hold. PostgreSQL's `text` and `jsonb`
//!   refuse the NUL character (U+0000; the rest of Unicode is storable in UTF-8), and SQLite
//!   would store it for C-string readers to cut short. Checked on the whole body, so a NUL
//!   inside a free-form JSON field is caught too.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Error, Value};

use crate::error::FieldError;

pub(crate) const NUL_MESSAGE: &str = "must not contain the NUL character (U+0000)";

/// Names `field` without the NUL characters it may itself contain (an object key), so error
/// bodies stay storable and printable.
pub(crate) fn printable(field: &str) -> String {
    field.replace('\0', "\\u0000")
}

/// Every string (value or object key) of `value` that contains NUL, by its field path
/// (`description`, `items[0].name`; `$` for the body itself).
pub(crate) fn unstorable(value: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    walk(value, &mut String::new(), &mut errors);
    errors
}

fn walk(value: &Value, path: &mut String, errors: &mut Vec<FieldError>) {
    let here = |path: &str| {
        if path.is_empty() {
            "$".to_owned()
        } else {
            printable(path)
        }
    };
    match value {
        Value::String(s) if s.contains('\0') => {
            errors.push(FieldError::new(here(path), NUL_MESSAGE));
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                walk(item, path, errors);
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                if key.contains('\0') {
                    errors.push(FieldError::new(
                        here(path),
                        format!("the key {NUL_MESSAGE}"),
                    ));
                } else {
                    walk(item, path, errors);
                }
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// A parsed body seen through `serde`, refusing arrays for structs and surplus array
/// elements for tuples.
pub(crate) struct Strict<'a>(pub &'a Value);

impl<'de> Deserializer<'de> for Strict<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Array(items) => {
                let mut seq = Items(items.iter());
                let value = visitor.visit_seq(&mut seq)?;
                if seq.0.len() == 0 {
                    Ok(value)
                } else {
                    Err(de::Error::invalid_length(
                        items.len(),
                        &"fewer elements in the array",
                    ))
                }
            }
            Value::Object(map) => visitor.visit_map(Entries {
                iter: map.iter(),
                value: None,
            }),
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            Value::Object(_) => self.deserialize_any(visitor),
            other => Err(de::Error::invalid_type(unexpected(other), &"a JSON object")),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        // The API's enums are unit variants (strings); their payloads, if any, are lenient.
        self.0.deserialize_enum(name, variants, visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.0.deserialize_bytes(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.0.deserialize_byte_buf(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        unit unit_struct seq tuple tuple_struct map identifier
    }
}

fn unexpected(value: &Value) -> de::Unexpected<'_> {
    match value {
        Value::Null => de::Unexpected::Unit,
        Value::Bool(b) => de::Unexpected::Bool(*b),
        Value::Number(_) => de::Unexpected::Other("number"),
        Value::String(_) => de::Unexpected::Other("string"),
        Value::Array(_) => de::Unexpected::Seq,
        Value::Object(_) => de::Unexpected::Map,
    }
}

struct Items<'de>(std::slice::Iter<'de, Value>);

impl<'de> SeqAccess<'de> for Items<'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        self.0
            .next()
            .map(|v| seed.deserialize(Strict(v)))
            .transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct Entries<'de> {
    iter: serde_json::map::Iter<'de>,
    value: Option<&'de Value>,
}

impl<'de> MapAccess<'de> for Entries<'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some((key, value)) = self.iter.next() else {
            return Ok(None);
        };
        self.value = Some(value);
        seed.deserialize(de::value::BorrowedStrDeserializer::new(key))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let value = self
            .value
            .take()
            .ok_or_else(|| <Error as de::Error>::custom("a map value was read before its key"))?;
        seed.deserialize(Strict(value))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Money {
        amount: i64,
        currency: String,
    }

    #[derive(Debug, Deserialize, PartialEq, Default)]
    #[serde(deny_unknown_fields)]
    struct Patch {
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        price: Option<Money>,
        #[serde(default)]
        tags: Vec<String>,
        #[serde(default)]
        extra: Option<Value>,
    }

    fn parse<T: serde::de::DeserializeOwned>(v: &Value) -> Result<T, Error> {
        T::deserialize(Strict(v))
    }

    #[test]
    fn objects_and_arrays_of_the_right_shape_parse() {
        let v = json!({"name": "a", "price": {"amount": 1, "currency": "EUR"}, "tags": ["x"],
                       "extra": {"k": [1, null, "s"]}});
        let p: Patch = parse(&v).unwrap();
        assert_eq!(p.price.unwrap().amount, 1);
        assert_eq!(p.extra.unwrap(), json!({"k": [1, null, "s"]}));
        assert_eq!(parse::<(u8, u8)>(&json!([1, 2])).unwrap(), (1, 2));
        assert_eq!(parse::<Patch>(&json!({})).unwrap(), Patch::default());
    }

    #[test]
    fn an_array_is_not_a_struct_at_any_depth() {
        assert!(
            serde_json::from_value::<Patch>(json!([])).is_ok(),
            "serde's own leniency"
        );
        assert!(parse::<Patch>(&json!([])).is_err());
        assert!(parse::<Patch>(&json!({"price": [1, "EUR"]})).is_err());
        assert!(parse::<(u8, u8)>(&json!([1, 2, 3])).is_err());
    }

    #[test]
    fn nul_characters_are_found_with_their_paths() {
        let v = json!({"name": "a\u{0}", "items": [{"sku": "ok"}, {"sku": "b\u{0}c"}],
                       "k\u{0}": 1, "fine": "text"});
        let mut fields: Vec<String> = unstorable(&v).into_iter().map(|e| e.field).collect();
        fields.sort();
        assert_eq!(fields, ["items[1].sku", "k\\u0000", "name"]);
        assert_eq!(unstorable(&json!("\u{0}"))[0].field, "$");
        assert!(unstorable(&json!({"a": ["é", "\u{1F600}"]})).is_empty());
    }
}
