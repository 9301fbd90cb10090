//! A map over small dense integer keys (account ids, asset ids), kept in a
//! vector indexed by the key: a lookup is one bounds check and one load.
//!
//! It behaves like an ordered map: iteration and the serialized form go in
//! key order, and it encodes exactly as a `BTreeMap` with the same entries
//! does, so snapshots and state hashes do not depend on the representation.

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
}

impl DenseKey for AccountId {
    fn index(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

impl DenseKey for AssetId {
    fn index(self) -> usize {
        self.0 as usize
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

    /// The value at `k`, inserted with `make` first if absent.
    #[inline]
    pub fn or_insert_with(&mut self, k: K, make: impl FnOnce() -> V) -> &mut V {
        let i = k.index();
        if let Some(Some(_)) = self.slots.get(i) {
            let Some((_, v)) = self.slots[i].as_mut() else { unreachable!("checked") };
            return v;
        }
        self.len += 1;
        let (_, v) = self.slot(k).insert((k, make()));
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
