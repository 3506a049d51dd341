//! `GET /api/notifications` and `POST /api/notifications/{id}/retry`.

use axum::extract::State;
use axum::response::Response;
use axum::Json;

use super::outbox::{self, Notification, NotificationQuery};
use crate::api::extract::{ApiPath, ApiQuery};
use crate::api::pagination::Page;
use crate::api::{ApiBuilder, AuditTarget, Endpoint};
use crate::auth::Access;
use crate::error::ApiResult;
use crate::state::AppState;
use crate::store;

pub fn routes(api: ApiBuilder) -> ApiBuilder {
    api.add(
        Endpoint::get(
            "/api/notifications",
            "notifications.list",
            "Every notification of the product (low balance, overage, alerts) with its \
             delivery state: attempts, last error, next attempt, per-channel outcomes",
        )
        .access(Access::PlatformRead)
        .resource("notification")
        .query::<NotificationQuery>()
        .response::<Page<Notification>>(),
        list,
    )
    .add(
        Endpoint::post(
            "/api/notifications/{id}/retry",
            "notifications.retry",
            "Queue a failed (or waiting) notification for delivery now, with a fresh series \
             of attempts; channels already delivered are not sent again",
        )
        .access(Access::PlatformAdmin)
        .resource("notification")
        .response::<Notification>(),
        retry,
    )
}

async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<NotificationQuery>,
) -> ApiResult<Json<Page<Notification>>> {
    Ok(Json(outbox::page(state.store(), &q).await?))
}

async fn retry(State(state): State<AppState>, ApiPath(id): ApiPath<String>) -> ApiResult<Response> {
    crate::validate::plain_id("id", &id, 128)?;
    let n = outbox::retry(state.store(), &id, &store::now()).await?;
    let target = AuditTarget::new(&n.id, n.tenant_id.as_deref())
        .with_details(serde_json::json!({ "kind": n.kind, "last_error": n.last_error }));
    Ok(target.attach(Json(n)))
}
