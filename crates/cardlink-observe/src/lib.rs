//! What a running cardlink shows of itself.
//!
//! - [`metrics`]: every metric, registered and recorded in this one module
//!   (the pipeline and the replay path call it; nothing else names a
//!   metric).
//! - [`state`]: [`Observed`], the state the engine's thread publishes for
//!   the admin server: readiness of the partitions, consumer lag, and the
//!   channel of [`Query`]s.
//! - [`query`]: questions about offers and cards, answered on the thread
//!   that owns the offer book and the card stores, so that state is never
//!   shared between threads.
#![warn(missing_docs)]

pub mod metrics;
pub mod query;
pub mod state;

pub use query::{Answer, Ask, CardView, OfferView, Query, RewardView, offer_to_json};
pub use state::Observed;
