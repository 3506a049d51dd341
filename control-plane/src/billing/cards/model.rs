//! What the card endpoints take and answer, and how rows become views.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::api::extract::present;
use crate::api::parse_time;
use crate::error::{ApiError, ApiResult};
use crate::store;
use crate::validate;

/// Largest face value of a card, in minor units (10^12: ten billion yuan).
pub const MAX_FACE_VALUE_MINOR: i64 = 1_000_000_000_000;

/// A card's state as shown. Stored states are `active`, `disabled` and `redeemed`;
/// `expired` is an active card whose `expires_at` has passed (derived when reading). A
/// disabled card stays `disabled` whatever its expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CardStatus {
    Active,
    Disabled,
    Redeemed,
    Expired,
}

impl CardStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CardStatus::Active => "active",
            CardStatus::Disabled => "disabled",
            CardStatus::Redeemed => "redeemed",
            CardStatus::Expired => "expired",
        }
    }

    /// The shown state of a stored one.
    pub fn shown(stored: &str, expires_at: Option<&str>, now: &str) -> ApiResult<CardStatus> {
        Ok(match stored {
            "active" if expires_at.is_some_and(|e| e <= now) => CardStatus::Expired,
            "active" => CardStatus::Active,
            "disabled" => CardStatus::Disabled,
            "redeemed" => CardStatus::Redeemed,
            other => return Err(ApiError::internal(format!("card status {other:?}"))),
        })
    }
}

/// A recharge card. Never carries the code: only its last 4 symbols.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct RechargeCard {
    pub id: String,
    /// The batch it was generated in; None for a card created alone.
    pub batch_id: Option<String>,
    /// Its position in the batch (0-based).
    pub batch_index: Option<i64>,
    /// The last 4 symbols of the code (3 data symbols and the check symbol).
    pub code_hint: String,
    pub face_value_minor: i64,
    pub currency: String,
    pub status: CardStatus,
    pub expires_at: Option<String>,
    pub redeemed_by_tenant: Option<String>,
    pub redeemed_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

pub(super) const CARD_COLUMNS: &str = "id, batch_id, batch_index, code_hint, face_value_minor, \
    currency, status, expires_at, redeemed_by_tenant, redeemed_at, created_at, updated_at";

impl RechargeCard {
    pub(super) fn from_row(row: &AnyRow, now: &str) -> ApiResult<RechargeCard> {
        let status: String = row.try_get("status")?;
        let expires_at: Option<String> = row.try_get("expires_at")?;
        Ok(RechargeCard {
            id: row.try_get("id")?,
            batch_id: row.try_get("batch_id")?,
            batch_index: row.try_get("batch_index")?,
            code_hint: row.try_get("code_hint")?,
            face_value_minor: row.try_get("face_value_minor")?,
            currency: row.try_get("currency")?,
            status: CardStatus::shown(&status, expires_at.as_deref(), now)?,
            expires_at,
            redeemed_by_tenant: row.try_get("redeemed_by_tenant")?,
            redeemed_at: row.try_get("redeemed_at")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

/// Body of `POST /api/recharge-cards`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CardCreate {
    /// 1 to 10^12 minor units.
    pub face_value_minor: i64,
    /// ISO 4217, e.g. `CNY`.
    pub currency: String,
    /// RFC 3339, in the future; none: the card never expires.
    pub expires_at: Option<String>,
}

/// Checked face value, currency and expiry (stored form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardTerms {
    pub face_value_minor: i64,
    pub currency: String,
    pub expires_at: Option<String>,
}

/// Checks the terms every new card shares.
pub fn check_terms(
    face_value_minor: i64,
    currency: &str,
    expires_at: Option<&str>,
) -> ApiResult<CardTerms> {
    if !(1..=MAX_FACE_VALUE_MINOR).contains(&face_value_minor) {
        return Err(ApiError::invalid(
            "face_value_minor",
            format!("must be between 1 and {MAX_FACE_VALUE_MINOR}"),
        ));
    }
    validate::currency("currency", currency)?;
    Ok(CardTerms {
        face_value_minor,
        currency: currency.to_owned(),
        expires_at: expires_at.map(future_time).transpose()?,
    })
}

/// An `expires_at` in stored form; 422 unless it is in the future.
pub fn future_time(text: &str) -> ApiResult<String> {
    let at = parse_time("expires_at", text)?;
    if at <= store::now() {
        return Err(ApiError::invalid("expires_at", "must be in the future"));
    }
    Ok(at)
}

/// Answer to `POST /api/recharge-cards`: the code is in this answer only.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct CardIssued {
    pub card: RechargeCard,
    /// `XXXX-XXXX-XXXX-XXXX-C`. Shown once; the store keeps only its HMAC.
    pub code: String,
}

/// What `PUT /api/recharge-cards/{id}` may set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CardSwitch {
    Active,
    Disabled,
}

/// Body of `PUT /api/recharge-cards/{id}`; omitted fields keep their value. A redeemed card
/// cannot change (409).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CardUpdate {
    /// Enable (`active`) or disable (`disabled`) the card.
    pub status: Option<CardSwitch>,
    /// A new expiry in the future, or `null` for none.
    #[serde(default, deserialize_with = "present")]
    pub expires_at: Option<Option<String>>,
}

/// Query of `GET /api/recharge-cards`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CardQuery {
    /// 1-based page number (default 1).
    pub page: Option<u32>,
    /// Items per page, 1 to 500 (default 50).
    pub page_size: Option<u32>,
    /// `active`, `disabled`, `redeemed` or `expired`.
    pub status: Option<CardStatus>,
    pub batch_id: Option<String>,
    pub currency: Option<String>,
    pub redeemed_by_tenant: Option<String>,
}
