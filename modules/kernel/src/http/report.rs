//! One 422 that names every offending field of a request, not serde's first.
//!
//! serde stops at the first problem. [`check`] asks it again and again: each time it names a
//! field, the field is reported in words taken from the input type's schema
//! ([`Schemas::describe`]) and then put right in the document — an unknown field removed, a
//! wrong optional field left out, a missing or wrong required one replaced by a stand-in of
//! the right shape ([`Schemas::stand_in`]) — until the document parses. The value that then
//! parses lets the module's own rules ([`Report::finish`]) judge every field that was sent
//! right; what they say about the stand-ins is dropped. serde stays the judge of what parses,
//! so the report never names a field the type would have accepted.
//!
//! Messages never repeat the value sent (it may be a card number), except where a type's own
//! parser says what it refused in words written for people ("\"euro\" is not an ISO 4217
//! currency code").

use std::{fmt::Display, marker::PhantomData};

use serde_json::Value;

use super::{
    schema::{Schemas, Step, field_name},
    words::one_of,
};
use crate::error::{ApiError, FieldError};

/// Where a checked request's fields are: a JSON body or a query string.
pub(crate) trait Document {
    /// Leaves out the field at `path`.
    fn remove(&mut self, path: &[Step]);
    /// Sets the field at `path` (its parent exists).
    fn set(&mut self, path: &[Step], value: Value);
}

/// A JSON body: a removed array element becomes `null` (its followers keep their index).
impl Document for Value {
    fn remove(&mut self, path: &[Step]) {
        let Some((last, parent)) = path.split_last() else {
            return;
        };
        match (at_mut(self, parent), last) {
            (Some(Value::Object(map)), Step::Key(key)) => {
                map.remove(key);
            }
            (Some(Value::Array(items)), Step::Index(i)) if *i < items.len() => {
                items[*i] = Value::Null;
            }
            _ => {}
        }
    }

    fn set(&mut self, path: &[Step], value: Value) {
        let Some((last, parent)) = path.split_last() else {
            *self = value;
            return;
        };
        match (at_mut(self, parent), last) {
            (Some(Value::Object(map)), Step::Key(key)) => {
                map.insert(key.clone(), value);
            }
            (Some(Value::Array(items)), Step::Index(i)) if *i < items.len() => {
                items[*i] = value;
            }
            _ => {}
        }
    }
}

