//! Delivers usage events to the control plane: batched, at-least-once, spooled to an
//! append-only file while the control plane is unreachable and replayed later. The control
//! plane ingests idempotently by request id, so a replay never counts twice.
//!
//! Nothing is lost on a graceful stop: the sink drains its queue into a last delivery attempt
//! and spools whatever could not be delivered.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use medgate_config::{UsageBatch, UsageEvent};
use tokio::sync::mpsc;

/// Where events go.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// `http://host:port` of the control plane; None keeps events in the spool only.
    pub control_plane_url: Option<String>,
    pub node_token: Option<String>,
    pub spool_path: PathBuf,
    pub batch_size: usize,
    pub flush_interval: Duration,
}

/// The request path's handle: never blocks, never drops.
#[derive(Debug, Clone)]
pub struct UsageSender {
    tx: mpsc::Sender<UsageEvent>,
    spool_path: PathBuf,
}

impl UsageSender {
    /// Queues an event; if the queue is full, appends it to the spool directly.
    pub fn send(&self, event: UsageEvent) {
        if let Err(
            mpsc::error::TrySendError::Full(event) | mpsc::error::TrySendError::Closed(event),
        ) = self.tx.try_send(event)
        {
            if let Err(e) = append_spool(&self.spool_path, std::slice::from_ref(&event)) {
                tracing::error!(error = %e, request_id = %event.request_id, "usage event could not be spooled");
            }
        }
    }
}

/// The delivering side, run as a background task.
pub struct UsageSink {
    rx: mpsc::Receiver<UsageEvent>,
    config: SinkConfig,
    http: reqwest::Client,
}

/// Creates the pair.
pub fn channel(config: SinkConfig) -> (UsageSender, UsageSink) {
    let (tx, rx) = mpsc::channel(100_000);
    let sender = UsageSender {
        tx,
        spool_path: config.spool_path.clone(),
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    (sender, UsageSink { rx, config, http })
}

impl UsageSink {
    /// Runs until `shutdown` resolves, then drains.
    pub async fn run(mut self, mut shutdown: impl std::future::Future<Output = ()> + Unpin) {
        let mut batch = Vec::with_capacity(self.config.batch_size);
        let mut tick = tokio::time::interval(self.config.flush_interval);
        let mut spool_check = tokio::time::interval(Duration::from_secs(2));
        loop {
            tokio::select! {
                event = self.rx.recv() => match event {
                    Some(e) => {
                        batch.push(e);
                        if batch.len() >= self.config.batch_size {
                            self.deliver(std::mem::take(&mut batch)).await;
                        }
                    }
                    None => break,
                },
                _ = tick.tick() => {
                    if !batch.is_empty() {
                        self.deliver(std::mem::take(&mut batch)).await;
                    }
                }
                _ = spool_check.tick() => self.replay_spool().await,
                () = &mut shutdown => break,
            }
        }
        self.rx.close();
        while let Ok(e) = self.rx.try_recv() {
            batch.push(e);
        }
        if !batch.is_empty() {
            self.deliver(batch).await;
        }
        self.replay_spool().await;
    }

    async fn deliver(&self, events: Vec<UsageEvent>) {
        if let Err(e) = self.post(&events).await {
            if let Delivery::Refused = e {
                self.isolate_refused(events).await;
                return;
            }
            let Delivery::Failed(e) = e else { return };
            tracing::warn!(error = %e, events = events.len(), "control plane unreachable; spooling usage events");
            if let Err(e) = append_spool(&self.config.spool_path, &events) {
                tracing::error!(error = %e, "usage events could not be spooled");
            }
        }
    }

    async fn post(&self, events: &[UsageEvent]) -> Result<(), Delivery> {
        let base = self
            .config
            .control_plane_url
            .as_deref()
            .ok_or_else(|| Delivery::Failed("no control plane configured".into()))?;
        for chunk in events.chunks(5_000) {
            let mut request =
                self.http
                    .post(format!("{base}/api/internal/usage"))
                    .json(&UsageBatch {
                        events: chunk.to_vec(),
                    });
            if let Some(token) = &self.config.node_token {
                request = request.bearer_auth(token);
            }
            let response = request
                .send()
                .await
                .map_err(|e| Delivery::Failed(e.to_string()))?;
            let status = response.status();
            if status == reqwest::StatusCode::UNPROCESSABLE_ENTITY
                || status == reqwest::StatusCode::BAD_REQUEST
            {
                return Err(Delivery::Refused);
            }
            if !status.is_success() {
                return Err(Delivery::Failed(format!("control plane answered {status}")));
            }
        }
        Ok(())
    }

    /// A batch the control plane refuses as invalid would be retried for ever: send its events
    /// one by one and set aside (in `<spool>.rejected.jsonl`) only the ones refused on their own.
    async fn isolate_refused(&self, events: Vec<UsageEvent>) {
        let rejected_path = self.config.spool_path.with_extension("rejected.jsonl");
        for event in events {
            match self.post(std::slice::from_ref(&event)).await {
                Ok(()) => {}
                Err(Delivery::Refused) => {
                    tracing::error!(request_id = %event.request_id, "usage event refused by the control plane; set aside");
                    if let Err(e) = append_spool(&rejected_path, std::slice::from_ref(&event)) {
                        tracing::error!(error = %e, "refused usage event could not be set aside");
                    }
                }
                Err(Delivery::Failed(_)) => {
                    if let Err(e) =
                        append_spool(&self.config.spool_path, std::slice::from_ref(&event))
                    {
                        tracing::error!(error = %e, "usage event could not be spooled");
                    }
                }
            }
        }
    }

    /// Sends the spool's events; the file is removed only after they are all accepted.
    async fn replay_spool(&self) {
        if self.config.control_plane_url.is_none() {
            return;
        }
        let path = &self.config.spool_path;
        let Ok(text) = tokio::fs::read_to_string(path).await else {
            return;
        };
        let events: Vec<UsageEvent> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if events.is_empty() {
            let _ = tokio::fs::remove_file(path).await;
            return;
        }
        match self.post(&events).await {
            Ok(()) => {
                // Events spooled meanwhile by the request path would be lost by a plain
                // delete: keep any line that arrived after the read.
                let now = tokio::fs::read_to_string(path).await.unwrap_or_default();
                let rest = now.get(text.len()..).unwrap_or_default().to_owned();
                let result = if rest.trim().is_empty() {
                    tokio::fs::remove_file(path).await
                } else {
                    tokio::fs::write(path, rest).await
                };
                if let Err(e) = result {
                    tracing::warn!(error = %e, "spool could not be trimmed; events will be replayed (idempotently)");
                }
                tracing::info!(events = events.len(), "spooled usage events delivered");
            }
            Err(Delivery::Refused) => {
                // Move the spool aside and sort its events out one by one.
                let _ = tokio::fs::remove_file(path).await;
                self.isolate_refused(events).await;
            }
            Err(Delivery::Failed(e)) => tracing::debug!(error = %e, "spool replay deferred"),
        }
    }
}

/// Why a delivery did not happen.
#[derive(Debug)]
enum Delivery {
    /// Network error or server fault: retry later.
    Failed(String),
    /// The control plane refused the batch as invalid (400/422).
    Refused,
}

/// Appends events as JSON lines and syncs the file.
pub fn append_spool(path: &std::path::Path, events: &[UsageEvent]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let mut text = String::new();
    for e in events {
        text.push_str(&serde_json::to_string(e).map_err(std::io::Error::other)?);
        text.push('\n');
    }
    file.write_all(text.as_bytes())?;
    file.sync_data()
}
