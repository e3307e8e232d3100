//! Sessions on top of the key-value store: create, load (with idle and absolute expiry and
//! a throttled idle-timer touch), delete, the back-channel `(provider, sid|sub)` indexes, and
//! the session list beside the subject index (SPEC 11, `listing.rs`).

mod listing;
mod record;
mod slots;
mod ticket;

pub use listing::{ListedSession, browser_label};
pub use record::{
    AccessTokenEntry, Profile, ProviderTokens, SessionRecord, StoredProfile, StoredTokens,
};
pub use slots::{
    LOGIN_SECRET_LEN, LoginSecret, MAX_LOGIN_COOKIE_VALUE, PendingLoginRefused, PendingLogins,
    SealedSlots,
};
pub use ticket::{SessionTicket, session_keys};

use std::time::Duration;

use crate::clock::unix_now_ms;
use crate::crypto;
use crate::error::ApiError;
use crate::observed_store::ObservedStore;
use crate::store::KeyValueStore;

/// How many session records one store read checks when a subject's sessions are listed:
/// a subject with thousands of sessions costs several bounded reads (MGET), not one
/// reply of megabytes that holds Redis up for everyone else.
const LISTED_RECORDS_PER_READ: usize = 100;

/// A session as a request sees it.
#[derive(Debug, Clone)]
pub struct LoadedSession {
    /// The cookie's ticket.
    pub ticket: SessionTicket,
    /// The stored record.
    pub record: SessionRecord,
    /// Unix seconds when the session ends if it stays idle (rounded down).
    pub expires_at: i64,
}

/// Creates, loads and ends sessions.
#[derive(Clone)]
pub struct SessionService {
    store: ObservedStore,
    prefix: String,
    idle_timeout_ms: i64,
    max_lifetime_ms: i64,
    touch_interval_ms: i64,
}

impl SessionService {
    /// A service over `store`, keys under `prefix`.
    pub fn new(
        store: ObservedStore,
        prefix: &str,
        idle_timeout: Duration,
        max_lifetime: Duration,
    ) -> Self {
        let idle_timeout_ms = millis(idle_timeout);
        Self {
            store,
            prefix: prefix.to_owned(),
            idle_timeout_ms,
            max_lifetime_ms: millis(max_lifetime),
            // Re-saving on every request costs a write per read (FIELD-NOTES): the idle timer
            // moves at most once a minute, or once per tenth of a short idle timeout.
            touch_interval_ms: (idle_timeout_ms / 10).clamp(1, 60_000),
        }
    }

    /// Stores `record` under a brand-new ticket and indexes it for back-channel logout,
    /// listed with an unknown browser (see [`Self::create_listed`]).
    pub async fn create(&self, record: &SessionRecord) -> Result<SessionTicket, ApiError> {
        self.create_listed(record, &browser_label(None)).await
    }

    /// Stores `record` under a brand-new ticket, indexes it for back-channel logout and
    /// lists it (SPEC 11) with `browser` (a label from [`browser_label`]).
    pub async fn create_listed(
        &self,
        record: &SessionRecord,
        browser: &str,
    ) -> Result<SessionTicket, ApiError> {
        let ticket = SessionTicket::generate()?;
        let member = ticket.storage_name();
        let key = format!("{}{member}", session_keys(&self.prefix));
        let sealed = self.seal(&ticket, &key, record)?;
        let ttl = self.remaining(record, record.last_touch_ms);
        self.store.set(&key, &sealed, ttl).await?;
        // Listed until the session's hard end: the idle timer may move it earlier, never
        // later, so the index never forgets a live session.
        let listed_until = record.created_at_ms.saturating_add(self.max_lifetime_ms);
        if let Some(sid) = &record.sid {
            let index = self.sid_index(&record.provider, sid);
            self.store.index_add(&index, &member, listed_until).await?;
        }
        let (index, listing) = self.subject_keys(&record.provider, &record.subject);
        let entry =
            listing::encode_entry(record.last_touch_ms / 1000, record.created_at_ms, browser);
        self.store
            .listing_add(&index, &listing, &member, listed_until, &entry)
            .await?;
        Ok(ticket)
    }

    /// Loads the session of `ticket`: `None` when it does not exist, cannot be opened with
    /// the ticket's secret, or has passed its idle timeout or maximum lifetime.
    pub async fn load(&self, ticket: SessionTicket) -> Result<Option<LoadedSession>, ApiError> {
        let key = ticket.storage_key(&self.prefix);
        let sealed = self.store.get(&key).await?;
        self.open(ticket, key, sealed).await
    }

    /// [`Self::load`], and in the same store round trip the raw value under `also` (e.g.
    /// the cached token a request is about to hand out): one read instead of two.
    pub async fn load_with(
        &self,
        ticket: SessionTicket,
        also: &str,
    ) -> Result<(Option<LoadedSession>, Option<Vec<u8>>), ApiError> {
        let key = ticket.storage_key(&self.prefix);
        let mut values = self.store.get_many(&[&key, also]).await?.into_iter();
        let sealed = values.next().flatten();
        let other = values.next().flatten();
        Ok((self.open(ticket, key, sealed).await?, other))
    }

