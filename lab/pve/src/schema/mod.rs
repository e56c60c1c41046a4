//! The official PVE API schema: path lookup and parameter validation.

mod formats;
mod index;
mod property_string;
mod validate;

pub(crate) use formats::full_match;
pub use index::ApiSchema;
pub use validate::{ParamErrors, validate_params};
