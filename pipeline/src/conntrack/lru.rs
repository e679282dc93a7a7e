//! Intrusive doubly linked lists over slab indices, one per timeout class,
//! each in order of last refresh (head: least recently refreshed).
//!
//! The links live in one array allocated once beside the slab (index `i`
//! links entry `i`), so appending, unlinking and moving an entry to the tail
//! of any list are a few stores, never an allocation, never a walk.

use super::timeouts::TimeoutClass;

/// No entry (end of a list, or an empty list's head and tail).
pub(crate) const NIL: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct Link {
    prev: u32,
    next: u32,
    /// The list the entry is on; meaningful only while `linked`.
    class: u8,
    linked: bool,
}

const UNLINKED: Link = Link {
    prev: NIL,
    next: NIL,
    class: 0,
    linked: false,
};

/// One list per timeout class over `capacity` entries.
#[derive(Clone, Debug)]
pub(crate) struct Lists {
    links: Box<[Link]>,
    heads: [u32; TimeoutClass::COUNT],
    tails: [u32; TimeoutClass::COUNT],
    lens: [usize; TimeoutClass::COUNT],
}

impl Lists {
    /// Empty lists over entries `0..capacity`, all allocated now.
    pub(crate) fn new(capacity: usize) -> Self {
        Lists {
            links: vec![UNLINKED; capacity].into_boxed_slice(),
            heads: [NIL; TimeoutClass::COUNT],
            tails: [NIL; TimeoutClass::COUNT],
            lens: [0; TimeoutClass::COUNT],
        }
    }

    /// Bytes the links of `capacity` entries take.
    pub(crate) fn bytes_for(capacity: usize) -> usize {
        capacity * std::mem::size_of::<Link>()
    }

    /// The least recently refreshed entry of `class`.
    #[inline]
    pub(crate) fn head(&self, class: TimeoutClass) -> Option<u32> {
        let h = self.heads[class.index()];
        (h != NIL).then_some(h)
    }

    /// Entries on `class`'s list.
    pub(crate) fn len(&self, class: TimeoutClass) -> usize {
        self.lens[class.index()]
    }

    /// Appends unlinked entry `i` to the tail of `class`.
    pub(crate) fn push_back(&mut self, i: u32, class: TimeoutClass) {
        let c = class.index();
        let tail = self.tails[c];
        self.links[i as usize] = Link {
            prev: tail,
            next: NIL,
            class: class as u8,
            linked: true,
        };
        if tail == NIL {
            self.heads[c] = i;
        } else {
            self.links[tail as usize].next = i;
        }
        self.tails[c] = i;
        self.lens[c] += 1;
    }

    /// Takes entry `i` off its list (nothing if it is on none).
    pub(crate) fn unlink(&mut self, i: u32) {
        let Link {
            prev,
            next,
            class,
            linked,
        } = self.links[i as usize];
        if !linked {
            return;
        }
        let c = usize::from(class);
        if prev == NIL {
            self.heads[c] = next;
        } else {
            self.links[prev as usize].next = next;
        }
        if next == NIL {
            self.tails[c] = prev;
        } else {
            self.links[next as usize].prev = prev;
        }
        self.lens[c] -= 1;
        self.links[i as usize] = UNLINKED;
    }

    /// Moves entry `i` to the tail of `class` (its own list or another): the
    /// entry was just refreshed. Already there: nothing to do.
    #[inline]
    pub(crate) fn touch(&mut self, i: u32, class: TimeoutClass) {
        let link = self.links[i as usize];
        if link.linked && link.class == class as u8 && link.next == NIL {
            return;
        }
        self.unlink(i);
        self.push_back(i, class);
    }

    /// The entries of `class`, head first (tests and checks).
    #[cfg(test)]
    pub(crate) fn iter(&self, class: TimeoutClass) -> impl Iterator<Item = u32> + '_ {
        let mut at = self.heads[class.index()];
        std::iter::from_fn(move || {
            if at == NIL {
                return None;
            }
            let i = at;
            at = self.links[i as usize].next;
            Some(i)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: TimeoutClass = TimeoutClass::UdpUnreplied;
    const B: TimeoutClass = TimeoutClass::UdpAssured;

    fn items(l: &Lists, c: TimeoutClass) -> Vec<u32> {
        l.iter(c).collect()
    }

    #[test]
    fn touch_moves_to_the_tail_of_any_list() {
        let mut l = Lists::new(8);
        for i in 0..4 {
            l.push_back(i, A);
        }
        l.touch(1, A);
        assert_eq!(items(&l, A), [0, 2, 3, 1]);
        l.touch(0, B);
        l.touch(3, B);
        assert_eq!(items(&l, A), [2, 1]);
        assert_eq!(items(&l, B), [0, 3]);
        assert_eq!((l.len(A), l.len(B)), (2, 2));
        l.touch(3, B);
        assert_eq!(items(&l, B), [0, 3]);
        l.unlink(2);
        l.unlink(1);
        l.unlink(1);
        assert_eq!(l.head(A), None);
        assert_eq!(l.head(B), Some(0));
        l.unlink(0);
        l.unlink(3);
        assert_eq!(l.head(B), None);
        assert_eq!(l.len(B), 0);
    }
}
