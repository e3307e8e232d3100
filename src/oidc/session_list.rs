//! A user's sessions (SPEC 11): list them, end one or all of them from one of them, and
//! the operator's list and end. A session ended on its own request has its provider
//! token revoked ([`super::revoke`]); sessions ended from elsewhere are only deleted:
//! their tokens are sealed with secrets only their own cookies hold.

use super::revoke::{RevokeDeps, revoke_session_tokens};
use crate::crypto;
use crate::error::ApiError;
use crate::session::{ListedSession, LoadedSession, SessionService};

/// What listing and ending sessions needs.
pub struct SessionListDeps<'a> {
    /// Sessions and their listing.
    pub sessions: &'a SessionService,
    /// Token revocation for the caller's own session (and the `sessions_ended` counter).
    pub revoke: RevokeDeps<'a>,
}

/// Which of the caller's sessions to end.
pub enum Which<'a> {
    /// The one with this listing id.
    One(&'a str),
    /// Every one, the caller's included.
    All,
}

/// What ending sessions did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    /// How many sessions ended.
    pub count: u64,
    /// Whether the caller's own session was among them (its cookie is to be cleared).
    pub current: bool,
}

/// The live sessions of the caller's provider and subject, newest first.
pub async fn list_own(
    deps: &SessionListDeps<'_>,
    caller: &LoadedSession,
) -> Result<Vec<ListedSession>, ApiError> {
    let record = &caller.record;
    deps.sessions
        .list(&record.provider, &record.subject, Some(&caller.ticket))
        .await
}

/// Ends `which` of the caller's sessions; an id that names none of them (another
/// user's, an ended or unknown one) is [`ApiError::NotFound`], all alike.
pub async fn end_own(
    deps: &SessionListDeps<'_>,
    caller: &LoadedSession,
    which: Which<'_>,
) -> Result<Ended, ApiError> {
    let record = &caller.record;
    let ended = match which {
        Which::One(id) => {
            match deps
                .sessions
                .delete_listed(&record.provider, &record.subject, id, Some(&caller.ticket))
                .await?
            {
                None => return Err(ApiError::NotFound),
                Some(0) => end_current(deps, caller).await?,
                Some(count) => Ended {
                    count,
                    current: false,
                },
            }
        }
        Which::All => {
            // Every session ends first; only then is the provider asked (up to 2 s).
            deps.sessions.delete(caller).await?;
            let others = deps
                .sessions
                .delete_by_subject(&record.provider, &record.subject)
                .await?;
            revoke_session_tokens(&deps.revoke, caller).await;
            Ended {
                count: 1 + others,
                current: true,
            }
        }
    };
    count(deps, "user", ended.count);
    Ok(ended)
}

/// The sessions of `provider` and `subject`, for an operator.
pub async fn admin_list(
    deps: &SessionListDeps<'_>,
    provider: &str,
    subject: &str,
) -> Result<Vec<ListedSession>, ApiError> {
    let listed = deps.sessions.list(provider, subject, None).await?;
    tracing::warn!(
        provider,
        subject_hash = %subject_hash(subject),
        count = listed.len(),
        "admin listed sessions"
    );
    Ok(listed)
}

/// Ends every session of `provider` and `subject`, for an operator; how many ended.
pub async fn admin_end(
    deps: &SessionListDeps<'_>,
    provider: &str,
    subject: &str,
) -> Result<u64, ApiError> {
    let ended = deps.sessions.delete_by_subject(provider, subject).await?;
    count(deps, "admin", ended);
    tracing::warn!(
        provider,
        subject_hash = %subject_hash(subject),
        count = ended,
        "admin ended sessions"
    );
    Ok(ended)
}

/// A short hash of a subject for logs: the same subject always logs alike, and the
/// log line does not name the user.
pub fn subject_hash(subject: &str) -> String {
    crypto::derive_name("log-subject", subject.as_bytes())
        .chars()
        .take(16)
        .collect()
}

async fn end_current(
    deps: &SessionListDeps<'_>,
    caller: &LoadedSession,
) -> Result<Ended, ApiError> {
    deps.sessions.delete(caller).await?;
    revoke_session_tokens(&deps.revoke, caller).await;
    Ok(Ended {
        count: 1,
        current: true,
    })
}

fn count(deps: &SessionListDeps<'_>, kind: &str, ended: u64) {
    deps.revoke
        .metrics
        .sessions_ended
        .with_label_values(&[kind])
        .inc_by(ended);
}
