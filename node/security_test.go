package node

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"engine/coordinator"
	"engine/gensort"
	"engine/internal/pki"
	"engine/sortjob"
)

// call makes one request to url with the given headers and body and
// returns the status and body.
func call(t *testing.T, hc *http.Client, method, url string, body string, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Every client API route wants the token; a browser-shaped request is
// refused even with it.
func TestClientAPIWantsToken(t *testing.T) {
	n := open(t, Config{DataDir: t.TempDir()})
	defer n.Close()
	base := "http://" + n.Addr()
	hc := &http.Client{Timeout: 10 * time.Second}
	routes := []struct{ method, path, body string }{
		{"GET", "/v1/status", ""},
		{"GET", "/v1/jobs", ""},
		{"POST", "/v1/jobs", `{"kind":"sort","spec":{"records":1000}}`},
		{"GET", "/v1/jobs/x", ""},
		{"POST", "/v1/jobs/x/cancel", ""},
		{"POST", "/v1/plan", `{"spec":{"records":1000}}`},
		{"GET", "/v1/bb/status", ""},
		{"POST", "/v1/bb/sync", `{"path":"/"}`},
		// Peer routes are not on the client API at all.
		{"POST", "/v1/internal/propose", `{"type":"job_cancel","job":"../../victim"}`},
		{"POST", "/v1/cluster/join", `{}`},
	}
	for _, r := range routes {
		for _, tok := range []string{"", "Bearer wrong-token-0123456789", "Basic " + n.ClientToken()} {
			code, body := call(t, hc, r.method, base+r.path, r.body, map[string]string{"Authorization": tok, "Content-Type": "application/json"})
			if code != http.StatusUnauthorized {
				t.Errorf("%s %s with Authorization %q: %d %s, want 401", r.method, r.path, tok, code, body)
			}
		}
	}
	auth := "Bearer " + n.ClientToken()
	if code, body := call(t, hc, "GET", base+"/v1/status", "", map[string]string{"Authorization": auth}); code != 200 {
		t.Fatalf("GET /v1/status with the token: %d %s", code, body)
	}
	for _, r := range routes[8:] {
		if code, _ := call(t, hc, r.method, base+r.path, r.body, map[string]string{"Authorization": auth, "Content-Type": "application/json"}); code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
			t.Errorf("%s %s on the client API with the token: %d, want 404", r.method, r.path, code)
		}
	}
	// CSRF and DNS rebinding shapes: refused even with the token.
	submit := `{"kind":"sort","spec":{"records":1000}}`
	for _, h := range []map[string]string{
		{"Origin": "http://evil.example", "Content-Type": "application/json"},
		{"Origin": "null", "Content-Type": "application/json"},
		{"Host": "evil.example:7070", "Content-Type": "application/json"},
		{"Sec-Fetch-Site": "cross-site", "Content-Type": "application/json"},
		{"Content-Type": "text/plain"},
		{"Content-Type": "application/x-www-form-urlencoded"},
	} {
		h["Authorization"] = auth
		code, body := call(t, hc, "POST", base+"/v1/jobs", submit, h)
		if code != http.StatusForbidden && code != http.StatusUnsupportedMediaType {
			t.Errorf("POST /v1/jobs with %v: %d %s, want 403 or 415", h, code, body)
		}
	}
	if jobs := n.Jobs(); len(jobs) != 0 {
		t.Fatalf("a refused request submitted a job: %+v", jobs)
	}
}

