package coordinator

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"engine/gensort"
	"engine/shuffle"
	"engine/sortjob"
)

// poisonSubmits are job_submit entries that a caller of
// /v1/internal/propose could get committed: before validation, the first
// panicked ("makeslice: len out of range") in Apply on every node and again
// at every replay of the log.
var poisonSubmits = []string{
	`{"type":"job_submit","job":"p","spec":{"records":1000},"plan":{"spec":{"records":1000},"map_count":-1,"partitions":1},"splits":"AAAAAA=="}`,
	`{"type":"job_submit","job":"p","spec":{"records":1000},"plan":{"spec":{"records":1000},"map_count":1,"partitions":-5},"splits":"AAAAAA=="}`,
	`{"type":"job_submit","job":"p","spec":{"records":1000},"plan":{"spec":{"records":1000},"map_count":1125899906842624,"partitions":1},"splits":"AAAAAA=="}`,
}

// A poison entry applied through the FSM is rejected, the state keeps its
// index moving, and the next entry applies.
func TestFSMRejectsPoisonSubmit(t *testing.T) {
	f := NewFSM()
	var idx uint64
	applyRaw := func(data []byte) any {
		idx++
		return f.Apply(&raft.Log{Index: idx, Type: raft.LogCommand, Data: data})
	}
	for _, p := range poisonSubmits {
		res := applyRaw([]byte(p))
		if err, ok := res.(error); !ok || !errors.Is(err, ErrRejected) {
			t.Fatalf("poison %s: response %v, want an error wrapping ErrRejected", p, res)
		}
	}
	if res := applyRaw(Command{Type: CmdMemberUpsert, Member: &Member{ID: "a", Cores: 2}}.Encode()); res != nil {
		t.Fatalf("a valid entry after the poison: %v", res)
	}
	f.Read(func(s *State) {
		if len(s.Jobs) != 0 || len(s.Members) != 1 || s.Index != idx {
			t.Fatalf("state after poison: %d jobs, %d members, index %d (want 0, 1, %d)", len(s.Jobs), len(s.Members), s.Index, idx)
		}
	})
}

// The FSM turns a panic in applying one entry into a rejection and keeps
// working; the same happens when the entry is replayed.
func TestFSMRecoversFromAPanic(t *testing.T) {
	f := NewFSM()
	f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: Command{Type: CmdMemberUpsert, Member: &Member{ID: "a"}}.Encode()})
	// A member that is null in the state (as a crafted snapshot could hold
	// before Restore dropped them) makes member_alive dereference nil.
	f.mu.Lock()
	f.state.Members["ghost"] = nil
	f.mu.Unlock()
	res := f.Apply(&raft.Log{Index: 2, Type: raft.LogCommand, Data: Command{Type: CmdMemberAlive, ID: "ghost"}.Encode()})
	if err, ok := res.(error); !ok || !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "panicked") {
		t.Fatalf("panicking entry: %v", res)
	}
	if res := f.Apply(&raft.Log{Index: 3, Type: raft.LogCommand, Data: Command{Type: CmdMemberAlive, ID: "a", Alive: false}.Encode()}); res != nil {
		t.Fatalf("entry after the panic: %v", res)
	}
	f.Read(func(s *State) {
		if s.Index != 3 || s.Members["a"].Alive {
			t.Fatalf("index %d, member a alive %v", s.Index, s.Members["a"].Alive)
		}
	})
}

