package s3

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io/fs"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

const s3NS = "http://s3.amazonaws.com/doc/2006-03-01/"

// listEntry is one key a listing found.
type listEntry struct {
	Key   string
	Size  int64
	MTime time.Time
	ETag  string
}

// listing is one page of a listing.
type listing struct {
	Objects   []listEntry
	Prefixes  []string
	Truncated bool
	Next      string // the last key or common prefix returned (the next marker)
}

// walkItem is a directory entry as a key.
type walkItem struct {
	key   string // with a trailing '/' for a directory
	path  string
	isDir bool
}

// list returns up to max keys and common prefixes of bucket after
// "after", in key order. A key rolls up into a common prefix when the
// part after prefix holds delim. When after ends in delim it is a common
// prefix returned before, and keys under it are skipped.
func (st *store) list(ctx context.Context, bucket, prefix, delim, after string, max int) (*listing, error) {
	dir, err := st.checkBucket(bucket)
	if err != nil {
		return nil, err
	}
	l := &listing{}
	if max == 0 {
		return l, nil
	}
	skipUnder := ""
	if delim != "" && strings.HasSuffix(after, delim) && strings.HasPrefix(after, prefix) {
		skipUnder = after
	}
	count := 0
	lastPrefix := ""
	// emit adds one key (or its common prefix); it returns false to stop.
	emit := func(key string, getEntry func() (listEntry, bool)) bool {
		if key <= after || !strings.HasPrefix(key, prefix) {
			return true
		}
		if skipUnder != "" && strings.HasPrefix(key, skipUnder) {
			return true
		}
		if delim != "" {
			if i := strings.Index(key[len(prefix):], delim); i >= 0 {
				cp := key[:len(prefix)+i+len(delim)]
				if cp == lastPrefix {
					return true
				}
				if count == max {
					l.Truncated = true
					return false
				}
				lastPrefix = cp
				l.Prefixes = append(l.Prefixes, cp)
				l.Next = cp
				count++
				return true
			}
		}
		e, ok := getEntry()
		if !ok {
			return true // gone meanwhile
		}
		if count == max {
			l.Truncated = true
			return false
		}
		l.Objects = append(l.Objects, e)
		l.Next = key
		count++
		return true
	}
	_, err = st.walk(ctx, dir, dir, "", prefix, after, delim, emit)
	return l, err
}

// walk visits the keys under dir (whose keys begin with dirKey) in key
// order, calling emit; it returns false once emit asked to stop. It skips
// subtrees that hold no key after "after" with the prefix, and rolls a
// subtree that is all one common prefix into a single emit.
func (st *store) walk(ctx context.Context, bucketDir, dir, dirKey, prefix, after, delim string, emit func(string, func() (listEntry, bool)) bool) (bool, error) {
	ents, err := st.fs.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return true, nil
		}
		return false, err
	}
	items := make([]walkItem, 0, len(ents))
	for _, e := range ents {
		name := e.Name()
		p := dir + "/" + name
		isDir := e.IsDir()
		if e.Type()&fs.ModeSymlink != 0 {
			continue // not objects: a symlink could lead out of the bucket
		}
		if !isDir && !e.Type().IsRegular() {
			continue
		}
		k := dirKey + name
		if isDir {
			k += "/"
		}
		items = append(items, walkItem{key: k, path: p, isDir: isDir})
	}
	sort.Slice(items, func(i, j int) bool { return items[i].key < items[j].key })
	for _, it := range items {
		k := it.key
		if !strings.HasPrefix(k, prefix) && !strings.HasPrefix(prefix, k) {
			continue
		}
		if !it.isDir {
			if !emit(k, func() (listEntry, bool) { return st.entry(ctx, bucketDir, k) }) {
				return false, nil
			}
			continue
		}
		// Every key under k begins with k: skip the subtree if all of them
		// are at or before "after".
		if k <= after && !strings.HasPrefix(after, k) {
			continue
		}
		if st.isDirObject(it.path) {
			if !emit(k, func() (listEntry, bool) { return st.dirEntry(k, it.path) }) {
				return false, nil
			}
		}
		// A subtree that is all one common prefix: one emit, if it holds
		// an object, without walking it (unless "after" lies inside it:
		// then only its keys after "after" count, and the walk finds them).
		if delim != "" && strings.HasPrefix(k, prefix) && (after == k || !strings.HasPrefix(after, k)) {
			if i := strings.Index(k[len(prefix):], delim); i >= 0 && len(prefix)+i+len(delim) <= len(k) {
				if has, err := st.hasObject(it.path); err != nil {
					return false, err
				} else if has && !emit(k+"\x00", func() (listEntry, bool) { return listEntry{}, false }) {
					return false, nil
				}
				continue
			}
		}
		more, err := st.walk(ctx, bucketDir, it.path, k, prefix, after, delim, emit)
		if err != nil || !more {
			return more, err
		}
	}
	return true, nil
}

