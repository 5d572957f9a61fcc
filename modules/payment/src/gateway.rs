//! The simulated card processor: deterministic answers for the well-known test numbers, so
//! development, demos and tests can produce every outcome without a real gateway.

use async_trait::async_trait;
use kernel::money::Money;
use payment_api::{Card, ChargeOutcome, PaymentGateway, PaymentId};

/// Declines with `card_declined`.
const DECLINED: &str = "4000000000000002";
/// Declines with `insufficient_funds`.
const INSUFFICIENT_FUNDS: &str = "4000000000009995";

/// Captures every card [`Card::parse`] accepted, except the test numbers above.
#[derive(Debug, Clone, Copy, Default)]
pub struct SimulatedGateway;

#[async_trait]
impl PaymentGateway for SimulatedGateway {
    async fn charge(
        &self,
        _payment: PaymentId,
        _amount: Money,
        card: &Card,
    ) -> anyhow::Result<ChargeOutcome> {
        let declined = |code: &str| ChargeOutcome::Declined { code: code.into() };
        Ok(match card.number() {
            DECLINED => declined("card_declined"),
            INSUFFICIENT_FUNDS => declined("insufficient_funds"),
            _ => ChargeOutcome::Captured,
        })
    }

    async fn refund(&self, _payment: PaymentId, _amount: Money) -> anyhow::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernel::money::Currency;
    use payment_api::CardInput;

    async fn charge(number: &str) -> ChargeOutcome {
        let input = CardInput {
            number: number.into(),
            exp_month: 12,
            exp_year: 2099,
            cvc: "123".into(),
        };
        let card = Card::parse(&input, chrono::Utc::now().date_naive()).unwrap();
        let amount = Money::new(100, Currency::parse("EUR").unwrap());
        SimulatedGateway
            .charge(PaymentId::new(), amount, &card)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn the_test_numbers_give_their_documented_outcomes() {
        assert_eq!(charge("4242424242424242").await, ChargeOutcome::Captured);
        assert_eq!(charge("5555555555554444").await, ChargeOutcome::Captured);
        assert_eq!(
            charge("4000000000000002").await,
            ChargeOutcome::Declined {
                code: "card_declined".into()
            }
        );
        assert_eq!(
            charge("4000 0000 0000 9995").await,
            ChargeOutcome::Declined {
                code: "insufficient_funds".into()
            }
        );
    }
}
