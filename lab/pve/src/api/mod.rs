//! The HTTP face of the lab: PVE-shaped replies, request parameters, authentication.

pub(crate) mod auth;
pub(crate) mod params;
pub(crate) mod reply;
