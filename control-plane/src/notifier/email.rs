//! E-mail through the SMTP settings (lettre, tokio, rustls): one plain-text message per
//! recipient, a fresh connection per message (notifications are rare; no pool to go stale).

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use medgate_config::Settings;

use super::sealed::SealKey;
use crate::settings::smtp::{SmtpSettings, TlsMode};

/// One message to one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub body: String,
}

/// Why a message was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    #[error("SMTP is not configured (PUT /api/settings/smtp with a host and a sender)")]
    NotConfigured,
    #[error("{0}")]
    Settings(String),
    #[error("{message}")]
    Smtp {
        message: String,
        /// The server refused for good (a 5xx answer): resending the same will not help.
        permanent: bool,
    },
}

impl MailError {
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            MailError::Smtp {
                permanent: true,
                ..
            }
        )
    }
}

/// Checks a sender or recipient mailbox (`a@b.example` or `Name <a@b.example>`).
pub fn check_mailbox(text: &str) -> Result<(), &'static str> {
    if text.len() > 320 || text.chars().any(char::is_control) {
        return Err("must be a mailbox such as noreply@example.com or Name <noreply@example.com>");
    }
    text.parse::<Mailbox>()
        .map(|_| ())
        .map_err(|_| "must be a mailbox such as noreply@example.com or Name <noreply@example.com>")
}

/// Sends `mail` with `smtp`; Ok with the server's final answer (e.g. `250 OK`).
pub async fn send(
    settings: &Settings,
    smtp: &SmtpSettings,
    mail: &Mail,
) -> Result<String, MailError> {
    let (Some(host), Some(from)) = (smtp.host.as_deref(), smtp.from.as_deref()) else {
        return Err(MailError::NotConfigured);
    };
    let from: Mailbox = from
        .parse()
        .map_err(|e| MailError::Settings(format!("the sender {from:?} is not a mailbox: {e}")))?;
    let to: Mailbox = mail
        .to
        .parse()
        .map_err(|e| MailError::Settings(format!("{:?} is not a mailbox: {e}", mail.to)))?;
    let message = Message::builder()
        .from(from)
        .to(to)
        .subject(mail.subject.clone())
        .header(ContentType::TEXT_PLAIN)
        .body(mail.body.clone())
        .map_err(|e| MailError::Settings(format!("the message cannot be built: {e}")))?;
    let transport = transport(settings, smtp, host)?;
    match transport.send(message).await {
        Ok(response) => {
            let text: Vec<&str> = response.message().collect();
            Ok(format!("{} {}", response.code(), text.join(" "))
                .trim()
                .to_owned())
        }
        Err(e) => Err(MailError::Smtp {
            message: describe(&e, host, smtp.port),
            permanent: e.is_permanent(),
        }),
    }
}

fn transport(
    settings: &Settings,
    smtp: &SmtpSettings,
    host: &str,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, MailError> {
    let tls = match smtp.tls {
        TlsMode::None => Tls::None,
        TlsMode::Starttls => Tls::Required(tls_parameters(host)?),
        TlsMode::Tls => Tls::Wrapper(tls_parameters(host)?),
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(smtp.port)
        .tls(tls)
        .timeout(Some(Duration::from_secs(u64::from(smtp.timeout_secs))));
    if let (Some(user), Some(sealed)) = (&smtp.username, &smtp.password) {
        let key = SealKey::from_settings(settings, "the SMTP password")
            .map_err(|e| MailError::Settings(e.to_string()))?;
        let password = key.unseal(sealed).ok_or_else(|| {
            MailError::Settings(
                "the stored SMTP password cannot be decrypted (the server secret changed?): \
                 set it again with PUT /api/settings/smtp"
                    .into(),
            )
        })?;
        builder = builder.credentials(Credentials::new(user.clone(), password));
    }
    Ok(builder.build())
}

fn tls_parameters(host: &str) -> Result<TlsParameters, MailError> {
    TlsParameters::new(host.to_owned())
        .map_err(|e| MailError::Settings(format!("TLS cannot be set up for {host}: {e}")))
}

/// A one-line description of an SMTP failure naming the server.
fn describe(e: &lettre::transport::smtp::Error, host: &str, port: u16) -> String {
    let what = if e.is_timeout() {
        "did not answer in time"
    } else if e.is_permanent() {
        "refused the message"
    } else if e.is_transient() {
        "refused the message for now"
    } else if e.is_tls() {
        "could not set up TLS"
    } else {
        "could not be reached"
    };
    format!("the SMTP server {host}:{port} {what}: {e}")
}
