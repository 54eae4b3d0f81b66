package main

import (
	"bytes"
	"fmt"
	"syscall"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// checkInvariants recomputes what the store keeps incrementally and compares.
func checkInvariants(t *testing.T, s *Store) {
	t.Helper()
	if err := invariantError(s); err != nil {
		t.Fatal(err)
	}
}

func invariantError(s *Store) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, dur := map[uint64]int{}, map[uint64]int{}
	for _, n := range s.nodes {
		if n.kind != kindDir {
			continue
		}
		for name, c := range n.entries {
			if s.nodes[c.id] != c {
				return fmt.Errorf("dir %d entry %q names freed inode %d", n.id, name, c.id)
			}
			cur[c.id]++
		}
		for name, c := range n.durEntries {
			if s.nodes[c.id] != c {
				return fmt.Errorf("dir %d durable entry %q names freed inode %d", n.id, name, c.id)
			}
			dur[c.id]++
		}
	}
	type slot struct {
		id  uint64
		idx int64
	}
	owner := map[*page]slot{}
	inPool := map[*page]bool{}
	for _, p := range s.pool.free {
		if inPool[p] || p == zeroPage {
			return fmt.Errorf("page pool holds a buffer twice, or the zero page")
		}
		inPool[p] = true
	}
	claim := func(id uint64, pages map[int64]*page) error {
		for idx, p := range pages {
			if p == zeroPage {
				continue
			}
			if inPool[p] {
				return fmt.Errorf("inode %d page %d is also in the pool", id, idx)
			}
			if o, ok := owner[p]; ok && o != (slot{id, idx}) {
				return fmt.Errorf("inode %d page %d shares its buffer with inode %d page %d", id, idx, o.id, o.idx)
			}
			owner[p] = slot{id, idx}
		}
		return nil
	}
	var alloc int64
	for id, n := range s.nodes {
		if n.file != nil {
			if err := claim(id, n.file.cur); err != nil {
				return err
			}
			if err := claim(id, n.file.dur); err != nil {
				return err
			}
		}
		if n.curLinks != cur[id] || n.durLinks != dur[id] {
			return fmt.Errorf("inode %d: links %d/%d, counted %d/%d", id, n.curLinks, n.durLinks, cur[id], dur[id])
		}
		live := id == rootID || n.curLinks > 0 || n.nlookup > 0
		if n.live != live {
			return fmt.Errorf("inode %d: live %v, want %v", id, n.live, live)
		}
		if !live && n.durLinks == 0 {
			return fmt.Errorf("inode %d is unreachable but not freed", id)
		}
		if n.file == nil {
			continue
		}
		f := n.file
		if live {
			alloc += int64(len(f.cur))
		}
		for idx, p := range f.cur {
			if _, d := f.dirty[idx]; f.dur[idx] != p && !d {
				return fmt.Errorf("inode %d page %d differs from the durable one but is not dirty", id, idx)
			}
		}
		for idx, p := range f.dur {
			if _, d := f.dirty[idx]; f.cur[idx] != p && !d {
				return fmt.Errorf("inode %d durable page %d differs from the current one but is not dirty", id, idx)
			}
		}
		if err := zeroPastEnd(f.cur, f.size); err != nil {
			return fmt.Errorf("inode %d current: %v", id, err)
		}
		if err := zeroPastEnd(f.dur, f.durSize); err != nil {
			return fmt.Errorf("inode %d durable: %v", id, err)
		}
	}
	if alloc != s.allocPages {
		return fmt.Errorf("allocated pages %d, counted %d", s.allocPages, alloc)
	}
	return nil
}

func zeroPastEnd(pages map[int64]*page, size int64) error {
	for idx, p := range pages {
		from := max(0, size-idx*pageSize)
		if from >= pageSize {
			continue
		}
		for i := from; i < pageSize; i++ {
			if p[i] != 0 {
				return fmt.Errorf("byte %d past the end (%d) is not zero", idx*pageSize+i, size)
			}
		}
	}
	return nil
}

// The helpers below act as the kernel would, but forget every reference at once:
// nothing is held open unless a test says so.

func create(t *testing.T, s *Store, dir uint64, name string) uint64 {
	t.Helper()
	var out fuse.EntryOut
	if e := s.Create(dir, name, CreateOpts{Mode: 0o644, Exclusive: true}, &out); e != 0 {
		t.Fatalf("create %q: %v", name, e)
	}
	s.Forget(out.NodeId, 1)
	return out.NodeId
}

