package conntrack

// The per-shard index: open addressing with linear probing over 8-byte entries, deletion by
// backward shift (no tombstones). The tag is the low 32 bits of the tuple hash and the
// position its low bits, so an entry's home position is known without reading its slot (the
// shard is chosen by the top bits). A tag match is confirmed by comparing the tuple stored in
// the slot the entry points at.

func tagOf(h uint64) uint32 { return uint32(h) }

// find returns the slot and reference of tuple tu (hash h) in shard s, which must be locked.
func (t *Table) find(s *shard, tu *Tuple, h uint64) (*slot, uint32) {
	m := uint32(len(s.index) - 1)
	tag := tagOf(h)
	for i := uint32(h) & m; ; i = (i + 1) & m {
		e := s.index[i]
		if e.ref == 0 {
			return nil, 0
		}
		if e.tag != tag {
			continue
		}
		sl := t.slotOf(e.ref)
		if e.ref&refReply != 0 {
			if sl.reply == *tu {
				return sl, e.ref
			}
		} else if sl.orig == *tu {
			return sl, e.ref
		}
	}
}

// indexAdd adds an entry for hash h (shard locked); the index doubles past a load of 3/4.
func (t *Table) indexAdd(s *shard, h uint64, ref uint32) {
	if (s.n+1)*4 > len(s.index)*3 {
		t.grow(s)
	}
	m := uint32(len(s.index) - 1)
	i := uint32(h) & m
	for s.index[i].ref != 0 {
		i = (i + 1) & m
	}
	s.index[i] = entry{tag: tagOf(h), ref: ref}
	s.n++
}

func (t *Table) grow(s *shard) {
	old := s.index
	s.index = make([]entry, 2*len(old))
	m := uint32(len(s.index) - 1)
	for _, e := range old {
		if e.ref == 0 {
			continue
		}
		i := e.tag & m
		for s.index[i].ref != 0 {
			i = (i + 1) & m
		}
		s.index[i] = e
	}
}

// indexRemove removes the entry with reference ref for hash h (shard locked).
func (t *Table) indexRemove(s *shard, h uint64, ref uint32) bool {
	m := uint32(len(s.index) - 1)
	i := uint32(h) & m
	for {
		e := s.index[i]
		if e.ref == 0 {
			return false
		}
		if e.ref == ref {
			break
		}
		i = (i + 1) & m
	}
	// Shift later entries of the cluster back into the hole when their home position allows.
	for j := i; ; {
		j = (j + 1) & m
		e := s.index[j]
		if e.ref == 0 {
			break
		}
		k := e.tag & m
		if (i <= j && (k <= i || k > j)) || (i > j && k <= i && k > j) {
			s.index[i] = e
			i = j
		}
	}
	s.index[i] = entry{}
	s.n--
	return true
}
