package coordinator

import (
	"math"
	"slices"
	"sort"
)

// jobIndex is what the scheduler needs of a job without a pass over its
// tasks: counts by kind and state, the running attempts, where pending tasks
// may be, the finished map outputs per node, and how long finished tasks
// took. It is derived from the job (reindex builds it; apply keeps it up to
// date through the Job methods below) and never serialised, so a restored
// state and a replayed one agree.
type jobIndex struct {
	count [KindMerge + 1][TaskDropped]int
	// running holds the running attempts: primaries and twins; runningOn
	// the same by the node (and its incarnation) they run on.
	running   map[taskRef]struct{}
	runningOn map[nodeInc]map[taskRef]struct{}
	// low[k] is at most the lowest index of a pending task of kind k.
	low [KindMerge + 1]int
	// doneOn counts the finished maps (merged or not) by the node, and its
	// incarnation, that holds them.
	doneOn map[nodeInc]int
	// unmerged holds each node's finished maps that no merge has claimed.
	unmerged map[string]map[int]struct{}
	// took[k] is a histogram of how long finished tasks of kind k took,
	// from assignment to report (Task.Took; per merged map for a merge).
	took [KindMerge + 1]durations
}

// nodeInc is a node in one of its incarnations.
type nodeInc struct {
	node string
	inc  int32
}

// taskRef names a running attempt: a task, and whether it is its twin.
type taskRef struct {
	kind  Kind
	index int
	twin  bool
}

func (j *Job) index() *jobIndex {
	if j.x == nil && !j.Compacted {
		j.reindex()
	}
	return j.x
}

// reindex builds the job's index from its tasks.
func (j *Job) reindex() {
	x := &jobIndex{running: map[taskRef]struct{}{}, runningOn: map[nodeInc]map[taskRef]struct{}{}, doneOn: map[nodeInc]int{}, unmerged: map[string]map[int]struct{}{}}
	for _, k := range []Kind{KindMap, KindReduce, KindMerge} {
		x.low[k] = -1
		for i := range j.Tasks(k) {
			t := &j.Tasks(k)[i]
			if t.State < TaskDropped {
				x.count[k][t.State]++
			}
			switch t.State {
			case TaskPending:
				if x.low[k] < 0 {
					x.low[k] = i
				}
			case TaskRunning:
				x.addRun(nodeInc{t.Node, t.NodeIncarnation}, taskRef{k, i, false})
				if t.Twin != nil {
					x.addRun(nodeInc{t.Twin.Node, t.Twin.NodeIncarnation}, taskRef{k, i, true})
				}
			case TaskDone:
				x.took[k].add(j.tookPerUnit(k, i))
				if k == KindMap {
					x.doneOn[nodeInc{t.Node, t.NodeIncarnation}]++
					if t.Merge == 0 {
						x.addUnmerged(t.Node, i)
					}
				}
			}
		}
		if x.low[k] < 0 {
			x.low[k] = len(j.Tasks(k))
		}
	}
	j.x = x
}

func (x *jobIndex) addUnmerged(node string, i int) { addToSet(x.unmerged, node, i) }

func (x *jobIndex) dropUnmerged(node string, i int) { dropFromSet(x.unmerged, node, i) }

// addToSet adds v to the set of k in m, making the set if need be.
func addToSet[K, V comparable](m map[K]map[V]struct{}, k K, v V) {
	set := m[k]
	if set == nil {
		set = map[V]struct{}{}
		m[k] = set
	}
	set[v] = struct{}{}
}

// dropFromSet removes v from the set of k in m, and the set once empty.
func dropFromSet[K, V comparable](m map[K]map[V]struct{}, k K, v V) {
	if set := m[k]; set != nil {
		delete(set, v)
		if len(set) == 0 {
			delete(m, k)
		}
	}
}

// Unmerged returns the finished maps on node that no merge has claimed, in
// index order.
func (j *Job) Unmerged(node string) []int {
	x := j.index()
	if x == nil {
		return nil
	}
	out := make([]int, 0, len(x.unmerged[node]))
	for i := range x.unmerged[node] {
		out = append(out, i)
	}
	sort.Ints(out)
	return out
}

// setState moves t (of kind k, index i) to state st, keeping the index.
func (j *Job) setState(k Kind, i int, st TaskState) {
	t := &j.Tasks(k)[i]
	x := j.index()
	if t.State == st {
		return
	}
	if t.State < TaskDropped {
		x.count[k][t.State]--
	}
	switch t.State {
	case TaskRunning:
		x.delRun(nodeInc{t.Node, t.NodeIncarnation}, taskRef{k, i, false})
		if t.Twin != nil {
			x.delRun(nodeInc{t.Twin.Node, t.Twin.NodeIncarnation}, taskRef{k, i, true})
		}
	case TaskDone:
		x.took[k].remove(j.tookPerUnit(k, i))
		if k == KindMap {
			key := nodeInc{t.Node, t.NodeIncarnation}
			if x.doneOn[key]--; x.doneOn[key] <= 0 {
				delete(x.doneOn, key)
			}
			x.dropUnmerged(t.Node, i)
		}
	}
	t.State = st
	if st < TaskDropped {
		x.count[k][st]++
	}
	switch st {
	case TaskPending:
		x.low[k] = min(x.low[k], i)
	case TaskRunning:
		x.addRun(nodeInc{t.Node, t.NodeIncarnation}, taskRef{k, i, false})
		if t.Twin != nil {
			x.addRun(nodeInc{t.Twin.Node, t.Twin.NodeIncarnation}, taskRef{k, i, true})
		}
		if i == x.low[k] {
			ts := j.Tasks(k)
			for x.low[k] < len(ts) && ts[x.low[k]].State != TaskPending {
				x.low[k]++
			}
		}
	case TaskDone:
		x.took[k].add(j.tookPerUnit(k, i))
		if k == KindMap {
			x.doneOn[nodeInc{t.Node, t.NodeIncarnation}]++
			if t.Merge == 0 {
				x.addUnmerged(t.Node, i)
			}
		}
	}
}