    async fn open(
        &self,
        ticket: SessionTicket,
        key: String,
        sealed: Option<Vec<u8>>,
    ) -> Result<Option<LoadedSession>, ApiError> {
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        let Some(mut record) = crypto::open(ticket.secret(), key.as_bytes(), sealed)
            .and_then(|plain| SessionRecord::decode(&plain))
        else {
            return Ok(None);
        };
        let now = unix_now_ms();
        if now >= self.expires_at_ms(&record) {
            self.store.delete(&[key]).await?;
            return Ok(None);
        }
        if now - record.last_touch_ms >= self.touch_interval_ms {
            record.last_touch_ms = now;
            let sealed = self.seal(&ticket, &key, &record)?;
            // The list's "last seen" rides along, sent together with the record: no
            // round trip of its own (an entry already gone stays gone).
            let (_, listing) = self.subject_keys(&record.provider, &record.subject);
            let (member, last_seen) =
                (ticket.storage_name(), listing::encode_last_seen(now / 1000));
            let (replaced, _) = tokio::join!(
                self.store
                    .replace(&key, &sealed, self.remaining(&record, now)),
                self.store.listing_touch(&listing, &member, &last_seen),
            );
            // A session ended meanwhile (logout elsewhere) must not come back to life.
            if !replaced? {
                return Ok(None);
            }
        }
        let expires_at = self.expires_at_ms(&record) / 1000;
        Ok(Some(LoadedSession {
            ticket,
            record,
            expires_at,
        }))
    }

    /// Replaces the record of a live session (e.g. after a token refresh); false when the
    /// session has ended meanwhile.
    pub async fn update(&self, session: &LoadedSession) -> Result<bool, ApiError> {
        let key = session.ticket.storage_key(&self.prefix);
        let sealed = self.seal(&session.ticket, &key, &session.record)?;
        let ttl = self.remaining(&session.record, unix_now_ms());
        Ok(self.store.replace(&key, &sealed, ttl).await?)
    }

    /// Ends one session.
    pub async fn delete(&self, session: &LoadedSession) -> Result<(), ApiError> {
        let member = session.ticket.storage_name();
        let key = format!("{}{member}", session_keys(&self.prefix));
        self.store.delete(std::slice::from_ref(&key)).await?;
        let record = &session.record;
        // A member left by an earlier version (the whole key) stays until its time passes;
        // its session is gone, so a later back-channel logout does not count it.
        if let Some(sid) = &record.sid {
            let index = self.sid_index(&record.provider, sid);
            self.store.index_remove(&index, &member).await?;
        }
        let (index, listing) = self.subject_keys(&record.provider, &record.subject);
        self.store.listing_remove(&index, &listing, &member).await?;
        Ok(())
    }

    /// Ends every session of `provider` with provider session id `sid`; returns how many.
    pub async fn delete_by_sid(&self, provider: &str, sid: &str) -> Result<u64, ApiError> {
        self.delete_indexed(&self.sid_index(provider, sid)).await
    }

    /// Ends every session of `provider` for subject `sub`; returns how many.
    pub async fn delete_by_subject(&self, provider: &str, sub: &str) -> Result<u64, ApiError> {
        let (index, listing) = self.subject_keys(provider, sub);
        let ended = self.delete_indexed(&index).await?;
        // Sessions made before the index moved beside its listing are under the old name.
        let legacy = self
            .delete_indexed(&self.legacy_subject_index(provider, sub))
            .await?;
        self.store.delete(&[listing]).await?;
        Ok(ended + legacy)
    }

