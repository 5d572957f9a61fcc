//! [`ProductService`] as a neighbour other modules declare (`kernel::neighbours!`): in
//! process when the product module is built in, else over HTTP.

use crate::ProductService;

kernel::neighbour!(
    dyn ProductService,
    module = "product",
    client = crate::client::HttpProductService,
);
