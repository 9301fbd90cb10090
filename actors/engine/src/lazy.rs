//! A part of a record that most records never use, kept behind a pointer
//! that stays null until its first use: it takes one word of the record
//! instead of its whole size, so the parts every command reads sit closer
//! together.

#[derive(Clone, Debug, Default)]
pub struct Lazy<T>(Option<Box<T>>);

impl<T: Default> Lazy<T> {
    #[inline]
    pub fn get(&self) -> Option<&T> {
        self.0.as_deref()
    }

    #[inline]
    pub fn get_mut(&mut self) -> Option<&mut T> {
        self.0.as_deref_mut()
    }

    /// The part, made (empty) first if it was never used.
    #[inline]
    pub fn force(&mut self) -> &mut T {
        self.0.get_or_insert_with(Default::default)
    }
}

/// Never used equals used and empty again.
impl<T: Default + PartialEq> PartialEq for Lazy<T> {
    fn eq(&self, other: &Self) -> bool {
        match (self.get(), other.get()) {
            (Some(a), Some(b)) => a == b,
            (Some(a), None) | (None, Some(a)) => *a == T::default(),
            (None, None) => true,
        }
    }
}

impl<T: Default + Eq> Eq for Lazy<T> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unused_equals_emptied() {
        let mut a: Lazy<Vec<u8>> = Lazy::default();
        let b: Lazy<Vec<u8>> = Lazy::default();
        assert!(a.get().is_none() && a == b);
        a.force().push(1);
        assert!(a != b);
        a.force().clear();
        assert!(a == b && a.get().is_some());
    }
}
