package cache

import (
	"bufio"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// accessLog writes one line per request, buffered and flushed every
// second (and at close):
//
//	REMOTE - - [TIME] "METHOD URI PROTO" STATUS BYTES "REFERER" "USER-AGENT" CACHE MICROSECONDS
//
// the combined log format plus the cache result (hit, miss, stale,
// revalidated, bypass, error, admin) and the time to the response head.
type accessLog struct {
	mu   sync.Mutex
	w    *bufio.Writer
	stop chan struct{}
	done chan struct{}
	buf  []byte
}

func newAccessLog(w io.Writer) *accessLog {
	l := &accessLog{w: bufio.NewWriterSize(w, 64<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-t.C:
				l.mu.Lock()
				l.w.Flush()
				l.mu.Unlock()
			}
		}
	}()
	return l
}

func (l *accessLog) log(ctx *fasthttp.RequestCtx, rs *reqState, start time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buf[:0]
	b = append(b, ctx.RemoteIP().String()...)
	b = append(b, " - - ["...)
	b = start.AppendFormat(b, "02/Jan/2006:15:04:05 -0700")
	b = append(b, "] \""...)
	b = append(b, ctx.Method()...)
	b = append(b, ' ')
	b = appendSafe(b, ctx.RequestURI())
	b = append(b, ' ')
	b = append(b, ctx.Request.Header.Protocol()...)
	b = append(b, "\" "...)
	b = strconv.AppendInt(b, int64(ctx.Response.StatusCode()), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, bodyLen(&ctx.Response), 10)
	b = append(b, " \""...)
	b = appendSafe(b, ctx.Request.Header.Referer())
	b = append(b, "\" \""...)
	b = appendSafe(b, ctx.Request.Header.UserAgent())
	b = append(b, "\" "...)
	b = append(b, rs.result...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, time.Since(start).Microseconds(), 10)
	b = append(b, '\n')
	l.w.Write(b)
	l.buf = b
}

// appendSafe appends s with quotes, backslashes and control bytes escaped.
func appendSafe(b, s []byte) []byte {
	const hex = "0123456789abcdef"
	for _, c := range s {
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x7f {
			b = append(b, '\\', 'x', hex[c>>4], hex[c&15])
			continue
		}
		b = append(b, c)
	}
	return b
}

func (l *accessLog) close() {
	close(l.stop)
	<-l.done
	l.mu.Lock()
	l.w.Flush()
	l.mu.Unlock()
}
