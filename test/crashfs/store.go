package main

import (
	"iter"
	"maps"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
)

const (
	rootID     = fuse.FUSE_ROOT_ID
	maxNameLen = 255
	// unlimitedPages is what statfs reports as the size when no capacity is set (1 TiB).
	unlimitedPages = int64(1) << 28
)

type nodeKind uint8

const (
	kindFile nodeKind = iota
	kindDir
	kindSymlink
)

// meta is an inode's attributes; like data, they have a current and a durable copy.
type meta struct {
	mode                uint32 // type and permission bits
	uid, gid            uint32
	atime, mtime, ctime int64 // ns since the epoch
}

type node struct {
	id            uint64
	kind          nodeKind
	meta, durMeta meta
	file          *fileData // kindFile
	// kindDir: the entries readers see, and those a power cut would leave.
	entries, durEntries map[string]*node
	parent              *node // kindDir; never changes (directories are not moved between parents)
	target              string
	// nlookup: the kernel's references (FUSE lookup count). curLinks/durLinks: entries
	// naming this node in current/durable entry sets of directories in the table.
	nlookup            uint64
	curLinks, durLinks int
	// live: reachable now (linked, or held by the kernel); only live files count
	// against the capacity.
	live bool
}

// Store is the whole in-memory filesystem. One mutex guards it: every operation is a
// few map lookups and at most a 1 MiB copy, and a cut must see no operation half-done.
type Store struct {
	mu         sync.Mutex
	nodes      map[uint64]*node
	nextID     uint64
	capPages   int64 // 0: unlimited
	allocPages int64 // pages of live files' current contents
	cuts       int
	pool       pagePool
}

func nowNs() int64 { return time.Now().UnixNano() }

// NewStore returns an empty filesystem (a root directory that is durable as it is).
func NewStore(capacityBytes int64) *Store {
	s := &Store{nodes: map[uint64]*node{}, nextID: rootID + 1, capPages: capacityBytes / pageSize}
	t := nowNs()
	m := meta{mode: syscall.S_IFDIR | 0o755, atime: t, mtime: t, ctime: t}
	root := &node{id: rootID, kind: kindDir, meta: m, durMeta: m, entries: map[string]*node{}, durEntries: map[string]*node{}, live: true}
	root.parent = root
	s.nodes[rootID] = root
	return s
}

// refresh re-derives n.live after a change to its links or lookups, keeps the
// capacity count in step, and frees n once nothing can reach it now or after a cut.
func (s *Store) refresh(n *node) {
	live := n.id == rootID || n.curLinks > 0 || n.nlookup > 0
	if live != n.live {
		if n.file != nil {
			if live {
				s.allocPages += int64(len(n.file.cur))
			} else {
				s.allocPages -= int64(len(n.file.cur))
			}
		}
		n.live = live
	}
	if !live && n.durLinks == 0 {
		s.free(n)
	}
}

func (s *Store) free(n *node) {
	if s.nodes[n.id] != n {
		return
	}
	delete(s.nodes, n.id)
	if n.file != nil {
		n.file.release()
	}
	if n.kind == kindDir {
		cur, dur := n.entries, n.durEntries
		n.entries, n.durEntries = map[string]*node{}, map[string]*node{}
		for _, c := range cur {
			c.curLinks--
			s.refresh(c)
		}
		for _, c := range dur {
			c.durLinks--
			s.refresh(c)
		}
	}
}

func (s *Store) get(id uint64) (*node, syscall.Errno) {
	n := s.nodes[id]
	if n == nil {
		return nil, syscall.ENOENT
	}
	return n, 0
}

func (s *Store) dir(id uint64) (*node, syscall.Errno) {
	n, e := s.get(id)
	if e != 0 {
		return nil, e
	}
	if n.kind != kindDir {
		return nil, syscall.ENOTDIR
	}
	return n, 0
}

