//! The product's own values, valid once built (SKU, name, description, price, units), and
//! the collector that names every bad field of a request at once.

use std::fmt;

use kernel_api::{error::FieldError, money::Money};
use serde::Serialize;

/// Largest stock or quantity accepted, far beyond any real inventory, so sums cannot overflow.
pub const MAX_UNITS: i64 = 1_000_000_000_000;

/// A stock-keeping unit: 1–64 letters (of any script), digits, `-`, `_` or `.`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sku(String);

impl Sku {
    /// # Errors
    /// A message saying what is wrong.
    pub fn parse(raw: &str) -> Result<Self, String> {
        kernel_api::text::identifier(raw, 64, &['-', '_', '.']).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A display name: 1–200 characters, no control characters, trimmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProductName(String);

impl ProductName {
    /// # Errors
    /// A message saying what is wrong.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        if s.is_empty() {
            return Err("must not be empty".into());
        }
        if s.chars().count() > 200 {
            return Err("must be at most 200 characters".into());
        }
        if s.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Free text up to 2000 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Description(String);

impl Description {
    /// # Errors
    /// A message saying what is wrong.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.chars().count() > 2000 {
            return Err("must be at most 2000 characters".into());
        }
        Ok(Self(raw.trim().to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

pub(crate) fn parse_price(price: Money) -> Result<Money, String> {
    if price.amount < 0 {
        Err("must not be negative".into())
    } else if price.amount > MAX_UNITS * 1000 {
        Err("is too large".into())
    } else {
        Ok(price)
    }
}

pub(crate) fn parse_units(units: i64) -> Result<i64, String> {
    if units < 0 {
        Err("must not be negative".into())
    } else if units > MAX_UNITS {
        Err(format!("must be at most {MAX_UNITS}"))
    } else {
        Ok(units)
    }
}

/// Collects field errors while parsing several fields, so one response names them all.
#[derive(Debug, Default)]
pub(crate) struct Fields(pub(crate) Vec<FieldError>);

impl Fields {
    pub(crate) fn check<T>(&mut self, field: &str, parsed: Result<T, String>) -> Option<T> {
        parsed
            .map_err(|message| self.0.push(FieldError::new(field, message)))
            .ok()
    }

    pub(crate) fn finish<T>(self, value: Option<T>) -> Result<T, Vec<FieldError>> {
        match value {
            Some(v) if self.0.is_empty() => Ok(v),
            _ => Err(self.0),
        }
    }
}
