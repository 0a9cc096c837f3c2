package jepsen

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

// TestS3ReadAfterRestart isolates the violation TestS3Linearizable finds
// after a node restart: six writers put new keys through the three nodes
// and read each back through every node at once (close-to-open: an
// acknowledged PUT must read back everywhere) while node-2 is killed with
// SIGKILL and restarted. Every read that answers must return the value;
// a read that answers wrongly is read again 8 s after the run, to tell a
// window from a permanent loss.
func TestS3ReadAfterRestart(t *testing.T) {
	c := newCluster(t, 3)
	defer c.close()
	c.start(0)
	if err := waitNode0(c); err != nil {
		t.Fatal(err)
	}
	c.start(1)
	c.start(2)
	cls := make([]*s3client, 3)
	for i := range cls {
		cls[i] = newS3Client(t, c.nodes[i].s3)
	}
	ctx := context.Background()
	probe := func() error {
		for i, cl := range cls {
			if _, err := cl.mc.BucketExists(ctx, bucket); err != nil {
				return fmt.Errorf("S3 of node-%d: %v", i, err)
			}
		}
		return nil
	}
	if err := c.waitReady(60*time.Second, probe); err != nil {
		t.Fatal(err)
	}
	if err := cls[0].mc.MakeBucket(ctx, bucket, minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	type bad struct {
		key, value string
		writer     int
		reader     int
		done, at   time.Duration
		got        Output
	}
	var (
		mu    sync.Mutex
		bads  []bad
		reads atomic.Int64
		stop  atomic.Bool
		wg    sync.WaitGroup
	)
	start := time.Now()
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				key, v := fmt.Sprintf("r-%d-%d", w, i), fmt.Sprintf("w%d.%d", w, i)
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := cls[w%3].do(cctx, Input{Kind: Put, Key: key, Value: v})
				cancel()
				if err != nil {
					time.Sleep(100 * time.Millisecond) // the node is down or resyncing
					continue
				}
				done := time.Since(start)
				for r := 0; r < 3; r++ {
					cctx, cancel = context.WithTimeout(ctx, 5*time.Second)
					out, err := cls[r].do(cctx, Input{Kind: Get, Key: key})
					cancel()
					if err != nil {
						continue // not an answer
					}
					reads.Add(1)
					if !out.Present || out.Value != v {
						mu.Lock()
						bads = append(bads, bad{key, v, w % 3, r, done, time.Since(start), out})
						mu.Unlock()
					}
				}
			}
		}(w)
	}
	time.Sleep(time.Second)
	c.kill(2)
	killed := time.Since(start)
	time.Sleep(3 * time.Second)
	c.start(2)
	restarted := time.Since(start)
	if err := c.waitReady(60*time.Second, probe); err != nil {
		t.Error(err)
	}
	time.Sleep(3 * time.Second)
	stop.Store(true)
	wg.Wait()
	t.Logf("node-2 killed at %.3fs, restarted at %.3fs; %d reads answered", killed.Seconds(), restarted.Seconds(), reads.Load())
	if len(bads) == 0 {
		return
	}
	time.Sleep(8 * time.Second)
	still := 0
	byPair := map[string]int{}
	first, last := bads[0].at, bads[0].at
	for _, b := range bads {
		first, last = min(first, b.at), max(last, b.at)
		byPair[fmt.Sprintf("written through node-%d, read through node-%d", b.writer, b.reader)]++
		out, err := cls[b.reader].do(ctx, Input{Kind: Get, Key: b.key})
		if err != nil || !out.Present || out.Value != b.value {
			still++
		}
	}
	var pairs []string
	for p, n := range byPair {
		pairs = append(pairs, fmt.Sprintf("  %4d %s", n, p))
	}
	sort.Strings(pairs)
	var ex []string
	for _, b := range bads[:min(5, len(bads))] {
		ex = append(ex, fmt.Sprintf("  put %s=%s through node-%d answered at %.3fs; get through node-%d at %.3fs: present=%v value=%q",
			b.key, b.value, b.writer, b.done.Seconds(), b.reader, b.at.Seconds(), b.got.Present, b.got.Value))
	}
	t.Errorf("%d of %d reads after an acknowledged PUT did not return its value (from %.3fs to %.3fs); %d still wrong 8 s later:\n%s\nfirst ones:\n%s\nnode logs (test start %s): %v",
		len(bads), reads.Load(), first.Seconds(), last.Seconds(), still, strings.Join(pairs, "\n"), strings.Join(ex, "\n"),
		start.UTC().Format(time.RFC3339Nano), c.keepLogs(artifactDir(fmt.Sprintf("jepsen-restart-%d", start.Unix()))))
}
