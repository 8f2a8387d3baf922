//! Per-resource serialization: writes to the same key run one after another, in arrival order
//! (tokio's mutex is fair), so every node sees them in the same order. Entries vanish when unused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::OwnedMutexGuard;

/// The lock table.
#[derive(Default)]
pub struct KeyLocks {
    map: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// Holds one key; dropping it lets the next write to that key go.
pub struct KeyGuard {
    guard: Option<OwnedMutexGuard<()>>,
    key: String,
    locks: Arc<KeyLocks>,
}

impl KeyLocks {
    /// Waits for the key.
    pub async fn lock(self: &Arc<Self>, key: &str) -> KeyGuard {
        let mutex = {
            let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(key.to_string()).or_default().clone()
        };
        KeyGuard {
            guard: Some(mutex.lock_owned().await),
            key: key.to_string(),
            locks: self.clone(),
        }
    }

    /// How many hold or wait for `key` (0 when nobody does).
    pub fn queued(&self, key: &str) -> usize {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        // The map's own reference is not a holder.
        map.get(key).map_or(0, |m| Arc::strong_count(m) - 1)
    }

    /// Keys currently held or waited for.
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut map = self.locks.map.lock().unwrap_or_else(|p| p.into_inner());
        // Only the map holds it: nobody waits, so the entry can go.
        if map
            .get(&self.key)
            .is_some_and(|m| Arc::strong_count(m) == 1)
        {
            map.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn same_key_waits_other_key_does_not_and_entries_are_cleaned() {
        let locks = Arc::new(KeyLocks::default());
        let a = locks.lock("a").await;
        let _b = locks.lock("b").await;
        let waiter = tokio::spawn({
            let locks = locks.clone();
            async move {
                let _g = locks.lock("a").await;
            }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(a);
        waiter.await.unwrap();
        assert_eq!(locks.len(), 1, "only b is still held");
    }
}
