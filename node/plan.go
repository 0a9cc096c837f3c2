package node

import (
	"fmt"
	"io"
	"time"

	"engine/coordinator"
	"engine/shuffle"
	"engine/sortjob"
)

// WriteSchedule runs the coordinator's scheduler (Reconcile) on a plan for
// its cluster, as the leader would when the job is submitted, and prints
// how the first wave of map tasks lands on the nodes and how many waves
// the job takes. Only the first waves' tasks are simulated, so plans of
// millions of tasks stay cheap.
func WriteSchedule(w io.Writer, p *sortjob.Plan) {
	nodes, cores := max(p.Cluster.Nodes, 1), max(p.Cluster.CoresPerNode, 1)
	slots := nodes * cores
	s := coordinator.NewState()
	for i := 0; i < nodes; i++ {
		s.Members[fmt.Sprintf("node-%d", i)] = &coordinator.Member{ID: fmt.Sprintf("node-%d", i), Cores: cores, Alive: true}
	}
	sim := *p
	sim.Maps = nil
	sim.MapCount = min(p.MapCount, 2*slots*coordinator.SlotsPerCore)
	if len(p.Maps) > 0 {
		sim.Maps = p.Maps[:sim.MapCount]
	}
	sim.Partitions = 1
	splits, _ := (&shuffle.Partitioner{}).MarshalBinary()
	err := coordinator.Apply(s, coordinator.Command{Type: coordinator.CmdJobSubmit, Time: time.Now(), Job: "dry-run", Spec: &sim.Spec, Plan: &sim, Splits: splits})
	if err != nil {
		fmt.Fprintf(w, "  scheduler        cannot simulate: %v\n", err)
		return
	}
	per := map[string]int{}
	for _, c := range coordinator.Reconcile(s, time.Now()) {
		for _, a := range c.Batch {
			per[a.Node]++
		}
	}
	lo, hi := -1, 0
	for i := 0; i < nodes; i++ {
		k := per[fmt.Sprintf("node-%d", i)]
		if lo < 0 || k < lo {
			lo = k
		}
		hi = max(hi, k)
	}
	spread := fmt.Sprintf("%d", lo)
	if hi != lo {
		spread = fmt.Sprintf("%d-%d", lo, hi)
	}
	fmt.Fprintf(w, "  scheduler        first wave (coordinator.Reconcile): %s map tasks on each of %d nodes; %d waves of maps, %d of reduces\n",
		spread, nodes, (p.MapCount+slots-1)/slots, (p.Partitions+slots-1)/slots)
}
