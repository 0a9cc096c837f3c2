// Package jepsen checks that the namespace is linearizable under faults:
// clients put, get and delete a few keys through the S3 endpoints of
// different nodes while nodes are killed, restarted, paused and cut off
// from each other, and the recorded history is checked with porcupine
// against a register per key (a value, or absent). The tests are in
// jepsen_test.go; this file holds the model and the history recorder.
package jepsen

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// Kind is what an operation does.
type Kind string

const (
	Put    Kind = "put"
	Get    Kind = "get"
	Delete Kind = "delete"
)

// Input is an operation as invoked: its key, and for a put the value.
type Input struct {
	Kind  Kind   `json:"kind"`
	Key   string `json:"key"`
	Value string `json:"value,omitempty"`
	Node  int    `json:"node"`          // the node that served it
	Via   string `json:"via,omitempty"` // "fuse" through the node's mount; else S3
}

// Output is what the operation returned. Unknown: it failed or timed out
// after the request may have reached the node, so it may or may not have
// taken effect (its Return is after every other operation's).
type Output struct {
	Present bool   `json:"present,omitempty"` // get: the key existed
	Value   string `json:"value,omitempty"`   // get: its value
	Unknown bool   `json:"unknown,omitempty"`
	Err     string `json:"err,omitempty"`
}

// state is one key's register: absent, or present with a value.
type state struct {
	present bool
	value   string
}

// Model is a register per key with delete. A put sets the value, a delete
// makes the key absent, a get must return the current value (or absent).
// A put or delete whose outcome is unknown steps like a completed one: the
// checker may place it anywhere after its call, including after every
// other operation, which is the same as never having happened.
var Model = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(Input).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() interface{} { return state{} },
	Step: func(s, in, out interface{}) (bool, interface{}) {
		st, i, o := s.(state), in.(Input), out.(Output)
		switch i.Kind {
		case Put:
			return true, state{present: true, value: i.Value}
		case Delete:
			return true, state{}
		case Get:
			if o.Unknown {
				return true, st
			}
			return o.Present == st.present && (!o.Present || o.Value == st.value), st
		}
		return false, st
	},
	DescribeOperation: func(in, out interface{}) string {
		i, o := in.(Input), out.(Output)
		var res string
		switch {
		case o.Unknown:
			res = "unknown (" + o.Err + ")"
		case i.Kind == Get && o.Present:
			res = o.Value
		case i.Kind == Get:
			res = "absent"
		default:
			res = "ok"
		}
		via := ""
		if i.Via != "" {
			via = "/" + i.Via
		}
		switch i.Kind {
		case Put:
			return fmt.Sprintf("n%d%s put(%s, %s) -> %s", i.Node, via, i.Key, i.Value, res)
		default:
			return fmt.Sprintf("n%d%s %s(%s) -> %s", i.Node, via, i.Kind, i.Key, res)
		}
	},
	DescribeState: func(s interface{}) string {
		st := s.(state)
		if !st.present {
			return "absent"
		}
		return st.value
	},
}

// Recorder records a concurrent history. Times are nanoseconds since the
// recorder was made (monotonic clock).
type Recorder struct {
	start  time.Time
	mu     sync.Mutex
	ops    []porcupine.Operation
	faults []Fault
}

// Fault is a fault the nemesis injected, from Start until it was healed
// (End), in the recorder's time.
type Fault struct {
	What       string `json:"what"`
	Start, End int64
}

// NewRecorder starts an empty history.
func NewRecorder() *Recorder { return &Recorder{start: time.Now()} }

func (r *Recorder) now() int64 { return int64(time.Since(r.start)) }

// Now is the recorder's time.
func (r *Recorder) Now() int64 { return r.now() }

// AddFault records a fault (shown on the visualization).
func (r *Recorder) AddFault(f Fault) {
	r.mu.Lock()
	r.faults = append(r.faults, f)
	r.mu.Unlock()
}

// Faults returns the faults recorded so far.
func (r *Recorder) Faults() []Fault {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Fault(nil), r.faults...)
}

// Call marks the invocation of an operation; pass what it returns to
// Return, Unknown or Forget.
func (r *Recorder) Call() int64 { return r.now() }

