package coordinator

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"math"
	"slices"

	"engine/gensort"
	"engine/sortjob"
)

// The snapshot encoding: the state without its task tables as JSON (small:
// members, job headers, plans, reports), then every job's tasks in a
// compact binary form, then a CRC. A finished task takes about 40 bytes (a
// map: its checksum is 16 of them), a pending one 6; as JSON they took about
// 150.
//
//	magic   [8]byte "ENGSNAP2"
//	header  uvarint length, then the JSON of State with no task tables
//	per job, in sorted id order:
//	  per kind (map, reduce, merge): uvarint count, then the tasks
//	  merge maps: per merge, uvarint n, then n uvarint map indexes
//	crc     uint32 little-endian: CRC32C of every byte before it
//
// A task: a flags byte saying which optional fields follow, state,
// failures, lost (bytes), attempt and attempts (uvarint), then the fields
// its flags name: its node (incarnation, start), its twin, its last
// failure, its merge, its result (records, time taken), a reduce's summary
// and fetched bytes, a map's input checksum. Strings are uvarint length and bytes; node ids go through
// a table of the ids seen so far (uvarint: 0 = a new id follows, n = the
// n-th id).
const snapMagic = "ENGSNAP2"

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Task flags in the snapshot.
const (
	tfNode = 1 << iota
	tfTwin
	tfFailed
	tfMerge
	tfResult
	tfReduce
	tfSum
)

// maxSnapString bounds a string in a snapshot.
const maxSnapString = MaxErrorLen

type snapWriter struct {
	w     *bufio.Writer
	crc   uint32
	buf   []byte
	ids   map[string]uint64
	count int64
	err   error
}

func (w *snapWriter) flush() {
	if len(w.buf) == 0 || w.err != nil {
		return
	}
	w.crc = crc32.Update(w.crc, crcTable, w.buf)
	n, err := w.w.Write(w.buf)
	w.count += int64(n)
	w.err = err
	w.buf = w.buf[:0]
}

func (w *snapWriter) uvarint(v uint64) {
	w.buf = binary.AppendUvarint(w.buf, v)
	if len(w.buf) > 32<<10 {
		w.flush()
	}
}

func (w *snapWriter) varint(v int64) { w.uvarint(uint64(v<<1) ^ uint64(v>>63)) }

func (w *snapWriter) bytes(b []byte) {
	w.uvarint(uint64(len(b)))
	w.buf = append(w.buf, b...)
}

func (w *snapWriter) id(s string) {
	if n, ok := w.ids[s]; ok {
		w.uvarint(n)
		return
	}
	w.ids[s] = uint64(len(w.ids) + 1)
	w.uvarint(0)
	w.bytes([]byte(s))
}

// encodeState writes s in the snapshot encoding and returns the bytes
// written.
func encodeState(out io.Writer, s *State) (int64, error) {
	w := &snapWriter{w: bufio.NewWriterSize(out, 256<<10), ids: map[string]uint64{}}
	head := &State{Index: s.Index, Members: s.Members, Jobs: make(map[string]*Job, len(s.Jobs))}
	for id, j := range s.Jobs {
		h := *j
		h.Maps, h.Reduces, h.Merges, h.MergeMaps, h.x = nil, nil, nil, nil, nil
		head.Jobs[id] = &h
	}
	hb, err := json.Marshal(head)
	if err != nil {
		return 0, fmt.Errorf("coordinator: snapshot: %w", err)
	}
	w.buf = append(w.buf, snapMagic...)
	w.bytes(hb)
	for _, id := range slices.Sorted(maps.Keys(s.Jobs)) {
		j := s.Jobs[id]
		for _, k := range []Kind{KindMap, KindReduce, KindMerge} {
			ts := j.Tasks(k)
			w.uvarint(uint64(len(ts)))
			for i := range ts {
				w.task(&ts[i])
			}
		}
		for _, maps := range j.MergeMaps {
			w.uvarint(uint64(len(maps)))
			for _, m := range maps {
				w.uvarint(uint64(m))
			}
		}
	}
	w.flush()
	if w.err == nil {
		var c [4]byte
		binary.LittleEndian.PutUint32(c[:], w.crc)
		_, w.err = w.w.Write(c[:])
		w.count += 4
	}
	if w.err == nil {
		w.err = w.w.Flush()
	}
	return w.count, w.err
}

