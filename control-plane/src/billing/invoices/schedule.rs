//! The monthly invoice run: once the month is over in a tenant's time zone, its invoice for
//! that month is drafted (the same generation as `POST /api/billing/invoices/generate`).
//! It runs every hour on the control plane holding the `billing.monthly_invoices` lease; a
//! tenant whose month has an invoice already (drafted by hand, or issued) is left alone, so an
//! operator's draft is never recomputed behind their back. Drafts are issued by operators.

use std::time::Duration;

use chrono::{DateTime, Months, Utc};
use medgate_config::TenantStatus;
use tokio::task::JoinHandle;

use super::generate::{self, GenerateRequest, Outcome};
use super::period;
use crate::error::ApiResult;
use crate::resource;
use crate::state::AppState;
use crate::tenants::Tenant;

/// How often the run looks for months that ended.
pub const INTERVAL: Duration = Duration::from_secs(3600);

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    /// New drafts.
    pub drafted: usize,
    /// Tenants whose last month has an invoice already.
    pub existing: usize,
    /// Tenants whose invoice could not be drafted (logged; tried again next run).
    pub failed: usize,
}

/// Drafts the invoice of the month before `now` (in each tenant's time zone) for every
/// tenant that was ever activated and is not terminated, unless it has one.
pub async fn draft_last_month(state: &AppState, now: DateTime<Utc>) -> ApiResult<RunReport> {
    let store = state.store();
    let mut report = RunReport::default();
    for tenant in resource::load_all::<Tenant>(store).await? {
        let billable = matches!(
            tenant.status,
            TenantStatus::Active | TenantStatus::Suspended
        );
        if !billable {
            continue;
        }
        let tz = period::tenant_tz(&tenant.timezone);
        let Some(last_month) = now.checked_sub_months(Months::new(1)) else {
            continue;
        };
        let month = period::month_of(last_month, tz)?;
        // Not before the tenant existed: its first month has no earlier invoice to draft.
        if tenant
            .activated_at
            .as_deref()
            .is_some_and(|a| a > month.end.as_str())
        {
            continue;
        }
        let has_one: bool = sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM invoices WHERE tenant_id = $1 AND period_start < $2 \
             AND period_end > $3",
        )
        .bind(tenant.id.clone())
        .bind(month.end.clone())
        .bind(month.start.clone())
        .fetch_one(store.reader())
        .await?
            > 0;
        if has_one {
            report.existing += 1;
            continue;
        }
        let request = GenerateRequest {
            tenant_id: tenant.id.clone(),
            period: month.label.clone(),
            period_start: None,
            period_end: None,
            tax_rate_bps: None,
        };
        match generate::generate(store, &request).await {
            Ok((_, Outcome::Created)) => report.drafted += 1,
            Ok(_) => report.existing += 1,
            Err(e) => {
                report.failed += 1;
                tracing::warn!(tenant = %tenant.id, error = %e, "monthly invoice not drafted");
            }
        }
    }
    Ok(report)
}

/// Runs [`draft_last_month`] every [`INTERVAL`], once cluster-wide.
pub fn spawn(state: AppState) -> JoinHandle<()> {
    crate::cluster::spawn_singleton(
        state,
        "billing.monthly_invoices",
        INTERVAL,
        |state| async move {
            match draft_last_month(&state, Utc::now()).await {
                Ok(r) if r.drafted > 0 || r.failed > 0 => {
                    tracing::info!(
                        drafted = r.drafted,
                        failed = r.failed,
                        "monthly invoices drafted"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "monthly invoice run failed"),
            }
        },
    )
}
