//! The engine is a pure function of its inputs: it must not depend on an
//! async runtime, an I/O reactor or on sled. This asks cargo for the crate's
//! normal (non-dev) dependency tree and fails if any of them appears.

use std::process::Command;

/// Crates (or crate-name prefixes, ending in `-`) the engine must not pull in.
const FORBIDDEN: &[&str] = &[
    "tokio", "tokio-", "sled", "actix", "actix-", "mio", "futures", "futures-", "async-std", "smol", "async-io",
];

fn forbidden(name: &str) -> bool {
    FORBIDDEN.iter().any(|f| if f.ends_with('-') { name.starts_with(f) } else { name == *f })
}

#[test]
fn the_engine_depends_on_no_async_runtime_and_no_sled() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let tree = |offline: bool| {
        let mut c = Command::new(&cargo);
        c.args(["tree", "-p", "bourse-engine", "-e", "normal", "--prefix", "none", "--manifest-path", manifest]);
        if offline {
            c.arg("--offline");
        }
        c.output()
    };
    let out = match tree(true) {
        Ok(o) if o.status.success() => o,
        // Offline resolution can fail when the lock file wants a crate that
        // is not in the local cache yet; ask again with the network.
        Ok(_) => tree(false).expect("cargo runs"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("cargo is not on PATH: dependency check skipped");
            return;
        }
        Err(e) => panic!("cargo tree: {e}"),
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    let names: Vec<&str> = text.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert!(names.first() == Some(&"bourse-engine"), "unexpected cargo tree output:\n{text}");
    let bad: Vec<&str> = names.iter().copied().filter(|n| forbidden(n)).collect();
    assert!(bad.is_empty(), "the engine depends on {bad:?}:\n{text}");
}

#[test]
fn the_forbidden_list_matches_what_it_should() {
    for n in ["tokio", "tokio-util", "sled", "actix", "actix-rt", "mio", "futures", "futures-util", "async-std"] {
        assert!(forbidden(n), "{n}");
    }
    for n in ["serde", "ring", "rmp-serde", "rustc-hash", "thiserror", "tokiox", "miowrapper"] {
        assert!(!forbidden(n), "{n}");
    }
}
