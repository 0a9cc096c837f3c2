package httpx

import "testing"

func TestNegotiate(t *testing.T) {
	brGzip := []string{"br", "gzip"}
	tests := []struct {
		ae      string
		offered []string
		want    string
		ok      bool
	}{
		// Absent / empty header: identity.
		{"", brGzip, "identity", true},
		{"  ", brGzip, "identity", true},

		// Server preference breaks ties.
		{"gzip, deflate, br", brGzip, "br", true},
		{"gzip, deflate, br, zstd", []string{"zstd", "br", "gzip"}, "zstd", true},
		{"gzip", brGzip, "gzip", true},
		{"br", brGzip, "br", true},
		{"deflate", brGzip, "identity", true}, // identity implicitly acceptable

		// q-values.
		{"br;q=0.5, gzip", brGzip, "gzip", true},
		{"br;q=0.5, gzip;q=0.8", brGzip, "gzip", true},
		{"br;q=0.8, gzip;q=0.8", brGzip, "br", true},
		{"br;q=0.001, gzip;q=0", brGzip, "br", true},
		{"br;q=0, gzip;q=0", brGzip, "identity", true},
		{"gzip;q=1.0", brGzip, "gzip", true},
		{"gzip;q=1.000", brGzip, "gzip", true},
		{"br ; q=0.9 , gzip ;Q=0.95", brGzip, "gzip", true},
		{"gzip;q=0.5, identity;q=0.6", brGzip, "identity", true},
		{"gzip;q=0.5, identity;q=0.5", brGzip, "gzip", true}, // identity is last on ties
		{"gzip;level=9;q=0.5, br;q=0.4", brGzip, "gzip", true},

		// Invalid q: the element is ignored.
		{"br;q=2, gzip", brGzip, "gzip", true},
		{"br;q=1.1, gzip;q=0.1", brGzip, "gzip", true},
		{"br;q=0.5000, gzip;q=0.1", brGzip, "gzip", true},
		{"br;q=, gzip;q=0.1", brGzip, "gzip", true},
		{"br;q=-1", brGzip, "identity", true},
		{"br;q", brGzip, "identity", true},
		{"gzip;q=0.5 junk", brGzip, "identity", true},

		// identity;q=0 and *;q=0.
		{"identity;q=0", brGzip, "", false},
		{"gzip, identity;q=0", brGzip, "gzip", true},
		{"*;q=0", brGzip, "", false},
		{"*;q=0, gzip", brGzip, "gzip", true},
		{"*;q=0, identity", brGzip, "identity", true},
		{"*;q=0, identity;q=0.1", brGzip, "identity", true},
		{"deflate, identity;q=0", brGzip, "", false},
		{"br;q=0, gzip;q=0, identity;q=0", brGzip, "", false},

		// *.
		{"*", brGzip, "br", true},
		{"*, br;q=0", brGzip, "gzip", true},
		{"*;q=0.5, gzip", brGzip, "gzip", true},
		{"*;q=0.5", nil, "identity", true},
		{"*;q=0.5, identity;q=0.6", brGzip, "identity", true},

		// Case, aliases, duplicates, unknown codings, odd input.
		{"GZIP", brGzip, "gzip", true},
		{"Br, GZip", brGzip, "br", true},
		{"x-gzip", brGzip, "gzip", true},
		{"X-GZIP;q=0.5, br;q=0.4", brGzip, "gzip", true},
		{"gzip;q=0, gzip", brGzip, "identity", true}, // first entry wins
		{"gzip, gzip;q=0", brGzip, "gzip", true},
		{"compress, sdch, zz-top", brGzip, "identity", true},
		{",,gzip,,", brGzip, "gzip", true},
		{"gzip", nil, "identity", true},
		{"identity;q=0", nil, "", false},
		{"gzip", []string{"", "gzip"}, "gzip", true},
		{"gzip, br", []string{"identity", "gzip"}, "gzip", true}, // offered identity, implicit weight
		{"gzip;q=0.5, identity", []string{"identity", "gzip"}, "identity", true},
		{"gzip;q=0.5", []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "gzip"}, "gzip", true},
	}
	for _, tt := range tests {
		got, ok := Negotiate(tt.ae, tt.offered...)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Negotiate(%q, %q) = %q, %v; want %q, %v", tt.ae, tt.offered, got, ok, tt.want, tt.ok)
		}
	}
}

func TestCompressible(t *testing.T) {
	yes := []string{
		"text/html", "text/html; charset=utf-8", "TEXT/CSS", "text/plain", "text/csv",
		"application/json", "application/json;charset=utf-8", "application/javascript",
		"application/x-javascript", "application/xml", "application/wasm", "application/ld+json",
		"application/vnd.api+json", "application/rss+xml", "application/atom+xml",
		"application/xhtml+xml", "image/svg+xml", "Image/SVG+XML", "application/yaml",
		"application/manifest+json", "font/ttf", "font/otf", "application/vnd.ms-fontobject",
		"image/x-icon", "image/vnd.microsoft.icon", "image/bmp", " text/javascript ",
	}
	no := []string{
		"", "text", "text/", "/json", "image/png", "image/jpeg", "image/webp", "image/avif", "image/gif",
		"video/mp4", "audio/mpeg", "application/zip", "application/gzip", "application/x-gzip",
		"application/octet-stream", "application/pdf", "font/woff", "font/woff2",
		"application/epub+zip", "text/event-stream", "application/x-7z-compressed",
		"application/jsonx", "multipart/byteranges",
	}
	for _, ct := range yes {
		if !Compressible(ct) {
			t.Errorf("Compressible(%q) = false", ct)
		}
	}
	for _, ct := range no {
		if Compressible(ct) {
			t.Errorf("Compressible(%q) = true", ct)
		}
	}
}
