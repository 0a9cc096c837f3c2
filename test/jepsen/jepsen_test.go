package jepsen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

var binDir string

func TestMain(m *testing.M) {
	if os.Getenv("JEPSEN_FS_HELPER") == "1" {
		fsHelperMain()
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "jepsen-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "engined"), "engine/cmd/engined").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build engined: %v\n%s", err, out)
		os.Exit(1)
	}
	binDir = dir
	// One attempt per S3 request: a retried put or delete inside the
	// client would hide a failure the history must record as unknown.
	minio.MaxRetry = 1
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func enginedBin() string { return filepath.Join(binDir, "engined") }

const (
	testToken = "jepsen-test-token-0123456789abcdef"
	accessKey = "AKJEPSEN"
	secretKey = "jepsen/Secret+Key"
	bucket    = "jepsen"
)

// runConfig is one run's size.
type runConfig struct {
	nodes, workers, keys int
	// fuseNodes nodes (the first ones) mount the namespace, and
	// fuseWorkers clients per mount work through it.
	fuseNodes, fuseWorkers int
	ops, faults            int           // run until both are reached...
	maxRun                 time.Duration // ...or this long (then fail if short)
	hold                   [2]time.Duration
	pace                   time.Duration // a worker waits 0-2×pace before each operation
	opTimeout              time.Duration
	checkTimeout           time.Duration
}

// TestS3Linearizable: workers put, get and delete a few keys through the S3
// endpoints of three nodes while a nemesis kills (SIGKILL) and restarts,
// pauses (SIGSTOP), and partitions nodes from their peers, one fault at a
// time, waiting for the cluster to be whole again after each. The history
// must be linearizable for a register per key. ENGINE_LONG=1 runs at least
// 10,000 operations under at least 20 faults; JEPSEN_SEED fixes the seed;
// JEPSEN_FAULTS=kill,partition,pause chooses the faults (in turn), "none"
// makes a control run without faults.
func TestS3Linearizable(t *testing.T) {
	cfg := runConfig{nodes: 3, workers: 6, fuseNodes: 2, fuseWorkers: 1, keys: 5, ops: 800, faults: 4, maxRun: 70 * time.Second,
		hold: [2]time.Duration{2 * time.Second, 4 * time.Second}, opTimeout: 4 * time.Second, checkTimeout: 20 * time.Second,
		pace: 100 * time.Millisecond}
	if os.Getenv("ENGINE_LONG") != "" {
		cfg.workers, cfg.fuseWorkers, cfg.ops, cfg.faults, cfg.maxRun, cfg.checkTimeout = 9, 2, 10_000, 20, 30*time.Minute, 10*time.Minute
		cfg.hold = [2]time.Duration{3 * time.Second, 8 * time.Second}
		cfg.pace, cfg.checkTimeout = 150*time.Millisecond, 5*time.Minute
	}
	seed := time.Now().UnixNano()
	if s := os.Getenv("JEPSEN_SEED"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("JEPSEN_SEED=%q: want an integer", s)
		}
		seed = v
	}
	t.Logf("seed %d (rerun with JEPSEN_SEED=%d)", seed, seed)
	runJepsen(t, cfg, seed)
}

type s3client struct {
	mc *minio.Client
}

