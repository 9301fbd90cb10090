//! A map over small dense integer keys (account ids, asset ids), kept in a
//! vector indexed by the key: a lookup is one bounds check and one load.
//!
//! It behaves like an ordered map: iteration and the serialized form go in
//! key order, and it encodes exactly as a `BTreeMap` with the same entries
//! does, so snapshots and state hashes do not depend on the representation.
//! `InlineDenseMap` keeps its first few keys inside the map itself (an
//! account's balances of the first assets, read with the account).

use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use crate::types::{AccountId, AssetId};

/// The largest key a dense map takes: its vector has one slot per key
/// below this (accounts and assets are numbered from 0 or 1 upwards).
pub const DENSE_KEY_MAX: usize = 1 << 26;

/// A key that is a small integer.
pub trait DenseKey: Copy + Ord {
    fn index(self) -> usize;
    /// The key whose index is `i` (`i` below `DENSE_KEY_MAX`).
    fn from_index(i: usize) -> Self;
}

impl DenseKey for AccountId {
    fn index(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
    fn from_index(i: usize) -> Self {
        AccountId(i as u64)
    }
}

impl DenseKey for AssetId {
    fn index(self) -> usize {
        self.0 as usize
    }
    fn from_index(i: usize) -> Self {
        AssetId(i as u32)
    }
}

/// Whether `k` fits a dense map.
pub fn fits<K: DenseKey>(k: K) -> bool {
    k.index() < DENSE_KEY_MAX
}

#[derive(Clone, PartialEq, Eq)]
pub struct DenseMap<K, V> {
    slots: Vec<Option<(K, V)>>,
    len: usize,
}

impl<K, V> Default for DenseMap<K, V> {
    fn default() -> Self {
        DenseMap { slots: Vec::new(), len: 0 }
    }
}

impl<K: DenseKey, V> DenseMap<K, V> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    pub fn get(&self, k: &K) -> Option<&V> {
        match self.slots.get(k.index()) {
            Some(Some((_, v))) => Some(v),
            _ => None,
        }
    }

    #[inline]
    pub fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        match self.slots.get_mut(k.index()) {
            Some(Some((_, v))) => Some(v),
            _ => None,
        }
    }

    pub fn contains_key(&self, k: &K) -> bool {
        self.get(k).is_some()
    }

    fn slot(&mut self, k: K) -> &mut Option<(K, V)> {
        let i = k.index();
        assert!(i < DENSE_KEY_MAX, "dense key {i} is past {DENSE_KEY_MAX}");
        if i >= self.slots.len() {
            self.slots.resize_with(i + 1, || None);
        }
        &mut self.slots[i]
    }

    pub fn insert(&mut self, k: K, v: V) -> Option<V> {
        let old = self.slot(k).replace((k, v)).map(|(_, v)| v);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// The value at `k`, made by `make` first if absent. The lookup is
    /// inlined where it is used (accounts are looked up several times per
    /// order event); the insert is not.
    #[inline]
    pub fn or_insert_with(&mut self, k: K, make: impl FnOnce() -> V) -> &mut V {
        let i = k.index();
        if matches!(self.slots.get(i), Some(Some(_))) {
            let Some((_, v)) = self.slots[i].as_mut() else { unreachable!("checked") };
            return v;
        }
        self.insert_new(k, make())
    }

    #[cold]
    #[inline(never)]
    fn insert_new(&mut self, k: K, v: V) -> &mut V {
        self.len += 1;
        let (_, v) = self.slot(k).insert((k, v));
        v
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&K, &V)> + '_ {
        self.slots.iter().filter_map(|s| s.as_ref().map(|(k, v)| (k, v)))
    }

    pub fn iter_mut(&mut self) -> impl DoubleEndedIterator<Item = (&K, &mut V)> + '_ {
        self.slots.iter_mut().filter_map(|s| s.as_mut().map(|(k, v)| (&*k, v)))
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &K> + '_ {
        self.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> + '_ {
        self.iter().map(|(_, v)| v)
    }

    pub fn values_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut V> + '_ {
        self.iter_mut().map(|(_, v)| v)
    }

    /// The entries, by key, taken out.
    pub fn into_entries(self) -> impl Iterator<Item = (K, V)> {
        self.slots.into_iter().flatten()
    }
}