func (s *Store) fileNode(id uint64) (*node, syscall.Errno) {
	n, e := s.get(id)
	if e != 0 {
		return nil, e
	}
	switch n.kind {
	case kindDir:
		return nil, syscall.EISDIR
	case kindSymlink:
		return nil, syscall.EINVAL
	}
	return n, 0
}

func checkName(name string) syscall.Errno {
	if len(name) > maxNameLen {
		return syscall.ENAMETOOLONG
	}
	if name == "" || name == "." || name == ".." {
		return syscall.EINVAL
	}
	return 0
}

func splitNs(ns int64) (uint64, uint32) {
	return uint64(ns / 1e9), uint32(ns % 1e9)
}

func (s *Store) fillAttr(n *node, a *fuse.Attr) {
	*a = fuse.Attr{Ino: n.id, Mode: n.meta.mode, Blksize: pageSize}
	a.Uid, a.Gid = n.meta.uid, n.meta.gid
	a.Atime, a.Atimensec = splitNs(n.meta.atime)
	a.Mtime, a.Mtimensec = splitNs(n.meta.mtime)
	a.Ctime, a.Ctimensec = splitNs(n.meta.ctime)
	switch n.kind {
	case kindFile:
		a.Size = uint64(n.file.size)
		a.Blocks = uint64(len(n.file.cur)) * (pageSize / 512)
		a.Nlink = uint32(n.curLinks)
	case kindDir:
		a.Size = pageSize
		if n.id == rootID || n.curLinks > 0 {
			a.Nlink = 2
			for _, c := range n.entries {
				if c.kind == kindDir {
					a.Nlink++
				}
			}
		}
	case kindSymlink:
		a.Size = uint64(len(n.target))
		a.Nlink = uint32(n.curLinks)
	}
}

// entry fills a FUSE entry reply for n, which hands the kernel one more reference.
func (s *Store) entry(n *node, out *fuse.EntryOut) {
	n.nlookup++
	s.refresh(n)
	*out = fuse.EntryOut{NodeId: n.id}
	// Entry and attribute timeouts stay 0: after a cut the kernel must ask again
	// rather than trust a name or a size that the cut took away.
	s.fillAttr(n, &out.Attr)
}

func (s *Store) newNode(kind nodeKind, mode, uid, gid uint32) *node {
	t := nowNs()
	n := &node{id: s.nextID, kind: kind, meta: meta{mode: mode, uid: uid, gid: gid, atime: t, mtime: t, ctime: t}}
	s.nextID++
	// Until an fsync, the durable attributes are those of a node that does not
	// exist yet; they only matter once a durable entry names it.
	n.durMeta = n.meta
	switch kind {
	case kindFile:
		n.file = newFileData(&s.pool)
	case kindDir:
		n.entries, n.durEntries = map[string]*node{}, map[string]*node{}
	}
	s.nodes[n.id] = n
	return n
}

// link adds name → c to d's current entries.
func (s *Store) link(d *node, name string, c *node) {
	d.entries[name] = c
	c.curLinks++
	s.refresh(c)
	t := nowNs()
	d.meta.mtime, d.meta.ctime = t, t
}

// unlink removes name from d's current entries.
func (s *Store) unlink(d *node, name string) {
	c := d.entries[name]
	delete(d.entries, name)
	c.curLinks--
	c.meta.ctime = nowNs()
	t := nowNs()
	d.meta.mtime, d.meta.ctime = t, t
	s.refresh(c)
}

// Lookup resolves name in directory parent.
func (s *Store) Lookup(parent uint64, name string, out *fuse.EntryOut) syscall.Errno {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, e := s.dir(parent)
	if e != 0 {
		return e
	}
	c := d.entries[name]
	if c == nil {
		return syscall.ENOENT
	}
	s.entry(c, out)
	return 0
}

// Forget drops n of the kernel's references to id.
func (s *Store) Forget(id, n uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	nd := s.nodes[id]
	if nd == nil {
		return
	}
	nd.nlookup -= min(n, nd.nlookup)
	s.refresh(nd)
}

