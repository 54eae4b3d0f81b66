package main

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"syscall"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// A reference model, as plain as it gets: dense byte slices and name maps, each with
// a current and a durable copy. Random operations run against it and the store; after
// every one the visible trees must match and the store's invariants hold.

type refDir struct{ cur, dur map[string]int }

type reference struct {
	files    map[int]*refFile // by reference id
	dirs     []*refDir        // 0: root, then fixed subdirectories
	dirIDs   []uint64         // store ids of dirs
	toStore  map[int]uint64
	fromNode map[uint64]int
	next     int
}

type refFile struct{ cur, dur []byte }

func (r *reference) cutDirs() {
	for _, d := range r.dirs {
		d.cur = maps.Clone(d.dur)
	}
	linked := map[int]bool{}
	for _, d := range r.dirs {
		for _, id := range d.cur {
			linked[id] = true
		}
	}
	for id := range r.files {
		if !linked[id] {
			delete(r.files, id)
			delete(r.fromNode, r.toStore[id])
			delete(r.toStore, id)
		}
	}
}

func setSize(b []byte, n int) []byte {
	if n <= len(b) {
		return b[:n:n]
	}
	return append(b, make([]byte, n-len(b))...)
}

func TestRandomOperationsMatchReference(t *testing.T) {
	for seed := range uint64(30) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runRandom(t, seed, 1500) })
	}
}

func runRandom(t *testing.T, seed uint64, steps int) {
	rng := rand.New(rand.NewPCG(seed, 7))
	s := NewStore(0)
	r := &reference{files: map[int]*refFile{}, toStore: map[int]uint64{}, fromNode: map[uint64]int{}}
	r.dirs = append(r.dirs, &refDir{map[string]int{}, map[string]int{}})
	r.dirIDs = append(r.dirIDs, rootID)
	for _, name := range []string{"a", "b"} {
		r.dirIDs = append(r.dirIDs, mkdir(t, s, rootID, name))
		r.dirs = append(r.dirs, &refDir{map[string]int{}, map[string]int{}})
	}
	fsync(t, s, rootID)
	names := []string{"x", "y", "z", "w"}
	pick := func() (int, string) { return rng.IntN(len(r.dirs)), names[rng.IntN(len(names))] }

	for step := range steps {
		di, name := pick()
		d, dirID := r.dirs[di], r.dirIDs[di]
		ref, exists := d.cur[name]
		var id uint64
		if exists {
			id = r.toStore[ref]
		}
		var op string
		switch k := rng.IntN(100); {
		case k < 12:
			op = "create"
			var out fuse.EntryOut
			e := s.Create(dirID, name, CreateOpts{Mode: 0o644, Exclusive: true}, &out)
			if exists != (e == syscall.EEXIST) || (!exists && e != 0) {
				t.Fatalf("step %d create: %v (exists %v)", step, e, exists)
			}
			if !exists {
				s.Forget(out.NodeId, 1)
				r.next++
				r.files[r.next] = &refFile{}
				r.toStore[r.next], r.fromNode[out.NodeId] = out.NodeId, r.next
				d.cur[name] = r.next
			}
		case k < 40 && exists:
			op = "write"
			off := rng.IntN(5 * pageSize)
			b := bytes.Repeat([]byte{byte(1 + rng.IntN(255))}, 1+rng.IntN(2*pageSize))
			write(t, s, id, int64(off), b)
			f := r.files[ref]
			f.cur = setSize(f.cur, max(len(f.cur), off+len(b)))
			copy(f.cur[off:], b)
		case k < 46 && exists:
			op = "truncate"
			n := rng.IntN(6 * pageSize)
			var a fuse.Attr
			in := &fuse.SetAttrIn{SetAttrInCommon: fuse.SetAttrInCommon{Valid: fuse.FATTR_SIZE, Size: uint64(n)}}
			if e := s.SetAttr(id, in, &a); e != 0 {
				t.Fatal(e)
			}
			r.files[ref].cur = setSize(r.files[ref].cur, n)
		case k < 50 && exists:
			op = "punch"
			off, n := rng.IntN(5*pageSize), 1+rng.IntN(3*pageSize)
			if e := s.Fallocate(id, int64(off), int64(n), fallocPunchHole|fallocKeepSize); e != 0 {
				t.Fatal(e)
			}
			f := r.files[ref]
			for i := off; i < min(off+n, len(f.cur)); i++ {
				f.cur[i] = 0
			}
		case k < 62 && exists:
			op = "fsync"
			fsync(t, s, id)
			r.files[ref].dur = slices.Clone(r.files[ref].cur)
		case k < 72:
			op = "fsyncdir"
			fsync(t, s, dirID)
			d.dur = maps.Clone(d.cur)
		case k < 77 && exists:
			op = "unlink"
			if e := s.Unlink(dirID, name); e != 0 {
				t.Fatal(e)
			}
			delete(d.cur, name)
		case k < 85 && exists:
			op = "rename"
			dj, to := pick()
			if e := s.Rename(dirID, name, r.dirIDs[dj], to, 0); e != 0 {
				t.Fatal(e)
			}
			if r.dirs[dj].cur[to] != ref {
				r.dirs[dj].cur[to] = ref
				delete(d.cur, name)
			}
		case k < 88 && exists:
			op = "link"
			dj, to := pick()
			var out fuse.EntryOut
			e := s.Link(id, r.dirIDs[dj], to, &out)
			if _, taken := r.dirs[dj].cur[to]; taken != (e == syscall.EEXIST) {
				t.Fatalf("step %d link: %v", step, e)
			}
			if e == 0 {
				s.Forget(out.NodeId, 1)
				r.dirs[dj].cur[to] = ref
			}
		case k < 94:
			op = "cut drop"
			s.Cut(false, 0)
			for _, f := range r.files {
				f.cur = slices.Clone(f.dur)
			}
			r.cutDirs()
		case k < 100:
			op = "cut torn"
			before := map[int]*refFile{}
			for id, f := range r.files {
				before[id] = &refFile{cur: slices.Clone(f.cur), dur: slices.Clone(f.dur)}
			}
			s.Cut(true, rng.Uint64())
			r.cutDirs()
			for ref, f := range r.files {
				got := content(t, s, r.toStore[ref])
				b := before[ref]
				if len(got) != len(b.cur) && len(got) != len(b.dur) {
					t.Fatalf("step %d torn: size %d is neither %d nor %d", step, len(got), len(b.cur), len(b.dur))
				}
				for sec := 0; sec*sectorSize < len(got); sec++ {
					g := got[sec*sectorSize : min(len(got), (sec+1)*sectorSize)]
					if !bytes.Equal(g, sector(b.dur, sec, len(g))) && !bytes.Equal(g, sector(b.cur, sec, len(g))) {
						t.Fatalf("step %d torn: sector %d is neither durable nor current", step, sec)
					}
				}
				f.cur, f.dur = got, slices.Clone(got)
			}
		default:
			continue
		}
		checkInvariants(t, s)
		if err := compare(s, r); err != nil {
			t.Fatalf("seed step %d after %s: %v", step, op, err)
		}
	}
}

