package main

import (
	"encoding/json"
	"testing"
)

func TestControlCommands(t *testing.T) {
	s := NewStore(0)
	var invalidated int
	c := &controller{store: s, invalidate: func(Stale) { invalidated++ }}
	f := create(t, s, rootID, "f")
	write(t, s, f, 0, []byte("unsynced"))

	for _, bad := range []string{"", "cut", "cut torn", "cut torn -1", "cut torn x", "cut drop now", "capacity", "capacity -5", "capacity 1e9", "stats now", "frobnicate"} {
		r := c.handle(bad)
		if msg, _ := r["error"].(string); r["ok"] != false || msg == "" {
			t.Errorf("%q: %v, want a refusal with an error", bad, r)
		}
	}
	if invalidated != 0 || s.Stats().DirtyBytes != sectorSize || s.Stats().Cuts != 0 {
		t.Fatal("a refused command changed something")
	}

	if r := c.handle("capacity 10000"); r["ok"] != true || r["capacityBytes"] != int64(8192) {
		t.Fatalf("capacity: %v (rounded down to whole pages)", r)
	}
	if r := c.handle("stats"); r["ok"] != true || r["capacityBytes"] != json.Number("8192") || r["dirtyBytes"] != json.Number("512") {
		t.Fatalf("stats: %v", r)
	}
	r := c.handle("cut torn 3")
	if r["ok"] != true || r["mode"] != "torn" || invalidated != 1 {
		t.Fatalf("cut torn: %v", r)
	}
	if r := c.handle("sync"); r["ok"] != true {
		t.Fatalf("sync: %v", r)
	}
	if r := c.handle("  cut   drop  "); r["ok"] != true || r["droppedBytes"] != json.Number("0") {
		t.Fatalf("cut drop after sync: %v", r)
	}
}