func (s *Store) GetAttr(id uint64, out *fuse.Attr) syscall.Errno {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, e := s.get(id)
	if e != 0 {
		return e
	}
	s.fillAttr(n, out)
	return 0
}

// SetAttr applies chmod/chown/truncate/utimens.
func (s *Store) SetAttr(id uint64, in *fuse.SetAttrIn, out *fuse.Attr) syscall.Errno {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, e := s.get(id)
	if e != 0 {
		return e
	}
	t := nowNs()
	if size, ok := in.GetSize(); ok {
		if n.kind != kindFile {
			return syscall.EISDIR
		}
		if int64(size) > maxFileSize || int64(size) < 0 {
			return syscall.EFBIG
		}
		s.allocPages -= n.file.truncate(int64(size))
		n.meta.mtime = t
	}
	if mode, ok := in.GetMode(); ok {
		n.meta.mode = n.meta.mode&syscall.S_IFMT | mode
	}
	if uid, ok := in.GetUID(); ok {
		n.meta.uid = uid
	}
	if gid, ok := in.GetGID(); ok {
		n.meta.gid = gid
	}
	if at, ok := in.GetATime(); ok {
		n.meta.atime = at.UnixNano()
	}
	if mt, ok := in.GetMTime(); ok {
		n.meta.mtime = mt.UnixNano()
	}
	n.meta.ctime = t
	if ct, ok := in.GetCTime(); ok {
		n.meta.ctime = ct.UnixNano()
	}
	s.fillAttr(n, out)
	return 0
}

// CreateOpts: how a regular file is created.
type CreateOpts struct {
	Mode, Uid, Gid uint32
	Exclusive      bool // O_EXCL: an existing name is an error
	Truncate       bool // O_TRUNC on an existing file
}

// Create makes (or, without O_EXCL, opens) a regular file.
func (s *Store) Create(parent uint64, name string, o CreateOpts, out *fuse.EntryOut) syscall.Errno {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, e := s.dir(parent)
	if e != 0 {
		return e
	}
	if e := checkName(name); e != 0 {
		return e
	}
	if c := d.entries[name]; c != nil {
		switch {
		case o.Exclusive:
			return syscall.EEXIST
		case c.kind == kindDir:
			return syscall.EISDIR
		case c.kind != kindFile:
			return syscall.EEXIST
		}
		if o.Truncate {
			s.allocPages -= c.file.truncate(0)
			c.meta.mtime = nowNs()
		}
		s.entry(c, out)
		return 0
	}
	c := s.newNode(kindFile, syscall.S_IFREG|o.Mode&0o7777, o.Uid, o.Gid)
	s.link(d, name, c)
	s.entry(c, out)
	return 0
}

func (s *Store) Mkdir(parent uint64, name string, mode, uid, gid uint32, out *fuse.EntryOut) syscall.Errno {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, e := s.dir(parent)
	if e != 0 {
		return e
	}
	if e := checkName(name); e != 0 {
		return e
	}
	if d.entries[name] != nil {
		return syscall.EEXIST
	}
	c := s.newNode(kindDir, syscall.S_IFDIR|mode&0o7777, uid, gid)
	c.parent = d
	s.link(d, name, c)
	s.entry(c, out)
	return 0
}

func (s *Store) Symlink(parent uint64, name, target string, uid, gid uint32, out *fuse.EntryOut) syscall.Errno {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, e := s.dir(parent)
	if e != 0 {
		return e
	}
	if e := checkName(name); e != 0 {
		return e
	}
	if d.entries[name] != nil {
		return syscall.EEXIST
	}
	c := s.newNode(kindSymlink, syscall.S_IFLNK|0o777, uid, gid)
	c.target = target
	s.link(d, name, c)
	s.entry(c, out)
	return 0
}

