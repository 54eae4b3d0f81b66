package main

import (
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// openFlags: every file is opened for direct I/O, so the kernel keeps no page cache that
// could still show data a cut has taken away; the kernel may send writes to one file
// in parallel (the store serialises them).
const openFlags = fuse.FOPEN_DIRECT_IO | fuse.FOPEN_PARALLEL_DIRECT_WRITES

// rawFS serves the Store over the FUSE wire protocol. Operations it does not implement
// answer ENOSYS (xattrs, locks handled by the kernel, O_TMPFILE, copy_file_range, lseek
// SEEK_DATA/SEEK_HOLE, ioctl), which the kernel turns into a fallback or EOPNOTSUPP.
type rawFS struct {
	fuse.RawFileSystem
	store  *Store
	mu     sync.Mutex
	server *fuse.Server
	dirs   map[uint64][]DirEntry // open directory handles: the listing being read
	nextFh uint64
}

func newRawFS(store *Store) *rawFS {
	return &rawFS{RawFileSystem: fuse.NewDefaultRawFileSystem(), store: store, dirs: map[uint64][]DirEntry{}, nextFh: 1}
}

func st(e syscall.Errno) fuse.Status { return fuse.Status(e) }

func (r *rawFS) String() string { return "blockmirror-crashfs" }

func (r *rawFS) Init(s *fuse.Server) {
	r.mu.Lock()
	r.server = s
	r.mu.Unlock()
}

// invalidate drops what the kernel caches of the state before a cut, after it (never
// under the store's lock: the kernel may wait for a request that needs it). Timeouts
// are 0 and files direct I/O, so reads would be right without it; but the attributes
// and the pages of private mmaps (which use the page cache even on direct-I/O files)
// go, and dropping the dentries of vanished names lets the kernel forget their inodes,
// whose space then counts as free again.
func (r *rawFS) invalidate(st Stale) {
	r.mu.Lock()
	s := r.server
	r.mu.Unlock()
	if s == nil {
		return
	}
	// ENOENT: the kernel forgot the inode or name meanwhile, nothing to invalidate.
	for _, e := range st.Entries {
		_ = s.EntryNotify(e.Parent, e.Name)
	}
	for _, id := range st.Inodes {
		_ = s.InodeNotify(id, 0, 0)
	}
}

func (r *rawFS) Lookup(_ <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	return st(r.store.Lookup(h.NodeId, name, out))
}

func (r *rawFS) Forget(nodeid, nlookup uint64) { r.store.Forget(nodeid, nlookup) }

func (r *rawFS) GetAttr(_ <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	return st(r.store.GetAttr(in.NodeId, &out.Attr))
}

func (r *rawFS) SetAttr(_ <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	return st(r.store.SetAttr(in.NodeId, in, &out.Attr))
}

func (r *rawFS) Access(_ <-chan struct{}, _ *fuse.AccessIn) fuse.Status { return fuse.OK }

func (r *rawFS) Mknod(_ <-chan struct{}, in *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	// Regular files only: device nodes, FIFOs and Unix sockets are not modelled.
	if in.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return fuse.Status(syscall.EOPNOTSUPP)
	}
	return st(r.store.Create(in.NodeId, name, CreateOpts{Mode: in.Mode, Uid: in.Uid, Gid: in.Gid, Exclusive: true}, out))
}

func (r *rawFS) Mkdir(_ <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	return st(r.store.Mkdir(in.NodeId, name, in.Mode, in.Uid, in.Gid, out))
}

func (r *rawFS) Unlink(_ <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	return st(r.store.Unlink(h.NodeId, name))
}

func (r *rawFS) Rmdir(_ <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	return st(r.store.Rmdir(h.NodeId, name))
}

func (r *rawFS) Rename(_ <-chan struct{}, in *fuse.RenameIn, oldName, newName string) fuse.Status {
	return st(r.store.Rename(in.NodeId, oldName, in.Newdir, newName, in.Flags))
}

func (r *rawFS) Link(_ <-chan struct{}, in *fuse.LinkIn, name string, out *fuse.EntryOut) fuse.Status {
	return st(r.store.Link(in.Oldnodeid, in.NodeId, name, out))
}

func (r *rawFS) Symlink(_ <-chan struct{}, h *fuse.InHeader, target, name string, out *fuse.EntryOut) fuse.Status {
	return st(r.store.Symlink(h.NodeId, name, target, h.Uid, h.Gid, out))
}

