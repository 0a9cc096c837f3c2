package cache

import (
	"bytes"
	"net/url"
	"slices"
)

// DefaultKeyParams are the query parameters kept in the cache key when
// Config.KeyParams is nil: those an S3 origin answers a different object
// or response to (a version, a part, response header overrides, the
// listing and sub-resource parameters). Every other parameter is dropped
// from the key and from the fill's request to the origin: presigning
// parameters (requests that carry a signature bypass the cache anyway),
// SDK markers such as x-id, and cache-busting junk.
var DefaultKeyParams = []string{
	// an object version or part
	"versionId", "partNumber",
	// response header overrides
	"response-cache-control", "response-content-disposition", "response-content-encoding",
	"response-content-language", "response-content-type", "response-expires",
	// listings
	"list-type", "prefix", "delimiter", "marker", "max-keys", "continuation-token", "start-after",
	"encoding-type", "fetch-owner", "versions", "key-marker", "version-id-marker",
	"uploads", "upload-id-marker", "max-uploads", "uploadId", "part-number-marker", "max-parts",
	// sub-resources
	"acl", "tagging", "location", "policy", "cors", "lifecycle", "versioning", "website", "attributes",
	"object-lock", "legal-hold", "retention", "torrent",
}

// keyPolicy turns a request URI into its cache key: the path as sent and
// the kept query parameters, in name order, as sent. All: the whole URI.
type keyPolicy struct {
	all  bool
	kept []string // sorted
}

func newKeyPolicy(params []string) keyPolicy {
	if params == nil {
		params = DefaultKeyParams
	}
	if slices.Contains(params, "*") {
		return keyPolicy{all: true}
	}
	kept := slices.Clone(params)
	slices.Sort(kept)
	return keyPolicy{kept: slices.Compact(kept)}
}

// keyParam is one kept parameter: its name as listed, its value as sent
// (uri[from:to]; offsets, not a slice, so that uri does not escape).
type keyParam struct {
	name     string
	from, to int
	bare     bool // no '='
}

// appendKey appends uri's cache key to dst. A URI without a query (or a
// policy that keeps all) is its own key: dst is not used.
func (p *keyPolicy) appendKey(dst, uri []byte) []byte {
	q := bytes.IndexByte(uri, '?')
	if q < 0 || p.all {
		return uri
	}
	var arr [8]keyParam
	params := arr[:0]
	for at := q + 1; at < len(uri); {
		end := len(uri)
		if amp := bytes.IndexByte(uri[at:], '&'); amp >= 0 {
			end = at + amp
		}
		param := uri[at:end]
		start := at
		at = end + 1
		name := param
		eq := bytes.IndexByte(param, '=')
		if eq >= 0 {
			name = param[:eq]
		}
		if len(name) == 0 {
			continue
		}
		if k := p.kept1(name); k != "" {
			kp := keyParam{name: k, bare: eq < 0}
			if eq >= 0 {
				kp.from, kp.to = start+eq+1, end
			}
			params = append(params, kp)
		}
	}
	dst = append(dst, uri[:q]...)
	if len(params) == 0 {
		return dst
	}
	// Stable insertion sort by name: few parameters, no allocation.
	for i := 1; i < len(params); i++ {
		for j := i; j > 0 && params[j].name < params[j-1].name; j-- {
			params[j], params[j-1] = params[j-1], params[j]
		}
	}
	for i, kp := range params {
		if i == 0 {
			dst = append(dst, '?')
		} else {
			dst = append(dst, '&')
		}
		dst = append(dst, kp.name...)
		if !kp.bare {
			dst = append(dst, '=')
			dst = append(dst, uri[kp.from:kp.to]...)
		}
	}
	return dst
}

// kept1 returns the kept parameter a raw (maybe percent-encoded) name
// is, "" if none.
func (p *keyPolicy) kept1(name []byte) string {
	if i, ok := slices.BinarySearch(p.kept, string(name)); ok {
		return p.kept[i]
	}
	if bytes.IndexByte(name, '%') >= 0 || bytes.IndexByte(name, '+') >= 0 {
		if dec, err := url.QueryUnescape(string(name)); err == nil {
			if i, ok := slices.BinarySearch(p.kept, dec); ok {
				return p.kept[i]
			}
		}
	}
	return ""
}

// key returns uri's cache key as a string.
func (p *keyPolicy) key(uri string) string {
	return string(p.appendKey(nil, []byte(uri)))
}