// Link adds a hard link to a non-directory.
func (s *Store) Link(id, parent uint64, name string, out *fuse.EntryOut) syscall.Errno {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, e := s.dir(parent)
	if e != 0 {
		return e
	}
	if e := checkName(name); e != 0 {
		return e
	}
	c, e := s.get(id)
	if e != 0 {
		return e
	}
	if c.kind == kindDir {
		return syscall.EPERM
	}
	if d.entries[name] != nil {
		return syscall.EEXIST
	}
	s.link(d, name, c)
	s.entry(c, out)
	return 0
}

func (s *Store) Readlink(id uint64) (string, syscall.Errno) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, e := s.get(id)
	if e != 0 {
		return "", e
	}
	if n.kind != kindSymlink {
		return "", syscall.EINVAL
	}
	return n.target, 0
}

func (s *Store) Unlink(parent uint64, name string) syscall.Errno {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, e := s.dir(parent)
	if e != 0 {
		return e
	}
	c := d.entries[name]
	if c == nil {
		return syscall.ENOENT
	}
	if c.kind == kindDir {
		return syscall.EISDIR
	}
	s.unlink(d, name)
	return 0
}

func (s *Store) Rmdir(parent uint64, name string) syscall.Errno {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, e := s.dir(parent)
	if e != 0 {
		return e
	}
	c := d.entries[name]
	if c == nil {
		return syscall.ENOENT
	}
	if c.kind != kindDir {
		return syscall.ENOTDIR
	}
	if len(c.entries) > 0 {
		return syscall.ENOTEMPTY
	}
	s.unlink(d, name)
	return 0
}

const (
	renameNoReplace = 1 // RENAME_NOREPLACE
	renameExchange  = 2 // RENAME_EXCHANGE
)

// Rename moves oldName in oldParent to newName in newParent (rename(2), renameat2
// flags NOREPLACE and EXCHANGE). Directories move only within their parent: with
// per-directory durability a directory moved between parents could be durable under
// both or neither, or even in a cycle, which no real filesystem shows (EXDEV instead;
// mv falls back to copying).
func (s *Store) Rename(oldParent uint64, oldName string, newParent uint64, newName string, flags uint32) syscall.Errno {
	s.mu.Lock()
	defer s.mu.Unlock()
	od, e := s.dir(oldParent)
	if e != 0 {
		return e
	}
	nd, e := s.dir(newParent)
	if e != 0 {
		return e
	}
	if e := checkName(newName); e != 0 {
		return e
	}
	if flags&^(renameNoReplace|renameExchange) != 0 || flags == renameNoReplace|renameExchange {
		return syscall.EINVAL
	}
	src := od.entries[oldName]
	if src == nil {
		return syscall.ENOENT
	}
	dst := nd.entries[newName]
	if od != nd && src.kind == kindDir {
		return syscall.EXDEV
	}
	if flags&renameExchange != 0 {
		if dst == nil {
			return syscall.ENOENT
		}
		if od != nd && dst.kind == kindDir {
			return syscall.EXDEV
		}
		od.entries[oldName], nd.entries[newName] = dst, src
		t := nowNs()
		od.meta.mtime, od.meta.ctime, nd.meta.mtime, nd.meta.ctime = t, t, t, t
		src.meta.ctime, dst.meta.ctime = t, t
		return 0
	}
	if dst != nil {
		if flags&renameNoReplace != 0 {
			return syscall.EEXIST
		}
		if dst == src {
			return 0
		}
		switch {
		case src.kind == kindDir && dst.kind != kindDir:
			return syscall.ENOTDIR
		case src.kind != kindDir && dst.kind == kindDir:
			return syscall.EISDIR
		case dst.kind == kindDir && len(dst.entries) > 0:
			return syscall.ENOTEMPTY
		}
		s.unlink(nd, newName)
	}
	// Link first so that src never drops to zero links (and is never freed) in between.
	s.link(nd, newName, src)
	s.unlink(od, oldName)
	return 0
}

// OpenFile checks that id is a regular file.
func (s *Store) OpenFile(id uint64) syscall.Errno {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, e := s.fileNode(id)
	return e
}

