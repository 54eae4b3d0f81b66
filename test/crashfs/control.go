package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Control protocol: one command per line on a Unix stream socket, one JSON object per
// line in reply, always with "ok" (and "error" when false).
//
//	cut drop          the power cut: every unsynced write and entry change is lost
//	cut torn SEED     the power cut of a disk that wrote back a random subset (seeded)
//	capacity BYTES    the size limit (0: none)
//	stats             allocation, dirty and memory figures
//	sync              make everything durable (a test's checkpoint, not a syscall)
type controller struct {
	store *Store
	// invalidate drops what the kernel caches of the state before a cut.
	invalidate func(Stale)
}

type reply map[string]any

func (c *controller) handle(line string) reply {
	f := strings.Fields(line)
	if len(f) == 0 {
		return reply{"ok": false, "error": "empty command"}
	}
	bad := func(format string, a ...any) reply {
		return reply{"ok": false, "error": fmt.Sprintf(format, a...)}
	}
	switch {
	case f[0] == "cut" && len(f) == 2 && f[1] == "drop":
		res, stale := c.store.Cut(false, 0)
		c.invalidate(stale)
		return withOK(res)
	case f[0] == "cut" && len(f) == 3 && f[1] == "torn":
		seed, err := strconv.ParseUint(f[2], 10, 64)
		if err != nil {
			return bad("cut torn: seed %q is not an unsigned integer", f[2])
		}
		res, stale := c.store.Cut(true, seed)
		c.invalidate(stale)
		return withOK(res)
	case f[0] == "cut":
		return bad("usage: cut drop | cut torn SEED")
	case f[0] == "capacity" && len(f) == 2:
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || n < 0 {
			return bad("capacity: %q is not a byte count", f[1])
		}
		c.store.SetCapacity(n)
		return reply{"ok": true, "capacityBytes": n / pageSize * pageSize}
	case f[0] == "stats" && len(f) == 1:
		return withOK(c.store.Stats())
	case f[0] == "sync" && len(f) == 1:
		c.store.SyncAll()
		return reply{"ok": true}
	}
	return bad("unknown command %q (cut drop | cut torn SEED | capacity BYTES | stats | sync)", line)
}

// withOK flattens a result struct into a reply with "ok": true.
func withOK(v any) reply {
	b, _ := json.Marshal(v)
	r := reply{}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	_ = d.Decode(&r)
	r["ok"] = true
	return r
}

// serve answers connections on l until it is closed.
func (c *controller) serve(l net.Listener) {
	for {
		conn, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		go c.serveConn(conn)
	}
}

func (c *controller) serveConn(conn net.Conn) {
	defer conn.Close()
	sc := bufio.NewScanner(conn)
	enc := json.NewEncoder(conn)
	for sc.Scan() {
		if err := enc.Encode(c.handle(sc.Text())); err != nil {
			return
		}
	}
}
