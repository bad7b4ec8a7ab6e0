//! Storage against a model: random sequences of append, truncate, flush, reopen and simulated
//! power loss keep the on-disk log equal to a plain `Vec<Record>` whose durable prefix is
//! tracked by hand.
//!
//! Method: proptest generates operation lists; each is applied (as the core's `Write`s) to a
//! `Storage` in a temp dir
//! (fsync `lazy`, durability tracked, so that flush, truncation and power loss all matter) and
//! to the model; after every operation the whole log, the durable end offset and the epoch cache
//! must match the model's.

use std::time::Instant;

use proptest::prelude::*;

use insync_impl::core::{ReplicaApply, ReplicaRead, Write};
use insync_impl::storage::{
    simulate_power_loss, EpochEntry, FsyncPolicy, Record, Storage, StorageOptions,
};

#[derive(Debug, Clone)]
enum Operation {
    Append { count: u8, new_epoch: bool },
    Truncate { back: u8 },
    Flush,
    Reopen,
    PowerLoss,
}

fn operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        4 => (1u8..5, any::<bool>())
            .prop_map(|(count, new_epoch)| Operation::Append { count, new_epoch }),
        2 => (0u8..6).prop_map(|back| Operation::Truncate { back }),
        1 => Just(Operation::Flush),
        1 => Just(Operation::Reopen),
        1 => Just(Operation::PowerLoss),
    ]
}

/// The model: the records, how many of them are durable, and the epoch the next append uses.
struct Model {
    records: Vec<Record>,
    durable: u64,
    epoch: u32,
}

impl Model {
    fn epoch_entries(&self) -> Vec<EpochEntry> {
        let mut entries: Vec<EpochEntry> = Vec::new();
        for record in &self.records {
            if entries.last().map(|entry| entry.epoch) != Some(record.leader_epoch) {
                entries.push(EpochEntry {
                    epoch: record.leader_epoch,
                    start_offset: record.offset,
                });
            }
        }
        entries
    }
}

fn options() -> StorageOptions {
    StorageOptions::new(FsyncPolicy::Lazy).tracking_durability()
}

fn apply(
    storage: &mut Option<Storage>,
    model: &mut Model,
    operation: &Operation,
    dir: &std::path::Path,
) {
    let log_end = model.records.len() as u64;
    match *operation {
        Operation::Append { count, new_epoch } => {
            model.epoch += u32::from(new_epoch);
            let batch: Vec<Record> = (log_end..log_end + u64::from(count))
                .map(|offset| Record {
                    offset,
                    leader_epoch: model.epoch,
                    producer_id: offset % 3,
                    sequence: offset as u32,
                    value: vec![offset as u8; (offset % 7) as usize],
                })
                .collect();
            storage
                .as_mut()
                .unwrap()
                .apply(&Write::Append(batch.clone()))
                .unwrap();
            model.records.extend(batch);
        }
        Operation::Truncate { back } => {
            let to = log_end.saturating_sub(u64::from(back));
            // The core truncates only below the LEO.
            if to < log_end {
                storage
                    .as_mut()
                    .unwrap()
                    .apply(&Write::TruncateTo(to))
                    .unwrap();
                model.records.truncate(to as usize);
                model.durable = to;
            }
        }
        Operation::Flush => {
            storage.as_mut().unwrap().apply(&Write::Flush).unwrap();
            model.durable = log_end;
        }
        Operation::Reopen => {
            drop(storage.take());
            *storage = Some(Storage::open(dir, options()).unwrap().0);
            model.durable = log_end;
        }
        Operation::PowerLoss => {
            drop(storage.take());
            let report = simulate_power_loss(dir).unwrap();
            assert_eq!(report.durable_end_offset, model.durable);
            model.records.truncate(model.durable as usize);
            *storage = Some(Storage::open(dir, options()).unwrap().0);
        }
    }
}

fn check(storage: &Storage, model: &Model) {
    let log_end = model.records.len() as u64;
    assert_eq!(storage.log_end_offset(), log_end);
    assert_eq!(storage.durable_end_offset(), model.durable);
    assert_eq!(
        storage.read_within(0, u32::MAX, u64::MAX).unwrap(),
        model.records
    );
    assert_eq!(storage.epoch_cache().entries(), model.epoch_entries());
    assert!(storage.high_watermark_checkpoint() <= log_end);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn storage_matches_a_vec_model(operations in prop::collection::vec(operation(), 1..24)) {
        let dir = tempfile::tempdir().unwrap();
        let mut storage = Some(Storage::open(dir.path(), options()).unwrap().0);
        let mut model = Model { records: Vec::new(), durable: 0, epoch: 1 };
        for operation in &operations {
            apply(&mut storage, &mut model, operation, dir.path());
            check(storage.as_ref().unwrap(), &model);
        }
    }
}

/// Measures append latency per fsync policy, with and without durability tracking. Run with
/// `cargo test --release -p insync-impl --test storage_model -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check"]
fn measure_append_cost() {
    const APPENDS: u64 = 200;
    for (name, options) in [
        ("lazy", StorageOptions::new(FsyncPolicy::Lazy)),
        (
            "lazy+tracking",
            StorageOptions::new(FsyncPolicy::Lazy).tracking_durability(),
        ),
        ("always", StorageOptions::new(FsyncPolicy::Always)),
        (
            "always+tracking",
            StorageOptions::new(FsyncPolicy::Always).tracking_durability(),
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (mut storage, _) = Storage::open(dir.path(), options).unwrap();
        let started = Instant::now();
        for offset in 0..APPENDS {
            let record = Record {
                offset,
                leader_epoch: 1,
                producer_id: 1,
                sequence: 0,
                value: vec![0; 100],
            };
            storage.apply(&Write::Append(vec![record])).unwrap();
            if options.fsync == FsyncPolicy::Always {
                // What the core issues after every append under `always`.
                storage.apply(&Write::Flush).unwrap();
            }
        }
        let elapsed = started.elapsed();
        println!(
            "{name:>16}: {:>8.1} us per single-record append",
            elapsed.as_secs_f64() * 1e6 / APPENDS as f64
        );
    }
}