func (w *snapWriter) task(t *Task) {
	var f byte
	if t.Node != "" {
		f |= tfNode
	}
	if t.Twin != nil {
		f |= tfTwin
	}
	if t.Failed != nil {
		f |= tfFailed
	}
	if t.Merge != 0 {
		f |= tfMerge
	}
	if t.Records != 0 || t.Took != 0 {
		f |= tfResult
	}
	if t.Reduce != nil {
		f |= tfReduce
	}
	if !t.InputSum.IsZero() {
		f |= tfSum
	}
	w.buf = append(w.buf, f, byte(t.State), t.Failures, t.Lost)
	w.uvarint(uint64(t.Attempt))
	w.uvarint(uint64(t.Attempts))
	if f&tfNode != 0 {
		w.id(t.Node)
		w.varint(int64(t.NodeIncarnation))
		w.varint(t.Started)
	}
	if f&tfTwin != 0 {
		w.id(t.Twin.Node)
		w.uvarint(uint64(t.Twin.Attempt))
		w.varint(int64(t.Twin.NodeIncarnation))
		w.varint(t.Twin.Started)
	}
	if f&tfFailed != 0 {
		w.id(t.Failed.Node)
		w.bytes([]byte(t.Failed.Error))
	}
	if f&tfMerge != 0 {
		w.uvarint(uint64(t.Merge))
	}
	if f&tfResult != 0 {
		w.varint(t.Records)
		w.varint(t.Took)
	}
	if f&tfReduce != 0 {
		w.bytes(t.Reduce.Summary)
		w.varint(t.Reduce.Remote)
	}
	if f&tfSum != 0 {
		w.uvarint(t.InputSum.Hi)
		w.uvarint(t.InputSum.Lo)
	}
}

type snapReader struct {
	r   *bufio.Reader
	crc uint32
	ids []string
	err error
}

var errSnapshot = errors.New("coordinator: bad snapshot")

func (r *snapReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{errSnapshot}, args...)...)
	}
}

func (r *snapReader) ReadByte() (byte, error) {
	if r.err != nil {
		return 0, r.err
	}
	b, err := r.r.ReadByte()
	if err != nil {
		r.fail("truncated: %v", err)
		return 0, r.err
	}
	r.crc = crc32.Update(r.crc, crcTable, []byte{b})
	return b, nil
}

func (r *snapReader) byte() byte {
	b, _ := r.ReadByte()
	return b
}

func (r *snapReader) uvarint() uint64 {
	v, err := binary.ReadUvarint(r)
	if err != nil {
		r.fail("bad number: %v", err)
	}
	return v
}

// count reads a count and checks it against limit.
func (r *snapReader) count(what string, limit int) int {
	v := r.uvarint()
	if v > uint64(limit) {
		r.fail("%s %d is over the limit of %d", what, v, limit)
		return 0
	}
	return int(v)
}

// int32 reads a varint that must fit 32 bits.
func (r *snapReader) int32(what string) int32 {
	v := r.varint()
	if v < math.MinInt32 || v > math.MaxInt32 {
		r.fail("%s %d is out of range", what, v)
		return 0
	}
	return int32(v)
}

func (r *snapReader) varint() int64 {
	u := r.uvarint()
	return int64(u>>1) ^ -int64(u&1)
}

func (r *snapReader) bytes(limit int) []byte {
	n := r.count("string length", limit)
	if r.err != nil {
		return nil
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r.r, b); err != nil {
		r.fail("truncated string: %v", err)
		return nil
	}
	r.crc = crc32.Update(r.crc, crcTable, b)
	return b
}

func (r *snapReader) id() string {
	n := r.uvarint()
	if n == 0 {
		s := string(r.bytes(MaxIDLen))
		r.ids = append(r.ids, s)
		return s
	}
	if n > uint64(len(r.ids)) {
		r.fail("node reference %d of %d", n, len(r.ids))
		return ""
	}
	return r.ids[n-1]
}

