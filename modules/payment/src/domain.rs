//! Payment rules that need no database: what a refund does to a payment.

use payment_api::PaymentStatus;

/// A payment's refund state after a refund.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AfterRefund {
    /// Total given back, this refund included.
    pub refunded: i64,
    pub status: PaymentStatus,
    /// Whether everything captured has now been given back.
    pub full: bool,
}

/// Whether a payment in `status` holds captured money that can still be given back.
pub(crate) fn holds_money(status: PaymentStatus) -> bool {
    matches!(
        status,
        PaymentStatus::Succeeded | PaymentStatus::PartiallyRefunded
    )
}

/// What giving back `amount` more does to a payment of `total` of which `refunded` has been
/// given back already.
///
/// # Errors
/// Why it cannot be done, for people (it becomes the detail of a 409).
pub(crate) fn refund(
    status: PaymentStatus,
    total: i64,
    refunded: i64,
    amount: i64,
) -> Result<AfterRefund, String> {
    match status {
        PaymentStatus::Refunded => return Err("it has been refunded in full".into()),
        s if !holds_money(s) => return Err(format!("it is {}", s.as_str())),
        _ => {}
    }
    let left = total - refunded;
    if amount < 1 {
        return Err("a refund must be at least 1".into());
    }
    if amount > left {
        return Err(format!("{amount} is more than the {left} left to refund"));
    }
    let refunded = refunded + amount;
    let full = refunded == total;
    Ok(AfterRefund {
        refunded,
        status: if full {
            PaymentStatus::Refunded
        } else {
            PaymentStatus::PartiallyRefunded
        },
        full,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use PaymentStatus::*;

    #[test]
    fn a_partial_refund_then_the_rest_refunds_in_full() {
        let first = refund(Succeeded, 1000, 0, 300).unwrap();
        assert_eq!(
            first,
            AfterRefund {
                refunded: 300,
                status: PartiallyRefunded,
                full: false
            }
        );
        let rest = refund(first.status, 1000, first.refunded, 700).unwrap();
        assert_eq!(
            rest,
            AfterRefund {
                refunded: 1000,
                status: Refunded,
                full: true
            }
        );
    }

    #[test]
    fn more_than_is_left_is_refused() {
        let err = refund(PartiallyRefunded, 1000, 300, 701).unwrap_err();
        assert!(err.contains("700 left"), "{err}");
    }

    #[test]
    fn only_captured_money_can_be_given_back() {
        for status in [Processing, Failed, Refunded] {
            assert!(refund(status, 1000, 0, 1).is_err(), "{status:?}");
        }
        assert!(refund(Succeeded, 1000, 0, 0).is_err());
    }
}
