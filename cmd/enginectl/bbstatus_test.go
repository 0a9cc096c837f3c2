package main

import (
	"bytes"
	"strings"
	"testing"

	"engine/burstbuffer"
	"engine/node"
)

// TestPrintBBStatusTolerance: bb status prints the node losses the
// buffered data tolerates, the stripes by tolerance, and the warning for a
// cluster too small for its code.
func TestPrintBBStatusTolerance(t *testing.T) {
	var b bytes.Buffer
	printBBStatus(&b, node.BBStatusResponse{Nodes: []burstbuffer.Status{{
		Node: "n0", Code: "4+2", LiveNodes: 3, Health: "ok", NodeLossesTolerated: 1,
		ToleranceStripes: map[int]int{1: 7, 2: 3},
		Warning:          "3 live node(s) for 4+2 stripes: up to 2 shards of a stripe share a node, so buffered data survives the loss of 1 node(s) (and of any 2 flash stores), not 2 nodes",
	}, {
		Node: "n1", Code: "4+2", LiveNodes: 3, Health: "unavailable", NodeLossesTolerated: -1,
		ToleranceStripes: map[int]int{-1: 2, 1: 5}, UnavailableStripes: 2,
	}}})
	out := b.String()
	for _, want := range []string{
		"node losses tolerated: 1  (stripes: 7 tolerate 1 3 tolerate 2)",
		"WARNING: 3 live node(s) for 4+2 stripes",
		"node losses tolerated: none, some stripes are unreadable now  (stripes: 2 unreadable 5 tolerate 1)  unavailable 2  lost 0",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("bb status output lacks %q:\n%s", want, out)
		}
	}
}
