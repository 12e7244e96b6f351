//! Push webhooks from GitHub, GitLab and Gitea: which forge sent a request, whether it is
//! authentic, and what was pushed. Pure: headers, body, the project's webhook secret, its branch
//! and whether the delivery id was seen before are passed in; no I/O, no clock.
//!
//! | forge  | authenticity                                        | event header            | delivery id            |
//! |--------|-----------------------------------------------------|-------------------------|------------------------|
//! | GitHub | `X-Hub-Signature-256: sha256=HEX(HMAC-SHA256(body))` | `X-GitHub-Event: push`  | `X-GitHub-Delivery`    |
//! | GitLab | `X-Gitlab-Token: SECRET` (compared in constant time) | `X-Gitlab-Event: Push Hook` | `X-Gitlab-Event-UUID` |
//! | Gitea  | `X-Gitea-Signature: HEX(HMAC-SHA256(body))`          | `X-Gitea-Event: push`   | `X-Gitea-Delivery`     |
//!
//! The order of checks is fixed: forge → authenticity → event → delivery id (replay) → payload →
//! branch. A tampered body fails authenticity before anything in it is read. A `ping` (GitHub's
//! first delivery) is answered as `Verdict::Ignored`, as is a push to another branch.

use sha2::{Digest, Sha256};

/// The forges Slipway understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forge {
    GitHub,
    GitLab,
    Gitea,
}

impl Forge {
    pub fn as_str(self) -> &'static str {
        match self {
            Forge::GitHub => "github",
            Forge::GitLab => "gitlab",
            Forge::Gitea => "gitea",
        }
    }

    /// The forge whose headers a request carries. Gitea also sends GitHub's and GitLab's headers
    /// for compatibility, so its own are looked at first.
    pub fn detect(header: impl Fn(&str) -> Option<String>) -> Option<Forge> {
        if header("x-gitea-event").is_some() {
            Some(Forge::Gitea)
        } else if header("x-gitlab-event").is_some() {
            Some(Forge::GitLab)
        } else if header("x-github-event").is_some() {
            Some(Forge::GitHub)
        } else {
            None
        }
    }
}

/// What a verified push delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    pub forge: Forge,
    pub delivery: String,
    pub branch: String,
    pub commit_sha: String,
    pub commit_message: String,
}

/// A request that is authentic but asks for nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Deploy(Push),
    /// Authentic, but not a push to the followed branch (a ping, another event, another branch,
    /// a branch deletion); the reason is shown to the forge.
    Ignored(String),
}

