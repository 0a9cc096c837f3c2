package s3bench

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"engine/bench/internal/benchfmt"
)

// payload is the bytes of every object of one size: variants objects of
// distinct contents, each a window of one random buffer at a different
// offset, so that memory stays at one object plus a few KiB per size.
// Both targets get the same bytes (the buffer comes from a fixed seed).
type payload struct {
	size  int64
	buf   []byte
	etags []string // hex MD5 of each variant
}

const (
	variants = 64
	stride   = 64
)

func newPayload(size int64) *payload {
	p := &payload{size: size, buf: make([]byte, size+variants*stride)}
	r := rand.NewChaCha8([32]byte{'s', '3', 'b', 'e', 'n', 'c', 'h', byte(size), byte(size >> 8), byte(size >> 16), byte(size >> 24)})
	r.Read(p.buf)
	p.etags = make([]string, variants)
	for v := range variants {
		sum := md5.Sum(p.variant(v))
		p.etags[v] = hex.EncodeToString(sum[:])
	}
	return p
}

func (p *payload) variant(v int) []byte {
	v %= variants
	return p.buf[v*stride : int64(v*stride)+p.size]
}

// fillKey is the i-th object the GET runs read.
func fillKey(size int64, i int) string {
	return fmt.Sprintf("get/%s/%06d", benchfmt.SizeLabel(size), i)
}

// putKey is worker w's n-th object of a PUT run.
func putKey(prefix string, w int, n int64) string { return fmt.Sprintf("%s/w%03d/%07d", prefix, w, n) }

// putVariant is the contents of worker w's n-th object.
func putVariant(w int, n int64) int { return int((int64(w)*31 + n) % variants) }

// idleConns is how many idle connections a target's transport keeps: at
// least 64, and the most clients of any run.
func idleConns(conc []int) int {
	n := 64
	for _, c := range conc {
		n = max(n, c)
	}
	return n
}

