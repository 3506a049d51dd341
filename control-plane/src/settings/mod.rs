//! System settings (API §9): `general`, `smtp` and `backup` sections, typed and validated,
//! stored one JSON document per section.

pub mod backup;
pub mod general;
pub mod smtp;
pub mod store;

use crate::api::ApiBuilder;

/// `GET`/`PUT /api/settings`, `/api/settings/smtp`, `/api/settings/backup`.
pub fn routes(api: ApiBuilder) -> ApiBuilder {
    let api = general::routes(api);
    let api = smtp::routes(api);
    backup::routes(api)
}
