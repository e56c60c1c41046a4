//! Tokens the registry has verified, by hash, so a report's token costs a
//! SHA-256 and a map lookup instead of a SQLite query on the blocking pool.
//!
//! The registry stays the authority: the store re-checks each report's
//! token in the transaction that commits it (see `store`), so a token that
//! another process revoked or replaced is refused on its next request even
//! while it is still in here; that refusal, and the periodic token sync,
//! drop it from here.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};

use crate::tokens::{TokenHash, VerifiedToken};

#[derive(Debug, Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<TokenHash, VerifiedToken>>,
}

impl TokenCache {
    pub fn get(&self, hash: &TokenHash) -> Option<VerifiedToken> {
        self.lock().get(hash).cloned()
    }

    pub fn insert(&self, hash: TokenHash, verified: VerifiedToken) {
        self.lock().insert(hash, verified);
    }

    /// Drops the token with this id (the registry no longer has it).
    pub fn forget(&self, token_id: i64) {
        self.lock()
            .retain(|_, verified| verified.token_id != token_id);
    }

    /// Keeps only the tokens whose ids the registry holds now.
    pub fn retain_current(&self, current: &HashSet<i64>) {
        self.lock()
            .retain(|_, verified| current.contains(&verified.token_id));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TokenHash, VerifiedToken>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::test_token as verified;

    #[test]
    fn forgotten_and_no_longer_current_tokens_leave_the_cache() {
        let cache = TokenCache::default();
        let (cp1, w1, w2) = (
            TokenHash::of(&"kiln_at_cp1".into()),
            TokenHash::of(&"kiln_at_w1".into()),
            TokenHash::of(&"kiln_at_w2".into()),
        );
        cache.insert(cp1, verified("cp1", 1));
        cache.insert(w1, verified("w1", 2));
        cache.insert(w2, verified("w2", 3));
        assert_eq!(cache.get(&cp1), Some(verified("cp1", 1)));
        cache.forget(1);
        assert_eq!(cache.get(&cp1), None);
        cache.retain_current(&HashSet::from([3]));
        assert_eq!(cache.get(&w1), None);
        assert_eq!(cache.get(&w2), Some(verified("w2", 3)));
    }
}
