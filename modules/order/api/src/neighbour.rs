//! [`OrderService`] as a neighbour other modules declare (`kernel::neighbours!`): in
//! process when the order module is built in, else over HTTP.

use crate::OrderService;

kernel::neighbour!(
    dyn OrderService,
    module = "order",
    client = crate::client::HttpOrderService,
);