/// Why a webhook request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("the request carries no GitHub, GitLab or Gitea event header")]
    UnknownForge,
    #[error("the {0} webhook signature is missing")]
    MissingSignature(&'static str),
    #[error("the {0} webhook signature does not match the body and the project's secret")]
    BadSignature(&'static str),
    #[error("the {0} webhook has no delivery id")]
    MissingDelivery(&'static str),
    #[error("delivery {0:?} was already received (a replay)")]
    Replayed(String),
    #[error("the push payload is not valid: {0}")]
    BadPayload(String),
}

impl WebhookError {
    /// The stable error code of the API answer.
    pub fn code(&self) -> &'static str {
        match self {
            WebhookError::UnknownForge => "webhook_unknown_forge",
            WebhookError::MissingSignature(_) | WebhookError::BadSignature(_) => "webhook_bad_signature",
            WebhookError::MissingDelivery(_) => "webhook_no_delivery",
            WebhookError::Replayed(_) => "webhook_replayed",
            WebhookError::BadPayload(_) => "webhook_bad_payload",
        }
    }
}

/// HMAC-SHA256 (RFC 2104) of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// Equal without leaking where two byte strings first differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks a webhook request. `header` looks a header up by lower-case name; `seen(delivery)` says
/// whether that delivery id was received before for this project.
pub fn verify(
    header: impl Fn(&str) -> Option<String>,
    body: &[u8],
    secret: &str,
    followed_branch: &str,
    seen: impl Fn(&str) -> bool,
) -> Result<Verdict, WebhookError> {
    let forge = Forge::detect(&header).ok_or(WebhookError::UnknownForge)?;
    let name = forge.as_str();
    let authentic = match forge {
        Forge::GitHub => {
            let signature = header("x-hub-signature-256").ok_or(WebhookError::MissingSignature(name))?;
            let hex_part = signature.trim().strip_prefix("sha256=").ok_or(WebhookError::BadSignature(name))?;
            hex::decode(hex_part).is_ok_and(|given| constant_time_eq(&given, &hmac_sha256(secret.as_bytes(), body)))
        }
        Forge::Gitea => {
            let signature = header("x-gitea-signature").ok_or(WebhookError::MissingSignature(name))?;
            hex::decode(signature.trim()).is_ok_and(|given| constant_time_eq(&given, &hmac_sha256(secret.as_bytes(), body)))
        }
        Forge::GitLab => {
            let token = header("x-gitlab-token").ok_or(WebhookError::MissingSignature(name))?;
            constant_time_eq(token.as_bytes(), secret.as_bytes())
        }
    };
    if !authentic {
        return Err(WebhookError::BadSignature(name));
    }
    let event = match forge {
        Forge::GitHub => header("x-github-event"),
        Forge::GitLab => header("x-gitlab-event"),
        Forge::Gitea => header("x-gitea-event"),
    }
    .unwrap_or_default();
    let is_push = match forge {
        Forge::GitLab => event == "Push Hook",
        Forge::GitHub | Forge::Gitea => event == "push",
    };
    if !is_push {
        return Ok(Verdict::Ignored(format!("{name} event {event:?} is not a push")));
    }
    let delivery = match forge {
        Forge::GitHub => header("x-github-delivery"),
        Forge::GitLab => header("x-gitlab-event-uuid").or_else(|| header("idempotency-key")),
        Forge::Gitea => header("x-gitea-delivery"),
    }
    .filter(|id| !id.trim().is_empty())
    .ok_or(WebhookError::MissingDelivery(name))?;
    if seen(&delivery) {
        return Err(WebhookError::Replayed(delivery));
    }
    let payload: serde_json::Value = serde_json::from_slice(body).map_err(|e| WebhookError::BadPayload(e.to_string()))?;
    let git_ref = payload["ref"].as_str().ok_or_else(|| WebhookError::BadPayload("no `ref`".to_owned()))?;
    let Some(branch) = git_ref.strip_prefix("refs/heads/") else {
        return Ok(Verdict::Ignored(format!("{git_ref} is not a branch")));
    };
    if branch != followed_branch {
        return Ok(Verdict::Ignored(format!("a push to {branch}; this project follows {followed_branch}")));
    }
    let sha = payload["after"].as_str().or_else(|| payload["checkout_sha"].as_str()).unwrap_or_default();
    if sha.chars().all(|c| c == '0') {
        return Ok(Verdict::Ignored(format!("branch {branch} was deleted")));
    }
    if sha.len() < 7 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(WebhookError::BadPayload(format!("commit {sha:?} is not a SHA")));
    }
    // GitHub and Gitea send `head_commit`; GitLab lists `commits`, the newest last.
    let message = payload["head_commit"]["message"]
        .as_str()
        .or_else(|| payload["commits"].as_array().and_then(|commits| commits.iter().find(|c| c["id"] == sha)?["message"].as_str()))
        .unwrap_or_default();
    Ok(Verdict::Deploy(Push {
        forge,
        delivery,
        branch: branch.to_owned(),
        commit_sha: sha.to_ascii_lowercase(),
        commit_message: first_line(message),
    }))
}

/// The subject line of a commit message, at most 200 characters.
pub fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or_default().trim().chars().take(200).collect()
}

#[cfg(test)]
mod tests;
