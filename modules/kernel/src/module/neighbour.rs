//! Neighbours: the other modules' traits a module calls.
//!
//! A module declares them once, as a struct made with [`neighbours!`](crate::neighbours):
//!
//! ```
//! # use kernel::module::{Neighbour, Neighbours};
//! # pub trait ProductService: Send + Sync {}
//! # impl Neighbour for dyn ProductService {
//! #     const MODULE: &'static str = "product";
//! #     const TRAIT: &'static str = "ProductService";
//! #     fn remote(_: &str, _: &str, _: &kernel::auth::JwtKeys) -> anyhow::Result<std::sync::Arc<Self>> {
//! #         anyhow::bail!("not in this example")
//! #     }
//! # }
//! kernel::neighbours! {
//!     /// The modules order calls.
//!     pub struct OrderNeighbours {
//!         /// Prices each line from the catalog,
//!         /// reserves stock all-or-nothing.
//!         pub products: dyn ProductService,
//!     }
//! }
//!
//! let call = &OrderNeighbours::calls()[0];
//! assert_eq!((call.module, call.via), ("product", "ProductService"));
//! assert_eq!(
//!     call.purpose,
//!     "Prices each line from the catalog, reserves stock all-or-nothing."
//! );
//! ```
//!
//! The struct holds an `Arc<dyn ProductService>`; the macro also derives the module map's
//! edges from the field types ([`Neighbours::calls`], each with its doc comment as purpose)
//! and asks the binary for each field ([`Neighbours::resolve`]). The binary answers with the
//! in-process service of a built-in module, else the trait's HTTP client
//! ([`Neighbour::remote`]) when the neighbour's URL is configured, else an error saying what
//! to do. Each trait a module calls has an HTTP client: the module crate depends on the
//! neighbour's `-api` crate with its `client` feature.

use std::{
    any::{Any, TypeId},
    sync::Arc,
};

use anyhow::Context as _;

use crate::auth::JwtKeys;

#[doc(hidden)]
pub use anyhow;

/// A module trait other modules may call, implemented for `dyn XService` in its `-api` crate
/// behind the `client` feature (with [`neighbour!`](crate::neighbour)): a neighbour can always
/// be reached over HTTP, so a module that calls it enables that feature of the `-api` crate.
pub trait Neighbour: Send + Sync + 'static {
    /// The module that serves it (`product`).
    const MODULE: &'static str;
    /// The trait's name (`ProductService`).
    const TRAIT: &'static str;

    /// Its HTTP client for the service at `url`, calling as module `caller` with tokens signed
    /// by `keys`.
    ///
    /// # Errors
    /// A malformed URL, or an HTTP client that cannot be built.
    fn remote(url: &str, caller: &str, keys: &JwtKeys) -> anyhow::Result<Arc<Self>>;
}

/// A synchronous dependency: the calling module calls `module` through its trait `via`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub module: &'static str,
    pub via: &'static str,
    /// What for, from the doc comment of the neighbour's field.
    pub purpose: String,
}