fn at_mut<'a>(mut value: &'a mut Value, path: &[Step]) -> Option<&'a mut Value> {
    for step in path {
        value = match (value, step) {
            (Value::Object(map), Step::Key(key)) => map.get_mut(key)?,
            (Value::Array(items), Step::Index(i)) => items.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(value)
}

/// A request part read as `T` and checked field by field: [`super::Json`] (the body) or
/// [`super::Query`] (the query string). Extraction fails only for a part that cannot be read
/// at all; what is wrong with its fields is reported when the handler asks for the value,
/// together with what the module's rules say, in one 422.
#[derive(Debug)]
pub struct Checked<T, Part>(pub(crate) Report<T>, PhantomData<Part>);

impl<T, Part> Checked<T, Part> {
    pub(crate) fn new(report: Report<T>) -> Self {
        Self(report, PhantomData)
    }

    /// The value, or a 422 naming every offending field.
    ///
    /// # Errors
    /// The 422.
    pub fn into_inner(self) -> Result<T, ApiError> {
        self.parse(Ok)
    }

    /// The value converted by `rules` (the module's parse into its valid form), or one 422
    /// naming every offending field: those of the wrong shape and those `rules` refuses.
    ///
    /// # Errors
    /// The 422.
    pub fn parse<V>(
        self,
        rules: impl FnOnce(T) -> Result<V, Vec<FieldError>>,
    ) -> Result<V, ApiError> {
        self.0.finish(rules).map_err(ApiError::validation)
    }
}

/// The outcome of [`check`]: the parsed value, if the document (once put right) parses, and
/// the offending fields.
#[derive(Debug)]
pub(crate) struct Report<T> {
    pub value: Option<T>,
    pub errors: Vec<FieldError>,
    /// Fields that were reported or stood in for: the module's rules are not asked about
    /// them.
    pub covered: Vec<String>,
}

impl<T> Report<T> {
    /// A report of the fields found wrong before parsing (a NUL character, say): reported,
    /// and kept from the module's rules.
    pub(crate) fn with_errors(errors: Vec<FieldError>) -> Self {
        Self {
            value: None,
            covered: errors.iter().map(|e| e.field.clone()).collect(),
            errors,
        }
    }

    /// The value converted by `rules` (a module's domain rules), or every offending field:
    /// those of the wrong shape and those `rules` refuses among the others.
    ///
    /// # Errors
    /// Every offending field.
    pub(crate) fn finish<V>(
        self,
        rules: impl FnOnce(T) -> Result<V, Vec<FieldError>>,
    ) -> Result<V, Vec<FieldError>> {
        let Self {
            value,
            mut errors,
            covered,
        } = self;
        let Some(value) = value else {
            return Err(errors);
        };
        match rules(value) {
            Ok(valid) if errors.is_empty() => Ok(valid),
            Ok(_) => Err(errors),
            Err(more) => {
                for error in more {
                    let known = errors.iter().any(|e| e.field == error.field);
                    if !known && !covered.iter().any(|c| related(c, &error.field)) {
                        errors.push(error);
                    }
                }
                Err(errors)
            }
        }
    }
}

/// Whether one field contains the other (or is it): `price` and `price.amount`, `lines[2]`
/// and `lines[2].quantity`.
fn related(a: &str, b: &str) -> bool {
    let within = |inner: &str, outer: &str| {
        inner
            .strip_prefix(outer)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
    };
    within(a, b) || within(b, a)
}

/// What serde said was wrong.
enum Fault {
    Missing(String),
    Unknown(String),
    Variant(Vec<String>),
    Shape {
        expected: Option<String>,
        custom: Option<String>,
    },
}

impl Fault {
    fn read(message: &str) -> Self {
        let message = message.split(" at line ").next().unwrap_or(message);
        let named = |prefix: &str| {
            message
                .strip_prefix(prefix)
                .and_then(|rest| rest.split('`').next())
                .map(str::to_owned)
        };
        if let Some(name) = named("missing field `") {
            return Self::Missing(name);
        }
        if let Some(name) = named("unknown field `") {
            return Self::Unknown(name);
        }
        if message.starts_with("unknown variant `") {
            return Self::Variant(listed(message));
        }
        let builtin = ["invalid type: ", "invalid value: ", "invalid length "];
        if builtin.iter().any(|p| message.starts_with(p)) {
            let expected = message
                .rsplit_once(", expected ")
                .map(|(_, e)| e.to_owned());
            return Self::Shape {
                expected,
                custom: None,
            };
        }
        Self::Shape {
            expected: None,
            custom: Some(message.to_owned()),
        }
    }
}

/// The names serde lists after "expected" (``one of `a`, `b` ``, `` `a` or `b` ``).
fn listed(message: &str) -> Vec<String> {
    let Some((_, expected)) = message.split_once(", expected ") else {
        return Vec::new();
    };
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

fn steps(path: &serde_path_to_error::Path) -> Vec<Step> {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|segment| match segment {
            Segment::Seq { index } => Some(Step::Index(*index)),
            Segment::Map { key } => Some(Step::Key(key.clone())),
            Segment::Enum { .. } | Segment::Unknown => None,
        })
        .collect()
}

/// The most errors one response names; past that the rest of the document is not read.
const MAX_ERRORS: usize = 100;

/// Parses `document` as `parse` does, naming every offending field (see the module
/// documentation). `noun` names a field in messages ("field", "query parameter"); `rounds`
/// bounds how often the document is parsed (large documents get fewer rounds). `schemas`
/// describes the expected shape; it is built only for a document that does not parse.
pub(crate) fn check<T, D, E>(
    document: &mut D,
    schemas: impl Fn() -> Schemas,
    noun: &str,
    rounds: usize,
    parse: impl Fn(&D) -> Result<T, serde_path_to_error::Error<E>>,
) -> Report<T>
where
    D: Document,
    E: Display,
{
    let built = std::cell::OnceCell::new();
    let schemas = || built.get_or_init(&schemas);
    let mut tries = std::collections::HashMap::new();
    let mut report = Report {
        value: None,
        errors: Vec::new(),
        covered: Vec::new(),
    };
    for _ in 0..rounds.clamp(1, MAX_ERRORS) {
        let error = match parse(document) {
            Ok(value) => {
                report.value = Some(value);
                return report;
            }
            Err(error) => error,
        };
        let mut path = steps(error.path());
        let fault = Fault::read(&error.inner().to_string());
        match &fault {
            Fault::Missing(name) => path.push(Step::Key(name.clone())),
            Fault::Unknown(name) if path.last() != Some(&Step::Key(name.clone())) => {
                path.push(Step::Key(name.clone()));
            }
            _ => {}
        }
        let field = field_name(&path);
        let tries = tries.entry(field.clone()).or_insert(0_u8);
        *tries += 1;
        if *tries == 1 {
            report.errors.push(FieldError::new(
                field.clone(),
                message(&fault, &path, schemas(), noun),
            ));
            report.covered.push(field);
        }
        if path.is_empty() {
            // The document itself is of the wrong shape: nothing more to find.
            return report;
        }
        let optional = schemas().is_optional(&path);
        match (fault, *tries) {
            (Fault::Unknown(_), 1) => document.remove(&path),
            (_, 1) if optional => document.remove(&path),
            // Required, or left out and then found missing: a stand-in, once.
            (_, 1) | (_, 2) if optional || *tries == 1 => match schemas().stand_in(&path) {
                Some(value) => document.set(&path, value),
                None => return report,
            },
            _ => return report,
        }
    }
    report
}

fn message(fault: &Fault, path: &[Step], schemas: &Schemas, noun: &str) -> String {
    match fault {
        Fault::Missing(_) => "is required".to_owned(),
        Fault::Unknown(_) => {
            let known = schemas.field_names(&path[..path.len().saturating_sub(1)]);
            if known.is_empty() {
                format!("unknown {noun}")
            } else {
                format!("unknown {noun}; the {noun}s are: {}", known.join(", "))
            }
        }
        Fault::Variant(names) => one_of(names),
        Fault::Shape { .. } if path.is_empty() => {
            "the request body must be a JSON object".to_owned()
        }
        Fault::Shape { expected, custom } => {
            schemas.describe(path, expected.as_deref(), custom.as_deref())
        }
    }
}
