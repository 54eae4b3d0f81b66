// Command blockmirror-crashfs is an in-memory FUSE filesystem for power-loss tests. It
// keeps, for every file, the contents readers see and the contents an fsync last made
// durable, and for every directory the entries readers see and those its last fsync
// made durable. A power cut, asked for on a control socket, throws the difference
// away (or, torn, a random part of it), the way a disk with a volatile write cache
// loses what was never flushed.
//
//	blockmirror-crashfs --mount DIR --control SOCK [--capacity BYTES] [--watch-stdin] [--debug]
//
// It prints one JSON line with "ready": true once mounted, and unmounts on SIGTERM or
// SIGINT. The control protocol is in control.go.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
)

func main() {
	mountDir := flag.String("mount", "", "directory to mount the filesystem on")
	controlPath := flag.String("control", "", "Unix socket to serve control commands on")
	capacity := flag.Int64("capacity", 0, "size limit in bytes; 0: none")
	debug := flag.Bool("debug", false, "log every FUSE request to stderr")
	watchStdin := flag.Bool("watch-stdin", false, "unmount and exit when stdin reaches EOF (the parent died)")
	flag.Parse()
	if *mountDir == "" || *controlPath == "" || *capacity < 0 || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: blockmirror-crashfs --mount DIR --control SOCK [--capacity BYTES] [--watch-stdin] [--debug]")
		os.Exit(2)
	}
	if err := run(*mountDir, *controlPath, *capacity, *debug, *watchStdin); err != nil {
		fmt.Fprintf(os.Stderr, "blockmirror-crashfs: %v\n", err)
		os.Exit(1)
	}
}

func run(mountDir, controlPath string, capacity int64, debug, watchStdin bool) error {
	store := NewStore(capacity)
	fs := newRawFS(store)

	// A socket file left by a killed run would make Listen fail.
	if err := os.Remove(controlPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	l, err := net.Listen("unix", controlPath)
	if err != nil {
		return err
	}
	defer l.Close()

	server, err := fuse.NewServer(fs, mountDir, &fuse.MountOptions{
		FsName:        "blockmirror-crashfs",
		Name:          "blockmirror-crashfs",
		MaxWrite:      1 << 20, // and max_read: 1 MiB requests, as the sidecar issues
		MaxBackground: 64,
		AllowOther:    true,
		DirectMount:   true, // mount(2) as root, fusermount3 otherwise
		DisableXAttrs: true,
		// READDIR only: READDIRPLUS would hand out lookups for every listed entry.
		DisableReadDirPlus: true,
		Debug:              debug,
	})
	if err != nil {
		return fmt.Errorf("mount %s: %w", mountDir, err)
	}
	go server.Serve()
	if err := server.WaitMount(); err != nil {
		_ = server.Unmount()
		return fmt.Errorf("mount %s: %w", mountDir, err)
	}

	ctl := &controller{store: store, invalidate: fs.invalidate}
	go ctl.serve(l)

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	if watchStdin {
		// A test runner that dies (or exits without cleaning up) closes the pipe;
		// without this the mount would outlive it.
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			sigs <- syscall.SIGTERM
		}()
	}
	served := make(chan struct{})
	go func() {
		server.Wait()
		close(served)
	}()

	ready, _ := json.Marshal(map[string]any{"ready": true, "mount": mountDir, "control": controlPath, "pid": os.Getpid()})
	fmt.Println(string(ready))

	select {
	case <-served: // unmounted from outside
		return nil
	case <-sigs:
	}
	if err := server.Unmount(); err != nil {
		// Still busy (an open file, a cwd): detach it; once this process exits the
		// kernel fails whatever still uses it with ENOTCONN.
		if derr := syscall.Unmount(mountDir, syscall.MNT_DETACH); derr != nil {
			return fmt.Errorf("unmount %s: %v; lazy unmount: %w", mountDir, err, derr)
		}
		fmt.Fprintf(os.Stderr, "blockmirror-crashfs: %s was busy (%v); detached it\n", mountDir, err)
	}
	return nil
}
