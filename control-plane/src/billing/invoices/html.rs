//! The printable HTML page of an invoice. Every value is escaped ([`escape`]): model names,
//! descriptions and notes come from clients and operators and are never markup.

use std::fmt::Write;

use super::Invoice;

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Currencies whose minor unit is the major unit (Stripe's zero-decimal list).
const ZERO_DECIMAL: &[&str] = &[
    "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV",
    "XAF", "XOF", "XPF",
];

/// An amount in minor units of `currency` written in major units (`-12.05`, or `1205` for
/// a zero-decimal currency). Exact: integer division only.
pub fn amount(minor: i64, currency: &str) -> String {
    if ZERO_DECIMAL.contains(&currency) {
        return minor.to_string();
    }
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// The whole page.
pub fn render(invoice: &Invoice, tenant_name: Option<&str>) -> String {
    let s = &invoice.summary;
    let e = |t: &str| escape(t);
    let opt = |t: &Option<String>| t.as_deref().map(escape).unwrap_or_else(|| "-".into());
    let title = s
        .invoice_number
        .clone()
        .unwrap_or_else(|| format!("Draft {}", s.id));
    let mut html = String::with_capacity(4096);
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Invoice {title}</title><style>body{{font-family:sans-serif;margin:2em}}\
         table{{border-collapse:collapse;width:100%}}td,th{{border-bottom:1px solid #ccc;\
         padding:4px 8px;text-align:left}}.num{{text-align:right}}\
         @media print{{body{{margin:0}}}}</style></head><body>\n\
         <h1>Invoice {title}</h1>\n<dl>\
         <dt>Tenant</dt><dd>{tenant} ({tenant_id})</dd>\
         <dt>Status</dt><dd>{status}</dd>\
         <dt>Period</dt><dd>{period} ({start} to {end})</dd>\
         <dt>Issued</dt><dd>{issued}</dd>\
         <dt>Currency</dt><dd>{currency}</dd></dl>\n",
        title = e(&title),
        tenant = e(tenant_name.unwrap_or("")),
        tenant_id = e(&s.tenant_id),
        status = e(s.status.as_str()),
        period = opt(&s.period),
        start = e(&s.period_start),
        end = e(&s.period_end),
        issued = opt(&s.issued_at),
        currency = e(&s.currency),
    );
    html.push_str(
        "<table><thead><tr><th>#</th><th>Description</th><th>Kind</th>\
         <th class=\"num\">Tokens</th><th class=\"num\">Requests</th>\
         <th class=\"num\">Amount</th></tr></thead><tbody>\n",
    );
    for l in &invoice.lines {
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            l.position,
            e(&l.description),
            e(l.kind.as_str()),
            l.quantity_tokens,
            l.requests,
            amount(l.amount_minor, &s.currency)
        );
    }
    let cur = e(&s.currency);
    let _ = write!(
        html,
        "</tbody></table>\n<table class=\"totals\">\
         <tr><th>Subtotal</th><td class=\"num\">{} {cur}</td></tr>\
         <tr><th>Credits</th><td class=\"num\">-{} {cur}</td></tr>\
         <tr><th>Tax ({} bps)</th><td class=\"num\">{} {cur}</td></tr>\
         <tr><th>Total</th><td class=\"num\"><strong>{} {cur}</strong></td></tr></table>\n\
         <p>Notes: {}</p>\n<p><small>Content hash: {}</small></p>\n</body></html>\n",
        amount(s.subtotal_minor, &s.currency),
        amount(s.credits_minor, &s.currency),
        s.tax_rate_bps,
        amount(s.tax_minor, &s.currency),
        amount(s.total_minor, &s.currency),
        opt(&s.notes),
        opt(&s.content_hash),
    );
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_formats_amounts_exactly() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(amount(0, "CNY"), "0.00");
        assert_eq!(amount(5, "CNY"), "0.05");
        assert_eq!(amount(-1205, "USD"), "-12.05");
        assert_eq!(amount(-1205, "JPY"), "-1205");
        assert_eq!(amount(i64::MIN, "CNY"), "-92233720368547758.08");
    }
}
