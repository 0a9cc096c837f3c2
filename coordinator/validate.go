package coordinator

import (
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"

	"engine/shuffle"
	"engine/sortjob"
)

// Bounds on a command's fields, checked by Validate.
const (
	// MaxIDLen bounds a job, member, node or Raft id (as shuffle bounds a
	// job id).
	MaxIDLen = shuffle.MaxJobIDLen
	// MaxErrorLen bounds a command's error message in bytes.
	MaxErrorLen = 64 << 10
	// maxAddrLen bounds a member's address: a DNS name of 253 bytes, or a
	// bracketed IPv6 address with a zone, and a port.
	maxAddrLen = 300
	// maxAttempt bounds an attempt number; Apply fails a task long before
	// (maxTotalAttempts).
	maxAttempt = 1 << 20
	// maxIncarnation bounds a member's incarnation (its re-joins): tasks
	// keep it in 32 bits.
	maxIncarnation = 1<<31 - 1
	// maxMergeMaps bounds the maps one merge task consolidates.
	maxMergeMaps = 1 << 16
	// maxSummaryLen bounds a task's valsort summary (binary) in bytes.
	maxSummaryLen = 1024
	// maxReportList bounds a report's per-phase and per-node lists.
	maxReportList = sortjob.MaxNodes
)

// ValidID checks an id a command names (a job, a member, a node): 1 to
// MaxIDLen bytes of ASCII letters, digits, '.', '_' and '-', not starting
// with '.' — the charset shuffle.ValidJobID allows, so an id is safe as a
// file name: it holds no path separator and is never "." or "..".
func ValidID(what, id string) error {
	if err := checkID(what, id); err != nil {
		return fmt.Errorf("coordinator: %w", err)
	}
	return nil
}

func checkID(what, id string) error {
	if len(id) == 0 || len(id) > MaxIDLen {
		return fmt.Errorf("%s id of %d bytes: want 1 to %d", what, len(id), MaxIDLen)
	}
	if id[0] == '.' {
		return fmt.Errorf("%s id %q starts with '.'", what, id)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-' {
			continue
		}
		return fmt.Errorf("%s id %q has the character %q at byte %d: only letters, digits, '.', '_' and '-' are allowed", what, id, c, i)
	}
	return nil
}

// validAddr checks a member's address: HOST:PORT with a numeric port of 1
// to 65535 and a host of letters, digits and '.', '-', ':', '%', '_'
// (names, IPv4, IPv6 with a zone); an empty host means this machine.
func validAddr(what, addr string) error {
	if len(addr) > maxAddrLen {
		return fmt.Errorf("%s address of %d bytes is longer than %d", what, len(addr), maxAddrLen)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s address %q is not HOST:PORT", what, addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
		return fmt.Errorf("%s address %q has port %q: want 1 to 65535", what, addr, port)
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == ':' || c == '%' || c == '_' {
			continue
		}
		return fmt.Errorf("%s address %q has the character %q in its host", what, addr, c)
	}
	return nil
}

// Validate checks a member's fields: a valid id, a valid Raft id if set,
// addresses that are HOST:PORT if set, a bounded data directory, bounded
// counts.
func (m *Member) Validate() error {
	if err := m.validate(); err != nil {
		return fmt.Errorf("coordinator: %w", err)
	}
	return nil
}

func (m *Member) validate() error {
	if err := checkID("member", m.ID); err != nil {
		return err
	}
	if m.RaftID != "" {
		if err := checkID("raft", m.RaftID); err != nil {
			return err
		}
	}
	for _, a := range []struct{ what, addr string }{{"api", m.APIAddr}, {"raft", m.RaftAddr}, {"gossip", m.GossipAddr}, {"shuffle", m.ShuffleAddr}} {
		if a.addr != "" {
			if err := validAddr(a.what, a.addr); err != nil {
				return fmt.Errorf("%w (member %s)", err, m.ID)
			}
		}
	}
	// DataDir is shown, never acted on: bounded, without NUL.
	if len(m.DataDir) > sortjob.MaxPathLen || strings.IndexByte(m.DataDir, 0) >= 0 {
		return fmt.Errorf("member %s has a data directory of %d bytes or with a NUL byte", m.ID, len(m.DataDir))
	}
	if m.Cores < 0 || m.Cores > sortjob.MaxCoresPerNode {
		return fmt.Errorf("member %s has %d cores: want 0 to %d", m.ID, m.Cores, sortjob.MaxCoresPerNode)
	}
	if m.Incarnation < 0 || m.Incarnation > maxIncarnation {
		return fmt.Errorf("member %s has incarnation %d: want 0 to %d", m.ID, m.Incarnation, int64(maxIncarnation))
	}
	return nil
}

