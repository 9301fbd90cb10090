//! Recovery, snapshots, retention, backup and restore, verify: against real
//! data directories under the temporary folder, filled by the workload.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bourse_engine::ledger::PlaceCmd;
use bourse_engine::{AccountId, Event, EventBody, OrderType, Price, Qty, Side, Stp, Tif};

use super::backup::{self, BackupError, BackupKey, Until};
use super::check::verify_data_dir;
use super::envelope::{self, SnapshotHeader};
use super::snapshotter::Snapshotter;
use super::workload::Workload;
use super::*;
use crate::config::DurabilityConf;
use crate::storage::log::{EventLog, FileLog, FileLogOptions, Hash};
use crate::storage::snapshot::SledSnapshotStore;
use crate::storage::SnapshotStore;

static DIRS: AtomicU64 = AtomicU64::new(0);

/// A data directory removed when the test ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let n = DIRS.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!(
            "bourse-durability-{tag}-{}-{n}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&p);
        TempDir(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn conf(every: u64, retention: u64, segment: u64) -> DurabilityConf {
    DurabilityConf {
        snapshot_every_events: every,
        snapshot_every_secs: 3_600,
        log_retention_events: retention,
        segment_bytes_max: segment,
    }
}

fn encode(batch: &[Event]) -> Vec<Vec<u8>> {
    batch.iter().map(encode_event).collect()
}

/// What a built data directory should hold.
struct Built {
    workload: Workload,
    /// State hash and last event time at chosen indexes.
    marks: BTreeMap<u64, (Hash, u64)>,
    snapshots_written: u64,
    last_snapshot: u64,
}

/// What a node runs on a recovered data directory: the shared log, the
/// journal's committed index, and a snapshotter following it.
fn follow(r: Recovered, conf: &DurabilityConf) -> (SharedLog<FileLog>, Arc<AtomicU64>, Snapshotter<FileLog, SledSnapshotStore>) {
    let log = SharedLog::new(r.log);
    let committed = Arc::new(AtomicU64::new(r.state.position.index));
    let snap = Snapshotter::new(
        log.downgrade(),
        r.store,
        committed.clone(),
        Arc::new(AtomicBool::new(false)),
        r.state.exchange,
        r.state.position,
        conf.clone(),
    );
    (log, committed, snap)
}

/// Runs `batches` workload batches through a recovered data directory the
/// way a node does: appended and synced through the shared log, followed by
/// a snapshotter.
fn build(dir: &Path, batches: u64, conf: &DurabilityConf, mark_at: &[u64]) -> Built {
    let r = recover(dir, conf).unwrap();
    assert_eq!(r.state.position.index, 0);
    let (mut log, committed, mut snap) = follow(r, conf);
    let status = snap.status();
    let mut w = Workload::new(11, 6, 1_700_000_000_000_000);
    let mut marks = BTreeMap::new();
    for i in 1..=batches {
        let batch = w.next_batch();
        assert_eq!(log.append(&encode(&batch)).unwrap(), i);
        if mark_at.contains(&i) {
            marks.insert(i, (w.state().state_hash(), batch.last().unwrap().ts));
        }
        if i % 10 == 0 || i == batches {
            log.sync().unwrap();
            committed.store(i, Ordering::Release);
            assert!(snap.step().unwrap());
        }
    }
    drop(snap);
    drop(log);
    Built {
        workload: w,
        marks,
        snapshots_written: status.snapshots_written.load(Ordering::Acquire),
        last_snapshot: status.snapshot_index.load(Ordering::Acquire),
    }
}

fn segments(log_dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(log_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    v.sort();
    v
}

#[test]
fn recovery_replays_the_whole_log_and_cuts_a_torn_tail() {
    let dir = TempDir::new("torn");
    let c = conf(u64::MAX, u64::MAX, 1 << 20);
    let b = build(dir.path(), 300, &c, &[]);
    assert_eq!(b.snapshots_written, 0);
    let last = segments(&log_dir(dir.path())).pop().unwrap();
    let mut bytes = fs::read(&last).unwrap();
    let whole = bytes.len();
    bytes.extend_from_slice(&[0x40, 0, 0, 0, 9, 9, 9, 9, 1, 2, 3]);
    fs::write(&last, &bytes).unwrap();

    let r = recover(dir.path(), &c).unwrap();
    let torn = r
        .log_report
        .torn_tail
        .clone()
        .expect("the torn tail is reported");
    assert_eq!(torn.offset as usize, whole);
    assert_eq!(torn.first_lost_index, 301);
    assert!(r.state.snapshot.is_none());
    assert_eq!(r.state.position.index, 300);
    assert_eq!(r.state.replayed_batches, 300);
    assert_eq!(
        r.state.exchange.state_hash(),
        b.workload.state().state_hash()
    );
    assert_eq!(r.epoch, envelope::EPOCH_FIRST);
    assert_eq!(
        envelope::read_epoch(&r.store).unwrap(),
        Some(1),
        "the epoch is persisted at first start"
    );
    drop(r);
    assert_eq!(
        fs::read(&last).unwrap().len(),
        whole,
        "the torn tail was cut"
    );
}

#[test]
fn snapshots_follow_the_log_retention_purges_it_and_recovery_starts_from_the_newest() {
    let dir = TempDir::new("snap");
    let c = conf(400, 1_000, 16 << 10);
    let b = build(dir.path(), 1_500, &c, &[]);
    assert!(
        b.snapshots_written >= 3,
        "{} snapshots",
        b.snapshots_written
    );

    let r = recover(dir.path(), &c).unwrap();
    let snap = r.state.snapshot.expect("recovery starts from a snapshot");
    assert_eq!(snap.index, b.last_snapshot);
    assert_eq!(r.state.replayed_batches, 1_500 - snap.index);
    assert_eq!(r.state.position.index, 1_500);
    assert_eq!(
        r.state.exchange.state_hash(),
        b.workload.state().state_hash()
    );
    assert_eq!(
        r.state.position.events_total,
        snap.events_total + r.state.replayed_events
    );

    // Retention: the log lost its beginning, but keeps at least
    // `log_retention_events` events before the newest snapshot, and the
    // snapshots older than the anchor are gone.
    let first = r.log.first_index();
    assert!(first > 1, "whole segments before the anchor were purged");
    let catalogue = envelope::read_catalogue(&r.store);
    let oldest = r.store.list().unwrap()[0].index;
    assert!(
        oldest + 1 >= first,
        "the oldest snapshot still has its log after it"
    );
    assert_eq!(catalogue.first().unwrap().index, oldest);
    let newest = catalogue.last().unwrap();
    assert_eq!(newest.index, snap.index);
    let anchor = catalogue.first().unwrap();
    assert!(newest.events_total - anchor.events_total >= c.log_retention_events);
    drop(r);

    let report = verify_data_dir(dir.path()).unwrap();
    assert_eq!(report.state_hash, Some(b.workload.state().state_hash()));
    assert_eq!(
        report.replay_from,
        Some(snap.index),
        "a purged log is replayed from the newest snapshot"
    );
}

/// A restarted snapshotter counts what the log holds after the newest
/// snapshot toward the next one, in events and in time: a node restarted
/// more often than its snapshot period still writes snapshots.
#[test]
fn a_restart_counts_the_history_since_the_newest_snapshot_toward_the_next() {
    let dir = TempDir::new("carried");
    let c = conf(300, u64::MAX, 1 << 20);
    let mut b = build(dir.path(), 400, &c, &[]);
    assert!(b.snapshots_written >= 1);
    let after = |d: &Path, c: &DurabilityConf, w: &mut Workload, batches: u64| {
        let r = recover(d, c).unwrap();
        let start = r.state.position.index;
        let (mut log, committed, mut snap) = follow(r, c);
        let status = snap.status();
        for i in 1..=batches {
            log.append(&encode(&w.next_batch())).unwrap();
            log.sync().unwrap();
            committed.store(start + i, Ordering::Release);
            assert!(snap.step().unwrap());
        }
        status.snapshots_written.load(Ordering::Acquire)
    };
    // Events: restarted after every batch, it still writes a snapshot once
    // the batches since the newest one make the period's 300 events.
    let long = DurabilityConf { snapshot_every_secs: 1_000_000_000, ..c.clone() };
    let mut restarts = 0;
    let mut written = 0;
    while written == 0 && restarts < 1_000 {
        restarts += 1;
        written = after(dir.path(), &long, &mut b.workload, 1);
    }
    assert_eq!(written, 1, "no snapshot in {restarts} restarts of one batch each");
    assert!(restarts > 1, "one batch alone is not the period");

    // Time: the newest snapshot's last event is older than the period (the
    // workload's clock is years behind this one), so the first batch after
    // a restart makes a snapshot though few events came.
    let hour = DurabilityConf { snapshot_every_events: u64::MAX, snapshot_every_secs: 3_600, ..c.clone() };
    assert_eq!(after(dir.path(), &hour, &mut b.workload, 1), 1);
    // ... and a period longer than that age does not.
    assert_eq!(after(dir.path(), &long, &mut b.workload, 1), 0);

    // With no snapshot yet, every event of the log counts.
    let bare = TempDir::new("carried-bare");
    let mut b = build(bare.path(), 100, &conf(u64::MAX, u64::MAX, 1 << 20), &[]);
    assert_eq!(b.snapshots_written, 0);
    let r = recover(bare.path(), &c).unwrap();
    let total = r.state.position.events_total;
    drop(r);
    let upto = DurabilityConf { snapshot_every_events: total, ..long.clone() };
    assert_eq!(after(bare.path(), &upto, &mut b.workload, 1), 1, "the log's {total} events and one batch make the period");
}

#[test]
fn verify_compares_snapshots_with_a_replay_from_the_beginning() {
    let dir = TempDir::new("verify");
    let c = conf(300, u64::MAX, 1 << 20);
    let b = build(dir.path(), 700, &c, &[]);
    assert!(b.snapshots_written >= 2);
    let report = verify_data_dir(dir.path()).unwrap();
    assert_eq!(report.replay_from, Some(0));
    assert_eq!(report.position.unwrap().index, 700);
    assert_eq!(report.state_hash, Some(b.workload.state().state_hash()));
    let snaps = report.snapshots.unwrap();
    assert_eq!(snaps.len() as u64, b.snapshots_written);
    assert!(snaps
        .iter()
        .any(|s| s.compared_with_replay && s.index == b.last_snapshot));

    // A snapshot that does not hold the replayed state is caught, at its index.
    let r = recover(dir.path(), &c).unwrap();
    let mut other = Workload::new(99, 2, 1);
    let mut wrong = bourse_engine::Exchange::new();
    for _ in 0..40 {
        for e in other.next_batch() {
            wrong.apply(&e, None);
        }
    }
    let at = 650;
    let hash = r.log.read(at..=at).unwrap()[0].hash;
    let h = SnapshotHeader {
        index: at,
        hash,
        events_total: 1,
        last_ts: 1,
    };
    r.store.save(at, &envelope::encode(&h, &wrong)).unwrap();
    drop(r);
    let err = verify_data_dir(dir.path()).unwrap_err();
    assert_eq!(err.first_bad_index, Some(at));
    assert!(err.what.contains("does not hold the state"), "{err}");
}

#[test]
fn corruption_in_the_middle_stops_recovery_and_verify_names_the_batch() {
    let dir = TempDir::new("corrupt");
    let c = conf(u64::MAX, u64::MAX, 8 << 10);
    build(dir.path(), 400, &c, &[]);
    let segs = segments(&log_dir(dir.path()));
    assert!(segs.len() > 3);
    let victim = &segs[1];
    let mut bytes = fs::read(victim).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x55;
    fs::write(victim, &bytes).unwrap();

    let err = recover(dir.path(), &c)
        .err()
        .expect("a damaged log does not recover")
        .to_string();
    assert!(
        err.contains(victim.file_name().unwrap().to_str().unwrap()),
        "{err}"
    );
    assert!(
        err.contains("bourse verify") && err.contains("bourse restore"),
        "{err}"
    );

    let fail = verify_data_dir(dir.path()).unwrap_err();
    let first_of_victim: u64 = victim
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let bad = fail.first_bad_index.unwrap();
    assert!(bad >= first_of_victim, "{fail}");
    assert!(
        bad < segs[2]
            .file_stem()
            .unwrap()
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap(),
        "{fail}"
    );
    assert!(
        fs::read(victim).unwrap() == bytes,
        "neither recovery nor verify changed the file"
    );
}

#[test]
fn a_snapshot_from_another_history_is_refused() {
    let dir = TempDir::new("foreign");
    let c = conf(u64::MAX, u64::MAX, 1 << 20);
    let b = build(dir.path(), 100, &c, &[]);
    let r = recover(dir.path(), &c).unwrap();
    let h = SnapshotHeader {
        index: 50,
        hash: [1u8; 32],
        events_total: 1,
        last_ts: 1,
    };
    r.store
        .save(50, &envelope::encode(&h, b.workload.state()))
        .unwrap();
    drop(r);
    let err = recover(dir.path(), &c).err().unwrap().to_string();
    assert!(err.contains("does not belong to this event log"), "{err}");
}

#[test]
fn orders_a_crash_left_before_their_book_are_rejected_once() {
    let dir = TempDir::new("orphans");
    let c = conf(u64::MAX, u64::MAX, 1 << 20);
    let b = build(dir.path(), 60, &c, &[]);
    let state = b.workload.state();
    let account = state.ledger.users["trader0"].account;
    let inst = *state.ledger.instruments.keys().next().unwrap();
    let before = state.ledger.accounts[&account].balances.clone();
    let cmd = PlaceCmd {
        account,
        inst,
        cl_id: bourse_engine::ClId::new("lost-1").expect("short"),
        side: Side::Buy,
        kind: OrderType::Limit,
        tif: Some(Tif::Gtc),
        px: Some(Price(60_000)),
        qty: Some(Qty(3)),
        quote_qty: None,
        post_only: false,
        stp: Stp::CancelNewest,
    };
    let accepted = state.ledger.decide_place(&cmd).unwrap();
    let EventBody::OrderAccepted { order } = &accepted else {
        panic!("accepted expected")
    };
    let id = order.id;
    {
        // The ledger's half of the place reached the log; the book's did not.
        let (mut log, _) = FileLog::open(log_dir(dir.path()), FileLogOptions::default()).unwrap();
        log.append(&encode(&[Event {
            ts: 1_800_000_000_000_000,
            body: accepted.clone(),
        }]))
        .unwrap();
        log.sync().unwrap();
    }
    let mut r = recover(dir.path(), &c).unwrap();
    assert_eq!(super::recover::orphans(&r.state.exchange).len(), 1);
    assert_ne!(
        r.state.exchange.ledger.accounts[&account].balances, before,
        "funds are held"
    );
    // A clock behind the log's last event: the rejection is stamped at
    // that event's time, not earlier.
    assert_eq!(r.settle_orphans(1_000).unwrap(), 1);
    assert_eq!(r.state.position.last_ts, 1_800_000_000_000_000, "event times never go back");
    let ex = &r.state.exchange;
    assert!(ex.ledger.order(id).is_none());
    assert_eq!(
        ex.ledger.order_by_cl_id(account, "lost-1"),
        None,
        "the cl_id can be used again"
    );
    assert_eq!(
        ex.ledger.accounts[&account].balances, before,
        "the hold is released"
    );
    ex.check();
    assert_eq!(r.state.position.index, 62);
    let hash = ex.state_hash();
    drop(r);
    let mut r = recover(dir.path(), &c).unwrap();
    assert_eq!(
        r.state.exchange.state_hash(),
        hash,
        "the rejection is in the log"
    );
    assert_eq!(r.settle_orphans(1).unwrap(), 0);
    let _ = AccountId(0);
}

#[test]
fn backup_restore_and_point_in_time() {
    let dir = TempDir::new("backup-src");
    let c = conf(1_200, u64::MAX, 32 << 10);
    let b = build(dir.path(), 900, &c, &[700, 850]);
    assert!(
        b.last_snapshot > 0 && b.last_snapshot < 700,
        "snapshot at {}",
        b.last_snapshot
    );
    let files = TempDir::new("backup-files");
    fs::create_dir_all(files.path()).unwrap();
    let file = files.path().join("node.bbk");
    let sum = backup::backup(dir.path(), &file, None).unwrap();
    assert_eq!(
        sum.meta.base_index, b.last_snapshot,
        "the newest snapshot is the base"
    );
    assert_eq!(sum.meta.last_index, 900);
    assert!(!sum.meta.encrypted);
    assert_eq!(
        backup::verify_backup(&file, None).unwrap().state_hash,
        Some(b.workload.state().state_hash())
    );

    // Whole restore: same state, a new epoch, and a node recovers from it.
    let full = TempDir::new("restore-full");
    let r = backup::restore(&file, None, full.path(), Until::End).unwrap();
    assert_eq!(r.state_hash, b.workload.state().state_hash());
    assert_eq!(r.position.index, 900);
    assert_eq!(r.epoch, 2);
    let rec = recover(full.path(), &c).unwrap();
    assert_eq!(
        rec.state.exchange.state_hash(),
        b.workload.state().state_hash()
    );
    assert_eq!(rec.epoch, 2);
    assert_eq!(rec.state.snapshot.unwrap().index, b.last_snapshot);
    drop(rec);
    assert!(verify_data_dir(full.path()).is_ok());

    // Point in time by index and by time: exactly the batches asked for.
    let (hash_700, ts_700) = b.marks[&700];
    let by_index = TempDir::new("restore-index");
    let r = backup::restore(&file, None, by_index.path(), Until::Index(700)).unwrap();
    assert_eq!(
        (r.position.index, r.state_hash, r.batches_left_out),
        (700, hash_700, 200)
    );
    let rec = recover(by_index.path(), &c).unwrap();
    assert_eq!(rec.log.last_index(), 700);
    assert_eq!(rec.state.exchange.state_hash(), hash_700);
    drop(rec);
    let by_time = TempDir::new("restore-time");
    let r = backup::restore(&file, None, by_time.path(), Until::Time(ts_700)).unwrap();
    assert_eq!((r.position.index, r.state_hash), (700, hash_700));
    let (hash_850, ts_850) = b.marks[&850];
    let by_time2 = TempDir::new("restore-time2");
    let r = backup::restore(&file, None, by_time2.path(), Until::Time(ts_850 + 1)).unwrap();
    assert_eq!((r.position.index, r.state_hash), (850, hash_850));

    // What cannot be done is refused, and nothing is left behind.
    let early = TempDir::new("restore-early");
    let e =
        backup::restore(&file, None, early.path(), Until::Index(b.last_snapshot - 1)).unwrap_err();
    assert!(matches!(e, BackupError::Refused(_)), "{e}");
    let e = backup::restore(&file, None, early.path(), Until::Index(901)).unwrap_err();
    assert!(matches!(e, BackupError::Refused(_)), "{e}");
    let e = backup::restore(&file, None, full.path(), Until::End).unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");
    assert!(!log_dir(early.path()).exists());

    // A changed byte anywhere, or a cut, is refused by verify and restore.
    let bytes = fs::read(&file).unwrap();
    for at in [
        40,
        bytes.len() / 3,
        bytes.len() / 2,
        bytes.len() - 40,
        bytes.len() - 1,
    ] {
        let mut bad = bytes.clone();
        bad[at] ^= 0x01;
        let tampered = files.path().join(format!("tampered-{at}.bbk"));
        fs::write(&tampered, &bad).unwrap();
        assert!(
            backup::verify_backup(&tampered, None).is_err(),
            "flip at {at} passed verify"
        );
        let target = TempDir::new("restore-tampered");
        assert!(
            backup::restore(&tampered, None, target.path(), Until::End).is_err(),
            "flip at {at} restored"
        );
        assert!(
            !log_dir(target.path()).exists(),
            "a refused restore leaves no log"
        );
    }
    let cut = files.path().join("cut.bbk");
    fs::write(&cut, &bytes[..bytes.len() - 10]).unwrap();
    assert!(matches!(
        backup::verify_backup(&cut, None),
        Err(BackupError::Damaged(_))
    ));
    let long = files.path().join("long.bbk");
    fs::write(&long, [bytes.as_slice(), b"x"].concat()).unwrap();
    assert!(matches!(
        backup::verify_backup(&long, None),
        Err(BackupError::Damaged(_))
    ));
}

#[test]
fn encrypted_backups_need_their_key() {
    let dir = TempDir::new("enc-src");
    let c = conf(150, u64::MAX, 1 << 20);
    let b = build(dir.path(), 400, &c, &[]);
    let files = TempDir::new("enc-files");
    fs::create_dir_all(files.path()).unwrap();
    let file = files.path().join("node.bbk");
    let key = BackupKey::from_hex(&BackupKey::generate_hex()).unwrap();
    let sum = backup::backup(dir.path(), &file, Some(&key)).unwrap();
    assert!(sum.meta.encrypted);
    let bytes = fs::read(&file).unwrap();
    let needle = b"trader0";
    assert!(
        !bytes.windows(needle.len()).any(|w| w == needle),
        "names do not appear in clear"
    );

    assert!(matches!(
        backup::verify_backup(&file, None),
        Err(BackupError::Key(_))
    ));
    let wrong = BackupKey::from_hex(&BackupKey::generate_hex()).unwrap();
    assert!(matches!(
        backup::verify_backup(&file, Some(&wrong)),
        Err(BackupError::Damaged(_))
    ));
    assert_eq!(
        backup::verify_backup(&file, Some(&key)).unwrap().state_hash,
        Some(b.workload.state().state_hash())
    );
    let target = TempDir::new("enc-restore");
    let r = backup::restore(&file, Some(&key), target.path(), Until::End).unwrap();
    assert_eq!(r.state_hash, b.workload.state().state_hash());

    let mut bad = bytes.clone();
    let at = bad.len() / 2;
    bad[at] ^= 0x80;
    let tampered = files.path().join("tampered.bbk");
    fs::write(&tampered, &bad).unwrap();
    assert!(matches!(
        backup::verify_backup(&tampered, Some(&key)),
        Err(BackupError::Damaged(_))
    ));
    fs::write(&tampered, &bytes[..bytes.len() - 1]).unwrap();
    assert!(matches!(
        backup::verify_backup(&tampered, Some(&key)),
        Err(BackupError::Damaged(_))
    ));

    assert!(BackupKey::from_hex("abc").is_err());
    assert!(BackupKey::from_hex(&"0".repeat(62)).is_err());
    assert!(BackupKey::from_hex(&format!(" {}\n", "0f".repeat(32))).is_ok());
}

#[test]
fn the_audit_trail_names_who_did_what() {
    let dir = TempDir::new("audit");
    let c = conf(u64::MAX, u64::MAX, 1 << 20);
    build(dir.path(), 80, &c, &[]);
    let mut lines = Vec::new();
    let src = audit::audit_data_dir(dir.path(), |r| lines.push(r.clone())).unwrap();
    assert_eq!(src.first_index, 1);
    assert_eq!(lines[0].actor, "system");
    assert!(lines
        .iter()
        .any(|l| l.actor == "admin" && l.action == "created user trader3 (role trader)"));
    assert!(lines
        .iter()
        .any(|l| l.action.starts_with("listed instrument BTC-USD")));
    assert!(
        lines
            .iter()
            .any(|l| l.action == "deposited 1000000.00000000 BTC to trader5"),
        "{lines:?}"
    );
    assert_eq!(lines.len(), 1 + 3 + 2 + 6 * 4);
}

/// A snapshot store whose first `fail` saves fail, as a full disk's would.
struct FailingSaves {
    inner: SledSnapshotStore,
    fail: AtomicU64,
}

impl SnapshotStore for FailingSaves {
    fn save(&self, index: u64, bytes: &[u8]) -> Result<(), crate::storage::SnapshotError> {
        if self.fail.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1)).is_ok() {
            return Err(crate::storage::SnapshotError::Store { op: "save", source: "no space left on device (test)".into() });
        }
        self.inner.save(index, bytes)
    }
    fn latest(&self) -> Result<crate::storage::snapshot::Latest, crate::storage::SnapshotError> {
        self.inner.latest()
    }
    fn list(&self) -> Result<Vec<crate::storage::snapshot::SnapshotInfo>, crate::storage::SnapshotError> {
        self.inner.list()
    }
    fn prune(&self, keep: usize) -> Result<usize, crate::storage::SnapshotError> {
        self.inner.prune(keep)
    }
    fn put_meta(&self, key: &str, bytes: &[u8]) -> Result<(), crate::storage::SnapshotError> {
        self.inner.put_meta(key, bytes)
    }
    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, crate::storage::SnapshotError> {
        self.inner.get_meta(key)
    }
}

