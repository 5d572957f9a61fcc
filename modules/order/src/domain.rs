//! Pure rules of the order module: the state machine and pricing.

use kernel::money::Money;
use order_api::{OrderStatus, Transition};

/// The status an order moves to, or `None` when the transition is illegal from `from`.
pub(crate) fn next_status(from: OrderStatus, transition: Transition) -> Option<OrderStatus> {
    use OrderStatus::*;
    match (from, transition) {
        (PendingPayment | Paid, Transition::Cancel) => Some(Cancelled),
        (Paid, Transition::Ship) => Some(Shipped),
        (Shipped, Transition::Deliver) => Some(Delivered),
        _ => None,
    }
}

/// `unit × quantity`, or `None` on overflow.
pub(crate) fn line_total(unit: Money, quantity: i64) -> Option<Money> {
    unit.amount
        .checked_mul(quantity)
        .map(|amount| Money::new(amount, unit.currency))
}

#[cfg(test)]
mod tests {
    use super::*;
    use OrderStatus::*;

    #[test]
    fn only_the_documented_transitions_are_legal() {
        let all = [PendingPayment, Paid, Shipped, Delivered, Cancelled];
        let legal: Vec<_> = all
            .iter()
            .flat_map(|&s| {
                [Transition::Cancel, Transition::Ship, Transition::Deliver]
                    .into_iter()
                    .filter_map(move |t| next_status(s, t).map(|to| (s, to)))
            })
            .collect();
        assert_eq!(
            legal,
            [
                (PendingPayment, Cancelled),
                (Paid, Cancelled),
                (Paid, Shipped),
                (Shipped, Delivered)
            ]
        );
    }

    #[test]
    fn line_totals_refuse_to_overflow() {
        let eur = kernel::money::Currency::parse("EUR").unwrap();
        assert_eq!(line_total(Money::new(250, eur), 4).unwrap().amount, 1000);
        assert!(line_total(Money::new(i64::MAX / 2, eur), 3).is_none());
    }
}
