//! The operator's commands on a data directory: `bourse verify`, `bourse
//! backup`, `bourse restore` and `bourse audit`. Each reads the
//! configuration like `serve` (for `data_dir`), prints a human summary (or
//! JSON with `--json`) on stdout, and exits 0 on success, 1 on a failure
//! (for `verify`: damage found), 2 for bad arguments or configuration. The
//! work itself is in `bourse_actors::durability`.

use std::path::PathBuf;
use std::process::ExitCode;

use bourse_actors::durability::audit::audit_data_dir;
use bourse_actors::durability::backup::{self, BackupKey, BackupSummary, Until};
use bourse_actors::durability::check::{verify_data_dir, DataDirReport};
use bourse_actors::durability::timefmt::{format_us, parse_time};
use clap::Args;
use serde_json::json;

use crate::cli::{ConfigArgs, EXIT_CONFIG, EXIT_FAILURE};

#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Check this backup file instead of the data directory.
    #[arg(long, value_name = "FILE")]
    pub backup: Option<PathBuf>,
    /// File holding the backup key (64 hex digits) [default: $BOURSE_BACKUP_KEY].
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The backup file to write (replaced if it exists).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Encrypt with the key in this file (64 hex digits) [default: $BOURSE_BACKUP_KEY if set, else no encryption].
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The backup file to restore from.
    #[arg(long, value_name = "FILE")]
    pub from: PathBuf,
    /// Stop after this log batch.
    #[arg(long, value_name = "N", conflicts_with = "until_time")]
    pub until_index: Option<u64>,
    /// Stop before the first batch with an event after this time (RFC 3339 UTC, or microseconds since 1970).
    #[arg(long, value_name = "TIME")]
    pub until_time: Option<String>,
    /// File holding the backup key (64 hex digits) [default: $BOURSE_BACKUP_KEY].
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Tools log warnings only (to stderr), unless `RUST_LOG` says otherwise.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn data_dir(args: &ConfigArgs) -> Result<PathBuf, ExitCode> {
    let (cfg, _) = args.load(None)?;
    Ok(cfg.data_dir)
}

fn key(file: &Option<PathBuf>) -> Result<Option<BackupKey>, ExitCode> {
    let k = match file {
        Some(f) => BackupKey::from_file(f).map(Some),
        None => BackupKey::from_env(),
    };
    k.map_err(|e| {
        eprintln!("bourse: {e}");
        ExitCode::from(EXIT_CONFIG)
    })
}

fn failed(json: bool, what: &str, e: &dyn std::fmt::Display) -> ExitCode {
    if json {
        println!("{}", json!({"ok": false, "error": format!("{e}")}));
    } else {
        eprintln!("bourse {what}: {e}");
    }
    ExitCode::from(EXIT_FAILURE)
}

fn hex32(h: &[u8; 32]) -> String {
    hex::encode(h)
}

