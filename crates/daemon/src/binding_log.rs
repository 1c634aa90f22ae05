//! The durable binding log as the daemon uses it: [`BindingLog`] at start (load the
//! live records, delete the refused ones, then start group commit) and
//! [`BindingCommits`] on the data-plane thread (submit an upsert or a removal, learn
//! by ticket when it is durable or failed). redb on this host is the only
//! implementation today (`bindings_store.rs`); a cluster store is the next.
//!
//! Invariant (DESIGN §3, durability rule): an implementation reports a ticket
//! `ok` only once its op is durable, and never blocks a submit; held DHCP ACKs are
//! released on `ok` alone (fail closed). Results come back one per ticket, in the
//! order the ops became durable.

pub use crate::bindings_store::{
    BindingOp, BindingRecord, BindingStoreError, CommitResult, SubmitError,
};
use std::sync::mpsc::Receiver;

/// Where bindings are made durable.
pub trait BindingLog: Send {
    /// The records whose lease has not ended at `now_unix` (restored at start).
    fn load_live(&self, now_unix: u64) -> Result<Vec<BindingRecord>, BindingStoreError>;
    /// Makes `ops` durable before returning (at start, before group commit runs).
    fn apply(&self, ops: &[BindingOp]) -> Result<(), BindingStoreError>;
    /// Starts group commit, which takes the log over: the submit side, and the
    /// receiver of the results (poll it with `try_recv`).
    fn start_commits(self: Box<Self>) -> (Box<dyn BindingCommits>, Receiver<CommitResult>);
}

/// The submit side of a running [`BindingLog`].
pub trait BindingCommits: Send + std::fmt::Debug {
    /// Queues `op`; its result comes back under `ticket`. Never blocks.
    fn submit(&self, ticket: u64, op: BindingOp) -> Result<(), SubmitError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings_store::BindingStore;
    use portcullis_dataplane::MacAddr;
    use portcullis_dataplane::bindings::BindingSource;
    use std::time::Duration;

    fn record(last: u8, lease_end_unix: Option<u64>) -> BindingRecord {
        BindingRecord {
            ip: std::net::IpAddr::from([198, 18, 10, last]),
            mac: MacAddr([0x52, 0x54, 0, 0, 0, last]),
            vlan: 10,
            port: "vm1".into(),
            lease_end_unix,
            source: BindingSource::Dhcp,
            updated_unix: 1,
            duid: None,
        }
    }

    /// The redb store through the trait: apply, load the live records, then commit
    /// by ticket; what was reported durable is there after reopening.
    #[test]
    fn the_redb_store_serves_start_and_group_commit_through_the_trait() {
        let dir = std::env::temp_dir().join(format!(
            "portcullis-binding-log-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let log: Box<dyn BindingLog> = Box::new(BindingStore::open(&dir).unwrap());
        log.apply(&[
            BindingOp::Upsert(record(1, None)),
            BindingOp::Upsert(record(2, Some(100))),
            BindingOp::Upsert(record(3, None)),
        ])
        .unwrap();
        log.apply(&[BindingOp::Remove {
            vlan: 10,
            ip: record(3, None).ip,
        }])
        .unwrap();
        assert_eq!(log.load_live(50).unwrap().len(), 2);
        assert_eq!(log.load_live(100).unwrap(), vec![record(1, None)]);

        let (commits, results) = log.start_commits();
        commits
            .submit(7, BindingOp::Upsert(record(4, None)))
            .unwrap();
        let r = results.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!((r.ticket, r.ok, r.error), (7, true, None));
        drop(commits);
        let reopened = BindingStore::open(&dir).unwrap();
        assert_eq!(
            reopened.load_live(100).unwrap(),
            vec![record(1, None), record(4, None)]
        );
        drop(reopened);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
