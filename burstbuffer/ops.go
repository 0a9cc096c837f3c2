package burstbuffer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"engine/namespace"
)

// Metrics are the service's counters.
type Metrics struct {
	bytesWritten  atomic.Int64
	stripes       atomic.Int64
	stripeBytes   atomic.Int64
	drainedBytes  atomic.Int64
	backingBytes  atomic.Int64
	drainNanos    atomic.Int64
	drainFiles    atomic.Int64
	degradedReads atomic.Int64
	repaired      atomic.Int64
	throttled     atomic.Int64
	lostStripes   atomic.Int64
	hist          [histBuckets]atomic.Int64
	fullWrites    atomic.Int64 // backing writes of whole aligned chunks
	tailWrites    atomic.Int64 // backing writes ending at the file's end with a short chunk
	otherWrites   atomic.Int64 // anything else (there should be none)
	smallWrites   atomic.Int64 // backing writes of 4 KiB or less
	panics        atomic.Int64 // background work that panicked and was recovered
}

// histBuckets: bucket i counts writes of at most 2^(i+9) bytes (512 B …
// 64 MiB and over).
const histBuckets = 18

func (m *Metrics) observeWrite(n int, full, atEnd bool) {
	switch {
	case full:
		m.fullWrites.Add(1)
	case atEnd:
		m.tailWrites.Add(1)
	default:
		m.otherWrites.Add(1)
	}
	if n <= 4096 {
		m.smallWrites.Add(1)
	}
	b := 0
	if n > 512 {
		b = bits.Len(uint(n-1)) - 9
	}
	m.hist[min(b, histBuckets-1)].Add(1)
	m.backingBytes.Add(int64(n))
}

func (m *Metrics) drained(buffered, written int64, d time.Duration) {
	m.drainedBytes.Add(buffered)
	m.drainNanos.Add(int64(d))
	m.drainFiles.Add(1)
}

// Status is what `enginectl bb status` shows for one node.
type Status struct {
	Node           string           `json:"node"`
	Code           string           `json:"code"`
	LiveNodes      int              `json:"live_nodes"`
	Health         string           `json:"health"`
	FlashUsed      int64            `json:"flash_used_bytes"`
	FlashLimit     int64            `json:"flash_limit_bytes"`
	Buffered       int64            `json:"buffered_bytes"` // live bytes in the index (all nodes' data)
	DirtyFiles     int              `json:"dirty_files"`
	Stripes        int              `json:"stripes_known"`
	Written        int64            `json:"bytes_written"` // accepted by this node
	StripesWritten int64            `json:"stripes_written"`
	Drained        int64            `json:"bytes_drained"`
	BackingWritten int64            `json:"backing_bytes_written"`
	DrainRate      float64          `json:"drain_rate_bytes_per_sec"`
	DrainChunk     int              `json:"drain_chunk_bytes"`
	WriteSizes     map[string]int64 `json:"backing_write_sizes"`       // histogram: "≤4KiB" → count
	FullWrites     int64            `json:"backing_full_chunk_writes"` // whole, aligned chunks
	TailWrites     int64            `json:"backing_tail_writes"`       // a file's short last chunk
	OtherWrites    int64            `json:"backing_other_writes"`      // neither (always 0)
	SmallWrites    int64            `json:"backing_writes_4k_or_less"`
	DegradedReads  int64            `json:"degraded_reads"`
	Repaired       int64            `json:"shards_repaired"`
	Throttled      int64            `json:"writes_throttled"`
	LostStripes    int64            `json:"lost_stripes"`     // acknowledged stripes with more than m shards gone (their holders known gone)
	Panics         int64            `json:"recovered_panics"` // background work that panicked (a bug: see the log)
	BackingFull    string           `json:"backing_full,omitempty"`
	// UnavailableStripes: acknowledged stripes with fewer than k shards on
	// the nodes heard from, the rest on nodes that are down (not gone):
	// they read as EIO until those nodes are back.
	UnavailableStripes int `json:"unavailable_stripes"`
	// NodeLossesTolerated is how many more nodes the buffered data
	// survives losing right now: the fewest, over the stripes this node
	// knows, of the nodes holding its shards (live ones) that can go with
	// k shards left. -1: some stripe is unreadable already. With nothing
	// buffered, what new stripes get on the live nodes.
	NodeLossesTolerated int `json:"node_losses_tolerated"`
	// ToleranceStripes counts the stripes by the node losses each
	// tolerates (-1: unreadable now).
	ToleranceStripes map[int]int `json:"stripes_by_node_losses_tolerated"`
	// Warning: the cluster has too few live nodes for its k+m to survive
	// the loss of m nodes.
	Warning string `json:"warning,omitempty"`
}

