//! Stock reservations: the lines an order holds, checked and merged, and where a reservation
//! stands.

use std::{collections::BTreeMap, fmt};

use chrono::{DateTime, Utc};
use kernel_api::{error::FieldError, money::Money};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{ProductId, ReservationId, values::MAX_UNITS};

/// One line of a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReservationLine {
    /// The product to hold.
    pub product_id: ProductId,
    /// Units to hold, at least 1.
    pub quantity: i64,
}

/// Body of `POST /reservations`: hold every line or none, for reservation `id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReservationInput {
    /// The reservation's id (order uses the order id). Reserving again with the same id and
    /// lines returns the existing reservation.
    pub id: ReservationId,
    /// What to hold; a product listed twice is one line with the quantities summed.
    pub lines: Vec<ReservationLine>,
}

/// Valid reservation lines: not empty, positive quantities, one line per product (repeated
/// products are summed), ordered by product id so concurrent reservations lock rows in the
/// same order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationLines(Vec<ReservationLine>);

impl ReservationLines {
    /// # Errors
    /// Field errors for `lines` or `lines[i].quantity`.
    pub fn parse(lines: Vec<ReservationLine>) -> Result<Self, Vec<FieldError>> {
        if lines.is_empty() {
            return Err(vec![FieldError::new("lines", "must not be empty")]);
        }
        let mut errors = Vec::new();
        let mut merged: BTreeMap<ProductId, i64> = BTreeMap::new();
        for (i, line) in lines.iter().enumerate() {
            if !(1..=MAX_UNITS).contains(&line.quantity) {
                errors.push(FieldError::new(
                    format!("lines[{i}].quantity"),
                    format!("must be between 1 and {MAX_UNITS}"),
                ));
                continue;
            }
            let total = merged.entry(line.product_id).or_default();
            *total = total.saturating_add(line.quantity).min(MAX_UNITS);
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self(
            merged
                .into_iter()
                .map(|(product_id, quantity)| ReservationLine {
                    product_id,
                    quantity,
                })
                .collect(),
        ))
    }

    pub fn lines(&self) -> &[ReservationLine] {
        &self.0
    }
}

/// Where a reservation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReservationStatus {
    /// Stock is held.
    Active,
    /// Stock was returned to `available`.
    Released,
    /// Stock left the warehouse.
    Committed,
}

impl Reservation {
    /// Whether it holds exactly `wanted` (the same products and quantities).
    pub fn holds(&self, wanted: &ReservationLines) -> bool {
        self.lines.len() == wanted.lines().len()
            && self
                .lines
                .iter()
                .zip(wanted.lines())
                .all(|(held, want)| held.line() == *want)
    }
}

impl ReservationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Released => "released",
            Self::Committed => "committed",
        }
    }

    /// # Errors
    /// An unknown status name (a corrupt row).
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "active" => Ok(Self::Active),
            "released" => Ok(Self::Released),
            "committed" => Ok(Self::Committed),
            other => Err(format!("unknown reservation status {other:?}")),
        }
    }
}

impl fmt::Display for ReservationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of a reservation as held: the product as it was priced at that moment, so an
/// order can snapshot its items from the reservation alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReservedLine {
    /// The product held.
    pub product_id: ProductId,
    /// Its SKU when the stock was reserved.
    pub sku: String,
    /// Its name when the stock was reserved.
    pub name: String,
    /// Its price per unit when the stock was reserved.
    pub unit_price: Money,
    /// Units held.
    pub quantity: i64,
}

impl ReservedLine {
    /// The unpriced line: which product, how many units.
    pub fn line(&self) -> ReservationLine {
        ReservationLine {
            product_id: self.product_id,
            quantity: self.quantity,
        }
    }
}

/// Stock held for one order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Reservation {
    /// Reservation id (the order id for order's reservations).
    pub id: ReservationId,
    /// Where the reservation stands.
    pub status: ReservationStatus,
    /// What is held, one line per product (ordered by product id), each with the product's
    /// SKU, name and price at the moment it was reserved.
    pub lines: Vec<ReservedLine>,
    /// When it was made (UTC).
    pub created_at: DateTime<Utc>,
    /// When its status last changed (UTC).
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservation_lines_merge_repeats_and_reject_non_positive_quantities() {
        let a = ProductId::new();
        let b = ProductId::new();
        let lines = ReservationLines::parse(vec![
            ReservationLine {
                product_id: b,
                quantity: 1,
            },
            ReservationLine {
                product_id: a,
                quantity: 2,
            },
            ReservationLine {
                product_id: b,
                quantity: 3,
            },
        ])
        .unwrap();
        assert_eq!(
            lines.lines(),
            [
                ReservationLine {
                    product_id: a,
                    quantity: 2
                },
                ReservationLine {
                    product_id: b,
                    quantity: 4
                }
            ]
        );
        assert!(ReservationLines::parse(vec![]).is_err());
        let zero = ReservationLines::parse(vec![ReservationLine {
            product_id: a,
            quantity: 0,
        }]);
        assert_eq!(zero.unwrap_err()[0].field, "lines[0].quantity");
    }
}
