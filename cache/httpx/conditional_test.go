package httpx

import (
	"testing"
	"time"
)

func TestETagMatch(t *testing.T) {
	tests := []struct {
		list, etag   string
		strong, weak bool // expected results of the two comparisons
	}{
		// RFC 9110 §8.8.3.2 comparison table.
		{`W/"1"`, `W/"1"`, false, true},
		{`W/"1"`, `W/"2"`, false, false},
		{`W/"1"`, `"1"`, false, true},
		{`"1"`, `"1"`, true, true},

		{`*`, `"x"`, true, true},
		{` * `, ``, true, true},
		{`"a", "b", "c"`, `"b"`, true, true},
		{`"a","b" ,"c"`, `"c"`, true, true},
		{`,, "a" ,`, `"a"`, true, true},
		{`"a,b"`, `"a,b"`, true, true}, // commas inside an opaque-tag
		{`"a,b"`, `"a"`, false, false},
		{`"a"`, `"A"`, false, false},   // case-sensitive
		{`w/"a"`, `"a"`, false, false}, // "W/" is case-sensitive: invalid list
		{`"a"`, `w/"a"`, false, false}, // invalid etag
		{`"a"`, ``, false, false},
		{`"a"`, `a`, false, false}, // unquoted etag is invalid
		{`a`, `a`, false, false},
		{`"a`, `"a"`, false, false},
		{`"a" "b"`, `"b"`, false, false}, // malformed list: stop
		{`garbage, "a"`, `"a"`, false, false},
		{`"a", garbage`, `"a"`, true, true},  // matched before the garbage
		{`"a b"`, `"a b"`, false, false},     // SP is not an etagc
		{"\"\x80\"", "\"\x80\"", true, true}, // obs-text is
		{`""`, `""`, true, true},
		{``, `"a"`, false, false},
	}
	for _, tt := range tests {
		if got := ETagMatch(tt.list, tt.etag, false); got != tt.strong {
			t.Errorf("ETagMatch(%q, %q, strong) = %v", tt.list, tt.etag, got)
		}
		if got := ETagMatch(tt.list, tt.etag, true); got != tt.weak {
			t.Errorf("ETagMatch(%q, %q, weak) = %v", tt.list, tt.etag, got)
		}
	}
}

var (
	lastMod    = time.Date(1994, 11, 6, 8, 49, 37, 0, time.UTC)
	lastModStr = "Sun, 06 Nov 1994 08:49:37 GMT"
	before     = "Sun, 06 Nov 1994 08:49:36 GMT"
	after      = "Sun, 06 Nov 1994 08:49:38 GMT"
)

func TestParseHTTPDate(t *testing.T) {
	for _, s := range []string{
		"Sun, 06 Nov 1994 08:49:37 GMT",  // IMF-fixdate
		"Sunday, 06-Nov-94 08:49:37 GMT", // RFC 850
		"Sun Nov  6 08:49:37 1994",       // asctime
		" Sun, 06 Nov 1994 08:49:37 GMT ",
	} {
		if got, ok := ParseHTTPDate(s); !ok || !got.Equal(lastMod) {
			t.Errorf("ParseHTTPDate(%q) = %v, %v", s, got, ok)
		}
	}
	for _, s := range []string{"", "0", "-1", "Sun, 06 Nov 1994 08:49:37 +0000", "tomorrow",
		"Sun, 06 Nov 1994 08:49:37 GMT, Mon, 07 Nov 1994 08:49:37 GMT"} {
		if got, ok := ParseHTTPDate(s); ok {
			t.Errorf("ParseHTTPDate(%q) = %v, want invalid", s, got)
		}
	}
	if got := FormatHTTPDate(lastMod.In(time.FixedZone("X", 3600))); got != lastModStr {
		t.Errorf("FormatHTTPDate = %q", got)
	}
	if got := string(AppendHTTPDate([]byte("d: "), lastMod)); got != "d: "+lastModStr {
		t.Errorf("AppendHTTPDate = %q", got)
	}
}

func TestIfRangeMatches(t *testing.T) {
	tests := []struct {
		ifRange, etag string
		lm            time.Time
		want          bool
	}{
		{`"v1"`, `"v1"`, lastMod, true},
		{` "v1" `, `"v1"`, time.Time{}, true},
		{`"v1"`, `"v2"`, lastMod, false},
		{`"v1"`, `W/"v1"`, lastMod, false}, // strong comparison
		{`W/"v1"`, `W/"v1"`, lastMod, false},
		{`W/"v1"`, `"v1"`, lastMod, false},
		{`"v1"`, ``, lastMod, false},
		{`"v1", "v2"`, `"v1"`, lastMod, false}, // a single entity-tag only
		{lastModStr, `"v1"`, lastMod, true},
		{lastModStr, ``, lastMod.Add(400 * time.Millisecond), true}, // second resolution
		{"Sunday, 06-Nov-94 08:49:37 GMT", ``, lastMod, true},
		{before, ``, lastMod, false}, // exact match only
		{after, ``, lastMod, false},
		{lastModStr, ``, time.Time{}, false},
		{"garbage", `"garbage"`, lastMod, false},
		{"", `"v1"`, lastMod, false},
	}
	for _, tt := range tests {
		if got := IfRangeMatches(tt.ifRange, tt.etag, tt.lm); got != tt.want {
			t.Errorf("IfRangeMatches(%q, %q, %v) = %v, want %v", tt.ifRange, tt.etag, tt.lm, got, tt.want)
		}
	}
}

