//! Cards as they arrive ([`CardInput`]) and once checked ([`Card`]).

use std::fmt;

use chrono::Datelike;
use kernel_api::error::FieldError;
use serde::Deserialize;
use utoipa::ToSchema;

/// A card as the client sends it. Deliberately not `Serialize`, and its `Debug` hides the
/// number and CVC.
#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardInput {
    /// Card number, 12–19 digits (spaces allowed); Luhn-checked.
    #[schema(example = "4242424242424242")]
    pub number: String,
    /// Expiry month, 1–12.
    #[schema(example = 12, minimum = 1, maximum = 12)]
    pub exp_month: u32,
    /// Expiry year, four digits.
    #[schema(example = 2030, minimum = 1000, maximum = 9999)]
    pub exp_year: i32,
    /// 3 or 4 digits.
    #[schema(example = "123")]
    pub cvc: String,
}

impl fmt::Debug for CardInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CardInput(<redacted>)")
    }
}

/// A checked card. The number and CVC are private and never printed.
#[derive(Clone)]
pub struct Card {
    number: String,
    cvc: String,
    brand: &'static str,
}

impl fmt::Debug for Card {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Card({} ****{})", self.brand, self.last4())
    }
}

impl Card {
    /// Checks the number (digits, length, Luhn), the expiry against `today` and the CVC.
    ///
    /// # Errors
    /// Field errors under `card.*`.
    pub fn parse(input: &CardInput, today: chrono::NaiveDate) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let number: String = input.number.chars().filter(|c| *c != ' ').collect();
        if !(12..=19).contains(&number.len()) || !number.bytes().all(|b| b.is_ascii_digit()) {
            errors.push(FieldError::new("card.number", "must be 12 to 19 digits"));
        } else if !luhn(&number) {
            errors.push(FieldError::new("card.number", "is not a valid card number"));
        }
        let month_ok = (1..=12).contains(&input.exp_month);
        if !month_ok {
            errors.push(FieldError::new(
                "card.exp_month",
                "must be a whole number between 1 and 12",
            ));
        }
        if !(1000..=9999).contains(&input.exp_year) {
            errors.push(FieldError::new(
                "card.exp_year",
                "must be a whole number between 1000 and 9999",
            ));
        } else if month_ok && (input.exp_year, input.exp_month) < (today.year(), today.month()) {
            errors.push(FieldError::new("card.exp_year", "the card has expired"));
        }
        if !(3..=4).contains(&input.cvc.len()) || !input.cvc.bytes().all(|b| b.is_ascii_digit()) {
            errors.push(FieldError::new("card.cvc", "must be 3 or 4 digits"));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let brand = brand(&number);
        Ok(Self {
            number,
            cvc: input.cvc.clone(),
            brand,
        })
    }

    /// The full number, for the gateway only.
    pub fn number(&self) -> &str {
        &self.number
    }

    /// The CVC, for the gateway only.
    pub fn cvc(&self) -> &str {
        &self.cvc
    }

    pub fn brand(&self) -> &'static str {
        self.brand
    }

    pub fn last4(&self) -> &str {
        &self.number[self.number.len() - 4..]
    }
}

fn luhn(number: &str) -> bool {
    let sum: u32 = number
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn brand(number: &str) -> &'static str {
    match number.as_bytes() {
        [b'4', ..] => "visa",
        [b'5', b'1'..=b'5', ..] => "mastercard",
        [b'3', b'4' | b'7', ..] => "amex",
        [b'6', ..] => "discover",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(number: &str, month: u32, year: i32, cvc: &str) -> CardInput {
        CardInput {
            number: number.into(),
            exp_month: month,
            exp_year: year,
            cvc: cvc.into(),
        }
    }

    fn today() -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(2026, 11, 22).unwrap()
    }

    #[test]
    fn test_cards_pass_luhn_and_show_only_brand_and_last4() {
        let card = Card::parse(&input("4242 4242 4242 4242", 12, 2030, "123"), today()).unwrap();
        assert_eq!((card.brand(), card.last4()), ("visa", "4242"));
        let printed = format!("{card:?} {:?}", input("4242424242424242", 1, 2030, "999"));
        assert!(
            !printed.contains("42424242") && !printed.contains("999"),
            "{printed}"
        );
        assert!(Card::parse(&input("4000000000000002", 1, 2027, "123"), today()).is_ok());
        assert!(Card::parse(&input("4000000000009995", 1, 2027, "123"), today()).is_ok());
    }

    #[test]
    fn bad_cards_name_each_field() {
        let errors = Card::parse(&input("4242424242424241", 13, 2030, "12"), today()).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["card.number", "card.exp_month", "card.cvc"]);
        let expired =
            Card::parse(&input("4242424242424242", 10, 2026, "123"), today()).unwrap_err();
        assert_eq!(expired[0].field, "card.exp_year");
        assert!(Card::parse(&input("4242424242424242", 11, 2026, "123"), today()).is_ok());
        let five_digits =
            Card::parse(&input("4242424242424242", 11, 20260, "123"), today()).unwrap_err();
        assert_eq!(
            five_digits[0],
            FieldError::new(
                "card.exp_year",
                "must be a whole number between 1000 and 9999"
            )
        );
    }
}
