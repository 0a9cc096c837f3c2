package coordinator

import (
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// The job index that apply keeps up to date equals the one rebuilt from the
// tasks, after every step of random runs: assignments, merges, twins,
// reports from primaries and twins, failures with lost inputs, nodes dying
// and coming back, finished outputs lost.
func TestIndexMatchesRebuild(t *testing.T) {
	for seed := uint64(1); seed <= 30; seed++ {
		rng := rand.New(rand.NewPCG(seed, 99))
		s := mergeCluster(t, 12, 4, 3)
		j := s.Jobs["j"]
		now := t0
		apply := func(c Command) {
			if c.Time.IsZero() {
				c.Time = now
			}
			if err := Apply(s, c); err != nil && !errors.Is(err, ErrRejected) {
				t.Fatalf("seed %d: %v", seed, err)
			}
		}
		for step := 0; step < 300 && !j.Done(); step++ {
			now = now.Add(time.Duration(rng.IntN(3000)) * time.Millisecond)
			running := j.running()
			switch a := rng.IntN(10); {
			case a < 3 || len(running) == 0:
				for _, c := range Reconcile(s, now) {
					apply(c)
				}
			case a < 6:
				r := running[rng.IntN(len(running))]
				node, att := j.attemptOf(r)
				apply(Command{Type: CmdTaskDone, Job: "j", Kind: r.kind, Index: r.index, Node: node, Attempt: int(att), TaskResult: TaskResult{Records: 1}})
			case a < 8:
				r := running[rng.IntN(len(running))]
				node, att := j.attemptOf(r)
				c := Command{Type: CmdTaskFailed, Job: "j", Kind: r.kind, Index: r.index, Node: node, Attempt: int(att), Error: "x", NotOurFault: rng.IntN(2) == 0}
				if rng.IntN(3) == 0 {
					c.LostMaps = []int{rng.IntN(len(j.Maps))}
				}
				apply(c)
			case a < 9:
				id := []string{"a", "b", "c"}[rng.IntN(3)]
				apply(Command{Type: CmdMemberAlive, ID: id, Alive: !s.Members[id].Alive || rng.IntN(4) == 0})
			default:
				i := rng.IntN(len(j.Maps))
				apply(Command{Type: CmdMapLost, Job: "j", Kind: KindMap, Index: i, Node: j.Maps[i].Node, Error: "lost"})
			}
			if j.Done() {
				break
			}
			rebuilt := j.Clone()
			rebuilt.reindex()
			if !reflect.DeepEqual(j.x, rebuilt.x) {
				t.Fatalf("seed %d step %d: the index kept by apply differs from the one rebuilt from the tasks:\nkept    %+v\nrebuilt %+v", seed, step, *j.x, *rebuilt.x)
			}
		}
	}
}