impl Call {
    /// The call of `T`, for `purpose` given as doc comment lines.
    pub fn of<T: Neighbour + ?Sized>(purpose: &[&str]) -> Self {
        Self {
            module: T::MODULE,
            via: T::TRAIT,
            purpose: purpose
                .iter()
                .map(|line| line.trim())
                .filter(|line| !line.is_empty())
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

/// A module's neighbours: made by [`neighbours!`](crate::neighbours), or `()` for none.
pub trait Neighbours: Sized + Send + 'static {
    /// The traits it calls.
    fn calls() -> Vec<Call>;

    /// What module `caller` asks the binary for, one [`Wanted`] per neighbour: the binary
    /// checks them before it touches the database.
    fn wanted(caller: &'static str) -> Vec<Wanted>;

    /// Asks `resolver` for each neighbour of module `caller`.
    ///
    /// # Errors
    /// A neighbour that is neither built in nor configured by URL.
    fn resolve(caller: &'static str, resolver: &mut dyn Resolve) -> anyhow::Result<Self>;
}

impl Neighbours for () {
    fn calls() -> Vec<Call> {
        Vec::new()
    }

    fn wanted(_: &'static str) -> Vec<Wanted> {
        Vec::new()
    }

    fn resolve(_: &'static str, _: &mut dyn Resolve) -> anyhow::Result<Self> {
        Ok(())
    }
}

/// One neighbour a module asks the binary for.
#[derive(Debug, Clone, Copy)]
pub struct Wanted {
    /// The module asking (`order`).
    pub caller: &'static str,
    /// The module that serves the trait (`product`).
    pub module: &'static str,
    /// The trait (`ProductService`).
    pub via: &'static str,
    /// The `TypeId` of `dyn Trait`, the key of the built-in modules' services.
    pub id: TypeId,
    /// [`Neighbour::remote`], its client as `Arc<Arc<dyn Trait>>`.
    pub remote: RemoteFn,
}

/// See [`Wanted::remote`].
pub type RemoteFn = fn(&str, &str, &JwtKeys) -> anyhow::Result<Arc<dyn Any + Send + Sync>>;

fn remote<T: Neighbour + ?Sized>(
    url: &str,
    caller: &str,
    keys: &JwtKeys,
) -> anyhow::Result<Arc<dyn Any + Send + Sync>> {
    T::remote(url, caller, keys).map(|client| Arc::new(client) as Arc<dyn Any + Send + Sync>)
}

impl Wanted {
    pub fn of<T: Neighbour + ?Sized>(caller: &'static str) -> Self {
        Self {
            caller,
            module: T::MODULE,
            via: T::TRAIT,
            id: TypeId::of::<T>(),
            remote: remote::<T>,
        }
    }
}

/// The binary's side: finds what a module wants, as an `Arc<Arc<dyn Trait>>` (the in-process
/// service of a built-in module, or [`Wanted::remote`]).
pub trait Resolve {
    /// # Errors
    /// When the neighbour can be neither found nor reached, saying how to provide it.
    fn resolve(&mut self, wanted: &Wanted) -> anyhow::Result<Arc<dyn Any + Send + Sync>>;
}

/// Neighbour `T` of module `caller`, from `resolver`.
///
/// # Errors
/// As [`Resolve::resolve`].
pub fn resolve<T: Neighbour + ?Sized>(
    caller: &'static str,
    resolver: &mut dyn Resolve,
) -> anyhow::Result<Arc<T>> {
    let found = resolver.resolve(&Wanted::of::<T>(caller))?;
    found.downcast_ref::<Arc<T>>().cloned().with_context(|| {
        format!(
            "the binary answered the {caller} module's call for {} with another type",
            T::TRAIT
        )
    })
}

/// Declares a module's neighbours: a struct of `Arc<dyn Trait>` fields (each trait a
/// [`Neighbour`]) implementing [`Neighbours`]. Each field's doc comment is the purpose shown
/// in the module map.
#[macro_export]
macro_rules! neighbours {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[doc = $doc:literal])*
                $fvis:vis $field:ident: $trait:ty
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone)]
        $vis struct $name {
            $( $(#[doc = $doc])* $fvis $field: ::std::sync::Arc<$trait>, )*
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(stringify!($name)).finish_non_exhaustive()
            }
        }

        impl $crate::module::Neighbours for $name {
            fn calls() -> ::std::vec::Vec<$crate::module::Call> {
                ::std::vec![$( $crate::module::Call::of::<$trait>(&[$($doc),*]) ),*]
            }

            fn wanted(caller: &'static str) -> ::std::vec::Vec<$crate::module::Wanted> {
                ::std::vec![$( $crate::module::Wanted::of::<$trait>(caller) ),*]
            }

            fn resolve(
                caller: &'static str,
                resolver: &mut dyn $crate::module::Resolve,
            ) -> $crate::module::neighbour::anyhow::Result<Self> {
                Ok(Self {
                    $( $field: $crate::module::neighbour::resolve::<$trait>(caller, resolver)?, )*
                })
            }
        }
    };
}

/// Implements [`Neighbour`] for `dyn $trait` in its `-api` crate, behind its `client` feature:
/// `kernel::neighbour!(dyn ProductService, module = "product", client = crate::client::HttpProductService);`.
/// [`Neighbour::remote`] builds `$client` with `new(caller, keys, &RemoteConfig)`.
#[macro_export]
macro_rules! neighbour {
    (dyn $trait:ident, module = $module:literal, client = $client:path $(,)?) => {
        impl $crate::module::Neighbour for dyn $trait {
            const MODULE: &'static str = $module;
            const TRAIT: &'static str = stringify!($trait);

            fn remote(
                url: &str,
                caller: &str,
                keys: &$crate::auth::JwtKeys,
            ) -> $crate::module::neighbour::anyhow::Result<::std::sync::Arc<Self>> {
                let config = $crate::client::RemoteConfig::new(url);
                <$client>::new(caller, keys.clone(), &config)
                    .map(|client| ::std::sync::Arc::new(client) as ::std::sync::Arc<Self>)
            }
        }
    };
}
