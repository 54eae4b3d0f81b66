package main

import (
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// The store's share of a write's cost (the FUSE round trip adds tens of microseconds).
// Fresh pages are dominated by first-touch page faults; copy-on-write is the steady
// state of a file written between fsyncs.

func benchFile(b *testing.B, pages int) (*Store, uint64) {
	s := NewStore(0)
	var out fuse.EntryOut
	if e := s.Create(rootID, "f", CreateOpts{Mode: 0o644}, &out); e != 0 {
		b.Fatal(e)
	}
	buf := make([]byte, pageSize)
	for i := range pages {
		s.Write(out.NodeId, int64(i)*pageSize, [][]byte{buf}, WriteOpts{})
	}
	return s, out.NodeId
}

func BenchmarkWrite4KFresh(b *testing.B) {
	s, id := benchFile(b, 0)
	buf := make([]byte, pageSize)
	b.SetBytes(pageSize)
	for i := 0; b.Loop(); i++ {
		s.Write(id, int64(i)*pageSize, [][]byte{buf}, WriteOpts{})
	}
}

func BenchmarkWrite4KOverwrite(b *testing.B) {
	s, id := benchFile(b, 1024)
	buf := make([]byte, pageSize)
	b.SetBytes(pageSize)
	for i := 0; b.Loop(); i++ {
		s.Write(id, int64(i%1024)*pageSize, [][]byte{buf}, WriteOpts{})
	}
}

func BenchmarkWrite4KCopyOnWrite(b *testing.B) {
	s, id := benchFile(b, 1024)
	buf := make([]byte, pageSize)
	b.SetBytes(pageSize)
	for i := 0; b.Loop(); i++ {
		if i%64 == 0 {
			s.Fsync(id)
		}
		s.Write(id, int64(i%1024)*pageSize, [][]byte{buf}, WriteOpts{})
	}
}

func BenchmarkWrite1MOverwrite(b *testing.B) {
	s, id := benchFile(b, 256)
	buf := make([]byte, 1<<20)
	b.SetBytes(1 << 20)
	for b.Loop() {
		s.Write(id, 0, [][]byte{buf}, WriteOpts{})
	}
}
