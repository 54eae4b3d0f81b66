package main

import (
	"maps"
	"math/bits"
	"math/rand/v2"
	"slices"
)

const (
	pageSize       = 4096
	pageShift      = 12
	pageMask       = pageSize - 1
	sectorSize     = 512
	sectorsPerPage = pageSize / sectorSize
	allSectors     = uint8(1<<sectorsPerPage - 1)
	// maxFileSize keeps offset arithmetic far from int64 overflow (1 PiB).
	maxFileSize = int64(1) << 50
)

type page [pageSize]byte

// zeroPage stands for an allocated page holding only zeros (fallocate). It is shared by
// every such slot and never written: a write to it copies first, like any shared page.
var zeroPage = new(page)

// poolMax bounds the recycled buffers kept (64 MiB).
const poolMax = 16384

// pagePool recycles page buffers that no map refers to any more, so that the steady
// state of copy-on-write (the first write to a page after each fsync copies it) does
// not allocate, zero and fault in a fresh 4 KiB per write. A nil pool allocates.
type pagePool struct{ free []*page }

// get returns a buffer with undefined contents.
func (pp *pagePool) get() *page {
	if pp == nil || len(pp.free) == 0 {
		return new(page)
	}
	p := pp.free[len(pp.free)-1]
	pp.free = pp.free[:len(pp.free)-1]
	return p
}

// put takes back a buffer that neither map of any file refers to.
func (pp *pagePool) put(p *page) {
	if pp == nil || p == nil || p == zeroPage || len(pp.free) >= poolMax {
		return
	}
	pp.free = append(pp.free, p)
}

// fileData is a regular file's contents twice over: what readers see now (cur, size)
// and what a power cut would leave (dur, durSize). Pages are sparse (absent = zeros)
// and shared between the two maps until written, so synced data costs memory once.
//
// Invariants: cur and dur differ only at indices in dirty; a page pointer is referenced
// by at most cur[i] and dur[i] of one file (or is zeroPage), and a buffer goes back to
// the pool only once neither refers to it; bytes past size are zero.
type fileData struct {
	cur, dur      map[int64]*page
	size, durSize int64
	// dirty: pages changed since the last sync, each with the 512-byte sectors whose
	// content changed (0: only the allocation changed, e.g. fallocate).
	dirty map[int64]uint8
	pool  *pagePool
}

func newFileData(pool *pagePool) *fileData {
	return &fileData{cur: map[int64]*page{}, dur: map[int64]*page{}, dirty: map[int64]uint8{}, pool: pool}
}

// sectorMask covers bytes [in, in+n) of one page, n > 0.
func sectorMask(in, n int) uint8 {
	first, last := in/sectorSize, (in+n-1)/sectorSize
	return uint8((1<<(last+1) - 1) &^ (1<<first - 1))
}

// read copies from offset off into dst, up to the end of the file; returns the count.
func (f *fileData) read(off int64, dst []byte) int {
	if off >= f.size {
		return 0
	}
	n := int(min(int64(len(dst)), f.size-off))
	for done := 0; done < n; {
		pos := off + int64(done)
		idx, in := pos>>pageShift, int(pos&pageMask)
		chunk := min(pageSize-in, n-done)
		if p := f.cur[idx]; p != nil {
			copy(dst[done:done+chunk], p[in:in+chunk])
		} else {
			clear(dst[done : done+chunk])
		}
		done += chunk
	}
	return n
}

// missingPages counts the pages of [off, end) that a write would have to allocate.
func (f *fileData) missingPages(off, end int64) int64 {
	if end <= off {
		return 0
	}
	first, last := off>>pageShift, (end-1)>>pageShift
	var n int64
	for idx := first; idx <= last; idx++ {
		if _, ok := f.cur[idx]; !ok {
			n++
		}
	}
	return n
}

// writable returns cur[idx] ready to be modified, copying it first when the durable
// state (or the zero page) shares it; added reports a newly allocated slot.
func (f *fileData) writable(idx int64) (p *page, added bool) {
	p, ok := f.cur[idx]
	if ok && p != zeroPage && p != f.dur[idx] {
		return p, false
	}
	np := f.pool.get()
	if ok && p != zeroPage {
		*np = *p
	} else {
		clear(np[:])
	}
	f.cur[idx] = np
	return np, !ok
}

