package main

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

func readAll(f *fileData) []byte {
	b := make([]byte, f.size)
	f.read(0, b)
	return b
}

func fill(n int, v byte) []byte { return bytes.Repeat([]byte{v}, n) }

func TestSectorMask(t *testing.T) {
	for _, c := range []struct {
		in, n int
		want  uint8
	}{
		{0, 1, 0x01}, {0, 512, 0x01}, {0, 513, 0x03}, {511, 2, 0x03}, {512, 512, 0x02},
		{4095, 1, 0x80}, {0, 4096, 0xff}, {1000, 2000, 0x3e},
	} {
		if got := sectorMask(c.in, c.n); got != c.want {
			t.Errorf("sectorMask(%d, %d) = %#x, want %#x", c.in, c.n, got, c.want)
		}
	}
}

func TestWriteReadSparse(t *testing.T) {
	f := newFileData(&pagePool{})
	f.truncate(1 << 30)
	if len(f.cur) != 0 {
		t.Fatalf("a truncate allocated %d pages", len(f.cur))
	}
	f.write(5000, [][]byte{fill(100, 7), fill(10000, 9)})
	if f.size != 1<<30 {
		t.Fatalf("size %d", f.size)
	}
	got := make([]byte, 20000)
	if n := f.read(0, got); n != len(got) {
		t.Fatalf("read %d", n)
	}
	want := make([]byte, 20000)
	copy(want[5000:], fill(100, 7))
	copy(want[5100:], fill(10000, 9))
	if !bytes.Equal(got, want) {
		t.Fatal("read does not return what was written and zeros elsewhere")
	}
	// Bytes 5000..15099 touch pages 1, 2 and 3.
	if len(f.cur) != 3 {
		t.Fatalf("%d pages allocated, want 3", len(f.cur))
	}
	if n := f.read(1<<30-10, make([]byte, 100)); n != 10 {
		t.Fatalf("read at the end returned %d bytes, want 10", n)
	}
}

func TestDropKeepsOnlySynced(t *testing.T) {
	f := newFileData(&pagePool{})
	f.write(0, [][]byte{fill(8192, 1)})
	f.sync()
	f.write(100, [][]byte{fill(50, 2)})
	f.write(8192, [][]byte{fill(10, 3)})
	if f.dirtyBytes() != 2*sectorSize {
		t.Fatalf("dirty %d, want two sectors", f.dirtyBytes())
	}
	dropped, sizeReverted := f.cutDrop()
	if dropped != 2*sectorSize || !sizeReverted {
		t.Fatalf("dropped %d, size reverted %v", dropped, sizeReverted)
	}
	if !bytes.Equal(readAll(f), fill(8192, 1)) {
		t.Fatal("after a cut the file is not what was synced")
	}
}

func TestCopyOnWriteSharesSyncedPages(t *testing.T) {
	f := newFileData(&pagePool{})
	f.write(0, [][]byte{fill(64*pageSize, 1)})
	f.sync()
	if f.memoryPages() != 64 {
		t.Fatalf("synced file holds %d pages, want 64 (shared)", f.memoryPages())
	}
	f.write(10, [][]byte{{2}})
	if f.memoryPages() != 65 {
		t.Fatalf("after one overwrite %d pages, want 65", f.memoryPages())
	}
	f.sync()
	if f.memoryPages() != 64 {
		t.Fatalf("after sync %d pages, want 64", f.memoryPages())
	}
	f.write(10, [][]byte{{3}})
	f.cutDrop()
	if b := readAll(f); b[10] != 2 || f.memoryPages() != 64 {
		t.Fatalf("byte %d after cut, %d pages", b[10], f.memoryPages())
	}
}