func newS3Client(t *testing.T, addr string) *s3client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 16,
	}
	mc, err := minio.New(addr, &minio.Options{Creds: credentials.NewStaticV4(accessKey, secretKey, ""), Region: "us-east-1", Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	return &s3client{mc: mc}
}

// notSent reports whether err shows the request never reached the node
// (the connection was refused or could not be made, or the endpoint
// refused it before doing anything): such an operation did not happen and
// is left out of the history.
func notSent(err error) bool {
	var oe *net.OpError
	var ns errNotSent
	// SlowDown is the endpoint's answer before anything is done while the
	// node resyncs (s3.Server.serve).
	return errors.As(err, &ns) || errors.As(err, &oe) && oe.Op == "dial" || minio.ToErrorResponse(err).Code == "SlowDown"
}

func (c *s3client) do(ctx context.Context, in Input) (Output, error) {
	switch in.Kind {
	case Put:
		_, err := c.mc.PutObject(ctx, bucket, in.Key, strings.NewReader(in.Value), int64(len(in.Value)), minio.PutObjectOptions{})
		return Output{}, err
	case Delete:
		return Output{}, c.mc.RemoveObject(ctx, bucket, in.Key, minio.RemoveObjectOptions{})
	default:
		obj, err := c.mc.GetObject(ctx, bucket, in.Key, minio.GetObjectOptions{})
		if err != nil {
			return Output{}, err
		}
		defer obj.Close()
		b, err := io.ReadAll(obj)
		if err != nil {
			if minio.ToErrorResponse(err).Code == "NoSuchKey" {
				return Output{}, nil
			}
			return Output{}, err
		}
		return Output{Present: true, Value: string(b)}, nil
	}
}

// tally counts what the workers saw besides the history.
type tally struct {
	mu        sync.Mutex
	notSent   int
	getErrors map[string]int // by node and first words of the error
}

func (t *tally) getError(nodeIdx int, err error) {
	msg := err.Error()
	if len(msg) > 80 {
		msg = msg[:80]
	}
	t.mu.Lock()
	t.getErrors[fmt.Sprintf("n%d: %s", nodeIdx, msg)]++
	t.mu.Unlock()
}

func runJepsen(t *testing.T, cfg runConfig, seed int64) {
	began := time.Now()
	slowIP = func(args []string, took time.Duration) {
		t.Logf("ip %s took %s", strings.Join(args, " "), took.Round(time.Millisecond))
	}
	defer func() { slowIP = nil }()
	c := newCluster(t, cfg.nodes)
	defer c.close()
	if _, err := os.Stat("/dev/fuse"); err != nil || os.Geteuid() != 0 {
		t.Logf("no FUSE here (needs root and /dev/fuse): S3 clients only")
		cfg.fuseNodes = 0
	}
	if err := os.MkdirAll(filepath.Join(c.backing, fuseTmp), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < cfg.fuseNodes; i++ {
		c.nodes[i].mnt = filepath.Join(c.dir, c.nodes[i].name, "mnt")
	}
	c.start(0)
	if err := waitNode0(c); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < cfg.nodes; i++ {
		c.start(i)
	}
	clients := make([]*s3client, cfg.nodes)
	for i, nd := range c.nodes {
		clients[i] = newS3Client(t, nd.s3)
	}
	probe := func() error {
		for i, cl := range clients {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err := cl.mc.BucketExists(ctx, bucket)
			cancel()
			if err != nil {
				return fmt.Errorf("S3 of node-%d: %v", i, err)
			}
		}
		for _, nd := range c.nodes {
			if nd.mnt == "" {
				continue
			}
			if _, err := os.Stat(filepath.Join(nd.mountPath(), fuseTmp)); err != nil {
				return fmt.Errorf("the mount of %s: %v", nd.name, err)
			}
		}
		return nil
	}
	// BucketExists answers (false) before the bucket is made: it shows the
	// endpoints are up and resynced.
	if err := c.waitReady(60*time.Second, probe); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err := clients[0].mc.MakeBucket(ctx, bucket, minio.MakeBucketOptions{})
	cancel()
	if err != nil {
		t.Fatalf("make bucket: %v", err)
	}
	if err := c.waitReady(30*time.Second, probe); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d nodes ready in %s (network namespaces: %v; %s)", cfg.nodes, time.Since(began).Round(time.Millisecond), c.netns, c.dir)

	rec := NewRecorder()
	tl := &tally{getErrors: map[string]int{}}
	keys := make([]string, cfg.keys)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%d", i)
	}
	var stop atomic.Bool
	var emptyReads atomic.Int64
	var done atomic.Int64 // operations recorded
	var wg sync.WaitGroup
	nWorkers := cfg.workers + cfg.fuseNodes*cfg.fuseWorkers
	for w := 0; w < nWorkers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(seed + int64(w)))
			nodeIdx := w % cfg.nodes
			var cl opClient = clients[nodeIdx]
			via := ""
			if w >= cfg.workers {
				nodeIdx = (w - cfg.workers) % cfg.fuseNodes
				fc := &fsClient{nd: c.nodes[nodeIdx]}
				defer fc.close()
				cl, via = fc, "fuse"
			}
			client := w // a new client id after an unknown outcome, as Jepsen does
			for seq := 0; !stop.Load(); seq++ {
				if via != "" && c.nodes[nodeIdx].down.Load() {
					time.Sleep(100 * time.Millisecond) // its mount died with it
					continue
				}
				in := Input{Key: keys[rng.Intn(len(keys))], Node: nodeIdx, Via: via}
				switch r := rng.Intn(100); {
				case r < 50:
					in.Kind = Get
				case r < 85:
					in.Kind, in.Value = Put, fmt.Sprintf("w%d.%d", w, seq)
				default:
					in.Kind = Delete
				}
				time.Sleep(time.Duration(rng.Int63n(int64(2*cfg.pace) + 1)))
				octx, ocancel := context.WithTimeout(context.Background(), cfg.opTimeout)
				call := rec.Call()
				out, err := cl.do(octx, in)
				ocancel()
				switch {
				case err == nil:
					rec.Return(client, call, in, out)
					done.Add(1)
					if in.Kind == Get && out.Present && out.Value == "" && emptyReads.Add(1) <= 3 {
						// No put writes an empty value: say what the node and the
						// backing file system hold.
						t.Logf("%s", describeEmptyRead(c, clients[nodeIdx], in, rec.Now()))
					}
				case notSent(err):
					tl.mu.Lock()
					tl.notSent++
					tl.mu.Unlock()
					time.Sleep(100 * time.Millisecond) // the node or its mount is down: do not spin
				case in.Kind == Get:
					// A failed read changed nothing: left out.
					tl.getError(nodeIdx, err)
				default:
					rec.Unknown(client, call, in, err)
					done.Add(1)
					client += nWorkers
				}
			}
		}(w)
	}

	// The nemesis: one fault at a time, each healed and the cluster whole
	// again (every node ready, alive, answering S3) before the next.
	rng := rand.New(rand.NewSource(seed))
	// Partitions break linearizability today (a partitioned node keeps
	// serving and accepting writes: docs/linearizability.md), so the short
	// run, in CI, kills and pauses; the long run and JEPSEN_FAULTS include
	// them.
	kinds := []string{"kill", "pause"}
	if c.netns && os.Getenv("ENGINE_LONG") != "" {
		kinds = []string{"kill", "partition", "pause"}
	}
	if f := os.Getenv("JEPSEN_FAULTS"); f == "none" {
		kinds, cfg.faults = nil, 0 // the control run: no faults at all
	} else if f != "" {
		kinds = strings.Split(f, ",")
		for _, k := range kinds {
			if k != "kill" && k != "pause" && (k != "partition" || !c.netns) {
				t.Fatalf("JEPSEN_FAULTS=%q: %q is not a fault here; use kill, pause and (with network namespaces) partition, comma-separated", f, k)
			}
		}
	}
	deadline := began.Add(cfg.maxRun)
	faults := 0
	var nemesisErr error
	for (faults < cfg.faults || done.Load() < int64(cfg.ops)) && time.Now().Before(deadline) {
		if faults >= cfg.faults {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		time.Sleep(time.Second) // some operations on the whole cluster first
		kind := kinds[faults%len(kinds)]
		victim := rng.Intn(cfg.nodes)
		hold := cfg.hold[0] + time.Duration(rng.Int63n(int64(cfg.hold[1]-cfg.hold[0])+1))
		f := Fault{What: fmt.Sprintf("%s node-%d for %s", kind, victim, hold.Round(time.Millisecond)), Start: rec.Now()}
		switch kind {
		case "kill":
			c.nodes[victim].down.Store(true)
			c.kill(victim)
			time.Sleep(hold)
			c.start(victim)
		case "pause":
			c.pause(victim, true)
			time.Sleep(hold)
			c.pause(victim, false)
		case "partition":
			t0 := time.Now()
			if err := c.partition(victim, true); err != nil {
				nemesisErr = err
			}
			cut := time.Since(t0)
			time.Sleep(hold)
			t0 = time.Now()
			if err := c.partition(victim, false); err != nil && nemesisErr == nil {
				nemesisErr = err
			}
			if heal := time.Since(t0); cut+heal > 2*time.Second {
				t.Logf("the routes took %s to add and %s to remove", cut.Round(time.Millisecond), heal.Round(time.Millisecond))
			}
		}
		healed := time.Now()
		if err := c.waitReady(90*time.Second, probe); err != nil {
			nemesisErr = fmt.Errorf("after %s: %v", f.What, err)
		}
		c.nodes[victim].down.Store(false)
		f.End = rec.Now()
		rec.AddFault(f)
		faults++
		t.Logf("fault %d: %s; whole again %s after the heal; %d operations so far", faults, f.What,
			time.Since(healed).Round(time.Millisecond), done.Load())
		if nemesisErr != nil {
			break
		}
	}
	stop.Store(true)
	wg.Wait()
	if nemesisErr != nil {
		t.Errorf("nemesis: %v", nemesisErr)
	}

	// Final reads: every key through every node, on the whole cluster.
	// They must all answer (an acknowledged write that reads as an error
	// is lost) and are checked with the rest.
	if err := c.waitReady(60*time.Second, probe); err != nil {
		t.Errorf("final: %v", err)
	}
	final := 0
	type finalClient struct {
		cl   opClient
		node int
		via  string
	}
	var fcs []finalClient
	for i, cl := range clients {
		fcs = append(fcs, finalClient{cl, i, ""})
	}
	for i := 0; i < cfg.fuseNodes; i++ {
		fc := &fsClient{nd: c.nodes[i]}
		defer fc.close()
		fcs = append(fcs, finalClient{fc, i, "fuse"})
	}
	for j, fc := range fcs {
		for _, k := range keys {
			in := Input{Kind: Get, Key: k, Node: fc.node, Via: fc.via}
			octx, ocancel := context.WithTimeout(context.Background(), 10*time.Second)
			call := rec.Call()
			out, err := fc.cl.do(octx, in)
			ocancel()
			if err != nil {
				t.Errorf("final read of %s through node-%d %s: %v", k, fc.node, fc.via, err)
				continue
			}
			rec.Return(nWorkers*1000+j, call, in, out)
			final++
		}
	}
	ran := time.Since(began)

	ops := rec.Operations()
	st := Count(ops)
	t.Logf("history: %s; %d faults; %d requests refused by a down node (not sent, left out); %d final reads; run took %s",
		st, faults, tl.notSent, final, ran.Round(time.Millisecond))
	if len(tl.getErrors) > 0 {
		var lines []string
		for k, v := range tl.getErrors {
			lines = append(lines, fmt.Sprintf("  %4d × %s", v, k))
		}
		sort.Strings(lines)
		t.Logf("failed gets (left out of the history):\n%s", strings.Join(lines, "\n"))
	}
	if faults < cfg.faults || st.Ops < cfg.ops {
		t.Errorf("the run ended after %s with %d of %d faults and %d of %d operations", ran.Round(time.Second), faults, cfg.faults, st.Ops, cfg.ops)
	}

	artifacts := artifactDir(fmt.Sprintf("jepsen-%d", seed))
	checkStart := time.Now()
	// The cluster's work is done: stop it so that the check has the CPUs.
	c.close()
	res, badKeys, files, err := Check(ops, rec.Faults(), cfg.checkTimeout, artifacts)
	if err != nil {
		t.Error(err)
	}
	if res != porcupine.Ok {
		// Keep the faults and the nodes' logs with the history.
		if b, err := json.MarshalIndent(rec.Faults(), "", " "); err == nil {
			os.WriteFile(filepath.Join(artifacts, "faults.json"), b, 0o644)
		}
		files = append(append(files, filepath.Join(artifacts, "faults.json")), c.keepLogs(artifacts)...)
	}
	t.Logf("porcupine: %s in %s", res, time.Since(checkStart).Round(time.Millisecond))
	switch res {
	case porcupine.Ok:
	case porcupine.Unknown:
		t.Errorf("the checker did not finish within %s per key for keys %v (history kept: %v)", cfg.checkTimeout, badKeys, files)
	default:
		t.Errorf("NOT linearizable: keys %v; history and visualization: %v", badKeys, files)
	}
}

// describeEmptyRead describes a get that answered an empty body.
func describeEmptyRead(c *cluster, cl *s3client, in Input, now int64) string {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	info, err := cl.mc.StatObject(ctx, bucket, in.Key, minio.StatObjectOptions{})
	fi, ferr := os.Stat(filepath.Join(c.backing, bucket, in.Key))
	var size int64 = -1
	if ferr == nil {
		size = fi.Size()
	}
	return fmt.Sprintf("at %.3fs a get of %s through node-%d answered an empty body; HEAD there: size %d etag %s (err %v); the backing file: %d bytes (err %v)",
		float64(now)/1e9, in.Key, in.Node, info.Size, info.ETag, err, size, ferr)
}

// waitNode0 waits for node 0 to make the cluster (its join token).
func waitNode0(c *cluster) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, err := c.client(0).Status(ctx)
		cancel()
		_, terr := os.Stat(filepath.Join(c.dir, c.nodes[0].name, "data", "join-token"))
		if err == nil && st.Ready && terr == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, _ := os.ReadFile(filepath.Join(c.dir, c.nodes[0].name, "engined.log"))
	return fmt.Errorf("node-0 did not make the cluster within 30s:\n%s", bytes.TrimSpace(b))
}