func (r *rawFS) Readlink(_ <-chan struct{}, h *fuse.InHeader) ([]byte, fuse.Status) {
	t, e := r.store.Readlink(h.NodeId)
	return []byte(t), st(e)
}

func (r *rawFS) Create(_ <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	o := CreateOpts{Mode: in.Mode, Uid: in.Uid, Gid: in.Gid, Exclusive: in.Flags&syscall.O_EXCL != 0, Truncate: in.Flags&syscall.O_TRUNC != 0}
	if e := r.store.Create(in.NodeId, name, o, &out.EntryOut); e != 0 {
		return st(e)
	}
	out.OpenOut = fuse.OpenOut{OpenFlags: openFlags}
	return fuse.OK
}

func (r *rawFS) Open(_ <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	if e := r.store.OpenFile(in.NodeId); e != 0 {
		return st(e)
	}
	*out = fuse.OpenOut{OpenFlags: openFlags}
	return fuse.OK
}

func (r *rawFS) Read(_ <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	if len(buf) < int(in.Size) {
		buf = make([]byte, in.Size)
	}
	n, e := r.store.Read(in.NodeId, int64(in.Offset), buf[:in.Size])
	if e != 0 {
		return nil, st(e)
	}
	return fuse.ReadResultData(buf[:n]), fuse.OK
}

func (r *rawFS) Writev(_ <-chan struct{}, in *fuse.WriteIn, data [][]byte) (uint32, fuse.Status) {
	// The kernel passes the file's open flags, with O_DSYNC added for RWF_DSYNC.
	o := WriteOpts{Append: in.Flags&syscall.O_APPEND != 0, Sync: in.Flags&(syscall.O_DSYNC|syscall.O_SYNC) != 0}
	n, e := r.store.Write(in.NodeId, int64(in.Offset), data, o)
	return uint32(n), st(e)
}

func (r *rawFS) Write(cancel <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	return r.Writev(cancel, in, [][]byte{data})
}

func (r *rawFS) Flush(_ <-chan struct{}, _ *fuse.FlushIn) fuse.Status { return fuse.OK }

func (r *rawFS) Release(_ <-chan struct{}, _ *fuse.ReleaseIn) {}

// Fsync: fsync and fdatasync both make the file's data, size and attributes durable.
func (r *rawFS) Fsync(_ <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	return st(r.store.Fsync(in.NodeId))
}

// FsyncDir: fsync of an open directory makes its entry set durable.
func (r *rawFS) FsyncDir(_ <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	return st(r.store.Fsync(in.NodeId))
}

func (r *rawFS) Fallocate(_ <-chan struct{}, in *fuse.FallocateIn) fuse.Status {
	return st(r.store.Fallocate(in.NodeId, int64(in.Offset), int64(in.Length), in.Mode))
}

func (r *rawFS) OpenDir(_ <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	list, e := r.store.ReadDir(in.NodeId)
	if e != 0 {
		return st(e)
	}
	r.mu.Lock()
	fh := r.nextFh
	r.nextFh++
	r.dirs[fh] = list
	r.mu.Unlock()
	*out = fuse.OpenOut{Fh: fh}
	return fuse.OK
}

// ReadDir serves the listing taken at opendir (or at a rewind: offset 0) so offsets
// stay stable while entries are removed, as rm -rf does.
func (r *rawFS) ReadDir(_ <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	var list []DirEntry
	if in.Offset == 0 {
		l, e := r.store.ReadDir(in.NodeId)
		if e != 0 {
			return st(e)
		}
		list = l
	}
	r.mu.Lock()
	if list != nil {
		r.dirs[in.Fh] = list
	} else {
		list = r.dirs[in.Fh]
	}
	r.mu.Unlock()
	for i := int(min(in.Offset, uint64(len(list)))); i < len(list); i++ {
		e := list[i]
		if !out.AddDirEntry(fuse.DirEntry{Name: e.Name, Ino: e.Ino, Mode: e.Mode, Off: uint64(i + 1)}) {
			break
		}
	}
	return fuse.OK
}

func (r *rawFS) ReleaseDir(in *fuse.ReleaseIn) {
	r.mu.Lock()
	delete(r.dirs, in.Fh)
	r.mu.Unlock()
}

func (r *rawFS) StatFs(_ <-chan struct{}, _ *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	r.store.StatFs(out)
	return fuse.OK
}
