package main

import (
	"maps"
	"math/rand/v2"
	"slices"
)

// CutResult says what a power cut took away (and, torn, what it kept).
type CutResult struct {
	Mode           string `json:"mode"`
	DroppedBytes   int64  `json:"droppedBytes"`   // unsynced sectors lost
	KeptBytes      int64  `json:"keptBytes"`      // unsynced sectors that survived (torn)
	DroppedEntries int    `json:"droppedEntries"` // directory entries reverted to the durable set
	RevertedSizes  int    `json:"revertedSizes"`  // files whose unsynced size change was lost
	KeptSizes      int    `json:"keptSizes"`      // files whose unsynced size change survived (torn)
	FreedInodes    int    `json:"freedInodes"`    // inodes no durable entry names (lost creations)
}

// Stale is what the kernel may still cache after a cut: the inodes it holds
// (attributes, and pages of private mmaps) and the names whose target changed.
type Stale struct {
	Inodes  []uint64
	Entries []StaleEntry
}

type StaleEntry struct {
	Parent uint64
	Name   string
}

// Cut is the power cut. Every directory's entries become its durable set; every
// file's data, size and attributes become the durable ones. With torn, each unsynced
// sector (and each unsynced size change) is first kept or lost on a coin flip from a
// generator seeded with seed, visiting inodes and pages in order, so the same state
// and seed give the same outcome. Returns what the caller must invalidate in the kernel.
func (s *Store) Cut(torn bool, seed uint64) (CutResult, Stale) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cuts++
	res := CutResult{Mode: "drop"}
	var rng *rand.Rand
	if torn {
		res.Mode = "torn"
		rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	}
	var stale Stale
	ids := slices.Sorted(maps.Keys(s.nodes))
	for _, id := range ids {
		n := s.nodes[id]
		n.meta = n.durMeta
		switch n.kind {
		case kindFile:
			var kept, dropped int64
			var sizeKept, sizeReverted bool
			if torn {
				kept, dropped, sizeKept, sizeReverted = n.file.cutTorn(rng)
			} else {
				dropped, sizeReverted = n.file.cutDrop()
			}
			res.KeptBytes += kept
			res.DroppedBytes += dropped
			if sizeKept {
				res.KeptSizes++
			}
			if sizeReverted {
				res.RevertedSizes++
			}
		case kindDir:
			res.DroppedEntries += entryDiff(n.entries, n.durEntries)
			if n.id == rootID || n.nlookup > 0 {
				// The kernel's dentries for these names would keep vanished inodes
				// (and their space) alive until it happened to look again.
				for name := range diffNames(n.entries, n.durEntries) {
					stale.Entries = append(stale.Entries, StaleEntry{n.id, name})
				}
			}
			n.entries = maps.Clone(n.durEntries)
		}
	}
	// Every directory's current entries are now its durable ones, so are the counts.
	s.allocPages = 0
	for _, n := range s.nodes {
		n.curLinks = n.durLinks
		n.live = n.id == rootID || n.curLinks > 0 || n.nlookup > 0
		if n.live && n.file != nil {
			s.allocPages += int64(len(n.file.cur))
		}
	}
	before := len(s.nodes)
	for _, id := range ids {
		n := s.nodes[id]
		if n == nil {
			continue // freed along with a directory
		}
		if !n.live && n.durLinks == 0 {
			s.free(n)
			continue
		}
		if n.nlookup > 0 {
			stale.Inodes = append(stale.Inodes, id)
		}
	}
	res.FreedInodes = before - len(s.nodes)
	return res, stale
}
