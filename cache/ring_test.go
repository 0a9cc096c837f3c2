package cache

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestRingDistribution(t *testing.T) {
	nodes := []string{"http://10.0.0.1:8080", "http://10.0.0.2:8080", "http://10.0.0.3:8080"}
	var r ring
	if got := r.owner("/x"); got != "" {
		t.Fatalf("owner on an empty ring: %q", got)
	}
	r.set(nodes)
	const keys = 10000
	owners := make(map[string]string, keys)
	count := map[string]int{}
	for i := range keys {
		k := fmt.Sprintf("/bucket/object-%d", i)
		o := r.owner(k)
		owners[k] = o
		count[o]++
	}
	for _, n := range nodes {
		if c := count[n]; c < keys/3*7/10 || c > keys/3*13/10 {
			t.Errorf("%s owns %d of %d keys, want within 30%% of %d", n, c, keys, keys/3)
		}
	}
	if len(count) != len(nodes) {
		t.Errorf("owners %v, want only %v", count, nodes)
	}

	// The order of the list and duplicates do not matter.
	var r2 ring
	r2.set([]string{nodes[2], nodes[0], nodes[1], nodes[0]})
	for k, o := range owners {
		if r2.owner(k) != o {
			t.Fatalf("%s: owner %s with the nodes in another order, %s before", k, r2.owner(k), o)
		}
	}

	// Removing a node moves only the keys it owned.
	removed := nodes[1]
	r.set([]string{nodes[0], nodes[2]})
	moved := 0
	for k, before := range owners {
		after := r.owner(k)
		switch {
		case after == removed:
			t.Fatalf("%s is still owned by the removed node", k)
		case before != removed && after != before:
			t.Fatalf("%s moved from %s to %s though its owner stayed", k, before, after)
		case before == removed:
			moved++
		}
	}
	if moved != count[removed] {
		t.Errorf("%d keys moved, want the %d the removed node owned", moved, count[removed])
	}
	if m := r.members(); len(m) != 2 {
		t.Errorf("members %v after removing one of 3", m)
	}
}

// peerPair starts two edges A and B of one cluster CA, each with both in
// Peers, sharing one origin.
func peerPair(t *testing.T, origin string) (a, b *peerEdge) {
	es := startPeerEdges(t, newTestCA(t), origin, 2)
	return es[0], es[1]
}

// keyOwnedBy returns a path the ring of nodes places on owner.
func keyOwnedBy(t *testing.T, nodes []string, owner, prefix string) string {
	var r ring
	r.set(nodes)
	for i := range 1000 {
		k := fmt.Sprintf("%s-%d", prefix, i)
		if r.owner(k) == owner {
			return k
		}
	}
	t.Fatalf("no key of 1000 is owned by %s", owner)
	return ""
}

// TestPeerFill checks that a request to an edge that does not own the key
// is filled from the owner edge, and from the origin when the owner is
// down.
func TestPeerFill(t *testing.T) {
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("ETag", `"`+strings.TrimPrefix(r.URL.Path, "/")+`"`)
		w.Write([]byte("body of " + r.URL.Path))
	})
	a, b := peerPair(t, o.URL())
	c := newClient(t)
	nodes := []string{a.Peer, b.Peer}

	key := keyOwnedBy(t, nodes, b.Peer, "/peer/obj")
	want := []byte("body of " + key)
	r := get(t, c, a.URL+key)
	wantBody(t, "via the non-owner", r, want)
	if n := o.count(key); n != 1 {
		t.Errorf("origin fetches: %d, want 1", n)
	}
	sa, sb := a.Stats(), b.Stats()
	if sa.PeerFetches != 1 || sa.PeerFills != 1 || sa.OriginFetches != 0 {
		t.Errorf("non-owner: peer fetches %d, peer fills %d, origin fetches %d; want 1, 1, 0", sa.PeerFetches, sa.PeerFills, sa.OriginFetches)
	}
	if sb.OriginFetches != 1 || sb.PeerFetches != 0 {
		t.Errorf("owner: origin fetches %d, peer fetches %d; want 1, 0", sb.OriginFetches, sb.PeerFetches)
	}
	if len(sa.Ring) != 2 {
		t.Errorf("non-owner's ring %v, want both edges", sa.Ring)
	}
	waitFills(t, a.testEdge)
	waitFills(t, b.testEdge)
	wantHit(t, "the owner", get(t, c, b.URL+key))
	wantHit(t, "the non-owner", get(t, c, a.URL+key))

	// A key A owns itself goes straight to the origin.
	own := keyOwnedBy(t, nodes, a.Peer, "/peer/own")
	wantBody(t, "a key A owns", get(t, c, a.URL+own), []byte("body of "+own))
	if st := a.Stats(); st.PeerFetches != 1 || st.OriginFetches != 1 {
		t.Errorf("a key A owns: peer fetches %d, origin fetches %d; want 1, 1", st.PeerFetches, st.OriginFetches)
	}
	if n := o.count(key) + o.count(own); n != 2 {
		t.Errorf("origin fetches for the pair: %d, want 2", n)
	}

	// The owner stopped: the non-owner falls back to the origin.
	c.Transport.(*http.Transport).CloseIdleConnections()
	b.close(t)
	down := keyOwnedBy(t, nodes, b.Peer, "/peer/down")
	wantBody(t, "owner down", get(t, c, a.URL+down), []byte("body of "+down))
	if n := o.count(down); n != 1 {
		t.Errorf("owner down: origin fetches %d, want 1", n)
	}
	if st := a.Stats(); st.PeerFetches != 2 || st.PeerFills != 1 || st.OriginFetches != 2 {
		t.Errorf("owner down: peer fetches %d, peer fills %d, origin fetches %d; want 2, 1, 2", st.PeerFetches, st.PeerFills, st.OriginFetches)
	}
}

// TestPeerPurge purges on one edge: the purge reaches the other edges of
// the ring, and the next request on either goes to the origin.
func TestPeerPurge(t *testing.T) {
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("body of " + r.URL.Path))
	})
	a, b := peerPair(t, o.URL())
	c := newClient(t)
	key := keyOwnedBy(t, []string{a.Peer, b.Peer}, b.Peer, "/purge/obj")
	wantBody(t, "via A", get(t, c, a.URL+key), []byte("body of "+key))
	waitFills(t, a.testEdge)
	waitFills(t, b.testEdge)
	wantHit(t, "on B", get(t, c, b.URL+key))
	wantHit(t, "on A", get(t, c, a.URL+key))

	r := adminDo(t, c, http.MethodPost, a.URL+"/_edge/purge?key="+key, "s3cret")
	if r.status != http.StatusOK {
		t.Fatalf("purge: %d %s", r.status, r.body)
	}
	var pr PurgeResult
	if err := json.Unmarshal(r.body, &pr); err != nil {
		t.Fatal(err)
	}
	if pr.Purged != 1 || len(pr.Peers) != 1 || pr.Peers[b.Peer] != "ok 1" {
		t.Errorf("purge result %+v, want 1 here and \"ok 1\" from %s", pr, b.Peer)
	}
	before := o.count(key)
	for _, e := range []*testEdge{b.testEdge, a.testEdge} {
		r := get(t, c, e.URL+key)
		wantBody(t, "after the purge", r, []byte("body of "+key))
		if strings.Contains(r.cacheStatus(), "; hit") {
			t.Errorf("%s after the purge: a hit", e.URL)
		}
		waitFills(t, e)
	}
	if n := o.count(key); n != before+1 {
		t.Errorf("after the purge: %d origin fetches, want 1 (B fills, A from B)", n-before)
	}
}