// setTwin gives a running task a twin, or takes it away (tw nil).
func (j *Job) setTwin(k Kind, i int, tw *Twin) {
	t := &j.Tasks(k)[i]
	x := j.index()
	if t.Twin != nil {
		x.delRun(nodeInc{t.Twin.Node, t.Twin.NodeIncarnation}, taskRef{k, i, true})
	}
	t.Twin = tw
	if tw != nil {
		x.addRun(nodeInc{tw.Node, tw.NodeIncarnation}, taskRef{k, i, true})
	}
}

// promoteTwin makes a running task's twin its attempt: the primary's node
// no longer runs it.
func (j *Job) promoteTwin(k Kind, i int) {
	t := &j.Tasks(k)[i]
	tw := t.Twin
	x := j.index()
	x.delRun(nodeInc{t.Node, t.NodeIncarnation}, taskRef{k, i, false})
	j.setTwin(k, i, nil)
	t.Node, t.Attempt, t.NodeIncarnation, t.Started = tw.Node, tw.Attempt, tw.NodeIncarnation, tw.Started
	x.addRun(nodeInc{t.Node, t.NodeIncarnation}, taskRef{k, i, false})
}

func (x *jobIndex) addRun(node nodeInc, r taskRef) {
	x.running[r] = struct{}{}
	addToSet(x.runningOn, node, r)
}

func (x *jobIndex) delRun(node nodeInc, r taskRef) {
	delete(x.running, r)
	dropFromSet(x.runningOn, node, r)
}

// running returns the running attempts of the job's tasks, sorted.
func (j *Job) running() []taskRef {
	x := j.index()
	if x == nil {
		return nil
	}
	return sortedRefs(x.running)
}

// sortedRefs returns a set of running attempts in order: by kind, index,
// and the twin after the primary. They are sorted as packed keys: with
// 10,000 running attempts sort.Slice's reflective swaps were half of
// Reconcile's time.
func sortedRefs(set map[taskRef]struct{}) []taskRef {
	keys := make([]uint64, 0, len(set))
	for r := range set {
		k := uint64(r.kind)<<56 | uint64(r.index)<<1
		if r.twin {
			k |= 1
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]taskRef, len(keys))
	for i, k := range keys {
		out[i] = taskRef{kind: Kind(k >> 56), index: int(k >> 1 & (1<<55 - 1)), twin: k&1 == 1}
	}
	return out
}

// tookPerUnit is what the duration histogram records of a finished task:
// its Took, and for a merge its Took per merged map, since merges differ
// in size (a node's last one merges what is left).
func (j *Job) tookPerUnit(k Kind, i int) int64 {
	t := &j.Tasks(k)[i]
	if k == KindMerge && i < len(j.MergeMaps) && len(j.MergeMaps[i]) > 0 {
		return t.Took / int64(len(j.MergeMaps[i]))
	}
	return t.Took
}

// durations is a histogram of task run times: 16 buckets per doubling from
// one millisecond, enough to tell a straggler from the median within 5%.
type durations struct {
	n       int
	buckets [durBuckets]int32
}

const (
	durPerDoubling = 16
	durBuckets     = 40 * durPerDoubling // up to 2^40 ms
)

func durBucket(ns int64) int {
	ms := float64(ns) / 1e6
	if ms <= 1 {
		return 0
	}
	b := int(math.Log2(ms) * durPerDoubling)
	return min(max(b, 0), durBuckets-1)
}

func (d *durations) add(ns int64) {
	d.n++
	d.buckets[durBucket(ns)]++
}

func (d *durations) remove(ns int64) {
	if b := durBucket(ns); d.buckets[b] > 0 {
		d.n--
		d.buckets[b]--
	}
}

// median returns the upper bound of the bucket holding the median, in
// nanoseconds; 0 when empty.
func (d *durations) median() int64 {
	if d.n == 0 {
		return 0
	}
	half := (d.n + 1) / 2
	seen := 0
	for b, c := range d.buckets {
		if seen += int(c); seen >= half {
			return int64(math.Exp2(float64(b+1)/durPerDoubling) * 1e6)
		}
	}
	return 0
}

// attemptOf returns the node and number of a running attempt.
func (j *Job) attemptOf(r taskRef) (string, int32) {
	t := j.task(r.kind, r.index)
	if r.twin {
		return t.Twin.Node, t.Twin.Attempt
	}
	return t.Node, t.Attempt
}

// Attempt is one running attempt of a task.
type Attempt struct {
	Kind    Kind
	Index   int
	Attempt int
}

// RunningOn returns the job's attempts (primaries and twins) running on
// node. It costs that node's attempts, not the job's tasks or its running
// attempts elsewhere.
func (j *Job) RunningOn(node string) []Attempt {
	x := j.index()
	if x == nil {
		return nil
	}
	var out []Attempt
	for key, on := range x.runningOn {
		if key.node != node {
			continue
		}
		for r := range on {
			_, a := j.attemptOf(r)
			out = append(out, Attempt{r.kind, r.index, int(a)})
		}
	}
	return out
}

// Clone copies the job: its task tables are copied, what they point to
// (twins, summaries) is shared, since apply replaces it and never changes
// it in place.
func (j *Job) Clone() *Job {
	c := *j
	c.Maps, c.Reduces, c.Merges = slices.Clone(j.Maps), slices.Clone(j.Reduces), slices.Clone(j.Merges)
	c.MergeMaps = slices.Clone(j.MergeMaps)
	c.x = nil
	return &c
}
