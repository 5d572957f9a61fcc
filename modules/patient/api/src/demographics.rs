//! A patient's checked personal data: medical record number, names, birth date, telecom and
//! postal address, each valid once built. Errors never repeat the value; `Debug` is redacted.

use chrono::NaiveDate;
use kernel_api::error::FieldError;

use crate::{
    parse::{Fields, not_in_future, redacted_debug, text},
    person::{Address, ContactPoint, TelecomSystem},
};

/// A medical record number: 1–64 letters (of any script), digits, `-`, `_`, `.` or `/`, unique among
/// patients. Compared exactly (case-sensitive).
#[derive(Clone, PartialEq, Eq)]
pub struct Mrn(String);

impl Mrn {
    /// # Errors
    /// A message saying what is wrong (never repeating the value).
    pub fn parse(raw: &str) -> Result<Self, String> {
        kernel_api::text::identifier(raw, 64, &['-', '_', '.', '/']).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A family name: 1–200 characters.
#[derive(Clone, PartialEq, Eq)]
pub struct FamilyName(String);

impl FamilyName {
    /// # Errors
    /// A message saying what is wrong.
    pub fn parse(raw: &str) -> Result<Self, String> {
        text(raw, 200).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form family-name search compares: lower case, so the search is
    /// case-insensitive.
    pub fn folded(&self) -> String {
        self.0.to_lowercase()
    }
}

/// Given names: at most 10, each 1–100 characters.
#[derive(Clone, PartialEq, Eq)]
pub struct GivenNames(Vec<String>);

impl GivenNames {
    /// # Errors
    /// Errors under `name.given[i]`.
    pub fn parse(raw: &[String]) -> Result<Self, Vec<FieldError>> {
        if raw.len() > 10 {
            return Err(vec![FieldError::new(
                "name.given",
                "at most 10 given names",
            )]);
        }
        let mut f = Fields::default();
        let names: Vec<Option<String>> = raw
            .iter()
            .enumerate()
            .map(|(i, n)| f.check(format!("name.given[{i}]"), text(n, 100)))
            .collect();
        f.finish(names.into_iter().collect::<Option<Vec<_>>>())
            .map(Self)
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }
}

/// A birth date, not in the future.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct BirthDate(NaiveDate);

impl BirthDate {
    /// # Errors
    /// When it is after `today`.
    pub fn parse(date: NaiveDate, today: NaiveDate) -> Result<Self, String> {
        not_in_future(date, today).map(Self)
    }

    pub fn date(self) -> NaiveDate {
        self.0
    }
}

/// Checked phone numbers and email addresses, at most 10.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Telecoms(Vec<ContactPoint>);

impl Telecoms {
    /// # Errors
    /// Errors under `telecom[i].value`.
    pub fn parse(raw: &[ContactPoint]) -> Result<Self, Vec<FieldError>> {
        if raw.len() > 10 {
            return Err(vec![FieldError::new("telecom", "at most 10 entries")]);
        }
        let mut f = Fields::default();
        let points: Vec<Option<ContactPoint>> = raw
            .iter()
            .enumerate()
            .map(|(i, point)| {
                let value = match point.system {
                    TelecomSystem::Phone => phone(&point.value),
                    TelecomSystem::Email => email(&point.value),
                };
                f.check(format!("telecom[{i}].value"), value)
                    .map(|value| ContactPoint {
                        system: point.system,
                        value,
                    })
            })
            .collect();
        f.finish(points.into_iter().collect::<Option<Vec<_>>>())
            .map(Self)
    }

    pub fn as_slice(&self) -> &[ContactPoint] {
        &self.0
    }
}

fn phone(raw: &str) -> Result<String, String> {
    const RULE: &str = "must be a phone number: 5 to 15 digits, optionally a leading '+', \
                        spaces, '-', '.' or parentheses";
    let s = raw.trim();
    let body = s.strip_prefix('+').unwrap_or(s);
    let digits = body.bytes().filter(u8::is_ascii_digit).count();
    let allowed = body
        .bytes()
        .all(|b| b.is_ascii_digit() || b" -.()".contains(&b));
    if allowed && (5..=15).contains(&digits) && s.len() <= 32 {
        Ok(s.to_owned())
    } else {
        Err(RULE.into())
    }
}

fn email(raw: &str) -> Result<String, String> {
    const RULE: &str = "must be an email address such as name@example.org";
    let s = raw.trim();
    let Some((local, domain)) = s.split_once('@') else {
        return Err(RULE.into());
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && !"@<>()[],;:\"\\".contains(c));
    let domain_ok = domain.len() <= 253
        && domain.contains('.')
        && domain.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    if local_ok && domain_ok && s.len() <= 254 {
        Ok(s.to_owned())
    } else {
        Err(RULE.into())
    }
}

/// A checked postal address with at least one part.
#[derive(Clone, PartialEq, Eq)]
pub struct PostalAddress(Address);

impl PostalAddress {
    /// # Errors
    /// Errors under `address.*`.
    pub fn parse(raw: &Address) -> Result<Self, Vec<FieldError>> {
        if raw.line.is_empty()
            && raw.city.is_none()
            && raw.postal_code.is_none()
            && raw.country.is_none()
        {
            return Err(vec![FieldError::new(
                "address",
                "must have at least one of line, city, postal_code or country",
            )]);
        }
        if raw.line.len() > 5 {
            return Err(vec![FieldError::new("address.line", "at most 5 lines")]);
        }
        let mut f = Fields::default();
        let line: Vec<Option<String>> = raw
            .line
            .iter()
            .enumerate()
            .map(|(i, l)| f.check(format!("address.line[{i}]"), text(l, 200)))
            .collect();
        let mut part = |name: &str, value: &Option<String>, max: usize| -> Option<String> {
            value
                .as_deref()
                .and_then(|v| f.check(format!("address.{name}"), text(v, max)))
        };
        let city = part("city", &raw.city, 100);
        let postal_code = part("postal_code", &raw.postal_code, 20);
        let country = part("country", &raw.country, 100);
        let line = line.into_iter().collect::<Option<Vec<_>>>();
        f.finish(line.map(|line| {
            Self(Address {
                line,
                city,
                postal_code,
                country,
            })
        }))
    }

    pub fn as_address(&self) -> &Address {
        &self.0
    }
}

redacted_debug!(
    Mrn,
    FamilyName,
    GivenNames,
    BirthDate,
    Telecoms,
    PostalAddress
);