// entry describes the object key (its path under the bucket directory
// dir): its logical size (buffered bytes included) and ETag.
func (st *store) entry(ctx context.Context, dir, key string) (listEntry, bool) {
	f, fi, err := st.fs.OpenRegular(dir, key)
	if err != nil {
		return listEntry{}, false
	}
	defer f.Close()
	e := listEntry{Key: key, MTime: fi.ModTime(), Size: st.data.Size(f, fi.Size())}
	var m objectMeta
	if b, err := f.GetXattr(metaXattr); err == nil && json.Unmarshal(b, &m) == nil && m.fresh(e.Size, fi.ModTime()) {
		e.ETag = m.ETag
		return e, true
	}
	// Written through the mount: the MD5 is computed (and kept) now.
	o, err := st.openFile(ctx, dir, key)
	if err != nil {
		return listEntry{}, false
	}
	defer o.Close()
	e.ETag, e.Size, e.MTime = o.meta.ETag, o.size, o.mtime
	return e, true
}

func (st *store) dirEntry(key, path string) (listEntry, bool) {
	fi, err := st.fs.Stat(path)
	if err != nil {
		return listEntry{}, false
	}
	return listEntry{Key: key, MTime: fi.ModTime(), ETag: emptyMD5}, true
}

type listV2Result struct {
	XMLName               xml.Name       `xml:"ListBucketResult"`
	Xmlns                 string         `xml:"xmlns,attr"`
	Name                  string         `xml:"Name"`
	Prefix                string         `xml:"Prefix"`
	Delimiter             string         `xml:"Delimiter,omitempty"`
	MaxKeys               int            `xml:"MaxKeys"`
	EncodingType          string         `xml:"EncodingType,omitempty"`
	KeyCount              int            `xml:"KeyCount"`
	IsTruncated           bool           `xml:"IsTruncated"`
	ContinuationToken     string         `xml:"ContinuationToken,omitempty"`
	NextContinuationToken string         `xml:"NextContinuationToken,omitempty"`
	StartAfter            string         `xml:"StartAfter,omitempty"`
	Contents              []objectXML    `xml:"Contents"`
	CommonPrefixes        []commonPrefix `xml:"CommonPrefixes"`
}

type listV1Result struct {
	XMLName        xml.Name       `xml:"ListBucketResult"`
	Xmlns          string         `xml:"xmlns,attr"`
	Name           string         `xml:"Name"`
	Prefix         string         `xml:"Prefix"`
	Marker         string         `xml:"Marker"`
	NextMarker     string         `xml:"NextMarker,omitempty"`
	Delimiter      string         `xml:"Delimiter,omitempty"`
	MaxKeys        int            `xml:"MaxKeys"`
	EncodingType   string         `xml:"EncodingType,omitempty"`
	IsTruncated    bool           `xml:"IsTruncated"`
	Contents       []objectXML    `xml:"Contents"`
	CommonPrefixes []commonPrefix `xml:"CommonPrefixes"`
}

type objectXML struct {
	Key          string `xml:"Key"`
	LastModified string `xml:"LastModified"`
	ETag         string `xml:"ETag"`
	Size         int64  `xml:"Size"`
	Owner        *owner `xml:"Owner,omitempty"`
	StorageClass string `xml:"StorageClass"`
}

type owner struct {
	ID          string `xml:"ID"`
	DisplayName string `xml:"DisplayName"`
}

type commonPrefix struct {
	Prefix string `xml:"Prefix"`
}

func isoTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// listParams reads the common listing parameters.
func listParams(q url.Values) (prefix, delim string, max int, enc bool, err error) {
	prefix, delim = q.Get("prefix"), q.Get("delimiter")
	max = 1000
	if v := q.Get("max-keys"); v != "" {
		n, perr := strconv.Atoi(v)
		if perr != nil || n < 0 {
			return "", "", 0, false, errorf("InvalidArgument", "max-keys must be a non-negative integer")
		}
		max = min(n, 1000)
	}
	switch et := q.Get("encoding-type"); et {
	case "":
	case "url":
		enc = true
	default:
		return "", "", 0, false, errorf("InvalidArgument", "encoding-type must be url, not %q", et)
	}
	return prefix, delim, max, enc, nil
}

// encodeKey URL-encodes a key for encoding-type=url (as S3: '/' kept).
func encodeKey(k string, enc bool) string {
	if !enc {
		return k
	}
	return strings.ReplaceAll(url.PathEscape(k), "%2F", "/")
}

func contents(l *listing, enc, fetchOwner bool, ak string) ([]objectXML, []commonPrefix) {
	var objs []objectXML
	for _, e := range l.Objects {
		o := objectXML{Key: encodeKey(e.Key, enc), LastModified: isoTime(e.MTime), ETag: `"` + e.ETag + `"`,
			Size: e.Size, StorageClass: "STANDARD"}
		if fetchOwner {
			o.Owner = &owner{ID: ak, DisplayName: ak}
		}
		objs = append(objs, o)
	}
	var cps []commonPrefix
	for _, p := range l.Prefixes {
		cps = append(cps, commonPrefix{Prefix: encodeKey(p, enc)})
	}
	return objs, cps
}