func (s *Store) Read(id uint64, off int64, dst []byte) (int, syscall.Errno) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, e := s.fileNode(id)
	if e != 0 {
		return 0, e
	}
	if off < 0 {
		return 0, syscall.EINVAL
	}
	return n.file.read(off, dst), 0
}

// hasRoom reports whether pages more pages fit in the capacity.
func (s *Store) hasRoom(pages int64) bool {
	return pages == 0 || s.capPages == 0 || s.allocPages+pages <= s.capPages
}

// WriteOpts: how a write is placed and made durable.
type WriteOpts struct {
	Append bool // O_APPEND: at the end of the file, whatever the kernel thought it was
	Sync   bool // O_SYNC/O_DSYNC/RWF_DSYNC: durable before the reply (as a FUA write)
}

// Write stores bufs at off. A write that needs more new pages than the capacity has
// left fails whole with ENOSPC; overwriting allocated pages always succeeds.
func (s *Store) Write(id uint64, off int64, bufs [][]byte, o WriteOpts) (int, syscall.Errno) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, e := s.fileNode(id)
	if e != 0 {
		return 0, e
	}
	total := 0
	for _, b := range bufs {
		total += len(b)
	}
	if o.Append {
		off = n.file.size
	}
	if off < 0 {
		return 0, syscall.EINVAL
	}
	end := off + int64(total)
	if end > maxFileSize {
		return 0, syscall.EFBIG
	}
	if !s.hasRoom(n.file.missingPages(off, end)) {
		return 0, syscall.ENOSPC
	}
	s.allocPages += n.file.write(off, bufs)
	t := nowNs()
	n.meta.mtime, n.meta.ctime = t, t
	if o.Sync {
		// The whole file rather than just this range: a disk may always write back
		// more than it was asked to, so this is one legal outcome of a FUA write.
		s.syncNode(n)
	}
	return total, 0
}

const (
	fallocKeepSize  = 0x01
	fallocPunchHole = 0x02
	fallocZeroRange = 0x10
)

// Fallocate: mode 0 and KEEP_SIZE reserve space (ENOSPC if it is not there),
// PUNCH_HOLE|KEEP_SIZE zeroes and frees, ZERO_RANGE zeroes and reserves. All are data
// changes, durable only after an fsync.
func (s *Store) Fallocate(id uint64, off, length int64, mode uint32) syscall.Errno {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, e := s.fileNode(id)
	if e != 0 {
		return e
	}
	if off < 0 || length <= 0 {
		return syscall.EINVAL
	}
	if off+length > maxFileSize || off+length < off {
		return syscall.EFBIG
	}
	end := off + length
	f := n.file
	keep := mode&fallocKeepSize != 0
	switch mode &^ fallocKeepSize {
	case 0:
		if !s.hasRoom(f.missingPages(off, end)) {
			return syscall.ENOSPC
		}
		s.allocPages += f.allocate(off, end)
	case fallocPunchHole:
		if !keep {
			return syscall.EOPNOTSUPP
		}
		s.allocPages -= f.punch(off, end)
	case fallocZeroRange:
		if !s.hasRoom(f.missingPages(off, end)) {
			return syscall.ENOSPC
		}
		s.allocPages -= f.punch(off, end)
		s.allocPages += f.allocate(off, end)
	default:
		return syscall.EOPNOTSUPP
	}
	if !keep && end > f.size {
		f.size = end
	}
	t := nowNs()
	n.meta.mtime, n.meta.ctime = t, t
	return 0
}

// syncNode makes n durable: a file's data, size and attributes (fsync, fdatasync); a
// directory's entry set and attributes (fsync of the directory).
func (s *Store) syncNode(n *node) {
	n.durMeta = n.meta
	switch n.kind {
	case kindFile:
		n.file.sync()
	case kindDir:
		old := n.durEntries
		n.durEntries = maps.Clone(n.entries)
		// Count the new references before dropping the old ones: a node in both sets
		// must not look unreachable (and be freed) in between.
		for _, c := range n.durEntries {
			c.durLinks++
		}
		for _, c := range old {
			c.durLinks--
		}
		for _, c := range old {
			s.refresh(c)
		}
	}
}

