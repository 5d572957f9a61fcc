//! Placing an order: one call to product, which holds the stock and says at which prices.
//!
//! - **Product in this process, on this database** (it [admits](kernel::db::Db::admits)
//!   units of work): the reservation, the order and their events commit in one transaction
//!   ([`kernel::db::Db::unit`]). Nothing can be left half done, so there is nothing to undo.
//! - **Product over HTTP:** a transaction must not wait on the network, so placing takes
//!   steps, each committed: the order is stored as `reserving`, stock is reserved over HTTP,
//!   then the order is priced and made visible. A definite "no" discards the order; any other
//!   failure leaves it `reserving`, and the expiry sweep removes it and releases whatever was
//!   held.

use std::sync::Arc;

use kernel::{db::BlockingStore, money::Money};
use order_api::{NewOrder, Order, OrderError, OrderId, OrderItem};
use product_api::{
    ProductError, ProductService, Reservation, ReservationId, ReservationLine, ReservationLines,
};

use crate::{
    domain,
    store::{Draft, Placement, Store},
};

/// What `place` knows before asking product.
#[derive(Debug, Clone)]
pub(crate) struct Intent {
    pub placement: Placement,
    pub order: NewOrder,
}

impl Intent {
    fn lines(&self) -> Result<ReservationLines, OrderError> {
        ReservationLines::parse(
            self.order
                .items()
                .iter()
                .map(|i| ReservationLine {
                    product_id: i.product_id,
                    quantity: i.quantity,
                })
                .collect(),
        )
        .map_err(OrderError::Invalid)
    }

    fn reservation_id(&self) -> ReservationId {
        ReservationId(self.placement.id.0)
    }

    /// The order priced from what product reserved: each line at its reserved unit price.
    fn draft(&self, reservation: &Reservation) -> Result<Draft, OrderError> {
        let (items, total) = price(&self.order, reservation)?;
        let p = &self.placement;
        Ok(Draft {
            id: p.id,
            customer: p.customer.clone(),
            items,
            total,
            expires_at: p.expires_at,
            created_at: p.created_at,
        })
    }

    /// The order error for a failed reservation.
    fn refused(&self, e: ProductError) -> OrderError {
        match e {
            ProductError::InsufficientStock {
                product_id,
                requested,
                available,
            } => OrderError::InsufficientStock {
                product_id,
                requested,
                available,
            },
            ProductError::NotFound(product_id) => OrderError::UnknownProduct {
                index: self
                    .order
                    .items()
                    .iter()
                    .position(|i| i.product_id == product_id)
                    .unwrap_or(0),
                product_id,
            },
            other => product_failure(other),
        }
    }
}

/// Places the order in one transaction with its reservation (product joins the unit).
pub(crate) async fn in_one_commit(
    store: &Store,
    products: &Arc<dyn ProductService>,
    intent: Intent,
) -> Result<Order, OrderError> {
    let lines = intent.lines()?;
    let (s, p) = (store.clone(), products.clone());
    store
        .db()
        .unit(move || {
            let (store, products, intent, lines) =
                (s.clone(), p.clone(), intent.clone(), lines.clone());
            async move {
                let reservation = products
                    .reserve(intent.reservation_id(), lines)
                    .await
                    .map_err(|e| intent.refused(e))?;
                // A price that does not add up rolls the reservation back with the order.
                let draft = intent.draft(&reservation)?;
                store.write(move |s, c| s.insert_placed(c, &draft)).await
            }
        })
        .await
}

/// Places the order in committed steps around a reservation made over the network.
pub(crate) async fn in_steps(
    store: &Store,
    products: &Arc<dyn ProductService>,
    intent: Intent,
) -> Result<Order, OrderError> {
    let lines = intent.lines()?;
    let id = intent.placement.id;
    let placement = intent.placement.clone();
    store
        .write(move |s, c| s.insert_reserving(c, &placement))
        .await?;
    let reservation = match products.reserve(intent.reservation_id(), lines).await {
        Ok(reservation) => reservation,
        Err(e) => {
            // A definite "no" means nothing was reserved: the order never existed. Any other
            // failure (the product service unreachable, a lost answer) may have reserved: the
            // order stays `reserving`, and the expiry sweep removes it and releases whatever
            // was held.
            if matches!(
                e,
                ProductError::InsufficientStock { .. } | ProductError::NotFound(_)
            ) {
                discard(store, id).await?;
            }
            return Err(intent.refused(e));
        }
    };
    let draft = match intent.draft(&reservation) {
        Ok(draft) => draft,
        Err(refused) => {
            // Held but unpriceable (currencies that do not add up): give the stock back.
            if let Err(e) = products.release(intent.reservation_id()).await {
                tracing::warn!(order = %id, error = %e, "could not release the stock of a refused order; the expiry sweep will");
                return Err(refused);
            }
            discard(store, id).await?;
            return Err(refused);
        }
    };
    store.write(move |s, c| s.confirm_placed(c, &draft)).await
}

async fn discard(store: &Store, id: OrderId) -> Result<(), OrderError> {
    store.write(move |s, c| s.discard(c, id)).await
}

/// Each line at the unit price product reserved it for, and the order's total.
fn price(
    order: &NewOrder,
    reservation: &Reservation,
) -> Result<(Vec<OrderItem>, Money), OrderError> {
    let mut items = Vec::with_capacity(order.items().len());
    let mut total: Option<Money> = None;
    for (index, line) in order.items().iter().enumerate() {
        let held = reservation
            .lines
            .iter()
            .find(|held| held.product_id == line.product_id)
            .ok_or_else(|| {
                product_failure(ProductError::Unexpected(anyhow::anyhow!(
                    "the reservation of order {} lacks product {}",
                    reservation.id,
                    line.product_id
                )))
            })?;
        let line_total = domain::line_total(held.unit_price, line.quantity).ok_or_else(|| {
            invalid(
                format!("items[{index}].quantity"),
                "makes the line total too large",
            )
        })?;
        let sum = match total {
            None => line_total,
            Some(t) if t.currency != line_total.currency => {
                return Err(invalid(
                    "items",
                    "all products of an order must be priced in one currency",
                ));
            }
            Some(t) => Money::new(
                t.amount
                    .checked_add(line_total.amount)
                    .ok_or_else(|| invalid("items", "the order total is too large"))?,
                t.currency,
            ),
        };
        total = Some(sum);
        items.push(OrderItem {
            product_id: held.product_id,
            sku: held.sku.clone(),
            name: held.name.clone(),
            unit_price: held.unit_price,
            quantity: line.quantity,
            line_total,
        });
    }
    let total = total.ok_or_else(|| invalid("items", "must not be empty"))?;
    Ok((items, total))
}

fn invalid(field: impl Into<String>, message: &str) -> OrderError {
    OrderError::Invalid(vec![kernel::error::FieldError::new(field, message)])
}

fn product_failure(e: ProductError) -> OrderError {
    match e {
        ProductError::Unexpected(source) => OrderError::Unexpected(source),
        ProductError::Unavailable(unavailable) => OrderError::Unavailable(unavailable),
        other => OrderError::Unexpected(anyhow::anyhow!("product: {other}")),
    }
}
