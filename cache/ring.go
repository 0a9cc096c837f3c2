package cache

import (
	"hash/fnv"
	"slices"
	"sort"
	"strconv"
	"sync"
)

// ring is a consistent-hash ring of edge nodes: each node owns the arcs
// before its vnodes points, so a node joining or leaving moves only about
// 1/N of the keys. The owner of a key fetches it from the origin; the other
// edges fetch it from the owner (peer fill).
type ring struct {
	mu     sync.Mutex
	nodes  []string // sorted; the ring was built from these
	points []ringPoint
}

type ringPoint struct {
	hash uint64
	node string
}

const vnodes = 160

func hash64(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	// fnv's low bits mix poorly for similar strings: finish with a
	// 64-bit mixer (splitmix64's).
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// set rebuilds the ring when nodes changed.
func (r *ring) set(nodes []string) {
	nodes = slices.Clone(nodes)
	sort.Strings(nodes)
	nodes = slices.Compact(nodes)
	r.mu.Lock()
	defer r.mu.Unlock()
	if slices.Equal(nodes, r.nodes) {
		return
	}
	pts := make([]ringPoint, 0, len(nodes)*vnodes)
	for _, n := range nodes {
		for i := range vnodes {
			pts = append(pts, ringPoint{hash64(n + "#" + strconv.Itoa(i)), n})
		}
	}
	sort.Slice(pts, func(i, j int) bool { return pts[i].hash < pts[j].hash })
	r.nodes, r.points = nodes, pts
}

// owner returns the node owning key ("" on an empty ring).
func (r *ring) owner(key string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.points) == 0 {
		return ""
	}
	h := hash64(key)
	i := sort.Search(len(r.points), func(i int) bool { return r.points[i].hash >= h })
	if i == len(r.points) {
		i = 0
	}
	return r.points[i].node
}

func (r *ring) members() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.nodes
}