func TestTruncateShrinkZeroesTail(t *testing.T) {
	f := newFileData(&pagePool{})
	f.write(0, [][]byte{fill(3*pageSize, 5)})
	f.sync()
	if freed := f.truncate(pageSize + 10); freed != 1 {
		t.Fatalf("freed %d pages, want 1", freed)
	}
	f.truncate(3 * pageSize)
	b := readAll(f)
	if !bytes.Equal(b[:pageSize+10], fill(pageSize+10, 5)) || !bytes.Equal(b[pageSize+10:], make([]byte, 2*pageSize-10)) {
		t.Fatal("shrink then extend must read zeros past the old end")
	}
	f.cutDrop()
	if !bytes.Equal(readAll(f), fill(3*pageSize, 5)) {
		t.Fatal("an unsynced truncate must revert at a cut")
	}
}

func TestPunchAndAllocate(t *testing.T) {
	f := newFileData(&pagePool{})
	f.write(0, [][]byte{fill(4*pageSize, 6)})
	f.sync()
	if freed := f.punch(100, 3*pageSize+100); freed != 2 {
		t.Fatalf("punch freed %d pages, want the 2 it covers whole", freed)
	}
	b := readAll(f)
	if f.size != 4*pageSize || !bytes.Equal(b[:100], fill(100, 6)) || !bytes.Equal(b[100:3*pageSize+100], make([]byte, 3*pageSize)) || !bytes.Equal(b[3*pageSize+100:], fill(pageSize-100, 6)) {
		t.Fatal("punch must zero exactly its range and keep the size")
	}
	f.cutDrop()
	if !bytes.Equal(readAll(f), fill(4*pageSize, 6)) {
		t.Fatal("an unsynced punch must revert at a cut")
	}
	g := newFileData(&pagePool{})
	if added := g.allocate(0, 10*pageSize); added != 10 || g.memoryPages() != 0 {
		t.Fatalf("allocate added %d pages holding %d buffers", added, g.memoryPages())
	}
	g.write(5, [][]byte{{1}})
	if g.memoryPages() != 1 || len(g.cur) != 10 {
		t.Fatal("a write into a preallocated page must copy it, not allocate a slot")
	}
}

// Torn: every sector of the result is the old durable or the current sector, the
// size one of the two, and the same seed gives the same result.
func TestTornKeepsSubsetOfSectors(t *testing.T) {
	build := func() *fileData {
		f := newFileData(&pagePool{})
		f.write(0, [][]byte{fill(16*pageSize, 0xaa)})
		f.sync()
		rng := rand.New(rand.NewPCG(1, 2))
		for range 200 {
			off := rng.Int64N(20 * pageSize)
			f.write(off, [][]byte{fill(1+rng.IntN(3000), byte(1+rng.IntN(250)))})
		}
		return f
	}
	f := build()
	oldDur := readDur(f)
	cur := readAll(f)
	kept, dropped, _, _ := f.cutTorn(rand.New(rand.NewPCG(42, 0)))
	if kept == 0 || dropped == 0 {
		t.Fatalf("kept %d dropped %d: expected both with this many sectors", kept, dropped)
	}
	got := readAll(f)
	if f.size != int64(len(oldDur)) && f.size != int64(len(cur)) {
		t.Fatalf("size %d is neither %d nor %d", f.size, len(oldDur), len(cur))
	}
	for s := 0; s*sectorSize < len(got); s++ {
		g := got[s*sectorSize : min(len(got), (s+1)*sectorSize)]
		if !bytes.Equal(g, sector(oldDur, s, len(g))) && !bytes.Equal(g, sector(cur, s, len(g))) {
			t.Fatalf("sector %d is neither the durable nor the current one", s)
		}
	}
	g := build()
	g.cutTorn(rand.New(rand.NewPCG(42, 0)))
	if !bytes.Equal(readAll(g), got) {
		t.Fatal("the same seed must give the same outcome")
	}
	if d, _ := f.cutDrop(); d != 0 {
		t.Fatal("after a cut everything is durable")
	}
}

func readDur(f *fileData) []byte {
	g := &fileData{cur: f.dur, size: f.durSize}
	return readAll(g)
}

// sector s of b, zero-padded to n bytes.
func sector(b []byte, s, n int) []byte {
	out := make([]byte, n)
	if s*sectorSize < len(b) {
		copy(out, b[s*sectorSize:])
	}
	return out
}
