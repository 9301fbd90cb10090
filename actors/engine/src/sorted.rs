//! Serializes hash maps in key order, so that a state's encoding (and so its
//! hash) depends only on its contents.

#[allow(clippy::disallowed_types)]
use std::collections::HashMap;
use std::hash::BuildHasher;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

#[allow(clippy::disallowed_types)]
pub fn map<K: Ord + Serialize, V: Serialize, S: BuildHasher, Z: Serializer>(
    m: &HashMap<K, V, S>,
    ser: Z,
) -> Result<Z::Ok, Z::Error> {
    let mut entries: Vec<(&K, &V)> = m.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut out = ser.serialize_map(Some(entries.len()))?;
    for (k, v) in entries {
        out.serialize_entry(k, v)?;
    }
    out.end()
}