// decodeState reads a snapshot that encodeState wrote, checking every count
// against the limits of a job so that a damaged or forged snapshot is an
// error, never a panic or a huge allocation.
func decodeState(in io.Reader) (*State, error) {
	r := &snapReader{r: bufio.NewReaderSize(in, 256<<10)}
	var magic [len(snapMagic)]byte
	for i := range magic {
		magic[i] = r.byte()
	}
	if r.err == nil && string(magic[:]) != snapMagic {
		return nil, fmt.Errorf("%w: magic %q, want %q", errSnapshot, magic[:], snapMagic)
	}
	hb := r.bytes(1 << 30)
	if r.err != nil {
		return nil, r.err
	}
	s := NewState()
	if err := json.Unmarshal(hb, s); err != nil {
		return nil, fmt.Errorf("%w: header: %v", errSnapshot, err)
	}
	if s.Members == nil {
		s.Members = map[string]*Member{}
	}
	if s.Jobs == nil {
		s.Jobs = map[string]*Job{}
	}
	for _, id := range slices.Sorted(maps.Keys(s.Jobs)) {
		j := s.Jobs[id]
		if j == nil {
			return nil, fmt.Errorf("%w: job %q is null", errSnapshot, id)
		}
		j.Maps = r.tasks(KindMap, sortjob.MaxMapTasks)
		j.Reduces = r.tasks(KindReduce, sortjob.MaxPartitions)
		j.Merges = r.tasks(KindMerge, sortjob.MaxMapTasks)
		if len(j.Merges) > 0 {
			j.MergeMaps = make([][]int, len(j.Merges))
		}
		for i := range j.MergeMaps {
			n := r.count("merged maps", maxMergeMaps)
			maps := make([]int, 0, n)
			for range n {
				m := r.count("merged map", len(j.Maps)-1)
				maps = append(maps, m)
			}
			j.MergeMaps[i] = maps
		}
		if r.err != nil {
			return nil, fmt.Errorf("job %s: %w", id, r.err)
		}
		if err := j.check(); err != nil {
			return nil, fmt.Errorf("%w: job %s: %v", errSnapshot, id, err)
		}
	}
	want := r.crc
	var c [4]byte
	if _, err := io.ReadFull(r.r, c[:]); err != nil {
		return nil, fmt.Errorf("%w: no checksum: %v", errSnapshot, err)
	}
	if got := binary.LittleEndian.Uint32(c[:]); got != want {
		return nil, fmt.Errorf("%w: checksum %08x, want %08x", errSnapshot, got, want)
	}
	if _, err := r.r.ReadByte(); err != io.EOF {
		return nil, fmt.Errorf("%w: bytes after the checksum", errSnapshot)
	}
	for _, j := range s.Jobs {
		j.x = nil
		if !j.Compacted {
			j.reindex()
		}
	}
	return s, nil
}

func (r *snapReader) tasks(k Kind, limit int) []Task {
	n := r.count(k.String()+" tasks", limit)
	if r.err != nil || n == 0 {
		return nil
	}
	ts := make([]Task, n)
	for i := range ts {
		t := &ts[i]
		t.Kind, t.Index = k, int32(i)
		f := r.byte()
		t.State, t.Failures, t.Lost = TaskState(r.byte()), r.byte(), r.byte()
		t.Attempt = int32(r.count("attempt", maxAttempt))
		t.Attempts = int32(r.count("attempts", maxAttempt))
		if f&tfNode != 0 {
			t.Node = r.id()
			t.NodeIncarnation = r.int32("incarnation")
			t.Started = r.varint()
		}
		if f&tfTwin != 0 {
			t.Twin = &Twin{Node: r.id(), Attempt: int32(r.count("twin attempt", maxAttempt)), NodeIncarnation: r.int32("twin incarnation"), Started: r.varint()}
		}
		if f&tfFailed != 0 {
			t.Failed = &Failure{Node: r.id(), Error: string(r.bytes(maxSnapString))}
		}
		if f&tfMerge != 0 {
			t.Merge = int32(r.count("merge", sortjob.MaxMapTasks))
		}
		if f&tfResult != 0 {
			t.Records, t.Took = r.varint(), r.varint()
		}
		if f&tfReduce != 0 {
			t.Reduce = &ReduceResult{Summary: r.bytes(maxSummaryLen), Remote: r.varint()}
		}
		if f&tfSum != 0 {
			t.InputSum = gensort.Sum{Hi: r.uvarint(), Lo: r.uvarint()}
		}
		if f >= tfSum<<1 {
			r.fail("%s %d has unknown flags %#x", k, i, f)
		}
		if r.err != nil {
			return nil
		}
	}
	return ts
}

// check verifies what a restored job's index and the scheduler rely on:
// task tables the size of the plan, states in range, merge references that
// point at merges, no task tables once compacted.
func (j *Job) check() error {
	if j.Compacted {
		if len(j.Maps)+len(j.Reduces)+len(j.Merges) != 0 {
			return errors.New("a compacted job with tasks")
		}
		return nil
	}
	if len(j.Maps) != j.Plan.MapCount || len(j.Reduces) != j.Plan.Partitions {
		return fmt.Errorf("%d maps and %d reduces for a plan of %d and %d", len(j.Maps), len(j.Reduces), j.Plan.MapCount, j.Plan.Partitions)
	}
	for _, k := range []Kind{KindMap, KindReduce, KindMerge} {
		for i, t := range j.Tasks(k) {
			if t.State > TaskDropped || t.State == TaskDropped && k != KindMerge {
				return fmt.Errorf("%s %d in state %d", k, i, t.State)
			}
			if t.State == TaskRunning && t.Node == "" {
				return fmt.Errorf("%s %d runs nowhere", k, i)
			}
			if k == KindMap && int(t.Merge) > len(j.Merges) {
				return fmt.Errorf("map %d names merge %d of %d", i, t.Merge, len(j.Merges))
			}
		}
	}
	return nil
}