// compare checks that the store shows exactly the reference's current tree.
func compare(s *Store, r *reference) error {
	for di, d := range r.dirs {
		list, e := s.ReadDir(r.dirIDs[di])
		if e != 0 {
			return fmt.Errorf("readdir %d: %v", di, e)
		}
		var got []string
		for _, de := range list {
			if de.Name != "." && de.Name != ".." && de.Mode&syscall.S_IFMT == syscall.S_IFREG {
				got = append(got, de.Name)
			}
		}
		slices.Sort(got)
		if want := slices.Sorted(maps.Keys(d.cur)); !slices.Equal(got, want) {
			return fmt.Errorf("dir %d lists %v, want %v", di, got, want)
		}
		for name, ref := range d.cur {
			var out fuse.EntryOut
			if e := s.Lookup(r.dirIDs[di], name, &out); e != 0 {
				return fmt.Errorf("lookup %d/%s: %v", di, name, e)
			}
			s.Forget(out.NodeId, 1)
			if out.NodeId != r.toStore[ref] {
				return fmt.Errorf("%d/%s is inode %d, want %d", di, name, out.NodeId, r.toStore[ref])
			}
			b := make([]byte, out.Attr.Size)
			n, _ := s.Read(out.NodeId, 0, b)
			if n != len(b) || !bytes.Equal(b, r.files[ref].cur) {
				return fmt.Errorf("%d/%s: content differs (%d bytes, want %d)", di, name, len(b), len(r.files[ref].cur))
			}
		}
	}
	return nil
}
