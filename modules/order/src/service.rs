//! The in-process [`OrderService`]: prices through the product trait, reserves stock, and
//! moves orders through their states.

use std::sync::Arc;

use async_trait::async_trait;
use kernel::{
    auth::{Principal, Role},
    db::BlockingStore,
    money::Money,
};
use order_api::{
    NewOrder, Order, OrderError, OrderId, OrderItem, OrderPage, OrderQuery, OrderService,
    OrderStatus, Transition,
};
use product_api::{ProductError, ProductService, ReservationId, ReservationLine, ReservationLines};

use crate::{
    domain,
    store::{Draft, Store},
};

pub(crate) struct LocalOrders {
    pub store: Store,
    pub products: Arc<dyn ProductService>,
    pub payment_timeout: chrono::Duration,
}

impl std::fmt::Debug for LocalOrders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalOrders").finish_non_exhaustive()
    }
}

impl LocalOrders {
    /// Snapshots each line's price and name from the catalog.
    async fn price(&self, order: &NewOrder) -> Result<(Vec<OrderItem>, Money), OrderError> {
        let mut items = Vec::with_capacity(order.items().len());
        let mut total: Option<Money> = None;
        for (index, line) in order.items().iter().enumerate() {
            let product = self
                .products
                .get(line.product_id)
                .await
                .map_err(|e| match e {
                    ProductError::NotFound(product_id) => {
                        OrderError::UnknownProduct { index, product_id }
                    }
                    other => product_failure(other),
                })?;
            let line_total = domain::line_total(product.price, line.quantity).ok_or_else(|| {
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
                product_id: product.id,
                sku: product.sku,
                name: product.name,
                unit_price: product.price,
                quantity: line.quantity,
                line_total,
            });
        }
        let total = total.ok_or_else(|| invalid("items", "must not be empty"))?;
        Ok((items, total))
    }
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

/// Customers see their own orders only; staff see all.
fn may_see(actor: &Principal, order: &Order) -> bool {
    actor.role != Role::Customer || order.customer == actor.sub
}

#[async_trait]
impl OrderService for LocalOrders {
    #[tracing::instrument(name = "order.place", skip_all, fields(lines = order.items().len()))]
    async fn place(&self, actor: &Principal, order: NewOrder) -> Result<Order, OrderError> {
        let (items, total) = self.price(&order).await?;
        let id = OrderId::new();
        let expires_at = kernel::time::now() + self.payment_timeout;
        let draft = Draft {
            id,
            customer: actor.sub.clone(),
            items,
            total,
            expires_at,
        };
        let d = draft.clone();
        self.store
            .write(move |s, c| s.insert_reserving(c, &d))
            .await?;
        let lines = ReservationLines::parse(
            draft
                .items
                .iter()
                .map(|i| ReservationLine {
                    product_id: i.product_id,
                    quantity: i.quantity,
                })
                .collect(),
        )
        .map_err(OrderError::Invalid)?;
        if let Err(e) = self.products.reserve(ReservationId(id.0), lines).await {
            // A definite "no" means nothing was reserved: the order never existed. Any other
            // failure (the product service unreachable, a lost answer) may have reserved: the
            // order stays `reserving`, and the expiry sweep cancels it, which releases
            // whatever was held.
            let definite = matches!(
                e,
                ProductError::InsufficientStock { .. } | ProductError::NotFound(_)
            );
            if definite {
                self.store.write(move |s, c| s.discard(c, id)).await?;
            }
            return Err(match e {
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
                    index: draft
                        .items
                        .iter()
                        .position(|i| i.product_id == product_id)
                        .unwrap_or(0),
                    product_id,
                },
                other => product_failure(other),
            });
        }
        self.store.write(move |s, c| s.confirm_placed(c, id)).await
    }

    #[tracing::instrument(name = "order.get", skip(self, actor))]
    async fn get(&self, actor: &Principal, id: OrderId) -> Result<Order, OrderError> {
        let order = self
            .store
            .run(move |_, c| crate::store::load(c, id))
            .await?;
        if may_see(actor, &order) {
            Ok(order)
        } else {
            Err(OrderError::NotFound(id))
        }
    }

    #[tracing::instrument(name = "order.list", skip_all)]
    async fn list(
        &self,
        actor: &Principal,
        mut query: OrderQuery,
    ) -> Result<OrderPage, OrderError> {
        if actor.role == Role::Customer {
            query.customer = Some(actor.sub.clone());
        }
        self.store.run(move |s, c| s.list(c, &query)).await
    }

    #[tracing::instrument(name = "order.transition", skip(self, actor))]
    async fn transition(
        &self,
        actor: &Principal,
        id: OrderId,
        transition: Transition,
    ) -> Result<Order, OrderError> {
        let order = self.get(actor, id).await?;
        let staff_only = transition != Transition::Cancel;
        if (staff_only && actor.role != Role::Admin)
            || !matches!(actor.role, Role::Admin | Role::Customer)
        {
            return Err(OrderError::Forbidden(format!(
                "Role {} may not have an order {}",
                actor.role,
                transition.verb()
            )));
        }
        let to =
            domain::next_status(order.status, transition).ok_or(OrderError::IllegalTransition {
                id,
                status: order.status,
                action: transition.verb(),
            })?;
        let reason = (to == OrderStatus::Cancelled).then(|| format!("cancelled by {}", actor.sub));
        self.store
            .write(move |s, c| s.change_status(c, &order, to, reason.clone()))
            .await
    }
}