// Validate checks a command on its own, before Apply looks at the state:
// a known type, the fields that type needs, every id in the ValidID charset,
// every count and index bounded and not negative, and a submitted plan
// consistent and within the limits of a job (sortjob.Plan.Validate). It
// reads nothing but the command, so every node decides the same. Apply
// calls it; a proposer may call it to refuse a command before it is
// replicated. The error wraps ErrRejected.
func (c *Command) Validate() error {
	if err := c.validate(); err != nil {
		return fmt.Errorf("%w: invalid %q command: %v", ErrRejected, c.Type, err)
	}
	return nil
}

func (c *Command) validate() error {
	return c.validateIn(false)
}

// validateIn checks a command; inBatch is set for the commands of a batch,
// which may only be task and liveness commands.
func (c *Command) validateIn(inBatch bool) error {
	switch c.Type {
	case CmdBatch:
		if inBatch {
			return fmt.Errorf("a batch inside a batch")
		}
		if len(c.Batch) == 0 || len(c.Batch) > MaxBatch {
			return fmt.Errorf("a batch of %d commands: want 1 to %d", len(c.Batch), MaxBatch)
		}
		for i := range c.Batch {
			e := &c.Batch[i]
			switch e.Type {
			case CmdTaskAssign, CmdTaskDone, CmdTaskFailed, CmdMapLost, CmdMemberAlive:
			default:
				return fmt.Errorf("batched command %d is a %q command: a batch holds only %s, %s, %s, %s and %s commands", i, e.Type, CmdTaskAssign, CmdTaskDone, CmdTaskFailed, CmdMapLost, CmdMemberAlive)
			}
			if err := e.validateIn(true); err != nil {
				return fmt.Errorf("batched command %d (%s): %w", i, e.Type, err)
			}
		}
		return nil
	case CmdMemberUpsert:
		if c.Member == nil {
			return fmt.Errorf("no member")
		}
		return c.Member.validate()
	case CmdMemberAlive, CmdMemberRemove:
		return checkID("member", c.ID)
	case CmdJobSubmit, CmdTaskAssign, CmdTaskDone, CmdTaskFailed, CmdMapLost, CmdJobCancel, CmdJobFinish:
	default:
		return fmt.Errorf("unknown command type: want one of %s, %s, %s, %s, %s, %s, %s, %s, %s, %s or %s",
			CmdMemberUpsert, CmdMemberAlive, CmdMemberRemove, CmdJobSubmit, CmdTaskAssign, CmdTaskDone, CmdTaskFailed, CmdMapLost, CmdJobCancel, CmdJobFinish, CmdBatch)
	}
	if len(c.Batch) != 0 {
		return fmt.Errorf("%d batched commands outside %s", len(c.Batch), CmdBatch)
	}
	if err := checkID("job", c.Job); err != nil {
		return err
	}
	if len(c.Error) > MaxErrorLen {
		return fmt.Errorf("error message of %d bytes is longer than %d", len(c.Error), MaxErrorLen)
	}
	if c.Type != CmdTaskDone && len(c.Summary) != 0 {
		return fmt.Errorf("a task result (%d bytes of summary) outside %s", len(c.Summary), CmdTaskDone)
	}
	if c.Type != CmdTaskFailed && len(c.LostMaps) != 0 {
		return fmt.Errorf("%d lost maps outside %s", len(c.LostMaps), CmdTaskFailed)
	}
	if (c.Type != CmdTaskAssign || c.Kind != KindMerge) && len(c.Maps) != 0 {
		return fmt.Errorf("%d maps outside the assignment of a merge", len(c.Maps))
	}
	if c.GiveUp && (c.Type != CmdTaskFailed || c.Kind != KindMerge) {
		return fmt.Errorf("a give-up %s %s command: only a merge's task_failed gives it up", c.Kind, c.Type)
	}
	if c.Speculative && (c.Type != CmdTaskAssign || c.Kind == KindMerge) {
		return fmt.Errorf("a speculative %s %s command: only map and reduce assignments are speculative", c.Kind, c.Type)
	}
	switch c.Type {
	case CmdJobSubmit:
		return c.validateSubmit()
	case CmdTaskAssign, CmdTaskDone, CmdTaskFailed:
		if !c.Kind.Valid() {
			return fmt.Errorf("task kind %d: want map, merge or reduce", uint8(c.Kind))
		}
		if err := c.validateTask(); err != nil {
			return err
		}
	case CmdMapLost:
		if c.Kind != 0 && c.Kind != KindMap && c.Kind != KindMerge {
			return fmt.Errorf("task kind %s: a lost output is a map's or a merge's", c.Kind)
		}
		if err := c.validateTask(); err != nil {
			return err
		}
	case CmdJobFinish:
		if c.State != JobSucceeded && c.State != JobFailed && c.State != JobCancelled {
			return fmt.Errorf("job state %q: want %q, %q or %q", c.State, JobSucceeded, JobFailed, JobCancelled)
		}
		if r := c.Report; r != nil && (len(r.Phases) > maxReportList || len(r.Nodes) > maxReportList) {
			return fmt.Errorf("report with %d phases and %d nodes: want at most %d of each", len(r.Phases), len(r.Nodes), maxReportList)
		}
	}
	return nil
}

