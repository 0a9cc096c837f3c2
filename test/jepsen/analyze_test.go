package jepsen

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// ReadHistory reads a history.json written by WriteHistory.
func ReadHistory(path string) ([]porcupine.Operation, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("jepsen: %w", err)
	}
	var hs []historyOp
	if err := json.Unmarshal(b, &hs); err != nil {
		return nil, fmt.Errorf("jepsen: %s: %w", path, err)
	}
	ops := make([]porcupine.Operation, 0, len(hs))
	for _, h := range hs {
		ret := h.Return
		if ret < 0 {
			ret = math.MaxInt64
		}
		ops = append(ops, porcupine.Operation{ClientId: h.Client, Input: h.In, Call: h.Call, Output: h.Out, Return: ret})
	}
	return ops, nil
}

// firstViolation returns the shortest prefix of one key's history (by
// return time: the operations called by then, those that had not returned
// yet taken as unknown) that is not linearizable, and the operation that ends it.
func firstViolation(ops []porcupine.Operation) ([]porcupine.Operation, *porcupine.Operation) {
	var ends []int64
	for _, op := range ops {
		if op.Return != math.MaxInt64 {
			ends = append(ends, op.Return)
		}
	}
	sort.Slice(ends, func(i, j int) bool { return ends[i] < ends[j] })
	prefix := func(t int64) []porcupine.Operation {
		var p []porcupine.Operation
		for _, op := range ops {
			if op.Call > t {
				continue
			}
			if op.Return > t {
				// Still running at t: its outcome was not known yet.
				op.Return = math.MaxInt64
			}
			p = append(p, op)
		}
		return p
	}
	lo, hi := 0, len(ends)-1
	if hi < 0 || porcupine.CheckOperations(Model, prefix(ends[hi])) {
		return nil, nil
	}
	for lo < hi {
		mid := (lo + hi) / 2
		if porcupine.CheckOperations(Model, prefix(ends[mid])) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	p := prefix(ends[lo])
	for i := range p {
		if p[i].Return == ends[lo] {
			return p, &p[i]
		}
	}
	return p, nil
}

// TestAnalyzeHistory explains a violation in a kept history:
// JEPSEN_HISTORY=/path/history.json go test -run TestAnalyzeHistory -v.
// For every key it prints the operation that first makes the history not
// linearizable and the operations of that key around it.
func TestAnalyzeHistory(t *testing.T) {
	path := os.Getenv("JEPSEN_HISTORY")
	if path == "" {
		t.Skip("set JEPSEN_HISTORY to a history.json to analyse")
	}
	ops, err := ReadHistory(path)
	if err != nil {
		t.Fatal(err)
	}
	// No put writes an empty value: a read of an empty body is the
	// anomaly the runs so far found (a node that missed a publish). Is
	// there anything else?
	var rest []porcupine.Operation
	empty := 0
	for _, op := range ops {
		if o := op.Output.(Output); op.Input.(Input).Kind == Get && o.Present && o.Value == "" {
			empty++
			continue
		}
		rest = append(rest, op)
	}
	for _, part := range Model.Partition(rest) {
		r := porcupine.CheckOperationsTimeout(Model, part, time.Minute)
		t.Logf("%s without the %d reads of an empty body (all keys): %s", part[0].Input.(Input).Key, empty, r)
	}
	for _, part := range Model.Partition(ops) {
		key := part[0].Input.(Input).Key
		p, bad := firstViolation(part)
		if bad == nil {
			t.Logf("%s: linearizable (%d operations)", key, len(part))
			continue
		}
		var lines []string
		for _, op := range p {
			if op.Call >= bad.Call-int64(300*time.Millisecond) || (op.Return >= bad.Call-int64(300*time.Millisecond)) {
				ret := "   ...   "
				if op.Return != math.MaxInt64 {
					ret = fmt.Sprintf("%9.3f", float64(op.Return)/1e9)
				}
				mark := "  "
				if op.Call == bad.Call && op.Return == bad.Return {
					mark = "=>"
				}
				lines = append(lines, fmt.Sprintf("%s %9.3f %s c%-4d %s", mark, float64(op.Call)/1e9, ret, op.ClientId, Model.DescribeOperation(op.Input, op.Output)))
			}
		}
		t.Logf("%s: first violation at %s (call %.3fs); operations of the key from 300ms before it:\n%s",
			key, Model.DescribeOperation(bad.Input, bad.Output), float64(bad.Call)/1e9, strings.Join(lines, "\n"))
	}
}
