//! The mail worker: claims due messages from the queue and hands them to the transport (SMTP
//! through lettre, or `.eml` files in the outbox when no SMTP server is configured).
//!
//! A failed delivery is retried with exponential backoff (`retry_delay`) until it succeeds; mail
//! is never dropped. The worker sleeps until the next message falls due, the poll interval passes,
//! or a handler enqueues something (`Notify`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;
use tokio::sync::{watch, Notify};

use super::MailQueue;
use crate::config::{MailConfig, SmtpConfig, SmtpSecurity};
use crate::db::{self, Db};

/// How long a claimed message is reserved for one delivery attempt.
const LEASE: Duration = Duration::from_secs(120);

/// Where mail goes.
pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Outbox { transport: AsyncFileTransport<Tokio1Executor>, dir: PathBuf },
}

impl Transport {
    pub fn smtp(config: &SmtpConfig) -> anyhow::Result<Self> {
        let builder = match config.security {
            SmtpSecurity::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host),
            SmtpSecurity::StartTls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host).context("smtp.host is not a valid host for STARTTLS")?
            }
            SmtpSecurity::Tls => {
                AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host).context("smtp.host is not a valid host for TLS")?
            }
        };
        let mut builder = builder.port(config.port).timeout(Some(config.timeout));
        if let (Some(username), Some(password)) = (&config.username, &config.password) {
            builder = builder.credentials(Credentials::new(username.clone(), password.expose_secret().to_owned()));
        }
        Ok(Transport::Smtp(builder.build()))
    }

    pub fn outbox(dir: PathBuf) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create the outbox {}", dir.display()))?;
        Ok(Transport::Outbox { transport: AsyncFileTransport::new(&dir), dir })
    }

    pub fn describe(&self) -> String {
        match self {
            Transport::Smtp(_) => "SMTP".to_owned(),
            Transport::Outbox { dir, .. } => format!("the outbox {}", dir.display()),
        }
    }

    async fn send(&self, message: Message) -> anyhow::Result<()> {
        match self {
            Transport::Smtp(smtp) => smtp.send(message).await.map(drop).map_err(anyhow::Error::from),
            Transport::Outbox { transport, .. } => transport.send(message).await.map(drop).map_err(anyhow::Error::from),
        }
    }
}

/// Delay before attempt `attempts + 1`, given `attempts` failures so far: base, 2×base, 4×base, …
/// capped at `max`. With base 5 s and max 10 min: 5 s, 10 s, 20 s, …, 640 s → 600 s (see
/// `retry_delay_doubles_up_to_the_cap`).
pub fn retry_delay(attempts: u32, base: Duration, max: Duration) -> Duration {
    let factor = 2u32.saturating_pow(attempts.saturating_sub(1));
    base.checked_mul(factor).unwrap_or(max).min(max)
}

pub struct Worker {
    pub queue: MailQueue,
    pub db: Db,
    pub transport: Transport,
    pub from: Mailbox,
    pub config: MailConfig,
}

impl Worker {
    pub fn new(queue: MailQueue, db: Db, transport: Transport, config: MailConfig) -> anyhow::Result<Self> {
        let from: Mailbox = config.from.parse().context("mail.from is not a mailbox")?;
        Ok(Self { queue, db, transport, from, config })
    }

    /// Delivers until `shutdown` turns true. Errors are logged and retried, never fatal.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let notify: Arc<Notify> = self.queue.notifier();
        tracing::info!("mail worker delivering through {}", self.transport.describe());
        loop {
            if *shutdown.borrow() {
                return;
            }
            match self.deliver_one().await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => tracing::warn!("mail worker: {e:#}"),
            }
            let sleep_for = self.time_until_next_due().await;
            tokio::select! {
                _ = notify.notified() => {}
                _ = tokio::time::sleep(sleep_for) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    async fn time_until_next_due(&self) -> Duration {
        let next = self.db.run(db::mail::next_due_at).await.ok().flatten();
        let until_due = next.map(|at| (at - Utc::now()).to_std().unwrap_or(Duration::ZERO));
        until_due.map_or(self.config.poll_interval, |d| d.min(self.config.poll_interval)).max(Duration::from_millis(50))
    }

    /// Sends one due message if there is one; returns whether there was.
    pub async fn deliver_one(&self) -> anyhow::Result<bool> {
        let now = Utc::now();
        let lease_until = now + chrono::Duration::from_std(LEASE).expect("lease fits");
        let Some(mail) = self.db.run(move |conn| db::mail::claim_due(conn, now, lease_until)).await? else {
            return Ok(false);
        };
        let attempt = self.build(&mail.to_address, &mail.subject, mail.sealed_body.as_deref());
        let result = match attempt {
            Ok(message) => self.transport.send(message).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {
                self.db.run(move |conn| db::mail::mark_sent(conn, mail.id)).await?;
                tracing::info!(mail_id = mail.id, "mail delivered");
            }
            Err(e) => {
                let delay = retry_delay(mail.attempts as u32, self.config.retry_base, self.config.retry_max);
                let next_attempt_at = Utc::now() + chrono::Duration::from_std(delay).expect("delay fits");
                let error_text = format!("{e:#}");
                tracing::warn!(
                    mail_id = mail.id,
                    attempts = mail.attempts,
                    "mail delivery failed, retrying in {}: {error_text}",
                    orchestrator::duration::format(delay)
                );
                self.db.run(move |conn| db::mail::mark_failed(conn, mail.id, &error_text, next_attempt_at)).await?;
            }
        }
        Ok(true)
    }

    fn build(&self, to_address: &str, subject: &str, sealed_body: Option<&[u8]>) -> anyhow::Result<Message> {
        let body = self
            .queue
            .open_body(sealed_body.context("queued mail has no body")?)
            .context("cannot open the sealed mail body (was secret_key changed?)")?;
        let to: Mailbox = to_address.parse().with_context(|| format!("recipient `{to_address}` is not a mailbox"))?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .context("cannot build the message")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(attempts: u32, expected_secs: u64) {
        assert_eq!(
            retry_delay(attempts, Duration::from_secs(5), Duration::from_secs(600)),
            Duration::from_secs(expected_secs),
            "after {attempts} attempts"
        );
    }

    #[test]
    fn retry_delay_doubles_up_to_the_cap() {
        check(0, 5);
        check(1, 5);
        check(2, 10);
        check(3, 20);
        check(8, 600);
        check(40, 600);
    }
}