// write stores bufs at off (the caller checked space and bounds); returns the number
// of pages newly allocated.
func (f *fileData) write(off int64, bufs [][]byte) int64 {
	var added int64
	pos := off
	for _, b := range bufs {
		for len(b) > 0 {
			idx, in := pos>>pageShift, int(pos&pageMask)
			chunk := min(pageSize-in, len(b))
			p, a := f.writable(idx)
			if a {
				added++
			}
			copy(p[in:in+chunk], b[:chunk])
			f.dirty[idx] |= sectorMask(in, chunk)
			pos += int64(chunk)
			b = b[chunk:]
		}
	}
	f.size = max(f.size, pos)
	return added
}

// removePage drops cur[idx] (its content becomes zeros); returns 1 if a slot was freed.
func (f *fileData) removePage(idx int64) int64 {
	p, ok := f.cur[idx]
	if !ok {
		return 0
	}
	delete(f.cur, idx)
	if p == zeroPage {
		f.dirty[idx] |= 0
	} else {
		f.dirty[idx] = allSectors
	}
	if f.dur[idx] != p {
		f.pool.put(p)
	}
	return 1
}

// zeroBytes zeroes [in, in+n) of page idx if it holds data.
func (f *fileData) zeroBytes(idx int64, in, n int) {
	if p, ok := f.cur[idx]; !ok || p == zeroPage || n <= 0 {
		return
	}
	p, _ := f.writable(idx)
	clear(p[in : in+n])
	f.dirty[idx] |= sectorMask(in, n)
}

// pagesIn returns the indices of present pages in [first, last], visiting whichever
// is smaller: the range or the map.
func (f *fileData) pagesIn(first, last int64) []int64 {
	var out []int64
	if last-first+1 <= int64(len(f.cur)) {
		for idx := first; idx <= last; idx++ {
			if _, ok := f.cur[idx]; ok {
				out = append(out, idx)
			}
		}
		return out
	}
	for idx := range f.cur {
		if idx >= first && idx <= last {
			out = append(out, idx)
		}
	}
	return out
}

// truncate sets the size; shrinking frees the pages past it and zeroes the tail of the
// last one (so a later extension reads zeros). Returns pages freed.
func (f *fileData) truncate(size int64) int64 {
	var freed int64
	if size < f.size {
		firstGone := (size + pageSize - 1) >> pageShift
		for idx := range f.cur {
			if idx >= firstGone {
				freed += f.removePage(idx)
			}
		}
		if in := int(size & pageMask); in != 0 {
			f.zeroBytes(size>>pageShift, in, pageSize-in)
		}
	}
	f.size = size
	return freed
}

// punch zeroes [off, end) and frees the pages it covers whole (FALLOC_FL_PUNCH_HOLE,
// size unchanged). Returns pages freed.
func (f *fileData) punch(off, end int64) int64 {
	if end <= off {
		return 0
	}
	var freed int64
	first, last := off>>pageShift, (end-1)>>pageShift
	for _, idx := range f.pagesIn(first, last) {
		ps, pe := idx<<pageShift, (idx+1)<<pageShift
		lo, hi := max(ps, off), min(pe, end)
		if lo == ps && hi == pe {
			freed += f.removePage(idx)
		} else {
			f.zeroBytes(idx, int(lo-ps), int(hi-lo))
		}
	}
	return freed
}

// allocate reserves the missing pages of [off, end) as zero pages (the caller checked
// space); returns pages added.
func (f *fileData) allocate(off, end int64) int64 {
	if end <= off {
		return 0
	}
	var added int64
	for idx := off >> pageShift; idx <= (end-1)>>pageShift; idx++ {
		if _, ok := f.cur[idx]; !ok {
			f.cur[idx] = zeroPage
			f.dirty[idx] |= 0
			added++
		}
	}
	return added
}

// sync makes the current contents and size durable (fsync/fdatasync).
func (f *fileData) sync() {
	for idx := range f.dirty {
		old := f.dur[idx]
		p, ok := f.cur[idx]
		if ok {
			f.dur[idx] = p
		} else {
			delete(f.dur, idx)
		}
		if old != p {
			f.pool.put(old)
		}
	}
	clear(f.dirty)
	f.durSize = f.size
}