func mkdir(t *testing.T, s *Store, dir uint64, name string) uint64 {
	t.Helper()
	var out fuse.EntryOut
	if e := s.Mkdir(dir, name, 0o755, 0, 0, &out); e != 0 {
		t.Fatalf("mkdir %q: %v", name, e)
	}
	s.Forget(out.NodeId, 1)
	return out.NodeId
}

func lookup(s *Store, dir uint64, name string) (uint64, syscall.Errno) {
	var out fuse.EntryOut
	if e := s.Lookup(dir, name, &out); e != 0 {
		return 0, e
	}
	s.Forget(out.NodeId, 1)
	return out.NodeId, 0
}

func write(t *testing.T, s *Store, id uint64, off int64, b []byte) {
	t.Helper()
	if _, e := s.Write(id, off, [][]byte{b}, WriteOpts{}); e != 0 {
		t.Fatalf("write: %v", e)
	}
}

func content(t *testing.T, s *Store, id uint64) []byte {
	t.Helper()
	var a fuse.Attr
	if e := s.GetAttr(id, &a); e != 0 {
		t.Fatalf("getattr: %v", e)
	}
	b := make([]byte, a.Size)
	if _, e := s.Read(id, 0, b); e != 0 {
		t.Fatalf("read: %v", e)
	}
	return b
}

func fsync(t *testing.T, s *Store, id uint64) {
	t.Helper()
	if e := s.Fsync(id); e != 0 {
		t.Fatalf("fsync: %v", e)
	}
}

func TestCreateNeedsDirectoryFsync(t *testing.T) {
	s := NewStore(0)
	a := create(t, s, rootID, "a")
	write(t, s, a, 0, []byte("data"))
	fsync(t, s, a)
	b := create(t, s, rootID, "b")
	write(t, s, b, 0, []byte("data"))
	fsync(t, s, b)
	fsync(t, s, rootID)
	c := create(t, s, rootID, "c")
	write(t, s, c, 0, []byte("data"))
	fsync(t, s, c) // file synced, directory not: the strict POSIX reading loses it
	res, _ := s.Cut(false, 0)
	if res.DroppedEntries != 1 || res.FreedInodes != 1 {
		t.Fatalf("cut result %+v", res)
	}
	if _, e := lookup(s, rootID, "c"); e != syscall.ENOENT {
		t.Fatal("c was never made durable in its directory")
	}
	for _, name := range []string{"a", "b"} {
		id, e := lookup(s, rootID, name)
		if e != 0 || !bytes.Equal(content(t, s, id), []byte("data")) {
			t.Fatalf("%s lost", name)
		}
	}
	checkInvariants(t, s)
}

func TestAtomicReplaceLeavesOldOrNew(t *testing.T) {
	s := NewStore(0)
	f := create(t, s, rootID, "state.json")
	write(t, s, f, 0, []byte("old"))
	fsync(t, s, f)
	fsync(t, s, rootID)
	replace := func(text string, syncDir bool) {
		tmp := create(t, s, rootID, "state.json.tmp")
		write(t, s, tmp, 0, []byte(text))
		fsync(t, s, tmp)
		if e := s.Rename(rootID, "state.json.tmp", rootID, "state.json", 0); e != 0 {
			t.Fatal(e)
		}
		if syncDir {
			fsync(t, s, rootID)
		}
	}
	read := func() string {
		id, e := lookup(s, rootID, "state.json")
		if e != 0 {
			t.Fatal("state.json missing")
		}
		if _, e := lookup(s, rootID, "state.json.tmp"); e != syscall.ENOENT {
			t.Fatal("the temporary file survived")
		}
		return string(content(t, s, id))
	}
	replace("new", false)
	s.Cut(false, 0)
	if got := read(); got != "old" {
		t.Fatalf("rename without a directory fsync: %q, want the old content", got)
	}
	replace("new", true)
	s.Cut(false, 0)
	if got := read(); got != "new" {
		t.Fatalf("after the full pattern: %q", got)
	}
	checkInvariants(t, s)
}