// Return records an operation that completed with out.
func (r *Recorder) Return(client int, call int64, in Input, out Output) {
	ret := r.now()
	r.add(porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
}

// Unknown records an operation whose outcome is unknown: it stays open to
// the end of the history (it may take effect at any point after its call,
// or never).
func (r *Recorder) Unknown(client int, call int64, in Input, err error) {
	r.add(porcupine.Operation{ClientId: client, Input: in, Call: call, Output: Output{Unknown: true, Err: err.Error()}, Return: math.MaxInt64})
}

func (r *Recorder) add(op porcupine.Operation) {
	r.mu.Lock()
	r.ops = append(r.ops, op)
	r.mu.Unlock()
}

// Operations returns a copy of the history so far.
func (r *Recorder) Operations() []porcupine.Operation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]porcupine.Operation(nil), r.ops...)
}

// Stats counts a history's operations.
type Stats struct {
	Ops, Puts, Gets, Deletes, Unknown, GetsPresent int
	Fuse                                           int // through a mount
}

func (s Stats) String() string {
	return fmt.Sprintf("%d operations (%d puts, %d gets of which %d found a value, %d deletes; %d with unknown outcome; %d through FUSE mounts, the rest through S3)",
		s.Ops, s.Puts, s.Gets, s.GetsPresent, s.Deletes, s.Unknown, s.Fuse)
}

// Count returns the statistics of ops.
func Count(ops []porcupine.Operation) Stats {
	var s Stats
	for _, op := range ops {
		s.Ops++
		if op.Input.(Input).Via == "fuse" {
			s.Fuse++
		}
		switch op.Input.(Input).Kind {
		case Put:
			s.Puts++
		case Get:
			s.Gets++
			if op.Output.(Output).Present {
				s.GetsPresent++
			}
		case Delete:
			s.Deletes++
		}
		if op.Output.(Output).Unknown {
			s.Unknown++
		}
	}
	return s
}

// Check checks ops for linearizability, key by key, each within timeout
// (porcupine's search keeps a bitset of the operations per visited state:
// checking keys one at a time bounds the memory by the largest key). It
// returns the overall result and the keys that are not linearizable (or
// whose check did not finish). On anything but Ok it writes the history to
// dir/history.json and porcupine's visualization of the first bad key,
// with the faults as annotations, to dir/linearizability.html.
func Check(ops []porcupine.Operation, faults []Fault, timeout time.Duration, dir string) (porcupine.CheckResult, []string, []string, error) {
	res := porcupine.Ok
	var bad []string
	var first []porcupine.Operation
	for _, part := range Model.Partition(ops) {
		r := porcupine.CheckOperationsTimeout(Model, part, timeout)
		if r == porcupine.Ok {
			continue
		}
		bad = append(bad, part[0].Input.(Input).Key+"("+string(r)+")")
		if res != porcupine.Illegal {
			res = r
		}
		if first == nil {
			first = part
		}
	}
	if res == porcupine.Ok {
		return res, nil, nil, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, bad, nil, fmt.Errorf("jepsen: %w", err)
	}
	var files []string
	hist := dir + "/history.json"
	if err := WriteHistory(hist, ops); err != nil {
		return res, bad, nil, err
	}
	files = append(files, hist)
	_, info := porcupine.CheckOperationsVerbose(Model, first, timeout)
	var ann []porcupine.Annotation
	for _, f := range faults {
		ann = append(ann, porcupine.Annotation{Tag: "nemesis", Start: f.Start, End: f.End, Description: f.What, BackgroundColor: "#f8d0d0"})
	}
	info.AddAnnotations(ann)
	html := dir + "/linearizability.html"
	if err := porcupine.VisualizePath(Model, info, html); err != nil {
		return res, bad, files, fmt.Errorf("jepsen: write the visualization: %w", err)
	}
	return res, bad, append(files, html), nil
}

// historyOp is one operation in history.json; return -1 is "unknown".
type historyOp struct {
	Client int    `json:"client"`
	Call   int64  `json:"call_ns"`
	Return int64  `json:"return_ns"`
	In     Input  `json:"in"`
	Out    Output `json:"out"`
}

// WriteHistory writes ops as JSON, ordered by call time.
func WriteHistory(path string, ops []porcupine.Operation) error {
	hs := make([]historyOp, 0, len(ops))
	for _, op := range ops {
		ret := op.Return
		if ret == math.MaxInt64 {
			ret = -1
		}
		hs = append(hs, historyOp{op.ClientId, op.Call, ret, op.Input.(Input), op.Output.(Output)})
	}
	sort.Slice(hs, func(i, j int) bool { return hs[i].Call < hs[j].Call })
	b, err := json.MarshalIndent(hs, "", " ")
	if err != nil {
		return fmt.Errorf("jepsen: %w", err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("jepsen: %w", err)
	}
	return nil
}