/// A snapshot that cannot be saved (a full disk) does not end snapshots
/// for the life of the process: the snapshotter counts the failure, tries
/// again after `SNAPSHOT_RETRY_FIRST` (then twice as long each time), and
/// writes the snapshot once the store takes it.
#[test]
fn a_failed_snapshot_is_tried_again_and_written_once_the_store_takes_it() {
    use super::snapshotter::SNAPSHOT_RETRY_FIRST;
    let dir = TempDir::new("snapretry");
    let c = conf(20, u64::MAX, 1 << 20);
    let r = recover(dir.path(), &c).unwrap();
    let log = SharedLog::new(r.log);
    let committed = Arc::new(AtomicU64::new(r.state.position.index));
    let stopped = Arc::new(AtomicBool::new(false));
    let store = FailingSaves { inner: r.store, fail: AtomicU64::new(2) };
    let snap = Snapshotter::new(log.downgrade(), store, committed.clone(), stopped.clone(), r.state.exchange, r.state.position, c.clone());
    let status = snap.status();
    let thread = snap.spawn();
    let mut w = Workload::new(5, 3, 1_700_000_000_000_000);
    let mut l = log.clone();
    for i in 1..=40u64 {
        assert_eq!(l.append(&encode(&w.next_batch())).unwrap(), i);
    }
    l.sync().unwrap();
    committed.store(40, Ordering::Release);
    // Two failures, 1 s then 2 s apart, then the save that works.
    let deadline = std::time::Instant::now() + SNAPSHOT_RETRY_FIRST * 3 + std::time::Duration::from_secs(10);
    while status.snapshots_written.load(Ordering::Acquire) == 0 {
        assert!(std::time::Instant::now() < deadline, "no snapshot after {} failures", status.failures.load(Ordering::Acquire));
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(status.failures.load(Ordering::Acquire), 2, "both failed saves were counted");
    assert!(!status.failed.load(Ordering::Acquire), "no longer failing");
    assert_eq!(status.snapshot_index.load(Ordering::Acquire), 40);
    stopped.store(true, Ordering::Release);
    thread.join().unwrap();
    drop(l);
    drop(log);
    // The snapshot is there for the next recovery.
    let r = recover(dir.path(), &c).unwrap();
    assert_eq!(r.state.position.index, 40);
    assert_eq!(r.state.exchange.state_hash(), w.state().state_hash());
}
