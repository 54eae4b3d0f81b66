// Command blockmirror-nbd configures the kernel's NBD client over generic netlink: the
// only interface with a dead-connection timeout and NBD_CMD_RECONFIGURE, which is what
// lets a restarted sidecar hand the kernel a new socket while I/O waits instead of
// failing. Debian's nbd-client (3.24) has neither. The sidecar calls it; its output is
// one JSON object on stdout, its errors one line on stderr and a non-zero status.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	cmd, args := os.Args[1], os.Args[2:]
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	index := fs.Int("index", -1, "NBD device index (/dev/nbdN); -1 lets the kernel choose (connect)")
	socket := fs.String("socket", "", "Unix socket of the NBD server")
	exportName := fs.String("export", "", "export name")
	blockSize := fs.Uint64("block-size", 512, "logical block size the device reports")
	timeout := fs.Uint64("timeout", 30, "seconds before an unanswered request is requeued")
	deadTimeout := fs.Uint64("dead-timeout", 120, "seconds I/O waits for a reconnect after the connection dies")
	backend := fs.String("backend", "", "backend identifier, shown in /sys/block/nbdN/backend")
	_ = fs.Parse(args)

	var out any
	var err error
	switch cmd {
	case "connect":
		out, err = connect(*index, *socket, *exportName, *blockSize, *timeout, *deadTimeout, *backend)
	case "reconfigure":
		out, err = reconfigure(*index, *socket, *exportName, *backend)
	case "disconnect":
		out, err = disconnect(*index)
	case "status":
		out, err = status(*index)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "blockmirror-nbd %s: %v\n", cmd, err)
		os.Exit(1)
	}
	_ = json.NewEncoder(os.Stdout).Encode(out)
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: blockmirror-nbd connect|reconfigure|disconnect|status [flags]")
	os.Exit(2)
}

// dial connects to the server and negotiates the export; the returned file is a blocking
// duplicate of the socket, which is what the kernel takes.
func dial(socket, name string) (*os.File, export, error) {
	if socket == "" || name == "" {
		return nil, export{}, fmt.Errorf("--socket and --export are required")
	}
	c, err := net.DialTimeout("unix", socket, 10*time.Second)
	if err != nil {
		return nil, export{}, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	ex, err := negotiate(c, name)
	if err != nil {
		return nil, export{}, err
	}
	_ = c.SetDeadline(time.Time{})
	f, err := c.(*net.UnixConn).File()
	return f, ex, err
}

type connected struct {
	Index int    `json:"index"`
	Size  uint64 `json:"size"`
	Flags uint16 `json:"flags"`
}

func connect(index int, socket, name string, blockSize, timeout, deadTimeout uint64, backend string) (any, error) {
	f, ex, err := dial(socket, name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	got, err := nbdConnect(connectArgs{
		index: index, fd: f.Fd(), size: ex.size, blockSize: blockSize, serverFlags: uint64(ex.flags),
		timeout: timeout, deadTimeout: deadTimeout, backend: backend,
	})
	if err != nil {
		return nil, err
	}
	return connected{Index: got, Size: ex.size, Flags: ex.flags}, nil
}

func reconfigure(index int, socket, name, backend string) (any, error) {
	if index < 0 {
		return nil, fmt.Errorf("--index is required")
	}
	f, ex, err := dial(socket, name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := nbdReconfigure(index, f.Fd(), backend); err != nil {
		return nil, err
	}
	return connected{Index: index, Size: ex.size, Flags: ex.flags}, nil
}

func disconnect(index int) (any, error) {
	if index < 0 {
		return nil, fmt.Errorf("--index is required")
	}
	return map[string]int{"index": index}, nbdDisconnect(index)
}

func status(index int) (any, error) {
	return nbdStatus(index)
}
