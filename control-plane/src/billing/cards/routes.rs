//! Routes of API §5.1 and §5.2: cards, batches and export. Platform admins manage; platform
//! admins and auditors (not bound to a tenant) read. No answer but a card's or batch's
//! creation and an export carries a plaintext code.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;

use super::batch_reads::{self, BatchDetail, BatchQuery};
use super::batches::{self, BatchCreate, BatchIssued, CardBatch};
use super::export::{self, ExportRequest};
use super::keys::{CardKeys, Seed};
use super::model::{check_terms, CardCreate, CardIssued, CardQuery, CardUpdate, RechargeCard};
use super::{single, RESOURCE};
use crate::api::extract::{ApiJson, ApiPath, ApiQuery};
use crate::api::pagination::Page;
use crate::api::{ApiBuilder, AuditTarget, Endpoint};
use crate::auth::{Access, Principal};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub fn routes(api: ApiBuilder) -> ApiBuilder {
    api.add(
        Endpoint::get(
            "/api/recharge-cards",
            "recharge_cards.list",
            "List recharge cards",
        )
        .access(Access::PlatformRead)
        .resource(RESOURCE)
        .query::<CardQuery>()
        .response::<Page<RechargeCard>>(),
        list,
    )
    .add(
        Endpoint::post(
            "/api/recharge-cards",
            "recharge_cards.create",
            "Create one recharge card (the code is in this answer only)",
        )
        .access(Access::PlatformAdmin)
        .resource(RESOURCE)
        .request::<CardCreate>()
        .response::<CardIssued>()
        .status(201),
        create,
    )
    .add(
        Endpoint::get(
            "/api/recharge-cards/batches",
            "recharge_cards.list_batches",
            "List card batches",
        )
        .access(Access::PlatformRead)
        .resource("card_batch")
        .query::<BatchQuery>()
        .response::<Page<CardBatch>>(),
        list_batches,
    )
    .add(
        Endpoint::get(
            "/api/recharge-cards/batches/{id}",
            "recharge_cards.get_batch",
            "Get a card batch with its cards counted by status",
        )
        .access(Access::PlatformRead)
        .resource("card_batch")
        .response::<BatchDetail>(),
        get_batch,
    )
    .add(
        Endpoint::post(
            "/api/recharge-cards/batch",
            "recharge_cards.create_batch",
            "Generate a batch of 1 to 100,000 cards at once (all or none; idempotent by the \
             Idempotency-Key header; the codes are in the first answer only)",
        )
        .access(Access::PlatformAdmin)
        .resource("card_batch")
        .request::<BatchCreate>()
        .response::<BatchIssued>()
        .status(201)
        .also_status(200),
        create_batch,
    )
    .add(
        Endpoint::post(
            "/api/recharge-cards/export",
            "recharge_cards.export",
            "Export a batch's codes as CSV (once; the last export erases the batch seed)",
        )
        .access(Access::PlatformAdmin)
        .resource("card_batch")
        .request::<ExportRequest>()
        .produces("text/csv"),
        export_batch,
    )
    .add(
        Endpoint::get(
            "/api/recharge-cards/{id}",
            "recharge_cards.get",
            "Get a recharge card",
        )
        .access(Access::PlatformRead)
        .resource(RESOURCE)
        .response::<RechargeCard>(),
        get,
    )
    .add(
        Endpoint::put(
            "/api/recharge-cards/{id}",
            "recharge_cards.update",
            "Enable or disable a card, or change its expiry (a redeemed card cannot change)",
        )
        .access(Access::PlatformAdmin)
        .resource(RESOURCE)
        .request::<CardUpdate>()
        .response::<RechargeCard>(),
        update,
    )
    .add(
        Endpoint::delete(
            "/api/recharge-cards/{id}",
            "recharge_cards.delete",
            "Delete an unredeemed card (a redeemed one stays: 409)",
        )
        .access(Access::PlatformAdmin)
        .resource(RESOURCE),
        delete,
    )
}