func TestUnlinkRevertsAndOpenOrphanSurvivesCut(t *testing.T) {
	s := NewStore(0)
	f := create(t, s, rootID, "f")
	write(t, s, f, 0, []byte("durable"))
	fsync(t, s, f)
	fsync(t, s, rootID)
	if e := s.Unlink(rootID, "f"); e != 0 {
		t.Fatal(e)
	}
	s.Cut(false, 0)
	id, e := lookup(s, rootID, "f")
	if e != 0 || id != f || string(content(t, s, f)) != "durable" {
		t.Fatal("an unsynced unlink must revert, to the same inode")
	}
	// A file the kernel still holds (open) outlives the entry a cut takes away.
	var out fuse.EntryOut
	if e := s.Create(rootID, "g", CreateOpts{Mode: 0o644, Exclusive: true}, &out); e != 0 {
		t.Fatal(e)
	}
	g := out.NodeId
	write(t, s, g, 0, []byte("unsynced"))
	s.Cut(false, 0)
	if _, e := lookup(s, rootID, "g"); e != syscall.ENOENT {
		t.Fatal("g was never durable")
	}
	if len(content(t, s, g)) != 0 {
		t.Fatal("the orphan's unsynced data must be gone")
	}
	checkInvariants(t, s)
	s.Forget(g, 1)
	if s.Stats().Inodes != 2 {
		t.Fatalf("inodes %d after the orphan was forgotten, want root and f", s.Stats().Inodes)
	}
	checkInvariants(t, s)
}

func TestRemoveEverythingFreesEverything(t *testing.T) {
	s := NewStore(0)
	d := mkdir(t, s, rootID, "d")
	e := mkdir(t, s, d, "e")
	for i := range 5 {
		f := create(t, s, e, fmt.Sprint(i))
		write(t, s, f, 0, make([]byte, 3*pageSize))
		fsync(t, s, f)
	}
	s.SyncAll()
	for i := range 5 {
		if err := s.Unlink(e, fmt.Sprint(i)); err != 0 {
			t.Fatal(err)
		}
	}
	if err := s.Rmdir(d, "e"); err != 0 {
		t.Fatal(err)
	}
	if err := s.Rmdir(rootID, "d"); err != 0 {
		t.Fatal(err)
	}
	if st := s.Stats(); st.AllocatedBytes != 0 || st.Inodes != 8 {
		t.Fatalf("after removal, before a directory fsync: %+v (the durable tree is still held)", st)
	}
	fsync(t, s, rootID)
	if st := s.Stats(); st.Inodes != 1 || st.MemoryBytes != 0 {
		t.Fatalf("after the root's fsync nothing can come back, yet %+v", st)
	}
	checkInvariants(t, s)
}

func TestCapacity(t *testing.T) {
	s := NewStore(10 * pageSize)
	f := create(t, s, rootID, "f")
	write(t, s, f, 0, make([]byte, 8*pageSize))
	if _, e := s.Write(f, 8*pageSize, [][]byte{make([]byte, 3*pageSize)}, WriteOpts{}); e != syscall.ENOSPC {
		t.Fatalf("a write past the capacity: %v, want ENOSPC", e)
	}
	if len(content(t, s, f)) != 8*pageSize {
		t.Fatal("a refused write must change nothing")
	}
	write(t, s, f, 0, make([]byte, 8*pageSize)) // overwriting needs no new pages
	if e := s.Fallocate(f, 0, 20*pageSize, 0); e != syscall.ENOSPC {
		t.Fatalf("fallocate past the capacity: %v", e)
	}
	if e := s.Fallocate(f, 0, 4*pageSize, fallocPunchHole|fallocKeepSize); e != 0 {
		t.Fatal(e)
	}
	write(t, s, f, 8*pageSize, make([]byte, 6*pageSize))
	s.SetCapacity(0)
	write(t, s, f, 100*pageSize, make([]byte, 100*pageSize))
	var sf fuse.StatfsOut
	s.StatFs(&sf)
	if sf.Blocks-sf.Bfree != 110 {
		t.Fatalf("statfs: %d blocks used, want 110", sf.Blocks-sf.Bfree)
	}
	checkInvariants(t, s)
}

func TestDirectoryRenameAcrossParentsIsRefused(t *testing.T) {
	s := NewStore(0)
	a := mkdir(t, s, rootID, "a")
	mkdir(t, s, rootID, "b")
	mkdir(t, s, a, "c")
	if e := s.Rename(a, "c", rootID, "c", 0); e != syscall.EXDEV {
		t.Fatalf("got %v, want EXDEV", e)
	}
	if e := s.Rename(rootID, "b", rootID, "b2", 0); e != 0 {
		t.Fatalf("a rename within the parent: %v", e)
	}
	f := create(t, s, a, "f")
	if e := s.Rename(a, "f", rootID, "f", 0); e != 0 {
		t.Fatalf("a file between parents: %v", e)
	}
	if id, _ := lookup(s, rootID, "f"); id != f {
		t.Fatal("rename lost the inode")
	}
	checkInvariants(t, s)
}