    /// The live sessions of `provider` and subject `sub`, newest first; `current` (the
    /// request's session) is marked. A session is listed while its record exists and
    /// its listing entry says it has not expired; sessions without an entry (made
    /// before listing existed) are not listed, though [`Self::delete_by_subject`] ends them.
    pub async fn list(
        &self,
        provider: &str,
        sub: &str,
        current: Option<&SessionTicket>,
    ) -> Result<Vec<ListedSession>, ApiError> {
        let (index, listing) = self.subject_keys(provider, sub);
        let entries = self.store.listing_entries(&index, &listing).await?;
        let now_s = unix_now_ms() / 1000;
        let candidates: Vec<(String, (i64, i64, String))> = entries
            .into_iter()
            .filter_map(|(member, entry)| {
                let parts = listing::decode_entry(&entry?)?;
                Some((member, parts))
            })
            .filter(|(_, (last_seen, created_ms, _))| {
                self.listed_end(*last_seen, created_ms / 1000) > now_s
            })
            .collect();
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        // An entry may outlive its session when that ended by a path that cannot name
        // the subject (back-channel logout by `sid`): the record decides.
        let keys: Vec<String> = candidates
            .iter()
            .map(|(member, _)| format!("{}{member}", session_keys(&self.prefix)))
            .collect();
        let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let mut present = Vec::with_capacity(key_refs.len());
        for batch in key_refs.chunks(LISTED_RECORDS_PER_READ) {
            present.extend(self.store.get_many(batch).await?);
        }
        let current = current.map(SessionTicket::storage_name);
        let mut listed: Vec<(i64, ListedSession)> = candidates
            .into_iter()
            .zip(present)
            .filter(|(_, record)| record.is_some())
            .map(|((member, (last_seen, created_ms, browser)), _)| {
                let created = created_ms / 1000;
                let session = ListedSession {
                    id: listing::listing_id(&member),
                    current: current.as_deref() == Some(member.as_str()),
                    provider: provider.to_owned(),
                    created_at: created,
                    last_seen_at: last_seen - last_seen.rem_euclid(60),
                    expires_at: self.listed_end(last_seen, created),
                    browser,
                };
                (created_ms, session)
            })
            .collect();
        listed.sort_by(|(a_ms, a), (b_ms, b)| b_ms.cmp(a_ms).then(a.id.cmp(&b.id)));
        let listed = listed.into_iter().map(|(_, session)| session).collect();
        Ok(listed)
    }

    /// Ends the session of `provider` and subject `sub` whose listing id is `id`, when
    /// it is not `current` (the caller ends its own with [`Self::delete`]): `Some(1)`
    /// ended, `Some(0)` it is `current`, `None` no such live session of that subject.
    pub async fn delete_listed(
        &self,
        provider: &str,
        sub: &str,
        id: &str,
        current: Option<&SessionTicket>,
    ) -> Result<Option<u64>, ApiError> {
        let (index, listing) = self.subject_keys(provider, sub);
        let members = self.store.listing_entries(&index, &listing).await?;
        let Some((member, _)) = members.into_iter().find(|(member, _)| {
            crypto::constant_time_eq(listing::listing_id(member).as_bytes(), id.as_bytes())
        }) else {
            return Ok(None);
        };
        if current.is_some_and(|ticket| ticket.storage_name() == member) {
            return Ok(Some(0));
        }
        let key = format!("{}{member}", session_keys(&self.prefix));
        let ended = self.store.delete(&[key]).await?;
        self.store.listing_remove(&index, &listing, &member).await?;
        Ok((ended > 0).then_some(1))
    }

    /// Whether the store answers.
    pub async fn ping(&self) -> Result<(), ApiError> {
        Ok(self.store.ping().await?)
    }

    async fn delete_indexed(&self, index: &str) -> Result<u64, ApiError> {
        Ok(self
            .store
            .delete_indexed(index, &session_keys(&self.prefix))
            .await?)
    }

    /// When a listed session ends if it stays idle (Unix seconds).
    fn listed_end(&self, last_seen_s: i64, created_s: i64) -> i64 {
        (last_seen_s + self.idle_timeout_ms / 1000).min(created_s + self.max_lifetime_ms / 1000)
    }

    fn expires_at_ms(&self, record: &SessionRecord) -> i64 {
        (record.last_touch_ms + self.idle_timeout_ms)
            .min(record.created_at_ms + self.max_lifetime_ms)
    }

    fn remaining(&self, record: &SessionRecord, now_ms: i64) -> Duration {
        Duration::from_millis((self.expires_at_ms(record) - now_ms).max(1) as u64)
    }

    fn seal(
        &self,
        ticket: &SessionTicket,
        key: &str,
        record: &SessionRecord,
    ) -> Result<Vec<u8>, ApiError> {
        let plain = record.encode().map_err(ApiError::Internal)?;
        Ok(crypto::seal(ticket.secret(), key.as_bytes(), &plain)?)
    }

    fn sid_index(&self, provider: &str, sid: &str) -> String {
        let name = crypto::derive_name("sid-index", format!("{provider}\0{sid}").as_bytes());
        format!("{}index:sid:{name}", self.prefix)
    }

    /// The subject index and its listing hash (SPEC 11): one hash tag, one cluster slot,
    /// so one script reads and writes both (a tag in `key_prefix` comes first and is shared
    /// all the same).
    fn subject_keys(&self, provider: &str, sub: &str) -> (String, String) {
        let name = crypto::derive_name("sub-index", format!("{provider}\0{sub}").as_bytes());
        let index = format!("{}index:sub:{{{name}}}", self.prefix);
        let listing = format!("{index}:l");
        (index, listing)
    }

    /// The subject index's name before listing (no hash tag): still read when a subject's
    /// sessions are ended, until the sessions of that time have expired.
    fn legacy_subject_index(&self, provider: &str, sub: &str) -> String {
        let name = crypto::derive_name("sub-index", format!("{provider}\0{sub}").as_bytes());
        format!("{}index:sub:{name}", self.prefix)
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX / 4)
}