impl<K: DenseKey, V: Default> DenseMap<K, V> {
    /// The value at `k`, a default one inserted first if absent.
    #[inline]
    pub fn or_default(&mut self, k: K) -> &mut V {
        self.or_insert_with(k, V::default)
    }
}

impl<K: DenseKey, V> std::ops::Index<&K> for DenseMap<K, V> {
    type Output = V;
    fn index(&self, k: &K) -> &V {
        self.get(k).expect("key is present")
    }
}

type Slot<K, V> = Option<(K, V)>;

fn entry<K, V>(s: &Slot<K, V>) -> Option<(&K, &V)> {
    s.as_ref().map(|(k, v)| (k, v))
}

impl<'a, K: DenseKey, V> IntoIterator for &'a DenseMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = std::iter::FilterMap<std::slice::Iter<'a, Slot<K, V>>, fn(&'a Slot<K, V>) -> Option<(&'a K, &'a V)>>;
    fn into_iter(self) -> Self::IntoIter {
        self.slots.iter().filter_map(entry as fn(&'a Slot<K, V>) -> Option<(&'a K, &'a V)>)
    }
}

impl<K: DenseKey, V> FromIterator<(K, V)> for DenseMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut m = DenseMap::new();
        for (k, v) in iter {
            m.insert(k, v);
        }
        m
    }
}

impl<K: DenseKey + fmt::Debug, V: fmt::Debug> fmt::Debug for DenseMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: DenseKey + Serialize, V: Serialize> Serialize for DenseMap<K, V> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut m = ser.serialize_map(Some(self.len))?;
        for (k, v) in self.iter() {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<'de, K: DenseKey + Deserialize<'de>, V: Deserialize<'de>> Deserialize<'de> for DenseMap<K, V> {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V2<K, V>(PhantomData<(K, V)>);
        impl<'de, K: DenseKey + Deserialize<'de>, V: Deserialize<'de>> Visitor<'de> for V2<K, V> {
            type Value = DenseMap<K, V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map with small integer keys")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut m = DenseMap::new();
                while let Some((k, v)) = a.next_entry::<K, V>()? {
                    if !fits(k) {
                        return Err(serde::de::Error::custom("dense map key too large"));
                    }
                    m.insert(k, v);
                }
                Ok(m)
            }
        }
        de.deserialize_map(V2(PhantomData))
    }
}

/// A dense map whose first `N` keys live inside the map itself, for a
/// value that sits in a larger record touched on every command (an
/// account's balances: most accounts hold a few of the first assets): a
/// lookup of a small key reads the record's own memory, with no pointer to
/// follow. Larger keys go to a `DenseMap`. It iterates in key order and
/// encodes exactly as a `DenseMap` (and so a `BTreeMap`) with the same
/// entries does.
#[derive(Clone, PartialEq, Eq)]
pub struct InlineDenseMap<K, V, const N: usize> {
    inline: [Option<V>; N],
    rest: DenseMap<K, V>,
}

impl<K, V, const N: usize> Default for InlineDenseMap<K, V, N> {
    fn default() -> Self {
        InlineDenseMap { inline: std::array::from_fn(|_| None), rest: DenseMap::default() }
    }
}