/// `bourse verify`: checks the data directory (or a backup file).
pub fn verify(args: VerifyArgs) -> ExitCode {
    init_logging();
    if let Some(file) = &args.backup {
        let key = match key(&args.key_file) {
            Ok(k) => k,
            Err(code) => return code,
        };
        return match backup::verify_backup(file, key.as_ref()) {
            Ok(s) => {
                print_backup(args.json, "verified", file, &s);
                ExitCode::SUCCESS
            }
            Err(e) => failed(args.json, "verify", &e),
        };
    }
    let dir = match data_dir(&args.config) {
        Ok(d) => d,
        Err(code) => return code,
    };
    match verify_data_dir(&dir) {
        Ok(r) => {
            print_report(args.json, &r);
            ExitCode::SUCCESS
        }
        Err(f) => {
            if args.json {
                println!(
                    "{}",
                    json!({"ok": false, "first_bad_index": f.first_bad_index, "error": f.what})
                );
            } else {
                match f.first_bad_index {
                    Some(i) => println!("FAILED: first bad index {i}: {}", f.what),
                    None => println!("FAILED: {}", f.what),
                }
            }
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn print_report(as_json: bool, r: &DataDirReport) {
    let l = &r.log;
    if as_json {
        let snaps = r.snapshots.as_ref().map(|v| {
            v.iter()
                .map(|s| json!({"index": s.index, "bytes": s.bytes, "compared_with_replay": s.compared_with_replay}))
                .collect::<Vec<_>>()
        });
        println!(
            "{}",
            json!({
                "ok": true,
                "data_dir": r.data_dir,
                "log": {"first_index": l.first_index, "last_index": l.last_index, "batches": l.batches,
                        "events": l.events, "bytes": l.bytes, "segments": l.segments,
                        "last_hash": hex32(&l.last_hash),
                        "torn_tail": l.torn_tail.as_ref().map(|t| json!({"segment": t.segment, "offset": t.offset,
                            "first_lost_index": t.first_lost_index, "reason": t.reason}))},
                "snapshots": snaps,
                "snapshots_note": r.snapshots_note,
                "epoch": r.epoch,
                "replay_from": r.replay_from,
                "last_index": r.position.map(|p| p.index),
                "events_total": r.position.map(|p| p.events_total),
                "state_hash": r.state_hash.as_ref().map(hex32),
            })
        );
        return;
    }
    println!(
        "event log {}: batches {}..={} ({} batches, {} events, {} bytes in {} segment(s)); checksums and hash chain intact",
        r.data_dir.join("log").display(),
        l.first_index,
        l.last_index,
        l.batches,
        l.events,
        l.bytes,
        l.segments
    );
    if let Some(t) = &l.torn_tail {
        println!(
            "  torn tail: {} bytes at offset {} of {} (from batch {}: {}); never acknowledged, cut at the next start",
            t.bytes,
            t.offset,
            t.segment.display(),
            t.first_lost_index,
            t.reason
        );
    }
    match (&r.snapshots, &r.snapshots_note) {
        (Some(v), _) if v.is_empty() => println!("snapshots: none stored"),
        (Some(v), _) => {
            let compared: Vec<String> = v
                .iter()
                .filter(|s| s.compared_with_replay)
                .map(|s| s.index.to_string())
                .collect();
            println!(
                "snapshots: {} stored (batches {}), checksums intact{}",
                v.len(),
                v.iter()
                    .map(|s| s.index.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                if compared.is_empty() {
                    String::new()
                } else {
                    format!("; batch {} matches the replayed log", compared.join(", "))
                }
            );
        }
        (None, Some(note)) => println!("snapshots: {note}"),
        (None, None) => {}
    }
    if let Some(e) = r.epoch {
        println!("epoch: {e}");
    }
    match (r.replay_from, r.position, r.state_hash) {
        (Some(from), Some(p), Some(h)) => println!(
            "replayed {} to batch {} ({} events in all): state_hash {}",
            if from == 0 {
                "from the log's beginning".to_string()
            } else {
                format!("from the snapshot at batch {from}")
            },
            p.index,
            p.events_total,
            hex32(&h)
        ),
        _ => println!(
            "not replayed (the log's beginning was purged and the snapshots are not readable)"
        ),
    }
    println!("OK");
}

fn print_backup(as_json: bool, verb: &str, file: &std::path::Path, s: &BackupSummary) {
    let m = &s.meta;
    if as_json {
        println!(
            "{}",
            json!({"ok": true, "file": file, "bytes": s.bytes, "encrypted": m.encrypted, "epoch": m.epoch,
                   "created": format_us(m.created_us), "snapshot_index": (m.base_index > 0).then_some(m.base_index),
                   "first_index": m.base_index + 1, "last_index": m.last_index, "last_hash": m.last_hash,
                   "events_total": m.events_total, "state_hash": s.state_hash.as_ref().map(hex32)})
        );
        return;
    }
    println!(
        "backup {} {verb}: {}batches {}..={} ({} events in all), epoch {}, {} bytes, {}, written {}",
        file.display(),
        if m.base_index > 0 { format!("snapshot at batch {} + ", m.base_index) } else { String::new() },
        m.base_index + 1,
        m.last_index,
        m.events_total,
        m.epoch,
        s.bytes,
        if m.encrypted { "encrypted (ChaCha20-Poly1305)" } else { "not encrypted" },
        format_us(m.created_us)
    );
    if let Some(h) = &s.state_hash {
        println!("checksum and hash chain intact; state_hash {}", hex32(h));
    }
}

/// `bourse backup --out FILE`.
pub fn backup(args: BackupArgs) -> ExitCode {
    init_logging();
    let dir = match data_dir(&args.config) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let key = match key(&args.key_file) {
        Ok(k) => k,
        Err(code) => return code,
    };
    match backup::backup(&dir, &args.out, key.as_ref()) {
        Ok(s) => {
            print_backup(args.json, "written", &args.out, &s);
            ExitCode::SUCCESS
        }
        Err(e) => failed(args.json, "backup", &e),
    }
}

/// `bourse restore --from FILE [--until-index N | --until-time T]`.
pub fn restore(args: RestoreArgs) -> ExitCode {
    init_logging();
    let dir = match data_dir(&args.config) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let key = match key(&args.key_file) {
        Ok(k) => k,
        Err(code) => return code,
    };
    let until = match (args.until_index, &args.until_time) {
        (Some(n), _) => Until::Index(n),
        (None, Some(t)) => match parse_time(t) {
            Ok(t) => Until::Time(t),
            Err(e) => {
                eprintln!("bourse restore: --until-time {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
        },
        (None, None) => Until::End,
    };
    match backup::restore(&args.from, key.as_ref(), &dir, until) {
        Ok(s) => {
            if args.json {
                println!(
                    "{}",
                    json!({"ok": true, "data_dir": dir, "last_index": s.position.index, "last_hash": hex32(&s.position.hash),
                           "events_total": s.position.events_total, "last_ts": s.position.last_ts,
                           "state_hash": hex32(&s.state_hash), "epoch": s.epoch, "batches_left_out": s.batches_left_out})
                );
            } else {
                println!(
                    "restored {} from {} to batch {} (last event {}): state_hash {}, new stream epoch {}{}",
                    dir.display(),
                    args.from.display(),
                    s.position.index,
                    format_us(s.position.last_ts),
                    hex32(&s.state_hash),
                    s.epoch,
                    if s.batches_left_out > 0 {
                        format!("; {} later batches of the backup left out", s.batches_left_out)
                    } else {
                        String::new()
                    }
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => failed(args.json, "restore", &e),
    }
}

/// `bourse audit`: who did what, when.
pub fn audit(args: AuditArgs) -> ExitCode {
    init_logging();
    let dir = match data_dir(&args.config) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let json_out = args.json;
    let mut out = std::io::stdout().lock();
    // A closed stdout (`bourse audit | head`) ends the output quietly.
    let mut open = true;
    let result = audit_data_dir(&dir, |r| {
        use std::io::Write;
        if !open {
            return;
        }
        let written = if json_out {
            writeln!(
                out,
                "{}",
                serde_json::to_string(r).expect("audit records encode")
            )
        } else {
            writeln!(
                out,
                "{}  #{:<8} {:<12} {}",
                r.time, r.index, r.actor, r.action
            )
        };
        open = written.is_ok();
    });
    drop(out);
    match result {
        Ok(src) => {
            if !json_out && src.first_index > 1 {
                println!(
                    "(the log begins at batch {}: earlier history was removed by retention after a snapshot{})",
                    src.first_index,
                    if src.seeded_from_snapshot { "" } else { "; names of older accounts are unknown" }
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => failed(json_out, "audit", &e),
    }
}