// Fsync handles fsync/fdatasync of a file and fsync of a directory alike.
func (s *Store) Fsync(id uint64) syscall.Errno {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, e := s.get(id)
	if e != 0 {
		return e
	}
	s.syncNode(n)
	return 0
}

// DirEntry is one line of a directory listing.
type DirEntry struct {
	Name string
	Ino  uint64
	Mode uint32
}

// ReadDir lists a directory now, "." and ".." first.
func (s *Store) ReadDir(id uint64) ([]DirEntry, syscall.Errno) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, e := s.dir(id)
	if e != 0 {
		return nil, e
	}
	out := make([]DirEntry, 0, len(d.entries)+2)
	out = append(out, DirEntry{".", d.id, syscall.S_IFDIR}, DirEntry{"..", d.parent.id, syscall.S_IFDIR})
	for name, c := range d.entries {
		out = append(out, DirEntry{name, c.id, c.meta.mode})
	}
	return out, 0
}

func (s *Store) StatFs(out *fuse.StatfsOut) {
	s.mu.Lock()
	defer s.mu.Unlock()
	total := s.capPages
	if total == 0 {
		total = s.allocPages + unlimitedPages
	}
	free := max(total-s.allocPages, 0)
	*out = fuse.StatfsOut{
		Blocks: uint64(total), Bfree: uint64(free), Bavail: uint64(free),
		Files: uint64(len(s.nodes)) + 1<<20, Ffree: 1 << 20,
		Bsize: pageSize, Frsize: pageSize, NameLen: maxNameLen,
	}
}

// SetCapacity sets the size limit (0: none). Less than is allocated is allowed: new
// pages then fail with ENOSPC until enough is freed.
func (s *Store) SetCapacity(bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.capPages = bytes / pageSize
}

// SyncAll makes everything durable, as if every file and directory had been fsync'd.
func (s *Store) SyncAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.nodes {
		s.syncNode(n)
	}
}

// Stats is what the control socket's `stats` reports.
type Stats struct {
	CapacityBytes  int64 `json:"capacityBytes"`
	AllocatedBytes int64 `json:"allocatedBytes"` // current contents of reachable files: what the capacity limits
	DirtyBytes     int64 `json:"dirtyBytes"`     // unsynced 512-byte sectors
	DirtyEntries   int   `json:"dirtyEntries"`   // directory entries differing from the durable set
	DirtyInodes    int   `json:"dirtyInodes"`    // files with unsynced data or size
	MemoryBytes    int64 `json:"memoryBytes"`    // page buffers held, current and durable
	Inodes         int   `json:"inodes"`
	Cuts           int   `json:"cuts"`
}

func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{CapacityBytes: s.capPages * pageSize, AllocatedBytes: s.allocPages * pageSize, Inodes: len(s.nodes), Cuts: s.cuts}
	for _, n := range s.nodes {
		switch n.kind {
		case kindFile:
			st.DirtyBytes += n.file.dirtyBytes()
			st.MemoryBytes += n.file.memoryPages() * pageSize
			if len(n.file.dirty) > 0 || n.file.size != n.file.durSize {
				st.DirtyInodes++
			}
		case kindDir:
			st.DirtyEntries += entryDiff(n.entries, n.durEntries)
		}
	}
	return st
}

// entryDiff counts the names whose target differs between two entry sets.
func entryDiff(a, b map[string]*node) int {
	n := 0
	for range diffNames(a, b) {
		n++
	}
	return n
}

// diffNames yields the names whose target differs between two entry sets.
func diffNames(a, b map[string]*node) iter.Seq[string] {
	return func(yield func(string) bool) {
		for name, c := range a {
			if b[name] != c && !yield(name) {
				return
			}
		}
		for name := range b {
			if a[name] == nil && !yield(name) {
				return
			}
		}
	}
}