func (f *fileData) dirtyBytes() int64 {
	var n int64
	for _, m := range f.dirty {
		n += int64(bits.OnesCount8(m)) * sectorSize
	}
	return n
}

// cutDrop is the power cut that loses every unsynced write; returns the bytes lost.
func (f *fileData) cutDrop() (dropped int64, sizeReverted bool) {
	dropped = f.dirtyBytes()
	sizeReverted = f.size != f.durSize
	f.restore()
	return dropped, sizeReverted
}

// cutTorn is the power cut of a disk whose volatile cache wrote back an arbitrary
// subset of the unsynced sectors: each one is kept or lost on a coin flip, and so is
// an unsynced size change. Sectors are atomic; nothing that was never written appears.
func (f *fileData) cutTorn(rng *rand.Rand) (kept, dropped int64, sizeKept, sizeReverted bool) {
	for _, idx := range slices.Sorted(maps.Keys(f.dirty)) {
		m := f.dirty[idx]
		var np *page
		for s := range sectorsPerPage {
			if m&(1<<s) == 0 {
				continue
			}
			if rng.IntN(2) == 0 {
				dropped += sectorSize
				continue
			}
			kept += sectorSize
			if np == nil {
				np = f.pool.get()
				if d := f.dur[idx]; d != nil {
					*np = *d
				} else {
					clear(np[:])
				}
			}
			lo, hi := s*sectorSize, (s+1)*sectorSize
			if c := f.cur[idx]; c != nil {
				copy(np[lo:hi], c[lo:hi])
			} else {
				clear(np[lo:hi])
			}
		}
		if np != nil {
			if d := f.dur[idx]; d != f.cur[idx] {
				f.pool.put(d)
			}
			f.dur[idx] = np
		}
	}
	if f.size != f.durSize {
		if rng.IntN(2) == 1 {
			f.durSize = f.size
			sizeKept = true
		} else {
			sizeReverted = true
		}
	}
	f.restore()
	return kept, dropped, sizeKept, sizeReverted
}

// restore makes the current state the durable one, trimming durable pages past the
// durable size first so that bytes past the end stay zero.
func (f *fileData) restore() {
	old := f.cur
	firstGone := (f.durSize + pageSize - 1) >> pageShift
	for idx, p := range f.dur {
		// Data past the end only arrives by a torn cut keeping an extension's sectors
		// but not its size; zero pages there are preallocations (FALLOC_FL_KEEP_SIZE).
		if idx >= firstGone && p != zeroPage {
			delete(f.dur, idx)
			if old[idx] != p {
				f.pool.put(p)
			}
		}
	}
	if in := int(f.durSize & pageMask); in != 0 {
		idx := f.durSize >> pageShift
		if p := f.dur[idx]; p != nil && p != zeroPage {
			np := f.pool.get()
			*np = *p
			clear(np[in:])
			f.dur[idx] = np
			if old[idx] != p {
				f.pool.put(p)
			}
		}
	}
	f.cur = maps.Clone(f.dur)
	// Buffers only the old current state held (a buffer it shared with the durable
	// state at the same index was either kept or given back above).
	for idx, p := range old {
		if f.cur[idx] != p {
			f.pool.put(p)
		}
	}
	clear(f.dirty)
	f.size = f.durSize
}

// release gives every buffer back: the file is gone for good.
func (f *fileData) release() {
	for idx, p := range f.cur {
		if f.dur[idx] != p {
			f.pool.put(p)
		}
	}
	for _, p := range f.dur {
		f.pool.put(p)
	}
	f.cur, f.dur, f.dirty = map[int64]*page{}, map[int64]*page{}, map[int64]uint8{}
}

// memoryPages counts the page buffers held (current and durable, shared ones once).
func (f *fileData) memoryPages() int64 {
	var n int64
	for _, p := range f.cur {
		if p != zeroPage {
			n++
		}
	}
	for idx, p := range f.dur {
		if p != zeroPage && f.cur[idx] != p {
			n++
		}
	}
	return n
}