func TestEvaluate(t *testing.T) {
	const etag = `"v1"`
	tests := []struct {
		name                      string
		method, im, inm, ims, ius string
		etag                      string
		lm                        time.Time
		want                      int
	}{
		{"no conditions", "GET", "", "", "", "", etag, lastMod, 0},

		// If-Match (strong).
		{"IM match", "PUT", `"v1"`, "", "", "", etag, lastMod, 0},
		{"IM star", "PUT", `*`, "", "", "", etag, lastMod, 0},
		{"IM list", "GET", `"v0", "v1"`, "", "", "", etag, lastMod, 0},
		{"IM mismatch", "GET", `"v2"`, "", "", "", etag, lastMod, 412},
		{"IM weak never matches", "GET", `W/"v1"`, "", "", "", etag, lastMod, 412},
		{"IM against weak etag", "GET", `"v1"`, "", "", "", `W/"v1"`, lastMod, 412},
		{"IM no etag", "GET", `"v1"`, "", "", "", "", lastMod, 412},

		// If-Unmodified-Since, and If-Match beating it.
		{"IUS unmodified", "PUT", "", "", "", lastModStr, etag, lastMod, 0},
		{"IUS later", "PUT", "", "", "", after, etag, lastMod, 0},
		{"IUS modified", "PUT", "", "", "", before, etag, lastMod, 412},
		{"IUS on GET", "GET", "", "", "", before, etag, lastMod, 412},
		{"IUS invalid ignored", "PUT", "", "", "", "yesterday", etag, lastMod, 0},
		{"IUS no Last-Modified", "PUT", "", "", "", before, etag, time.Time{}, 0},
		{"IM beats IUS (pass)", "PUT", `"v1"`, "", "", before, etag, lastMod, 0},
		{"IM beats IUS (fail)", "PUT", `"v2"`, "", "", after, etag, lastMod, 412},

		// If-None-Match (weak).
		{"INM match GET", "GET", "", `"v1"`, "", "", etag, lastMod, 304},
		{"INM match HEAD", "HEAD", "", `"v1"`, "", "", etag, lastMod, 304},
		{"INM weak match", "GET", "", `W/"v1"`, "", "", etag, lastMod, 304},
		{"INM weak etag", "GET", "", `"v1"`, "", "", `W/"v1"`, lastMod, 304},
		{"INM star", "GET", "", `*`, "", "", etag, lastMod, 304},
		{"INM list", "GET", "", `"a", "b", W/"v1"`, "", "", etag, lastMod, 304},
		{"INM mismatch", "GET", "", `"v2"`, "", "", etag, lastMod, 0},
		{"INM match PUT", "PUT", "", `"v1"`, "", "", etag, lastMod, 412},
		{"INM star POST", "POST", "", `*`, "", "", etag, lastMod, 412},
		{"INM no etag", "GET", "", `"v1"`, "", "", "", lastMod, 0},

		// If-Modified-Since, and If-None-Match beating it.
		{"IMS not modified", "GET", "", "", lastModStr, "", etag, lastMod, 304},
		{"IMS later", "GET", "", "", after, "", etag, lastMod, 304},
		{"IMS modified", "GET", "", "", before, "", etag, lastMod, 0},
		{"IMS HEAD", "HEAD", "", "", lastModStr, "", etag, lastMod, 304},
		{"IMS ignored for POST", "POST", "", "", lastModStr, "", etag, lastMod, 0},
		{"IMS ignored for PUT", "PUT", "", "", after, "", etag, lastMod, 0},
		{"IMS invalid", "GET", "", "", "last week", "", etag, lastMod, 0},
		{"IMS no Last-Modified", "GET", "", "", after, "", etag, time.Time{}, 0},
		{"IMS sub-second Last-Modified", "GET", "", "", lastModStr, "", etag, lastMod.Add(999 * time.Millisecond), 304},
		{"INM beats IMS (mismatch)", "GET", "", `"v2"`, lastModStr, "", etag, lastMod, 0},
		{"INM beats IMS (match)", "GET", "", `"v1"`, before, "", etag, lastMod, 304},

		// Combinations.
		{"IM fails before INM", "GET", `"v2"`, `"v1"`, "", "", etag, lastMod, 412},
		{"IM passes then INM", "GET", `"v1"`, `"v1"`, "", "", etag, lastMod, 304},
		{"IUS fails before IMS", "GET", "", "", lastModStr, before, etag, lastMod, 412},
		{"method case-sensitive", "get", "", `"v1"`, "", "", etag, lastMod, 412},
	}
	for _, tt := range tests {
		if got := Evaluate(tt.method, tt.im, tt.inm, tt.ims, tt.ius, tt.etag, tt.lm); got != tt.want {
			t.Errorf("%s: Evaluate = %d, want %d", tt.name, got, tt.want)
		}
	}
}
