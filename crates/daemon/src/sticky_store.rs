//! The sticky-MAC store: the sticky secure MACs of port security, in an embedded
//! ACID database (redb, `state.redb`) in the state directory, so they survive a
//! restart (keyed by port name, so they follow the port across configuration
//! changes). Bindings have their own store (`bindings_store.rs`).
//!
//! Invariant: a write returns only after its transaction is committed (fsync'd);
//! the data plane never reads the store, only the runtime does, at start.

use portcullis_dataplane::MacAddr;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::{Path, PathBuf};

/// "port name|mac" → learned at (Unix seconds).
const STICKY: TableDefinition<&str, u64> = TableDefinition::new("sticky_macs");

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
#[error("state store {path}: {message}")]
pub struct StickyStoreError {
    pub path: PathBuf,
    pub message: String,
}

/// The open store.
#[derive(Debug)]
pub struct StickyMacStore {
    db: Database,
    path: PathBuf,
}

fn key(port: &str, mac: MacAddr) -> String {
    format!("{port}|{mac}")
}

impl StickyMacStore {
    /// Opens (or creates) `state.redb` in `dir`.
    pub fn open(dir: &Path) -> Result<StickyMacStore, StickyStoreError> {
        let path = dir.join("state.redb");
        let err = |e: &dyn std::fmt::Display| StickyStoreError {
            path: path.clone(),
            message: e.to_string(),
        };
        let db = Database::create(&path).map_err(|e| err(&e))?;
        let store = StickyMacStore {
            db,
            path: path.clone(),
        };
        // Make sure the table exists, so reads never fail on a fresh store.
        let txn = store.db.begin_write().map_err(|e| err(&e))?;
        txn.open_table(STICKY).map_err(|e| err(&e))?;
        txn.commit().map_err(|e| err(&e))?;
        Ok(store)
    }

    fn err(&self, e: impl std::fmt::Display) -> StickyStoreError {
        StickyStoreError {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// Records a sticky secure MAC of `port`; committed when this returns.
    pub fn add_sticky(
        &self,
        port: &str,
        mac: MacAddr,
        at_unix: u64,
    ) -> Result<(), StickyStoreError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut t = txn.open_table(STICKY).map_err(|e| self.err(e))?;
            t.insert(key(port, mac).as_str(), at_unix)
                .map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))
    }

    /// Forgets the sticky MACs of `port`; returns how many there were.
    pub fn clear_sticky(&self, port: &str) -> Result<usize, StickyStoreError> {
        let prefix = format!("{port}|");
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let n = {
            let mut t = txn.open_table(STICKY).map_err(|e| self.err(e))?;
            let keys: Vec<String> = t
                .iter()
                .map_err(|e| self.err(e))?
                .filter_map(|r| r.ok().map(|(k, _)| k.value().to_string()))
                .filter(|k| k.starts_with(&prefix))
                .collect();
            for k in &keys {
                t.remove(k.as_str()).map_err(|e| self.err(e))?;
            }
            keys.len()
        };
        txn.commit().map_err(|e| self.err(e))?;
        Ok(n)
    }

    /// The sticky MACs of `port`, oldest first.
    pub fn sticky(&self, port: &str) -> Result<Vec<MacAddr>, StickyStoreError> {
        let prefix = format!("{port}|");
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = txn.open_table(STICKY).map_err(|e| self.err(e))?;
        let mut v: Vec<(u64, MacAddr)> = Vec::new();
        for r in t.iter().map_err(|e| self.err(e))? {
            let (k, at) = r.map_err(|e| self.err(e))?;
            if let Some(mac) = k.value().strip_prefix(&prefix).and_then(|m| m.parse().ok()) {
                v.push((at.value(), mac));
            }
        }
        v.sort();
        Ok(v.into_iter().map(|(_, m)| m).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sticky_macs_survive_reopening() {
        let dir =
            std::env::temp_dir().join(format!("portcullis-store-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let m1: MacAddr = "52:54:00:00:00:01".parse().unwrap();
        let m2: MacAddr = "52:54:00:00:00:02".parse().unwrap();
        {
            let s = StickyMacStore::open(&dir).unwrap();
            s.add_sticky("vm1", m2, 20).unwrap();
            s.add_sticky("vm1", m1, 10).unwrap();
            s.add_sticky("vm10", m1, 5).unwrap();
        }
        let s = StickyMacStore::open(&dir).unwrap();
        assert_eq!(
            s.sticky("vm1").unwrap(),
            vec![m1, m2],
            "oldest first, vm10 not mixed in"
        );
        assert_eq!(s.clear_sticky("vm1").unwrap(), 2);
        assert!(s.sticky("vm1").unwrap().is_empty());
        assert_eq!(s.sticky("vm10").unwrap(), vec![m1]);
        drop(s);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
