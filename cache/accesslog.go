package cache

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
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
	b = appendRedactedURI(b, ctx.RequestURI())
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

// secretParams are the query parameters whose values are credentials
// (presigned URLs: SigV4 and SigV2): logs show them as "REDACTED".
var secretParams = []string{"X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token", "Signature"}

// appendRedactedURI appends uri as appendSafe does, with the values of
// secretParams (named in any case) replaced by REDACTED.
func appendRedactedURI(b, uri []byte) []byte {
	q := bytes.IndexByte(uri, '?')
	if q < 0 {
		return appendSafe(b, uri)
	}
	b = appendSafe(b, uri[:q+1])
	for rest := uri[q+1:]; ; {
		param := rest
		amp := bytes.IndexByte(rest, '&')
		if amp >= 0 {
			param, rest = rest[:amp], rest[amp+1:]
		}
		name := param
		if eq := bytes.IndexByte(param, '='); eq >= 0 {
			name = param[:eq]
		}
		if isSecretParam(name) {
			b = appendSafe(b, name)
			b = append(b, "=REDACTED"...)
		} else {
			b = appendSafe(b, param)
		}
		if amp < 0 {
			return b
		}
		b = append(b, '&')
	}
}

// isSecretParam reports whether a query parameter's name (as sent, maybe
// percent-encoded) is one of secretParams.
func isSecretParam(name []byte) bool {
	for _, p := range secretParams {
		if bytes.EqualFold(name, []byte(p)) {
			return true
		}
	}
	// A name that hides a secret parameter behind percent-encoding.
	if bytes.IndexByte(name, '%') >= 0 {
		dec, err := url.QueryUnescape(string(name))
		if err == nil {
			for _, p := range secretParams {
				if strings.EqualFold(dec, p) {
					return true
				}
			}
		}
	}
	return false
}

// redactURI is uri with secretParams' values REDACTED, for logs.
func redactURI(uri string) string {
	if !strings.Contains(uri, "?") {
		return uri
	}
	return string(appendRedactedURI(nil, []byte(uri)))
}

// OpenAccessLog opens (creating, appending) the access log file at path
// with mode 0640, and narrows an existing file's mode to 0640: the log
// holds client addresses and request paths.
func OpenAccessLog(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("cache: access log: %w", err)
	}
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&^0o640 != 0 {
		if err := f.Chmod(fi.Mode().Perm() & 0o640); err != nil {
			f.Close()
			return nil, fmt.Errorf("cache: access log %s: narrowing its mode to 0640: %w", path, err)
		}
	}
	return f, nil
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