// The internal port and the Raft port give nothing to a caller without a
// certificate of the cluster: not plain HTTP, not TLS without a client
// certificate, not a certificate of another CA.
func TestInternalPortsWantClusterCertificate(t *testing.T) {
	n := open(t, Config{DataDir: t.TempDir()})
	defer n.Close()
	other, _, _, err := pki.Bootstrap(n.id, []string{"127.0.0.1"}, "")
	if err != nil {
		t.Fatal(err)
	}
	internal := n.shuffleLn.Addr().String()
	raftAddr := n.raft.Addr()
	clients := map[string]*http.Client{
		"plain":                  {Timeout: 5 * time.Second},
		"TLS, no certificate":    {Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}},
		"another cluster's cert": {Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: other.ClientConfig()}},
	}
	paths := []struct{ method, path, body string }{
		{"POST", "/v1/internal/propose", `{"type":"job_submit","plan":{"map_count":-1}}`},
		{"POST", "/v1/internal/join", `{}`},
		{"GET", "/v1/internal/status", ""},
		{"GET", "/v1/internal/bb/dump", ""},
		{"POST", "/v1/internal/bb/truncate", `{}`},
	}
	for name, hc := range clients {
		for _, addr := range []string{internal, raftAddr} {
			for _, p := range paths {
				scheme := "https://"
				if name == "plain" {
					scheme = "http://"
				}
				code, body := call(t, hc, p.method, scheme+addr+p.path, p.body, map[string]string{"Content-Type": "application/json"})
				if code != 0 {
					t.Errorf("%s %s%s (%s): answered %d %s; want no answer", p.method, addr, p.path, name, code, body)
				}
			}
		}
	}
	// The shuffle protocol without a certificate: the handshake fails.
	for _, addr := range []string{internal, raftAddr} {
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{protoShuffle}})
		if err == nil {
			c.SetDeadline(time.Now().Add(2 * time.Second))
			_, err = c.Write([]byte("x"))
			if err == nil {
				_, err = c.Read(make([]byte, 1))
			}
			c.Close()
		}
		if err == nil {
			t.Errorf("%s: a TLS connection without a client certificate was served", addr)
		}
	}
	// A plain TCP peer on the Raft port gets no answer either.
	c, err := net.DialTimeout("tcp", raftAddr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(2 * time.Second))
	c.Write([]byte{0, 0x80, 0, 0, 0}) // a rpcAppendEntries type byte and msgpack noise
	if k, _ := c.Read(make([]byte, 64)); k > 0 {
		t.Errorf("Raft port answered %d bytes to a plain TCP peer", k)
	}
	c.Close()
	// The node still works.
	if _, err := n.client().Status(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// A member of the cluster may join only as itself: a node with a valid
// certificate cannot take over another member's place in Raft (today's
// attack: a join with the victim's gossip address removed real voters).
func TestJoinHijackRefused(t *testing.T) {
	nodes := startCluster(t, 3)
	defer func() {
		for _, n := range nodes {
			n.Close()
		}
	}()
	leader := nodes[0]
	// An insider: a certificate for "evil", signed by the cluster CA.
	keyPEM, pub, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := leader.ident.Issue("evil", pub, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	evil, err := pki.New(leader.ident.Secrets, "evil", certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	victim := nodes[1].self()
	forged := victim
	forged.RaftID = victim.ID + ".deadbeef"
	forged.RaftAddr = "127.0.0.1:1"
	before, _ := leader.raft.Servers()
	hc := newPeerHTTP(evil.ClientConfig(), 10*time.Second)
	body, _ := json.Marshal(JoinRequest{Member: forged, Fresh: true})
	for _, nd := range nodes {
		code, resp := call(t, hc, "POST", "https://"+nd.shuffleLn.Addr().String()+"/v1/internal/join", string(body), map[string]string{"Content-Type": "application/json"})
		if code != http.StatusForbidden {
			t.Errorf("join as %s with evil's certificate through %s: %d %s, want 403", victim.ID, nd.id, code, resp)
		}
	}
	after, _ := leader.raft.Servers()
	if len(after) != len(before) {
		t.Fatalf("Raft servers changed: %+v → %+v", before, after)
	}
	for _, s := range after {
		if s.ID == forged.RaftID || s.Addr == forged.RaftAddr {
			t.Fatalf("the forged server is in Raft: %+v", after)
		}
	}
	// Under its own name, evil may not take the victim's Raft server, nor
	// have the leader replicate anything about another node.
	own := forged
	own.ID = "evil"
	own.RaftID = victim.RaftID
	body, _ = json.Marshal(JoinRequest{Member: own})
	if code, resp := call(t, hc, "POST", "https://"+leader.shuffleLn.Addr().String()+"/v1/internal/join", string(body), map[string]string{"Content-Type": "application/json"}); code == http.StatusOK {
		t.Errorf("evil joined with the victim's Raft id: %s", resp)
	}
	for _, c := range []coordinator.Command{
		{Type: coordinator.CmdMemberUpsert, Member: &forged},
		{Type: coordinator.CmdMemberRemove, ID: victim.ID},
		{Type: coordinator.CmdMemberAlive, ID: victim.ID, Alive: false},
		{Type: coordinator.CmdTaskFailed, Job: "j", Kind: coordinator.KindMap, Node: victim.ID, Attempt: 1},
		// A batch is its own tasks' reports only: not another node's
		// hidden among them, not an assignment, not a merge given up.
		{Type: coordinator.CmdBatch, Batch: []coordinator.Command{
			{Type: coordinator.CmdTaskDone, Job: "j", Kind: coordinator.KindMap, Node: "evil", Attempt: 1},
			{Type: coordinator.CmdTaskFailed, Job: "j", Kind: coordinator.KindMap, Index: 1, Node: victim.ID, Attempt: 1},
		}},
		{Type: coordinator.CmdBatch, Batch: []coordinator.Command{{Type: coordinator.CmdTaskAssign, Job: "j", Kind: coordinator.KindMap, Node: "evil", Attempt: 1}}},
		{Type: coordinator.CmdTaskFailed, Job: "j", Kind: coordinator.KindMerge, Node: "evil", Attempt: 1, GiveUp: true},
	} {
		c.Time = time.Now()
		b, _ := json.Marshal(c)
		code, resp := call(t, hc, "POST", "https://"+leader.shuffleLn.Addr().String()+"/v1/internal/propose", string(b), map[string]string{"Content-Type": "application/json"})
		if code != http.StatusForbidden {
			t.Errorf("evil proposed %s: %d %s, want 403", c.Type, code, resp)
		}
	}
	after, _ = leader.raft.Servers()
	if len(after) != len(before) {
		t.Fatalf("Raft servers changed: %+v → %+v", before, after)
	}
	var m coordinator.Member
	leader.fsm.Read(func(s *coordinator.State) { m = *s.Members[victim.ID] })
	if m.RaftAddr != victim.RaftAddr || m.GossipAddr != victim.GossipAddr {
		t.Fatalf("the victim's member record changed: %+v", m)
	}
}

// A process without the cluster's gossip key cannot join gossip, so it
// cannot announce endpoints (an edge, an origin) the cluster would use.
func TestGossipWantsKey(t *testing.T) {
	n := open(t, Config{DataDir: t.TempDir()})
	defer n.Close()
	for _, key := range [][]byte{nil, bytes.Repeat([]byte{7}, 32)} {
		c := memberlist.DefaultLANConfig()
		c.Name = "intruder"
		c.BindAddr, c.BindPort = "127.0.0.1", 0
		c.LogOutput = io.Discard
		c.SecretKey = key
		c.TCPTimeout = 2 * time.Second
		ml, err := memberlist.Create(c)
		if err != nil {
			t.Fatal(err)
		}
		k, err := ml.Join([]string{n.gossipAddr()})
		time.Sleep(500 * time.Millisecond)
		for _, m := range n.ml.Members() {
			if m.Name == "intruder" {
				t.Errorf("with key %x: the intruder is a gossip member (join: %d, %v)", key, k, err)
			}
		}
		if err == nil {
			t.Errorf("with key %x: the join succeeded (%d nodes)", key, k)
		}
		ml.Shutdown()
	}
}

// A joining node needs the join token: a wrong secret gets no
// certificate, and a node that pins another CA does not trust the answer.
func TestCertificateWantsJoinToken(t *testing.T) {
	n := open(t, Config{DataDir: t.TempDir()})
	defer n.Close()
	good := n.ident.JoinToken()
	hash, _, _ := pki.ParseJoinToken(good)
	for _, tc := range []struct{ tok, want string }{
		{"engine1." + hash + ".wrongsecret", "wrong join token"},
		{"engine1." + strings.Repeat("00", 32) + "." + n.ident.JoinSecret, "not the one the join token names"}, // pins another CA
	} {
		start := time.Now()
		_, err := Open(Config{DataDir: t.TempDir(), Name: "joiner", API: "127.0.0.1:0", Join: n.Addr(), JoinToken: tc.tok, JoinTimeout: 20 * time.Second})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("join with token %q: %v, want an error saying %q", tc.tok, err, tc.want)
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("join with token %q failed only after %s: a wrong token is final, not retried", tc.tok, took)
		}
	}
	// Over plain HTTP the certificate is never issued, even with the
	// right secret.
	hc := &http.Client{Timeout: 5 * time.Second}
	code, body := call(t, hc, "POST", "http://"+n.Addr()+"/v1/cluster/certificate", `{"node":"x","secret":"`+n.ident.JoinSecret+`"}`, map[string]string{"Content-Type": "application/json"})
	if code != http.StatusForbidden {
		t.Fatalf("certificate over plain HTTP: %d %s, want 403", code, body)
	}
	// Nobody makes the node read a large body before the secret is
	// checked.
	tlsc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	big := `{"node":"x","public_key":"` + strings.Repeat("A", 1<<20) + `"}`
	code, body = call(t, tlsc, "POST", "https://"+n.Addr()+"/v1/cluster/certificate", big, map[string]string{"Content-Type": "application/json"})
	if code != http.StatusBadRequest || !strings.Contains(body, "too large") {
		t.Fatalf("a 1 MiB certificate request: %d %.200s, want 400 (too large)", code, body)
	}
}

// With --io-root, a job may only name paths beneath the roots, symbolic
// links followed: refused at submit with the root named.
func TestIORootsConfineJobPaths(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(root, "escape")); err != nil {
		t.Fatal(err)
	}
	n := open(t, Config{DataDir: t.TempDir(), IORoots: []string{root}})
	defer n.Close()
	ctx := context.Background()
	for _, spec := range []sortjob.Spec{
		{Records: 1000, Output: filepath.Join(outside, "out")},
		{Records: 1000, Output: filepath.Join(root, "escape", "out")},
		{Records: 1000, Output: root + "/a/../../etc"},
		{Records: 1000, Output: "relative/out"},
		{Input: "/etc", Output: filepath.Join(root, "out")},
	} {
		_, err := n.Submit(ctx, spec)
		if err == nil {
			t.Fatalf("submitted a job with input %q output %q outside %s", spec.Input, spec.Output, root)
		}
		if !strings.Contains(err.Error(), "--") {
			t.Errorf("error does not name the flag: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(outside, "out")); err == nil {
		t.Fatal("a refused job made its output directory")
	}
	st, err := n.Submit(ctx, sortjob.Spec{Records: 1000, Output: filepath.Join(root, "out")})
	if err != nil {
		t.Fatal(err)
	}
	if st := wait(t, n.client(), st.ID); st.State != "succeeded" {
		t.Fatalf("job under the root: %+v", st)
	}
}

// A command that would crash or misdirect every node is refused at the
// peer API, and, proposed straight into Raft, rejected by every node's
// state machine: the cluster keeps working and nothing outside the data
// directory is touched.
func TestPoisonProposeRefused(t *testing.T) {
	nodes := startCluster(t, 3)
	defer func() {
		for _, n := range nodes {
			n.Close()
		}
	}()
	leader := nodes[0]
	for _, n := range nodes {
		if n.raft.IsLeader() {
			leader = n
		}
	}
	// A directory the ../ job id points at, from every node's data dir.
	victim := filepath.Join(filepath.Dir(leader.cfg.DataDir), "victim")
	if err := os.MkdirAll(filepath.Join(victim, "keep"), 0o755); err != nil {
		t.Fatal(err)
	}
	poisons := []string{
		`{"type":"job_submit","job":"j1","spec":{"records":1000},"plan":{"map_count":-1,"partitions":1}}`,
		`{"type":"job_cancel","job":"../../victim"}`,
		`{"type":"job_cancel","job":"../victim"}`,
		`{"type":"member_upsert","member":{"id":"../x","raft_id":"x","raft_addr":"127.0.0.1:1"}}`,
	}
	hc := newPeerHTTP(leader.ident.ClientConfig(), 10*time.Second) // an insider's certificate
	for _, p := range poisons {
		code, body := call(t, hc, "POST", "https://"+leader.shuffleLn.Addr().String()+"/v1/internal/propose", p, map[string]string{"Content-Type": "application/json"})
		if code != http.StatusBadRequest {
			t.Errorf("propose %s: %d %s, want 400", p, code, body)
		}
		// Straight into Raft: committed, and rejected by every FSM.
		var c coordinator.Command
		if err := json.Unmarshal([]byte(p), &c); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := leader.raft.Propose(ctx, c)
		cancel()
		if err == nil {
			t.Errorf("Raft applied %s", p)
		}
	}
	if _, err := os.Stat(filepath.Join(victim, "keep")); err != nil {
		t.Fatalf("the victim directory was touched: %v", err)
	}
	// Every node still applies and runs jobs.
	c := nodes[1].client()
	st, err := c.SubmitSort(context.Background(), sortjob.Spec{Records: 20000})
	if err != nil {
		t.Fatal(err)
	}
	if st := wait(t, c, st.ID); st.State != "succeeded" {
		t.Fatalf("job after the poison: %+v", st)
	}
}

// Plans past the job limits are refused at the API with the limit named,
// before anything is allocated (records=9e18 used to wrap negative and
// pass the free-disk check).
func TestPlanLimitsAtTheAPI(t *testing.T) {
	n := open(t, Config{DataDir: t.TempDir()})
	defer n.Close()
	hc := &http.Client{Timeout: 10 * time.Second}
	hdr := map[string]string{"Authorization": "Bearer " + n.ClientToken(), "Content-Type": "application/json"}
	for _, tc := range []struct{ path, body, want string }{
		{"/v1/plan", `{"spec":{"records":9000000000000000000}}`, "limit"},
		{"/v1/jobs", `{"kind":"sort","spec":{"records":9000000000000000000}}`, "limit"},
		{"/v1/plan", `{"spec":{"records":1000000000000},"cluster":{"nodes":1000000000}}`, "limit"},
		{"/v1/plan", `{"spec":{"records":-5}}`, "records"},
	} {
		code, body := call(t, hc, "POST", "http://"+n.Addr()+tc.path, tc.body, hdr)
		if code != http.StatusBadRequest || !strings.Contains(body, tc.want) {
			t.Errorf("POST %s %s: %d %s, want 400 naming the %s", tc.path, tc.body, code, body, tc.want)
		}
	}
	if jobs := n.Jobs(); len(jobs) != 0 {
		t.Fatalf("a refused plan made a job: %+v", jobs)
	}
}

// A job that reaches the replicated state without this node's submit
// checks (another node with other roots, or a forged proposal) still
// cannot make this node read outside its --io-root: the map task refuses
// its input and the job fails.
func TestIORootsCheckedBeforeTasks(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	in := filepath.Join(outside, "in")
	if err := os.Mkdir(in, 0o755); err != nil {
		t.Fatal(err)
	}
	recs := make([]byte, 1000*sortjob.RecordSize)
	gensort.NewGenerator(0, gensort.Options{}).Fill(recs)
	if err := os.WriteFile(filepath.Join(in, "recs"), recs, 0o644); err != nil {
		t.Fatal(err)
	}
	n := open(t, Config{DataDir: t.TempDir(), IORoots: []string{root}})
	defer n.Close()
	plan, err := sortjob.MakePlan(sortjob.Spec{Input: in, Memory: 256 << 20}, sortjob.Cluster{Nodes: 1, CoresPerNode: 2})
	if err != nil {
		t.Fatal(err)
	}
	part, err := sortjob.Sample(plan)
	if err != nil {
		t.Fatal(err)
	}
	splits, _ := part.MarshalBinary()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.raft.Propose(ctx, coordinator.Command{Type: coordinator.CmdJobSubmit, Time: time.Now(), Job: "forged", Spec: &plan.Spec, Plan: plan, Splits: splits}); err != nil {
		t.Fatal(err)
	}
	st := wait(t, n.client(), "forged")
	if st.State != "failed" || !strings.Contains(st.Error, "--io-root") {
		t.Fatalf("a job reading outside --io-root: %s %q, want failed naming --io-root", st.State, st.Error)
	}
}

// Garbage on the routes this change added gets a 4xx, and the node keeps
// serving: the certificate route (no credentials needed to reach it) and
// the peer routes (with a cluster certificate).
func TestNewRoutesRefuseGarbage(t *testing.T) {
	n := open(t, Config{DataDir: t.TempDir()})
	defer n.Close()
	tlsc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	peer := newPeerHTTP(n.ident.ClientConfig(), 10*time.Second)
	api, internal := "https://"+n.Addr(), "https://"+n.shuffleLn.Addr().String()
	for _, tc := range []struct {
		hc        *http.Client
		url, body string
	}{
		{tlsc, api + "/v1/cluster/certificate", "not json"},
		{tlsc, api + "/v1/cluster/certificate", `{"node":"x","secret":"` + n.ident.JoinSecret + `","public_key":"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}`},
		{tlsc, api + "/v1/cluster/certificate", `{"node":"../x","secret":"` + n.ident.JoinSecret + `"}`},
		{tlsc, api + "/v1/cluster/certificate", `{"node":"x","secret":"` + n.ident.JoinSecret + `","hosts":["a b"]}`},
		{peer, internal + "/v1/internal/join", "\x00\x01garbage"},
		{peer, internal + "/v1/internal/join", `{"member":{"id":"` + n.id + `","raft_id":"other.1","raft_addr":"127.0.0.1:1"}}`},
		{peer, internal + "/v1/internal/propose", `{"type":"no_such_command"}`},
		{peer, internal + "/v1/internal/propose", `[1,2,3]`},
		{peer, internal + "/v1/internal/bb/publish", `{"k":0}`},
	} {
		code, body := call(t, tc.hc, "POST", tc.url, tc.body, map[string]string{"Content-Type": "application/json"})
		if code < 400 || code >= 500 && code != http.StatusServiceUnavailable {
			t.Errorf("POST %s %.60q: %d %.200s, want a 4xx", tc.url, tc.body, code, body)
		}
	}
	if _, err := n.client().Status(context.Background()); err != nil {
		t.Fatalf("the node stopped answering: %v", err)
	}
}