func sizeLabel(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// Status reports this node's view.
func (s *Service) Status() Status {
	live := s.cfg.Cluster.Live()
	st := Status{Node: s.cfg.Node, Code: s.code.String(), LiveNodes: len(live),
		FlashUsed: s.flashUsed(), FlashLimit: s.cfg.FlashLimit, Buffered: s.index.LiveBytes(),
		Written: s.stats.bytesWritten.Load(), StripesWritten: s.stats.stripes.Load(),
		Drained: s.stats.drainedBytes.Load(), BackingWritten: s.stats.backingBytes.Load(),
		DrainChunk: s.cfg.DrainChunk, WriteSizes: map[string]int64{},
		FullWrites: s.stats.fullWrites.Load(), TailWrites: s.stats.tailWrites.Load(),
		OtherWrites: s.stats.otherWrites.Load(), SmallWrites: s.stats.smallWrites.Load(),
		DegradedReads: s.stats.degradedReads.Load(), Repaired: s.stats.repaired.Load(), Throttled: s.stats.throttled.Load(), Panics: s.stats.panics.Load(),
		ToleranceStripes: map[int]int{}, Warning: s.placementWarning(len(live))}
	if d := s.stats.drainNanos.Load(); d > 0 {
		st.DrainRate = float64(st.BackingWritten) / (float64(d) / 1e9)
	}
	for i := range s.stats.hist {
		if c := s.stats.hist[i].Load(); c > 0 {
			label := "≤" + sizeLabel(int64(1)<<(i+9))
			if i == histBuckets-1 {
				label = ">" + sizeLabel(int64(1)<<(i+8))
			}
			st.WriteSizes[label] = c
		}
	}
	if files, err := s.index.Files(); err == nil {
		for _, d := range files {
			if d > 0 {
				st.DirtyFiles++
			}
		}
	}
	alive := map[string]bool{}
	for _, n := range live {
		alive[n] = true
	}
	degraded := 0
	st.NodeLossesTolerated = s.cfg.M / perNode(s.cfg.K+s.cfg.M, len(live))
	s.mu.Lock()
	st.Stripes = len(s.mu.metas)
	for id, m := range s.mu.metas {
		for _, r := range m.Stores {
			if !alive[r.Node] {
				degraded++
				break
			}
		}
		t := tolerance(m, alive)
		if l := s.mu.lost[id]; l != nil {
			t = -1
			if l.verdict {
				st.LostStripes++
			} else {
				st.UnavailableStripes++
			}
		}
		if len(st.ToleranceStripes) == 0 || t < st.NodeLossesTolerated {
			st.NodeLossesTolerated = t
		}
		st.ToleranceStripes[t]++
	}
	s.mu.Unlock()
	switch {
	case st.LostStripes > 0:
		st.Health = fmt.Sprintf("DATA LOST: %d acknowledged stripes have more than %d shards gone; their bytes read as EIO", st.LostStripes, s.cfg.M)
	case st.UnavailableStripes > 0:
		st.Health = fmt.Sprintf("unavailable: %d acknowledged stripes have more than %d shards on nodes that are down; their bytes read as EIO until those nodes are back", st.UnavailableStripes, s.cfg.M)
	case degraded > 0:
		st.Health = fmt.Sprintf("degraded: %d stripes have shards on nodes that are down (being rebuilt)", degraded)
	case len(live) < s.cfg.K+s.cfg.M:
		st.Health = fmt.Sprintf("ok (%d nodes for %d+%d: shards share nodes)", len(live), s.cfg.K, s.cfg.M)
	default:
		st.Health = "ok"
	}
	if p := s.backFull.Load(); p != nil {
		st.BackingFull = (*p).Error()
	}
	return st
}

// tolerance returns how many of the live nodes holding m's shards can be
// lost with at least k shards left: the nodes holding the most go first.
// -1: fewer than k shards are on live nodes now.
func tolerance(m *Meta, alive map[string]bool) int {
	per := map[string]int{}
	have := 0
	for _, r := range m.Stores {
		if alive[r.Node] {
			per[r.Node]++
			have++
		}
	}
	if have < m.K {
		return -1
	}
	counts := make([]int, 0, len(per))
	for _, c := range per {
		counts = append(counts, c)
	}
	sort.Sort(sort.Reverse(sort.IntSlice(counts)))
	t := 0
	for _, c := range counts {
		if have-c < m.K {
			break
		}
		have -= c
		t++
	}
	return t
}

// perNode is how many shards of a k+m stripe placement puts on one node
// at most, with n live nodes.
func perNode(total, n int) int {
	if n < 1 {
		return total
	}
	return (total + n - 1) / n
}

// placementWarning says, for n live nodes fewer than k+m, how few node
// losses the stripes placed on them survive ("" when there are enough).
func (s *Service) placementWarning(n int) string {
	total := s.cfg.K + s.cfg.M
	if n >= total {
		return ""
	}
	per := perNode(total, n)
	return fmt.Sprintf("%d live node(s) for %d+%d stripes: up to %d shards of a stripe share a node, so buffered data survives the loss of %d node(s) (and of any %d flash stores), not %d nodes",
		n, s.cfg.K, s.cfg.M, per, s.cfg.M/per, s.cfg.M, s.cfg.M)
}

// backingPath resolves a path inside the backing directory: absolute paths
// must lie under it, relative ones are taken from it.
func (s *Service) backingPath(p string) (string, error) {
	root, err := filepath.Abs(s.cfg.BackingDir)
	if err != nil {
		return "", err
	}
	p = filepath.Clean(p)
	if p == root || strings.HasPrefix(p, root+string(filepath.Separator)) {
		return p, nil // a path in the backing directory
	}
	// A path of the namespace: relative to its root, "/" being the root.
	p = filepath.Join(root, p)
	if p != root && !strings.HasPrefix(p, root+string(filepath.Separator)) {
		return "", fmt.Errorf("burstbuffer: %s is outside the namespace: give a path from the mount's root or inside the backing directory %s", p, root)
	}
	return p, nil
}

// refsUnder returns the refs of the regular files at or under path. It
// walks beneath the backing directory's descriptor (namespace): no
// symlink is followed, and every file is opened O_PATH, so a FIFO or
// device is passed over without being opened.
func (s *Service) refsUnder(path string) ([]FileRef, error) {
	p, err := s.backingPath(path)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(s.cfg.BackingDir)
	if err != nil {
		return nil, err
	}
	rel, err := filepath.Rel(abs, p)
	if err != nil {
		return nil, fmt.Errorf("burstbuffer: %w", err)
	}
	root, err := namespace.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("burstbuffer: %w", err)
	}
	defer root.Close()
	var refs []FileRef
	var walk func(rel string) error
	walk = func(rel string) error {
		f, err := root.Open(rel, unix.O_PATH|unix.O_NOFOLLOW, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		x, err := namespace.StatFile(f)
		if err != nil {
			return err
		}
		switch x.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			r, err := RefOf(f)
			if err != nil {
				return err
			}
			refs = append(refs, r)
		case unix.S_IFDIR:
			d, err := root.Open(rel, unix.O_RDONLY|unix.O_DIRECTORY, 0)
			if err != nil {
				return err
			}
			names, err := d.Readdirnames(-1)
			d.Close()
			if err != nil {
				return err
			}
			sort.Strings(names)
			for _, name := range names {
				if err := walk(filepath.Join(rel, name)); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(rel); err != nil {
		return nil, fmt.Errorf("burstbuffer: %w", err)
	}
	return refs, nil
}

// SyncPath drains the files at or under path now (on the nodes that own
// them) and returns when their buffered bytes are on the backing file
// system, fsynced.
func (s *Service) SyncPath(ctx context.Context, path string) error {
	refs, err := s.refsUnder(path)
	if err != nil {
		return err
	}
	if err := s.SyncAll(ctx); err != nil {
		return err
	}
	p, _ := s.backingPath(path)
	live := s.cfg.Cluster.Live()
	owners := map[string]bool{}
	for _, r := range refs {
		o := owner(r.ID, live)
		if o == s.cfg.Node {
			s.mu.Lock()
			if _, ok := s.mu.refs[r.ID]; !ok {
				s.mu.refs[r.ID] = r
			}
			s.mu.Unlock()
			if err := s.drainFile(ctx, r.ID); err != nil {
				return err
			}
		} else {
			owners[o] = true
		}
	}
	for o := range owners {
		if err := s.cfg.Transport.Call(ctx, o, "drain", p); err != nil {
			return fmt.Errorf("burstbuffer: drain on %s: %w", o, err)
		}
	}
	return nil
}

// drainOwned drains the files under path this node owns (a peer's SyncPath).
func (s *Service) drainOwned(ctx context.Context, path string) error {
	refs, err := s.refsUnder(path)
	if err != nil {
		return err
	}
	live := s.cfg.Cluster.Live()
	for _, r := range refs {
		if owner(r.ID, live) != s.cfg.Node {
			continue
		}
		s.mu.Lock()
		if _, ok := s.mu.refs[r.ID]; !ok {
			s.mu.refs[r.ID] = r
		}
		s.mu.Unlock()
		if err := s.drainFile(ctx, r.ID); err != nil {
			return err
		}
	}
	return nil
}

// Purge drains the files at or under path and drops their buffered copies
// (prestaged clean ones too), freeing flash.
func (s *Service) Purge(ctx context.Context, path string) error {
	if err := s.SyncPath(ctx, path); err != nil {
		return err
	}
	refs, err := s.refsUnder(path)
	if err != nil {
		return err
	}
	for _, r := range refs {
		exts, err := s.index.FileExtents(r.ID)
		if err != nil {
			return err
		}
		var clean []Extent
		for _, e := range exts {
			if !e.Clean {
				return fmt.Errorf("burstbuffer: %016x got new writes while purging; purge again", r.ID)
			}
			clean = append(clean, e)
		}
		if len(clean) > 0 {
			if err := s.dropEverywhere(ctx, piecesOf(r.ID, clean)); err != nil {
				return err
			}
		}
	}
	return nil
}

// Prestage pulls the files at or under path from the backing file system
// into the flash tier (as clean copies: nothing to drain), after draining
// what they have buffered.
func (s *Service) Prestage(ctx context.Context, path string) (int64, error) {
	if err := s.SyncPath(ctx, path); err != nil {
		return 0, err
	}
	refs, err := s.refsUnder(path)
	if err != nil {
		return 0, err
	}
	var total int64
	buf := make([]byte, s.cfg.K*s.cfg.ShardSize)
	for _, r := range refs {
		f, err := openRef(s.backing, r, os.O_RDONLY)
		if err != nil {
			return total, err
		}
		for off := int64(0); ; {
			n, err := f.ReadAt(buf, off)
			if n > 0 {
				if werr := s.writeAt(ctx, r, buf[:n], off, true); werr != nil {
					f.Close()
					return total, werr
				}
				off += int64(n)
				total += int64(n)
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				f.Close()
				return total, err
			}
		}
		f.Close()
	}
	return total, s.SyncAll(ctx)
}