fn keys(state: &AppState) -> ApiResult<CardKeys> {
    CardKeys::from_settings(state.settings())
}

async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<CardQuery>,
) -> ApiResult<Json<Page<RechargeCard>>> {
    Ok(Json(single::list(state.store(), &q).await?))
}

async fn create(
    State(state): State<AppState>,
    ApiJson(input): ApiJson<CardCreate>,
) -> ApiResult<Response> {
    let terms = check_terms(
        input.face_value_minor,
        &input.currency,
        input.expires_at.as_deref(),
    )?;
    let issued = single::create(state.store(), &keys(&state)?, terms).await?;
    let details = serde_json::json!({
        "face_value_minor": issued.card.face_value_minor,
        "currency": issued.card.currency,
        "code_hint": issued.card.code_hint,
    });
    Ok(AuditTarget::new(&issued.card.id, None)
        .with_details(details)
        .attach((StatusCode::CREATED, Json(issued))))
}

async fn get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<RechargeCard>> {
    Ok(Json(single::get(state.store(), &id).await?))
}

async fn update(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(input): ApiJson<CardUpdate>,
) -> ApiResult<Response> {
    let card = single::update(state.store(), &id, input).await?;
    let details = serde_json::json!({
        "status": card.status,
        "expires_at": card.expires_at,
    });
    Ok(AuditTarget::new(&id, None)
        .with_details(details)
        .attach(Json(card)))
}

async fn delete(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    let card = single::delete(state.store(), &id).await?;
    let details = serde_json::json!({
        "batch_id": card.batch_id,
        "code_hint": card.code_hint,
        "status": card.status,
    });
    Ok(AuditTarget::new(&id, None)
        .with_details(details)
        .attach(StatusCode::NO_CONTENT))
}

async fn list_batches(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<BatchQuery>,
) -> ApiResult<Json<Page<CardBatch>>> {
    Ok(Json(batch_reads::list(state.store(), &q).await?))
}

async fn get_batch(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<BatchDetail>> {
    Ok(Json(batch_reads::detail(state.store(), &id).await?))
}

async fn create_batch(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    ApiJson(input): ApiJson<BatchCreate>,
) -> ApiResult<Response> {
    let header_key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| ApiError::invalid("Idempotency-Key", "must be visible ASCII"))?
                .to_owned(),
        ),
    };
    let batch = input.check(header_key)?;
    let issued = batches::create(
        state.store(),
        &keys(&state)?,
        batch,
        &principal.subject,
        Seed::random(),
    )
    .await?;
    let status = if issued.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let details = serde_json::json!({
        "count": issued.batch.count,
        "face_value_minor": issued.batch.face_value_minor,
        "currency": issued.batch.currency,
        "replayed": issued.replayed,
    });
    Ok(AuditTarget::new(&issued.batch.id, None)
        .with_details(details)
        .attach((status, Json(issued))))
}

async fn export_batch(
    State(state): State<AppState>,
    ApiJson(input): ApiJson<ExportRequest>,
) -> ApiResult<Response> {
    let exported = match keys(&state) {
        Ok(keys) => export::export(state.store(), &keys, &input.batch_id).await,
        Err(err) => Err(err),
    };
    let done = match exported {
        Ok(done) => done,
        // The failure is audited against the batch asked for.
        Err(err) => return Ok(AuditTarget::new(&input.batch_id, None).attach(err)),
    };
    let details = serde_json::json!({
        "cards": done.cards,
        "export_count": done.batch.export_count,
        "exports_left": done.batch.exports_left,
    });
    let disposition = format!("attachment; filename=\"{}.csv\"", done.batch.id);
    let headers = [
        (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
        (header::CONTENT_DISPOSITION, disposition),
        (header::CACHE_CONTROL, "no-store".to_owned()),
    ];
    Ok(AuditTarget::new(&done.batch.id, None)
        .with_details(details)
        .attach((headers, done.csv)))
}
