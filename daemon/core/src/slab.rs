//! A slab with generations: dense storage addressed by `u32` slots, so the
//! indexes hold 4-byte handles instead of hashing external ids.

#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Slab<T> {
    slots: Vec<Option<T>>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Slab<T> {
    pub(crate) fn new() -> Self {
        Slab { slots: Vec::new(), free: Vec::new(), len: 0 }
    }

    pub(crate) fn insert(&mut self, value: T) -> u32 {
        self.len += 1;
        if let Some(slot) = self.free.pop() {
            self.slots[slot as usize] = Some(value);
            slot
        } else {
            self.slots.push(Some(value));
            u32::try_from(self.slots.len() - 1).expect("more than 2^32 live entries")
        }
    }

    pub(crate) fn remove(&mut self, slot: u32) -> Option<T> {
        let value = self.slots.get_mut(slot as usize)?.take()?;
        self.free.push(slot);
        self.len -= 1;
        Some(value)
    }

    pub(crate) fn get(&self, slot: u32) -> Option<&T> {
        self.slots.get(slot as usize)?.as_ref()
    }

    pub(crate) fn get_mut(&mut self, slot: u32) -> Option<&mut T> {
        self.slots.get_mut(slot as usize)?.as_mut()
    }

    /// Starts loading the first cache line of a slot's entry, which the
    /// caller is about to read (see [`crate::prefetch`]).
    pub(crate) fn prefetch(&self, slot: u32) {
        crate::prefetch::prefetch(self.slots.as_ptr().wrapping_add(slot as usize));
    }

    /// Starts loading every cache line of a slot's entry, for a caller that
    /// will read fields all over a large record soon, but not at once.
    pub(crate) fn prefetch_all_lines(&self, slot: u32) {
        let entry = self.slots.as_ptr().wrapping_add(slot as usize).cast::<u8>();
        let first_line = entry.wrapping_sub(entry as usize % 64);
        let end = entry.wrapping_add(std::mem::size_of::<Option<T>>());
        let lines = (end as usize - first_line as usize).div_ceil(64);
        for line in 0..lines {
            crate::prefetch::prefetch(first_line.wrapping_add(line * 64));
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Live entries in slot order (deterministic).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &T)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| s.as_ref().map(|v| (i as u32, v)))
    }
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab::new()
    }
}

impl<T> std::ops::Index<u32> for Slab<T> {
    type Output = T;
    fn index(&self, slot: u32) -> &T {
        self.get(slot).expect("slab slot is live")
    }
}

impl<T> std::ops::IndexMut<u32> for Slab<T> {
    fn index_mut(&mut self, slot: u32) -> &mut T {
        self.get_mut(slot).expect("slab slot is live")
    }
}