impl<K: DenseKey, V, const N: usize> InlineDenseMap<K, V, N> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.inline.iter().filter(|v| v.is_some()).count() + self.rest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline]
    pub fn get(&self, k: &K) -> Option<&V> {
        match self.inline.get(k.index()) {
            Some(v) => v.as_ref(),
            None => self.rest.get(k),
        }
    }

    #[inline]
    pub fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        match self.inline.get_mut(k.index()) {
            Some(v) => v.as_mut(),
            None => self.rest.get_mut(k),
        }
    }

    pub fn insert(&mut self, k: K, v: V) -> Option<V> {
        match self.inline.get_mut(k.index()) {
            Some(slot) => slot.replace(v),
            None => self.rest.insert(k, v),
        }
    }

    /// Entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (K, &V)> + '_ {
        self.inline
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.as_ref().map(|v| (K::from_index(i), v)))
            .chain(self.rest.iter().map(|(k, v)| (*k, v)))
    }
}

impl<K: DenseKey, V: Default, const N: usize> InlineDenseMap<K, V, N> {
    /// The value at `k`, a default one inserted first if absent.
    #[inline]
    pub fn or_default(&mut self, k: K) -> &mut V {
        match self.inline.get_mut(k.index()) {
            Some(slot) => slot.get_or_insert_with(V::default),
            None => self.rest.or_default(k),
        }
    }
}

impl<K: DenseKey, V, const N: usize> FromIterator<(K, V)> for InlineDenseMap<K, V, N> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut m = InlineDenseMap::new();
        for (k, v) in iter {
            m.insert(k, v);
        }
        m
    }
}

impl<K: DenseKey + fmt::Debug, V: fmt::Debug, const N: usize> fmt::Debug for InlineDenseMap<K, V, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: DenseKey + Serialize, V: Serialize, const N: usize> Serialize for InlineDenseMap<K, V, N> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut m = ser.serialize_map(Some(self.len()))?;
        for (k, v) in self.iter() {
            m.serialize_entry(&k, v)?;
        }
        m.end()
    }
}

impl<'de, K: DenseKey + Deserialize<'de>, V: Deserialize<'de>, const N: usize> Deserialize<'de> for InlineDenseMap<K, V, N> {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let all = DenseMap::<K, V>::deserialize(de)?;
        Ok(all.slots.into_iter().flatten().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Small keys (inline) and large ones (behind a pointer) together:
    /// lookups, defaults, key order and the encoding are those of a
    /// `BTreeMap` with the same entries.
    #[test]
    fn inline_map_behaves_as_an_ordered_map() {
        let mut m: InlineDenseMap<AssetId, u64, 4> = InlineDenseMap::new();
        let mut b: BTreeMap<AssetId, u64> = BTreeMap::new();
        for (k, v) in [(9u32, 90u64), (2, 20), (0, 1), (3, 30), (4, 40), (2, 21), (70, 700)] {
            assert_eq!(m.insert(AssetId(k), v), b.insert(AssetId(k), v));
        }
        *m.or_default(AssetId(1)) += 5;
        *b.entry(AssetId(1)).or_default() += 5;
        *m.or_default(AssetId(9)) += 5;
        *b.entry(AssetId(9)).or_default() += 5;
        *m.or_default(AssetId(12)) += 7;
        *b.entry(AssetId(12)).or_default() += 7;
        assert_eq!(m.len(), b.len());
        for k in 0..80 {
            assert_eq!(m.get(&AssetId(k)), b.get(&AssetId(k)), "key {k}");
        }
        let got: Vec<(AssetId, u64)> = m.iter().map(|(k, v)| (k, *v)).collect();
        assert_eq!(got, b.iter().map(|(k, v)| (*k, *v)).collect::<Vec<_>>());
        let enc = rmp_serde::to_vec(&m).expect("encodes");
        assert_eq!(enc, rmp_serde::to_vec(&b).expect("encodes"));
        let back: InlineDenseMap<AssetId, u64, 4> = rmp_serde::from_slice(&enc).expect("decodes");
        assert!(back == m);
        *m.get_mut(&AssetId(3)).expect("present") += 1;
        assert!(back != m);
    }
}