// The poison proposed to a real Raft is rejected to the proposer; the
// cluster keeps committing, and a restart replays the log past the poison.
func TestRaftSurvivesPoisonSubmit(t *testing.T) {
	n := &testNode{id: "a", dir: t.TempDir(), addr: freeAddr(t)}
	startNode(t, n, true)
	defer func() {
		if n.raft != nil {
			n.raft.Close()
		}
	}()
	waitFor(t, "leader", n.raft.IsLeader)
	ctx := context.Background()
	p := testPlan(1, 1)
	p.MapCount = -1
	poison := Command{Type: CmdJobSubmit, Job: "p", Spec: &p.Spec, Plan: p, Splits: splits(t, 1)}
	if err := n.raft.Propose(ctx, poison); !errors.Is(err, ErrRejected) {
		t.Fatalf("propose poison: %v, want ErrRejected", err)
	}
	if err := n.raft.Propose(ctx, Command{Type: CmdMemberUpsert, Member: &Member{ID: "a", Cores: 2}}); err != nil {
		t.Fatalf("propose after the poison: %v", err)
	}
	n.raft.Close()
	n.raft = nil
	startNode(t, n, true)
	waitFor(t, "the log to replay past the poison", func() bool { return members(n) == 1 })
	n.fsm.Read(func(s *State) {
		if len(s.Jobs) != 0 {
			t.Fatalf("jobs after replay: %v", s.JobIDs())
		}
	})
}

// Ids are file names on every node (DATA/jobs/ID): a job id of
// ../../victim made every node RemoveAll outside its data directory on
// cancel. Ids outside the shuffle id charset are rejected for every
// command that names one.
func TestIDsOutsideTheCharsetRejected(t *testing.T) {
	bad := []string{"../../victim", "..", ".", "a/b", "/abs", "", ".hidden", "a b", "a\x00b", "é", strings.Repeat("x", MaxIDLen+1)}
	for _, id := range bad {
		s := cluster(t, 2, 2)
		p := testPlan(1, 1)
		check := func(c Command) {
			t.Helper()
			before, _ := json.Marshal(s)
			if err := Apply(s, c); !errors.Is(err, ErrRejected) {
				t.Errorf("%s with id %q: %v, want ErrRejected", c.Type, id, err)
			}
			if after, _ := json.Marshal(s); string(after) != string(before) {
				t.Errorf("%s with id %q changed the state", c.Type, id)
			}
		}
		check(Command{Type: CmdJobSubmit, Job: id, Spec: &p.Spec, Plan: p, Splits: splits(t, 1)})
		check(Command{Type: CmdMemberUpsert, Member: &Member{ID: id}})
		cmds := []Command{
			{Type: CmdJobCancel, Job: id},
			{Type: CmdJobFinish, Job: id, State: JobFailed},
			{Type: CmdMemberAlive, ID: id},
			{Type: CmdMemberRemove, ID: id},
			{Type: CmdTaskAssign, Job: "j", Kind: KindMap, Index: 0, Node: id, Attempt: 1},
			{Type: CmdMapLost, Job: "j", Index: 0, Node: id},
		}
		if id != "" { // an empty Raft id is allowed: not known yet
			cmds = append(cmds, Command{Type: CmdMemberUpsert, Member: &Member{ID: "d", RaftID: id}})
		}
		// A job or member already in the state under such an id (from a log
		// written before ids were checked) cannot be named either.
		s.Jobs[id] = &Job{ID: id, State: JobRunning, Stage: StageMap}
		s.Members[id] = &Member{ID: id, Alive: true}
		for _, c := range cmds {
			check(c)
		}
	}
}

