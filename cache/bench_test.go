package cache

import (
	"net"
	"strconv"
	"testing"

	"github.com/valyala/fasthttp"
)

// BenchmarkHit measures the handler on memory hits (no network): the
// per-request CPU and garbage the edge adds to what the kernel costs.
func BenchmarkHit(b *testing.B) {
	for _, tc := range []struct {
		size int
		uri  string
	}{{1 << 10, "/o"}, {64 << 10, "/o"}, {1 << 10, "/o?x-id=GetObject&versionId=v1"}} {
		size := tc.size
		name := sizeName(size)
		if tc.uri != "/o" {
			name += "-query" // a key made from the query's kept parameters
		}
		b.Run(name, func(b *testing.B) {
			body := randomBytes(1, size)
			o := startOrigin(b, serveObjects(nil, map[string]*object{"/o": {body: body, contentType: "application/octet-stream", etag: `"e"`}}))
			e := startEdge(b, edgeConfig(o.URL()))
			var req fasthttp.Request
			req.SetRequestURI(tc.uri)
			var ctx fasthttp.RequestCtx
			ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, nil)
			e.handle(&ctx) // the fill
			waitFills(b, e)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				ctx.Response.Reset()
				e.handle(&ctx)
				if ctx.Response.StatusCode() != fasthttp.StatusOK || len(ctx.Response.Body()) != size {
					b.Fatalf("status %d, %d bytes", ctx.Response.StatusCode(), len(ctx.Response.Body()))
				}
			}
		})
	}
}

func sizeName(n int) string {
	if n >= 1<<10 {
		return strconv.Itoa(n>>10) + "KiB"
	}
	return "B"
}
