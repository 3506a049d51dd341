//! `/api/docs`: a self-contained page that renders the OpenAPI document (no CDN, so it
//! works on machines without internet access).

pub const PAGE: &str = include_str!("docs.html");