// newClient is a minio-go client for addr with its own transport, which
// keeps idle connections for conns clients. It never retries: a failed
// request is an error of the run.
func newClient(addr string, conns int) (*minio.Client, *http.Transport, error) {
	tr := &http.Transport{
		Proxy: nil, // loopback: never through a proxy from the environment
		DialContext: (&net.Dialer{
			Timeout:   30 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:          2 * conns,
		MaxIdleConnsPerHost:   conns,
		ResponseHeaderTimeout: 2 * time.Minute,
		IdleConnTimeout:       2 * time.Minute,
		ExpectContinueTimeout: 10 * time.Second,
		DisableCompression:    true,
	}
	c, err := minio.New(addr, &minio.Options{
		Creds:        credentials.NewStaticV4(accessKey, secretKey, ""),
		Secure:       false,
		Transport:    tr,
		BucketLookup: minio.BucketLookupPath,
		Region:       region,
		MaxRetries:   1,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("minio client for %s: %w", addr, err)
	}
	return c, tr, nil
}

func putOptions(mode string) minio.PutObjectOptions {
	return minio.PutObjectOptions{
		ContentType:          "application/octet-stream",
		DisableContentSha256: mode == Unsigned,
		DisableMultipart:     true,
	}
}

// put writes body as key and checks the answer.
func put(ctx context.Context, c *minio.Client, key string, body []byte, etag, mode string) error {
	info, err := c.PutObject(ctx, bucket, key, bytes.NewReader(body), int64(len(body)), putOptions(mode))
	if err != nil {
		return err
	}
	if info.ETag != etag {
		return fmt.Errorf("PUT %s: ETag %q, want the MD5 %q", key, info.ETag, etag)
	}
	return nil
}

// get reads key into buf and checks it against want.
func get(ctx context.Context, c *minio.Core, key string, buf, want []byte, etag string) error {
	rc, info, _, err := c.GetObject(ctx, bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return err
	}
	defer rc.Close()
	n, err := io.ReadFull(rc, buf[:len(want)])
	if err != nil {
		return fmt.Errorf("GET %s: read %d of %d bytes: %w", key, n, len(want), err)
	}
	var one [1]byte
	if m, _ := rc.Read(one[:]); m > 0 {
		return fmt.Errorf("GET %s: more than the %d bytes written", key, len(want))
	}
	if !bytes.Equal(buf[:n], want) {
		return fmt.Errorf("GET %s: the bytes differ from those written", key)
	}
	if strings.Trim(info.ETag, `"`) != etag {
		return fmt.Errorf("GET %s: ETag %q, want the MD5 %q", key, info.ETag, etag)
	}
	return nil
}

// fill writes the objects GET runs read, 16 at a time; untimed.
func fill(ctx context.Context, c *minio.Client, p *payload, objects int, mode string) error {
	var next atomic.Int64
	errs := make([]error, 16)
	var wg sync.WaitGroup
	for w := range errs {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= objects || ctx.Err() != nil {
					return
				}
				if err := put(ctx, c, fillKey(p.size, i), p.variant(i), p.etags[i%variants], mode); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errors.Join(errs...)
}

// deleteKeys deletes what a PUT run wrote: attempts[w] objects of worker
// w under prefix; untimed.
func deleteKeys(ctx context.Context, c *minio.Client, prefix string, attempts []int64) error {
	ch := make(chan minio.ObjectInfo, 1000)
	go func() {
		defer close(ch)
		for w, n := range attempts {
			for i := range n {
				select {
				case ch <- minio.ObjectInfo{Key: putKey(prefix, w, i)}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	var first error
	var failed int
	for e := range c.RemoveObjects(ctx, bucket, ch, minio.RemoveObjectsOptions{}) {
		failed++
		if first == nil {
			first = fmt.Errorf("%s: %w", e.ObjectName, e.Err)
		}
	}
	if first != nil {
		return fmt.Errorf("%d objects not deleted; first: %w", failed, first)
	}
	return ctx.Err()
}

// loadSpec is one run of the load generator.
type loadSpec struct {
	op       string
	pay      *payload
	conc     int
	duration time.Duration
	maxOps   int64
	objects  int    // GET: keys 0..objects-1 of fillKey
	prefix   string // PUT: keys under it
	payload  string // Streaming or Unsigned
	seed     uint64
	// byBytes: maxOps is the PUT byte limit's, not the operation limit.
	byBytes bool
}

// maxConsecutiveErrors ends a client's loop: a server that fails every
// request would otherwise be hammered at full speed.
const maxConsecutiveErrors = 10

// worker is one client's share of a run.
type worker struct {
	ops, errs, attempts int64
	firstErr            error
	lat                 []time.Duration
	stop                string
}

// runLoad runs spec against c: conc clients, each in a loop of one
// request at a time, until the duration is over or maxOps operations
// were started. It returns the figures, and for a PUT how many keys
// each client tried to write.
func runLoad(ctx context.Context, c *minio.Client, spec loadSpec) (Sample, []int64) {
	ws := make([]worker, spec.conc)
	core := &minio.Core{Client: c}
	var next atomic.Int64
	start := make(chan struct{})
	var deadline time.Time
	var wg, warm sync.WaitGroup
	for w := range ws {
		wg.Add(1)
		warm.Add(1)
		go func() {
			defer wg.Done()
			st := &ws[w]
			rng := rand.New(rand.NewPCG(spec.seed, uint64(w)))
			var buf []byte
			if spec.op == Get {
				buf = make([]byte, spec.pay.size)
			}
			// Open this client's connection before the clock starts.
			_, err := c.StatObject(ctx, bucket, fillKey(spec.pay.size, w%spec.objects), minio.StatObjectOptions{})
			warm.Done()
			if err != nil && ctx.Err() != nil {
				st.stop = "interrupted"
				return
			}
			if err != nil {
				st.errs, st.firstErr, st.stop = 1, fmt.Errorf("warm-up HEAD: %w", err), "errors"
				return
			}
			<-start
			consecutive := 0
			for {
				if ctx.Err() != nil {
					st.stop = "interrupted"
					return
				}
				if !time.Now().Before(deadline) {
					st.stop = "time"
					return
				}
				if next.Add(1) > spec.maxOps {
					st.stop = "ops"
					return
				}
				t0 := time.Now()
				var err error
				switch spec.op {
				case Put:
					v := putVariant(w, st.attempts)
					key := putKey(spec.prefix, w, st.attempts)
					st.attempts++
					err = put(ctx, c, key, spec.pay.variant(v), spec.pay.etags[v], spec.payload)
				case Get:
					i := rng.IntN(spec.objects)
					err = get(ctx, core, fillKey(spec.pay.size, i), buf, spec.pay.variant(i), spec.pay.etags[i%variants])
				}
				d := time.Since(t0)
				if err != nil {
					if ctx.Err() != nil {
						st.stop = "interrupted"
						return
					}
					st.errs++
					if st.firstErr == nil {
						st.firstErr = err
					}
					if consecutive++; consecutive >= maxConsecutiveErrors {
						st.stop = "errors"
						return
					}
					continue
				}
				consecutive = 0
				st.ops++
				st.lat = append(st.lat, d)
			}
		}()
	}
	warm.Wait()
	t0 := time.Now()
	deadline = t0.Add(spec.duration)
	close(start)
	wg.Wait()
	elapsed := time.Since(t0)

	var s Sample
	var lat []time.Duration
	attempts := make([]int64, len(ws))
	stops := map[string]int{}
	for i := range ws {
		st := &ws[i]
		s.Ops += st.ops
		s.Errors += st.errs
		if st.firstErr != nil && s.FirstError == "" {
			s.FirstError = st.firstErr.Error()
		}
		lat = append(lat, st.lat...)
		attempts[i] = st.attempts
		stops[st.stop]++
	}
	// The run stopped for the reason most clients did.
	for _, why := range []string{"interrupted", "errors", "ops", "time"} {
		if stops[why] > stops[s.Stop] {
			s.Stop = why
		}
	}
	if s.Stop == "ops" && spec.byBytes {
		s.Stop = "bytes"
	}
	s.Seconds = elapsed.Seconds()
	s.Bytes = s.Ops * spec.pay.size
	if s.Seconds > 0 {
		s.OpsPerSec = float64(s.Ops) / s.Seconds
		s.MBps = float64(s.Bytes) / s.Seconds / 1e6
	}
	s.P50Ms, s.P99Ms = percentile(lat, 50), percentile(lat, 99)
	return s, attempts
}

// percentile is the p-th percentile of lat (nearest rank), in ms.
func percentile(lat []time.Duration, p int) float64 {
	if len(lat) == 0 {
		return 0
	}
	lat = slices.Clone(lat)
	slices.Sort(lat)
	i := max(0, (len(lat)*p+99)/100-1)
	return float64(lat[i]) / float64(time.Millisecond)
}