// listObjectsV2 serves GET /bucket?list-type=2.
func (s *Server) listObjectsV2(r *request) error {
	q := r.query
	prefix, delim, max, enc, err := listParams(q)
	if err != nil {
		return err
	}
	after := q.Get("start-after")
	token := q.Get("continuation-token")
	if token != "" {
		b, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil {
			return errorf("InvalidArgument", "the continuation token is not one this server gave")
		}
		after = string(b)
	}
	l, err := s.st.list(r.ctx, r.bucket, prefix, delim, after, max)
	if err != nil {
		return err
	}
	res := listV2Result{Xmlns: s3NS, Name: r.bucket, Prefix: encodeKey(prefix, enc), Delimiter: encodeKey(delim, enc), MaxKeys: max,
		IsTruncated: l.Truncated, ContinuationToken: token, StartAfter: encodeKey(q.Get("start-after"), enc)}
	if enc {
		res.EncodingType = "url"
	}
	res.Contents, res.CommonPrefixes = contents(l, enc, q.Get("fetch-owner") == "true", r.auth.AccessKey)
	res.KeyCount = len(res.Contents) + len(res.CommonPrefixes)
	if l.Truncated {
		res.NextContinuationToken = base64.RawURLEncoding.EncodeToString([]byte(l.Next))
	}
	return writeXML(r.ctx, res)
}

// listObjectsV1 serves GET /bucket.
func (s *Server) listObjectsV1(r *request) error {
	q := r.query
	prefix, delim, max, enc, err := listParams(q)
	if err != nil {
		return err
	}
	marker := q.Get("marker")
	l, err := s.st.list(r.ctx, r.bucket, prefix, delim, marker, max)
	if err != nil {
		return err
	}
	res := listV1Result{Xmlns: s3NS, Name: r.bucket, Prefix: encodeKey(prefix, enc), Marker: encodeKey(marker, enc),
		Delimiter: encodeKey(delim, enc), MaxKeys: max, IsTruncated: l.Truncated}
	if enc {
		res.EncodingType = "url"
	}
	res.Contents, res.CommonPrefixes = contents(l, enc, true, r.auth.AccessKey)
	if l.Truncated && delim != "" {
		res.NextMarker = encodeKey(l.Next, enc)
	}
	return writeXML(r.ctx, res)
}

type versionsResult struct {
	XMLName             xml.Name       `xml:"ListVersionsResult"`
	Xmlns               string         `xml:"xmlns,attr"`
	Name                string         `xml:"Name"`
	Prefix              string         `xml:"Prefix"`
	KeyMarker           string         `xml:"KeyMarker"`
	VersionIDMarker     string         `xml:"VersionIdMarker"`
	NextKeyMarker       string         `xml:"NextKeyMarker,omitempty"`
	NextVersionIDMarker string         `xml:"NextVersionIdMarker,omitempty"`
	Delimiter           string         `xml:"Delimiter,omitempty"`
	MaxKeys             int            `xml:"MaxKeys"`
	EncodingType        string         `xml:"EncodingType,omitempty"`
	IsTruncated         bool           `xml:"IsTruncated"`
	Versions            []versionXML   `xml:"Version"`
	CommonPrefixes      []commonPrefix `xml:"CommonPrefixes"`
}

type versionXML struct {
	Key          string `xml:"Key"`
	VersionID    string `xml:"VersionId"`
	IsLatest     bool   `xml:"IsLatest"`
	LastModified string `xml:"LastModified"`
	ETag         string `xml:"ETag"`
	Size         int64  `xml:"Size"`
	Owner        owner  `xml:"Owner"`
	StorageClass string `xml:"StorageClass"`
}

// listObjectVersions serves GET /bucket?versions: one version of every
// object, the null version.
func (s *Server) listObjectVersions(r *request) error {
	q := r.query
	prefix, delim, max, enc, err := listParams(q)
	if err != nil {
		return err
	}
	marker := q.Get("key-marker")
	l, err := s.st.list(r.ctx, r.bucket, prefix, delim, marker, max)
	if err != nil {
		return err
	}
	res := versionsResult{Xmlns: s3NS, Name: r.bucket, Prefix: encodeKey(prefix, enc), KeyMarker: encodeKey(marker, enc),
		VersionIDMarker: q.Get("version-id-marker"), Delimiter: encodeKey(delim, enc), MaxKeys: max, IsTruncated: l.Truncated}
	if enc {
		res.EncodingType = "url"
	}
	for _, e := range l.Objects {
		res.Versions = append(res.Versions, versionXML{Key: encodeKey(e.Key, enc), VersionID: "null", IsLatest: true,
			LastModified: isoTime(e.MTime), ETag: `"` + e.ETag + `"`, Size: e.Size,
			Owner: owner{ID: r.auth.AccessKey, DisplayName: r.auth.AccessKey}, StorageClass: "STANDARD"})
	}
	for _, p := range l.Prefixes {
		res.CommonPrefixes = append(res.CommonPrefixes, commonPrefix{Prefix: encodeKey(p, enc)})
	}
	if l.Truncated {
		res.NextKeyMarker, res.NextVersionIDMarker = encodeKey(l.Next, enc), "null"
	}
	return writeXML(r.ctx, res)
}
