//! Parsing helpers the patient and clinical types share: redacted `Debug`, the collector that
//! names every bad field at once, and the rules for text and dates.

use chrono::{NaiveDate, Utc};
use kernel_api::error::FieldError;

/// `Debug` that prints only the type's name, for values holding personal data.
macro_rules! redacted_debug {
    ($($ty:ident),* $(,)?) => {
        $(
            impl std::fmt::Debug for $ty {
                fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str(concat!(stringify!($ty), "(<redacted>)"))
                }
            }
        )*
    };
}
pub(crate) use redacted_debug;

/// Collects field errors while parsing several fields, so one response names them all.
#[derive(Debug, Default)]
pub(crate) struct Fields(pub Vec<FieldError>);

impl Fields {
    pub fn check<T>(&mut self, field: impl Into<String>, parsed: Result<T, String>) -> Option<T> {
        parsed
            .map_err(|message| self.0.push(FieldError::new(field, message)))
            .ok()
    }

    pub fn nested<T>(&mut self, parsed: Result<T, Vec<FieldError>>) -> Option<T> {
        parsed.map_err(|errors| self.0.extend(errors)).ok()
    }

    pub fn finish<T>(self, value: Option<T>) -> Result<T, Vec<FieldError>> {
        match value {
            Some(v) if self.0.is_empty() => Ok(v),
            _ => Err(self.0),
        }
    }
}

/// Trimmed, non-empty, at most `max` characters, no control characters. FHIR strings may
/// not be empty or padded, so every text field goes through here.
pub(crate) fn text(raw: &str, max: usize) -> Result<String, String> {
    let s = raw.trim();
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    if s.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(s.to_owned())
}

/// Today in UTC: what "not in the future" is measured against.
pub fn today() -> NaiveDate {
    Utc::now().date_naive()
}

pub(crate) fn not_in_future(date: NaiveDate, today: NaiveDate) -> Result<NaiveDate, String> {
    if date > today {
        Err("must not be in the future".into())
    } else {
        Ok(date)
    }
}