func (c *Command) validateSubmit() error {
	if c.Spec == nil || c.Plan == nil {
		return fmt.Errorf("job %s: submit without a spec or a plan", c.Job)
	}
	if *c.Spec != c.Plan.Spec {
		return fmt.Errorf("job %s: the spec differs from the plan's spec", c.Job)
	}
	if err := c.Plan.Validate(); err != nil {
		return fmt.Errorf("job %s: %v", c.Job, err)
	}
	// The partitioner: a count, then Partitions-1 split keys.
	if want := 4 + (c.Plan.Partitions-1)*shuffle.KeySize; len(c.Splits) != want {
		return fmt.Errorf("job %s: splits of %d bytes for %d partitions: want %d", c.Job, len(c.Splits), c.Plan.Partitions, want)
	}
	return nil
}

// validateTask checks the task fields of an assignment, a report or a lost
// map: index, node, attempt, result and lost maps.
func (c *Command) validateTask() error {
	if c.Index < 0 || c.Index >= max(sortjob.MaxMapTasks, sortjob.MaxPartitions) {
		return fmt.Errorf("task index %d is out of range", c.Index)
	}
	if err := checkID("node", c.Node); err != nil {
		return err
	}
	if c.Attempt < 0 || c.Attempt > maxAttempt {
		return fmt.Errorf("attempt %d: want 0 to %d", c.Attempt, maxAttempt)
	}
	r := &c.TaskResult
	if len(c.Maps) > maxMergeMaps {
		return fmt.Errorf("a merge of %d maps: want at most %d", len(c.Maps), maxMergeMaps)
	}
	for _, m := range c.Maps {
		if m < 0 || m >= sortjob.MaxMapTasks {
			return fmt.Errorf("merged map %d is out of range", m)
		}
	}
	switch {
	case r.Records < 0 || r.Records > sortjob.MaxRecords:
		return fmt.Errorf("%d records: want 0 to %d", r.Records, int64(sortjob.MaxRecords))
	case r.Bytes < 0 || r.Remote < 0 || r.RSS < 0:
		return fmt.Errorf("negative figures: %d bytes, %d remote bytes, RSS %d", r.Bytes, r.Remote, r.RSS)
	case r.Seconds < 0 || math.IsNaN(r.Seconds) || math.IsInf(r.Seconds, 0):
		return fmt.Errorf("%g seconds", r.Seconds)
	case len(r.Summary) > maxSummaryLen:
		return fmt.Errorf("summary of %d bytes: want at most %d", len(r.Summary), maxSummaryLen)
	case len(c.LostMaps) > sortjob.MaxMapTasks:
		return fmt.Errorf("%d lost maps: want at most %d", len(c.LostMaps), sortjob.MaxMapTasks)
	}
	for _, m := range c.LostMaps {
		if m < 0 || m >= sortjob.MaxMapTasks {
			return fmt.Errorf("lost map %d is out of range", m)
		}
	}
	return nil
}