// A forged spec or plan is rejected: the output directory (removed or
// written by the leader), the input and every map split path (opened by
// map tasks as root) must be absolute and clean, splits in the input
// directory, counts consistent.
func TestForgedSubmitsRejected(t *testing.T) {
	in := t.TempDir()
	for _, name := range []string{"a", "b"} {
		if err := os.WriteFile(filepath.Join(in, name), make([]byte, 30*sortjob.RecordSize), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	good := func() *sortjob.Plan {
		p, err := sortjob.MakePlan(sortjob.Spec{Input: in, Output: filepath.Join(in, "out"), Memory: 64 << 20, MapSplit: 10 * sortjob.RecordSize}, sortjob.Cluster{Nodes: 3, CoresPerNode: 1})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	submit := func(p *sortjob.Plan) Command {
		spec := p.Spec
		return Command{Type: CmdJobSubmit, Job: "k", Spec: &spec, Plan: p, Splits: splits(t, p.Partitions)}
	}
	s := cluster(t, 1, 1)
	must(t, s, submit(good()))
	for _, c := range []struct {
		name  string
		forge func(c *Command)
	}{
		{"relative output", func(c *Command) { c.Spec.Output, c.Plan.Spec.Output = "out", "out" }},
		{"output with ..", func(c *Command) { c.Spec.Output, c.Plan.Spec.Output = "/data/../../etc", "/data/../../etc" }},
		{"output only in the spec", func(c *Command) { c.Spec.Output = "/etc" }},
		{"output only in the plan", func(c *Command) { c.Plan.Spec.Output = "/etc" }},
		{"relative input", func(c *Command) { c.Spec.Input, c.Plan.Spec.Input = "in", "in" }},
		{"map path relative", func(c *Command) { c.Plan.Maps[0].Path = "a" }},
		{"map path with ..", func(c *Command) { c.Plan.Maps[0].Path = in + "/../../../etc/shadow" }},
		{"map path outside the input", func(c *Command) { c.Plan.Maps[0].Path = "/etc/shadow" }},
		{"map count beyond the splits", func(c *Command) { c.Plan.MapCount++ }},
		{"negative offset", func(c *Command) { c.Plan.Maps[1].Offset = -1 }},
		{"splits for other partitions", func(c *Command) { c.Splits = splits(t, c.Plan.Partitions+1) }},
		{"no splits", func(c *Command) { c.Splits = nil }},
		{"no plan", func(c *Command) { c.Plan = nil }},
		{"no spec", func(c *Command) { c.Spec = nil }},
	} {
		cmd := submit(good())
		cmd.Job = "forged-" + strings.ReplaceAll(c.name, " ", "-")
		c.forge(&cmd)
		before, _ := json.Marshal(s)
		if err := Apply(s, cmd); !errors.Is(err, ErrRejected) {
			t.Errorf("%s: %v, want ErrRejected", c.name, err)
		}
		if after, _ := json.Marshal(s); string(after) != string(before) {
			t.Errorf("%s changed the state", c.name)
		}
	}
}

// validCommands is one run of every command type, valid in order on an
// empty state.
func validCommands(t testing.TB) []Command {
	gen := testPlan(2, 2)
	file := &sortjob.Plan{Spec: sortjob.Spec{Input: "/data/in", Output: "/data/out"}, Cluster: sortjob.Cluster{Nodes: 2, CoresPerNode: 1},
		Inputs:  []sortjob.InputFile{{Path: "/data/in/a", Size: 2000}},
		Records: 20, Bytes: 2000, MapCount: 2, Partitions: 1, ReducePasses: 1, SortBuffer: 1000, BlockSize: 65500,
		Maps: []sortjob.MapSplit{{ID: 0, Path: "/data/in/a", Records: 10}, {ID: 1, Path: "/data/in/a", Offset: 1000, Records: 10}}}
	sp := splits(nil, 2)
	one, _ := (&shuffle.Partitioner{}).MarshalBinary()
	return []Command{
		{Type: CmdMemberUpsert, Time: t0, Member: &Member{ID: "a", RaftID: "a.0f3c", APIAddr: "127.0.0.1:7000", RaftAddr: "127.0.0.1:7001", GossipAddr: "[::1]:7002", ShuffleAddr: "node-a.example:7003", DataDir: "/var/lib/engine", Cores: 2}},
		{Type: CmdMemberUpsert, Time: t0, Member: &Member{ID: "b_2", APIAddr: ":7100", RaftAddr: "[fe80::1%eth0]:7101", Cores: 1, Incarnation: 3, Voter: true}},
		{Type: CmdMemberAlive, Time: t0, ID: "b_2", Alive: true},
		{Type: CmdJobSubmit, Time: t0, Job: "20261207-101010-abcdef", Spec: &gen.Spec, Plan: gen, Splits: sp},
		{Type: CmdJobSubmit, Time: t0, Job: "file-job", Spec: &file.Spec, Plan: file, Splits: one, OutputCreated: true},
		{Type: CmdTaskAssign, Time: t0, Job: "20261207-101010-abcdef", Kind: KindMap, Index: 0, Node: "a", Attempt: 1},
		{Type: CmdTaskAssign, Time: t0, Job: "20261207-101010-abcdef", Kind: KindMap, Index: 1, Node: "b_2", Attempt: 1},
		{Type: CmdTaskDone, Time: t0, Job: "20261207-101010-abcdef", Kind: KindMap, Index: 0, Node: "a", Attempt: 1,
			TaskResult: TaskResult{Records: 10, InputSum: gensort.Sum{Lo: 0x4f2a}, Bytes: 1000, Seconds: 0.5, RSS: 1 << 20}},
		{Type: CmdTaskFailed, Time: t0, Job: "20261207-101010-abcdef", Kind: KindMap, Index: 1, Node: "b_2", Attempt: 1, Error: "fetch failed", LostMaps: []int{0}, NotOurFault: true},
		{Type: CmdTaskAssign, Time: t0, Job: "20261207-101010-abcdef", Kind: KindMap, Index: 0, Node: "b_2", Attempt: 2},
		{Type: CmdTaskDone, Time: t0, Job: "20261207-101010-abcdef", Kind: KindMap, Index: 0, Node: "b_2", Attempt: 2,
			TaskResult: TaskResult{Records: 10}},
		{Type: CmdMapLost, Time: t0, Job: "20261207-101010-abcdef", Index: 0, Node: "b_2", Error: "node b_2 died"},
		{Type: CmdJobCancel, Time: t0, Job: "20261207-101010-abcdef", Error: "cancelled by the user"},
		{Type: CmdTaskAssign, Time: t0, Job: "file-job", Kind: KindMap, Index: 1, Node: "a", Attempt: 1},
		{Type: CmdJobFinish, Time: t0, Job: "file-job", State: JobFailed, Error: "sort: input vanished", Report: &sortjob.Report{Job: "file-job"}},
		{Type: CmdMemberRemove, Time: t0, ID: "b_2"},
	}
}

// Every command type still applies when valid, with real addresses, ids
// and plans (including plans made by MakePlan).
func TestValidCommandsApply(t *testing.T) {
	s := NewState()
	for i, c := range validCommands(t) {
		if err := Apply(s, c); err != nil {
			t.Fatalf("command %d (%s): %v", i, c.Type, err)
		}
	}
	if len(s.Members) != 1 || s.Jobs["20261207-101010-abcdef"].State != JobCancelled || s.Jobs["file-job"].State != JobFailed {
		t.Fatalf("final state: %d members, jobs %v", len(s.Members), s.JobIDs())
	}
	// Plans made by the planner, for generated and file input.
	in := t.TempDir()
	if err := os.WriteFile(filepath.Join(in, "x"), make([]byte, 1000*sortjob.RecordSize), 0o644); err != nil {
		t.Fatal(err)
	}
	for i, spec := range []sortjob.Spec{{Records: 1e6, Memory: 64 << 20}, {Input: in, Output: filepath.Join(in, "sorted"), Memory: 64 << 20}} {
		p, err := sortjob.MakePlan(spec, sortjob.Cluster{Nodes: 3, CoresPerNode: 2})
		if err != nil {
			t.Fatal(err)
		}
		id := []string{"gen", "file"}[i]
		must(t, s, Command{Type: CmdJobSubmit, Time: t0, Job: id, Spec: &p.Spec, Plan: p, Splits: splits(t, p.Partitions)})
		if j := s.Jobs[id]; len(j.Maps) != p.MapCount || len(j.Reduces) != p.Partitions {
			t.Fatalf("job %s: %d maps, %d reduces", id, len(j.Maps), len(j.Reduces))
		}
	}
}

// Counts and indexes out of range are rejected before they touch the state.
func TestBadCountsRejected(t *testing.T) {
	for _, c := range []struct {
		name string
		cmd  Command
	}{
		{"negative index", Command{Type: CmdTaskAssign, Job: "j", Kind: KindMap, Index: -1, Node: "a", Attempt: 1}},
		{"unknown kind", Command{Type: CmdTaskAssign, Job: "j", Kind: Kind(9), Index: 0, Node: "a", Attempt: 1}},
		{"no kind", Command{Type: CmdTaskDone, Job: "j", Index: 0, Node: "a", Attempt: 1}},
		{"negative attempt", Command{Type: CmdTaskDone, Job: "j", Kind: KindMap, Index: 0, Node: "a", Attempt: -1}},
		{"lost map out of range", Command{Type: CmdTaskFailed, Job: "j", Kind: KindMap, Index: 0, Node: "a", Attempt: 1, LostMaps: []int{5}}},
		{"negative lost map", Command{Type: CmdTaskFailed, Job: "j", Kind: KindMap, Index: 0, Node: "a", Attempt: 1, LostMaps: []int{-1}}},
		{"merge in a plan without merging", Command{Type: CmdTaskAssign, Job: "j", Kind: KindMerge, Index: 0, Node: "a", Attempt: 1, Maps: []int{0, 1}}},
		{"maps outside a merge", Command{Type: CmdTaskAssign, Job: "j", Kind: KindMap, Index: 0, Node: "a", Attempt: 2, Maps: []int{0, 1}}},
		{"negative merged map", Command{Type: CmdTaskAssign, Job: "j", Kind: KindMerge, Index: 0, Node: "a", Attempt: 1, Maps: []int{-1, 1}}},
		{"speculative merge", Command{Type: CmdTaskAssign, Job: "j", Kind: KindMerge, Index: 0, Node: "a", Attempt: 1, Speculative: true}},
		{"speculative report", Command{Type: CmdTaskDone, Job: "j", Kind: KindMap, Index: 0, Node: "a", Attempt: 1, Speculative: true}},
		{"empty batch", Command{Type: CmdBatch}},
		{"batch in a batch", Command{Type: CmdBatch, Batch: []Command{{Type: CmdBatch, Batch: []Command{{Type: CmdJobCancel, Job: "j"}}}}}},
		{"cancel in a batch", Command{Type: CmdBatch, Batch: []Command{{Type: CmdJobCancel, Job: "j"}}}},
		{"batch outside a batch", Command{Type: CmdJobCancel, Job: "j", Batch: []Command{{Type: CmdJobCancel, Job: "j"}}}},
		{"negative records", Command{Type: CmdTaskDone, Job: "j", Kind: KindReduce, Index: 0, Node: "a", Attempt: 1, TaskResult: TaskResult{Records: -1}}},
		{"long error", Command{Type: CmdJobCancel, Job: "j", Error: strings.Repeat("e", MaxErrorLen+1)}},
		{"bad address", Command{Type: CmdMemberUpsert, Member: &Member{ID: "d", APIAddr: "evil.example/x?:80"}}},
		{"address without port", Command{Type: CmdMemberUpsert, Member: &Member{ID: "d", ShuffleAddr: "10.0.0.1"}}},
		{"port out of range", Command{Type: CmdMemberUpsert, Member: &Member{ID: "d", RaftAddr: "10.0.0.1:70000"}}},
		{"NUL in data dir", Command{Type: CmdMemberUpsert, Member: &Member{ID: "d", DataDir: "/data\x00"}}},
		{"negative cores", Command{Type: CmdMemberUpsert, Member: &Member{ID: "d", Cores: -1}}},
		{"no member", Command{Type: CmdMemberUpsert}},
		{"unknown finish state", Command{Type: CmdJobFinish, Job: "j", State: "exploded"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := cluster(t, 2, 2)
			applyAll(t, s, Reconcile(s, t0))
			before, _ := json.Marshal(s)
			if err := Apply(s, c.cmd); !errors.Is(err, ErrRejected) {
				t.Fatalf("err = %v, want ErrRejected", err)
			}
			if after, _ := json.Marshal(s); string(before) != string(after) {
				t.Fatal("a rejected command changed the state")
			}
		})
	}
}

// FuzzCommand decodes arbitrary bytes as a log entry and applies it to a
// small state with a running job: Validate and Apply never panic, a
// rejected command leaves the state as it was, and the scheduler still
// runs on the result.
func FuzzCommand(f *testing.F) {
	for _, c := range validCommands(f) {
		f.Add(c.Encode())
	}
	for _, p := range poisonSubmits {
		f.Add([]byte(p))
	}
	f.Add([]byte(`{"type":"job_cancel","job":"../../victim"}`))
	f.Add([]byte(`{"type":"task_failed","job":"j","kind":"map","index":0,"node":"a","attempt":1,"lost_maps":[9999999]}`))
	f.Add([]byte(`{"type":"task_done","job":"j","kind":"reduce","index":1,"node":"b","attempt":1,"summary":"AAAA"}`))
	f.Add([]byte(`{"type":"batch","batch":[{"type":"task_done","job":"j","kind":"map","index":0,"node":"a","attempt":1},{"type":"batch","batch":[]}]}`))
	f.Add([]byte(`{"type":"task_assign","job":"j","kind":"merge","index":0,"node":"a","attempt":1,"maps":[0,1,1]}`))
	f.Add([]byte(`{"type":"task_failed","job":"j","kind":"merge","index":0,"node":"a","attempt":1,"give_up":true}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCommand(b)
		if err != nil {
			return
		}
		verr := c.Validate()
		if verr != nil && !errors.Is(verr, ErrRejected) {
			t.Fatalf("Validate error does not wrap ErrRejected: %v", verr)
		}
		if verr == nil && c.Type == CmdJobSubmit && c.Plan.MapCount+c.Plan.Partitions > 1<<12 {
			return // valid, and too large to allocate at fuzzing speed
		}
		s := cluster(t, 2, 2)
		applyAll(t, s, Reconcile(s, t0))
		before, _ := json.Marshal(s)
		err = Apply(s, c)
		if verr != nil && err == nil {
			t.Fatalf("Validate refused (%v) and Apply accepted", verr)
		}
		if err != nil {
			if after, _ := json.Marshal(s); string(after) != string(before) {
				t.Fatalf("rejected command (%v) changed the state", err)
			}
		}
		Reconcile(s, t0)
	})
}

// rawSnapshot frames a snapshot header (JSON) with no task tables.
func rawSnapshot(header string) []byte {
	b := append([]byte(snapMagic), binary.AppendUvarint(nil, uint64(len(header)))...)
	b = append(b, header...)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
}

// A snapshot with null members is restored without them, so no reader or
// later entry dereferences nil; one with a null job is refused and the state
// kept.
func TestRestoreDropsNullEntries(t *testing.T) {
	f := NewFSM()
	snap := rawSnapshot(`{"index":5,"members":{"a":null,"b":{"id":"b","alive":true}},"jobs":{}}`)
	if err := f.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	res := f.Apply(&raft.Log{Index: 6, Type: raft.LogCommand, Data: Command{Type: CmdMemberAlive, ID: "a"}.Encode()})
	if err, ok := res.(error); !ok || !strings.Contains(err.Error(), `no member "a"`) {
		t.Fatalf("member_alive of a null member: %v", res)
	}
	f.Read(func(s *State) {
		if len(s.Members) != 1 || len(s.Jobs) != 0 || s.Index != 6 {
			t.Fatalf("restored state: %d members, %d jobs, index %d", len(s.Members), len(s.Jobs), s.Index)
		}
		Reconcile(s, t0)
	})
	if err := f.Restore(io.NopCloser(bytes.NewReader(rawSnapshot(`{"index":9,"members":{},"jobs":{"x":null}}`)))); err == nil {
		t.Fatal("a snapshot with a null job was restored")
	}
	f.Read(func(s *State) {
		if len(s.Members) != 1 || s.Index != 6 {
			t.Fatalf("a refused snapshot changed the state: %d members, index %d", len(s.Members), s.Index)
		}
	})
}
