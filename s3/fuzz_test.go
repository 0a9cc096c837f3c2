package s3

// Fuzz tests of the parsers of untrusted input: Range headers, keys,
// the XML bodies of DeleteObjects, CompleteMultipartUpload and
// CreateBucket, bucket names, and listing parameters. As normal tests
// they run their seeds; run one for longer with
//
//	go test -run XXX -fuzz FuzzParseRange -fuzztime 30s ./s3/

import (
	"context"
	"encoding/xml"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// biRange is what a Range header asks of an object: to be ignored (the
// whole object, 200), a range, or nothing satisfiable (416).
type biRange struct {
	kind     int // biIgnore, biSatisfiable, biUnsatisfiable
	start, n int64
}

const (
	biIgnore = iota
	biSatisfiable
	biUnsatisfiable
)

// biRefRange is a reference for parseRange, from RFC 9110 §14.1.2 and
// §14.2: one byte-range-spec, "bytes=FIRST-LAST", "bytes=FIRST-" or
// "bytes=-SUFFIX", FIRST, LAST and SUFFIX digits only (1*DIGIT), with
// whitespace around the value and its parts allowed; anything else
// (another unit, several ranges, LAST < FIRST, not digits) is ignored. A
// range is unsatisfiable if FIRST is not below the size or SUFFIX is 0;
// on an empty object every range is (as S3 answers).
func biRefRange(v string, size int64) biRange {
	ignore := biRange{kind: biIgnore}
	unsat := biRange{kind: biUnsatisfiable}
	v = strings.TrimSpace(v)
	if len(v) < 6 || !strings.EqualFold(v[:6], "bytes=") {
		return ignore
	}
	spec := strings.TrimSpace(v[6:])
	if strings.Contains(spec, ",") {
		return ignore // several ranges: S3 sends the whole object
	}
	a, b, ok := strings.Cut(spec, "-")
	if !ok {
		return ignore
	}
	a, b = strings.TrimSpace(a), strings.TrimSpace(b)
	num := func(s string) (*big.Int, bool) {
		if s == "" {
			return nil, false
		}
		for i := 0; i < len(s); i++ {
			if s[i] < '0' || s[i] > '9' {
				return nil, false
			}
		}
		n, _ := new(big.Int).SetString(s, 10)
		return n, true
	}
	sz := big.NewInt(size)
	if a == "" {
		m, ok := num(b)
		if !ok {
			return ignore
		}
		if m.Sign() == 0 || size == 0 {
			return unsat
		}
		if m.Cmp(sz) > 0 {
			m = sz
		}
		return biRange{kind: biSatisfiable, start: size - m.Int64(), n: m.Int64()}
	}
	first, ok := num(a)
	if !ok {
		return ignore
	}
	last := big.NewInt(size - 1)
	if b != "" {
		l, ok := num(b)
		if !ok || l.Cmp(first) < 0 {
			return ignore
		}
		if l.Cmp(last) < 0 {
			last = l
		}
	}
	if first.Cmp(sz) >= 0 {
		return unsat
	}
	return biRange{kind: biSatisfiable, start: first.Int64(), n: last.Int64() - first.Int64() + 1}
}

// biCanonicalRange matches the plain forms, whose numbers fit an int64:
// for them parseRange must agree with the reference in everything.
var biCanonicalRange = regexp.MustCompile(`^bytes=[0-9]{0,18}-[0-9]{0,18}$`)

// biCheckRange checks parseRange(v, size) against the reference.
func biCheckRange(t *testing.T, v string, size int64) {
	t.Helper()
	start, n, ok, err := parseRange(v, size)
	ref := biRefRange(v, size)
	if err != nil {
		e, isErr := err.(*Error)
		if !isErr || e.Code != "InvalidRange" || e.Status != 416 || ok {
			t.Fatalf("parseRange(%q, %d): ok %v, error %v: want an InvalidRange 416 and ok false", v, size, ok, err)
		}
		if ref.kind != biUnsatisfiable {
			t.Fatalf("parseRange(%q, %d) = InvalidRange, but the range is %+v", v, size, ref)
		}
	}
	if ok {
		if start < 0 || n < 1 || start > size-n {
			t.Fatalf("parseRange(%q, %d) = start %d, n %d: not within the object", v, size, start, n)
		}
		if ref != (biRange{kind: biSatisfiable, start: start, n: n}) {
			t.Fatalf("parseRange(%q, %d) = start %d, n %d, but the range is %+v", v, size, start, n, ref)
		}
	}
	if biCanonicalRange.MatchString(v) {
		got := biRange{kind: biIgnore}
		switch {
		case err != nil:
			got.kind = biUnsatisfiable
		case ok:
			got = biRange{kind: biSatisfiable, start: start, n: n}
		}
		if got != ref {
			t.Fatalf("parseRange(%q, %d) = %+v, want %+v", v, size, got, ref)
		}
	}
}

// FuzzParseRange: parseRange never panics; a range it honours lies in
// the object and is the one the reference reads; it says InvalidRange
// only when the reference finds nothing satisfiable; and on the plain
// forms it agrees with the reference entirely. (Ignoring a range the
// reference would honour is allowed: RFC 9110 lets a server ignore
// Range.)
func FuzzParseRange(f *testing.F) {
	for _, s := range []struct {
		v    string
		size int64
	}{
		{"bytes=0-0", 5}, {"bytes=-1", 5}, {"bytes=5-", 5}, {"bytes=-0", 5}, {"bytes=0-1,3-4", 5},
		{"bytes=abc", 5}, {"bytes=0-", 0}, {"bytes=-1", 0}, {" bytes = 1 - 2 ", 10}, {"bytes= 1 -2", 10},
		{"bytes=9223372036854775807-", 10}, {"bytes=0-9223372036854775807", 1 << 40},
		{"bytes=-9223372036854775807", 10}, {"bytes=-9223372036854775808", 10}, {"bytes=99999999999999999999-", 10},
		{"bytes=1-0", 10}, {"Bytes=0-1", 5}, {"bytes=--1", 5}, {"bytes=1--2", 5}, {"bytes=-", 5}, {"bytes=", 5},
		{"bytes=0x1-2", 5}, {"bytes=1_0-20", 100}, {"bytes=4-4", 5}, {"bytes=4-3", 5}, {"bytes=0-4", 5},
		{"bytes=\u00a00-1", 5}, {"bytes=0-1\x00", 5},
		// Signs are not digits: RFC 9110's first-pos, last-pos and
		// suffix-length are 1*DIGIT. These are to be ignored.
		{"bytes=+1-2", 5}, {"bytes=1-+2", 5}, {"bytes=-+2", 5}, {"bytes=+0-", 5},
	} {
		f.Add(s.v, s.size)
	}
	f.Fuzz(func(t *testing.T, v string, size int64) {
		if size < 0 {
			size = -(size + 1)
		}
		biCheckRange(t, v, size)
	})
}

// TestParseRangeGrid checks every plain form with small numbers against
// the reference, on small objects.
func TestParseRangeGrid(t *testing.T) {
	nums := []string{""}
	for i := 0; i <= 8; i++ {
		nums = append(nums, strconv.Itoa(i))
	}
	nums = append(nums, "00", "007", "18446744073709551616")
	for size := int64(0); size <= 6; size++ {
		for _, a := range nums {
			for _, b := range nums {
				biCheckRange(t, "bytes="+a+"-"+b, size)
			}
		}
	}
}

// biKeyRule returns the error code keyPath must give key, "" if it must
// accept it: a key is a path of the namespace, so it must be valid
// UTF-8 without NUL, at most 1024 bytes, and have no empty, "." or ".."
// part nor one over 255 bytes (a final slash, naming a directory, aside).
func biKeyRule(key string) string {
	if len(key) > maxKeyBytes {
		return "KeyTooLongError"
	}
	if key == "" || !utf8.ValidString(key) || strings.IndexByte(key, 0) >= 0 {
		return "InvalidArgument"
	}
	for _, seg := range strings.Split(strings.TrimSuffix(key, "/"), "/") {
		if seg == "" || seg == "." || seg == ".." || len(seg) > 255 {
			return "InvalidArgument"
		}
	}
	return ""
}

// FuzzKeyPath: keyPath never panics; it accepts exactly the keys the
// rules allow, with the right error for the others; and the path of an
// accepted key is the key, relative, clean, without "..", so that joined
// to a bucket's directory it stays under it.
func FuzzKeyPath(f *testing.F) {
	for _, k := range []string{
		"a", "a/b", "a/b/", "dir/", "a/../b", "..", "../", "./a", "a/.", "a//b", "/a", "a//", "/", "", "a\x00b",
		"a\xffb", "\xc0\xaf", "é/ü", strings.Repeat("k", 1024), strings.Repeat("k", 1025), strings.Repeat("p", 255),
		strings.Repeat("p", 256), "a/" + strings.Repeat("p", 256) + "/", "...", ".../a", "a/..b", "a\\..\\b", "~", "a/ /b",
	} {
		f.Add(k)
	}
	base := filepath.Join(string(filepath.Separator)+"root", "bucket")
	f.Fuzz(func(t *testing.T, key string) {
		p, err := keyPath(key)
		want := biKeyRule(key)
		if err != nil {
			e, ok := err.(*Error)
			if !ok || e.Code != want || e.Status != 400 {
				t.Fatalf("keyPath(%q): %v, want %q", key, err, want)
			}
			return
		}
		if want != "" {
			t.Fatalf("keyPath(%q) = %q, want %s", key, p, want)
		}
		if p != strings.TrimSuffix(key, "/") || filepath.IsAbs(p) || filepath.Clean(p) != p || strings.IndexByte(p, 0) >= 0 {
			t.Fatalf("keyPath(%q) = %q: not the key as a clean relative path", key, p)
		}
		for _, seg := range strings.Split(p, string(filepath.Separator)) {
			if seg == ".." || seg == "." || seg == "" {
				t.Fatalf("keyPath(%q) = %q has a part %q", key, p, seg)
			}
		}
		if j := filepath.Join(base, p); !strings.HasPrefix(j, base+string(filepath.Separator)) {
			t.Fatalf("keyPath(%q) = %q leads out of the bucket: %s", key, p, j)
		}
	})
}

// biIPLike is a name "formatted as an IP address": four dot-separated
// numbers (as minio-go's s3utils and MinIO check it).
var biIPLike = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$`)

// biBucketRule reports whether name is a bucket name by S3's rules for
// general purpose buckets: 3 to 63 characters, lowercase letters, digits,
// '.' and '-', beginning and ending with a letter or digit, no two
// adjacent periods, not formatted as an IP address, none of the reserved
// prefixes (xn--, sthree-, amzn-s3-demo-) and suffixes (-s3alias,
// --ol-s3, .mrap, --x-s3, --table-s3).
func biBucketRule(name string) bool {
	if len(name) < 3 || len(name) > 63 {
		return false
	}
	for _, c := range []byte(name) {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	alnum := func(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }
	if !alnum(name[0]) || !alnum(name[len(name)-1]) || strings.Contains(name, "..") || biIPLike.MatchString(name) {
		return false
	}
	for _, p := range []string{"xn--", "sthree-", "amzn-s3-demo-"} {
		if strings.HasPrefix(name, p) {
			return false
		}
	}
	for _, s := range []string{"-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"} {
		if strings.HasSuffix(name, s) {
			return false
		}
	}
	return true
}

// FuzzBucketName: checkBucketName agrees with the rules.
func FuzzBucketName(f *testing.F) {
	for _, n := range []string{
		"abc", "ab", strings.Repeat("a", 63), strings.Repeat("a", 64), "a.b", "a..b", "a-b", "-ab", "ab-", ".ab", "ab.",
		"Abc", "a_b", "a b", "192.168.5.4", "1.2.3.4", "256.256.256.256", "01.02.03.04", "999.1.1.1", "1.2.3", "1.2.3.4.5",
		"xn--abc", "sthree-x", "sthree-configurator", "amzn-s3-demo-x", "x-s3alias", "x--ol-s3", "x.mrap", "x--x-s3",
		"x--table-s3", ".engine-s3", "é-bucket", "a.-b", "a-.b", "my.bucket.name", "a\x00b",
	} {
		f.Add(n)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := checkBucketName(name)
		if want := biBucketRule(name); want != (err == nil) {
			t.Fatalf("checkBucketName(%q) = %v, want valid %v", name, err, want)
		}
		if err != nil {
			if e, ok := err.(*Error); !ok || e.Code != "InvalidBucketName" || e.Status != 400 {
				t.Fatalf("checkBucketName(%q) = %v, want InvalidBucketName", name, err)
			}
		}
	})
}

// FuzzXMLBodies: the XML bodies of DeleteObjects,
// CompleteMultipartUpload and CreateBucket never make the parsing (as
// the handlers do it, xml.Unmarshal into their types) panic, and sent to
// a real server they get a response that is no 5xx and never change
// anything outside the bucket they name: another bucket, a file outside
// the namespace behind a symlink, the server's temporary directory.
func FuzzXMLBodies(f *testing.F) {
	for _, b := range []string{
		"<Delete><Object><Key>keep.txt</Key></Object></Delete>",
		"<Delete><Quiet>true</Quiet><Object><Key>a</Key><VersionId>null</VersionId></Object><Object><Key>../other/victim</Key></Object></Delete>",
		"<Delete><Object><Key>link/canary.txt</Key></Object><Object><Key>/etc/passwd</Key></Object><Object><Key></Key></Object></Delete>",
		"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"e\"</ETag></Part></CompleteMultipartUpload>",
		"<CompleteMultipartUpload><Part><PartNumber>-1</PartNumber></Part><Part><PartNumber>99999999999999999999</PartNumber></Part></CompleteMultipartUpload>",
		"<CreateBucketConfiguration><LocationConstraint>us-east-1</LocationConstraint></CreateBucketConfiguration>",
		"<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LocationConstraint>../x</LocationConstraint></CreateBucketConfiguration>",
		"", "<", "<Delete>", "<!DOCTYPE d [<!ENTITY x \"y\">]><Delete>&x;</Delete>", "<Delete></Delete>junk",
		"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><Delete/>", "<a:Delete xmlns:a=\"x\"><a:Object><a:Key>k</a:Key></a:Object></a:Delete>",
		strings.Repeat("<Delete>", 100), "\xff\xfe<\x00D\x00",
	} {
		for kind := uint8(0); kind < 3; kind++ {
			f.Add(kind, []byte(b))
		}
	}
	ts := biSetup(f)
	outside := f.TempDir()
	canary := filepath.Join(outside, "canary.txt")
	if err := os.WriteFile(canary, []byte("outside"), 0o644); err != nil {
		f.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(ts.root, biBucket, "link")); err != nil {
		f.Fatal(err)
	}
	if r := biDo(f, ts.biSigned(f, "PUT", "/other", nil)); r.Status != 200 {
		f.Fatal(r)
	}
	if r := biDo(f, ts.biSigned(f, "PUT", "/other/victim", []byte("victim"))); r.Status != 200 {
		f.Fatal(r)
	}
	const part = "the part"
	id, _ := ts.biCreateUpload(f, "mp", []byte(part))
	// The tree outside the bucket "bad" (uploads aside, which completions
	// consume).
	outsideBad := func(t testing.TB) map[string]string {
		tree := biTree(t, ts.root, ts.bb)
		for p := range tree {
			if p == biBucket || strings.HasPrefix(p, biBucket+"/") || strings.HasPrefix(p, internalDir+"/uploads/") {
				delete(tree, p)
			}
		}
		return tree
	}
	before := outsideBad(f)
	outsideBefore := biTree(f, outside, nil)
	f.Fuzz(func(t *testing.T, kind uint8, body []byte) {
		var d deleteRequest
		xml.Unmarshal(body, &d)
		var c completeRequest
		xml.Unmarshal(body, &c)
		var b createBucketConfig
		xml.Unmarshal(body, &b)

		var req = ts.biSigned(t, "POST", "/"+biBucket+"?delete", body)
		switch kind % 3 {
		case 1:
			req = ts.biSigned(t, "POST", "/"+biBucket+"/mp?uploadId="+id, body)
		case 2:
			req = ts.biSigned(t, "PUT", "/fuzzbucket", body)
		}
		r := biDo(t, req)
		if r.Status != 200 {
			if e, err := biS3Error(r); err != nil || r.Status >= 500 {
				t.Fatalf("%q: %s (%v)", body, r, err)
			} else if e.Code == "NoSuchUpload" {
				t.Fatalf("%q: the standing upload is gone", body)
			}
		}
		switch {
		case kind%3 == 1 && r.Status == 200:
			id, _ = ts.biCreateUpload(t, "mp", []byte(part)) // completed: start another
		case kind%3 == 2 && r.Status == 200:
			if r := biDo(t, ts.biSigned(t, "DELETE", "/fuzzbucket", nil)); r.Status != 204 {
				t.Fatalf("delete the bucket made: %s", r)
			}
		}
		if diff := biTreeDiff(before, outsideBad(t)); diff != "" {
			t.Fatalf("%q (%s): changed outside its bucket:\n%s", body, r, diff)
		}
		if diff := biTreeDiff(outsideBefore, biTree(t, outside, nil)); diff != "" {
			t.Fatalf("%q (%s): changed outside the namespace:\n%s", body, r, diff)
		}
	})
}

// biListKeys are the objects FuzzListingParams lists: keys whose order
// as strings is not their directories' order ('-' and '.' sort before
// '/', '0' after), nested prefixes, a directory object.
var biListKeys = []string{
	"a-b", "a.b", "a/b/c", "a/c", "a0", "a-/x", "ab/x", "b/x-y/z", "b/x.y", "b/x/y", "c", "dir/", "dir/x",
	"d/e/f/g", "x-1/a", "x-2", "z~", "é/f", biKeep,
}

// biRefList is a reference listing: the keys after "after" with the
// prefix, in order, each rolled up into its common prefix (the prefix and
// what follows up to the first delimiter, included) if it has the
// delimiter after the prefix, up to max entries. When "after" ends in the
// delimiter it is a common prefix returned before, whose keys are
// skipped.
func biRefList(keys []string, prefix, delim, after string, max int) (objs, prefixes []string, truncated bool, next string) {
	if max == 0 {
		return nil, nil, false, ""
	}
	skip := ""
	if delim != "" && strings.HasSuffix(after, delim) && strings.HasPrefix(after, prefix) {
		skip = after
	}
	type entry struct {
		s  string
		cp bool
	}
	var all []entry
	for _, k := range keys {
		if k <= after || !strings.HasPrefix(k, prefix) || skip != "" && strings.HasPrefix(k, skip) {
			continue
		}
		if delim != "" {
			if i := strings.Index(k[len(prefix):], delim); i >= 0 {
				cp := k[:len(prefix)+i+len(delim)]
				if n := len(all); n == 0 || !all[n-1].cp || all[n-1].s != cp {
					all = append(all, entry{cp, true})
				}
				continue
			}
		}
		all = append(all, entry{k, false})
	}
	if len(all) > max {
		all, truncated = all[:max], true
	}
	for _, e := range all {
		if e.cp {
			prefixes = append(prefixes, e.s)
		} else {
			objs = append(objs, e.s)
		}
		next = e.s
	}
	return objs, prefixes, truncated, next
}

// FuzzListingParams: listParams never panics and gives sane values; a
// listing of a bucket (its prefix, delimiter, start and page size fuzzed)
// is the reference listing of its keys, with their sizes.
func FuzzListingParams(f *testing.F) {
	for _, s := range []struct {
		prefix, delim, after string
		max                  uint16
		maxKeys, enc         string
	}{
		{"", "", "", 1000, "", ""}, {"", "/", "", 1000, "2", "url"}, {"a", "/", "", 2, "-1", "zip"},
		{"b/", "/", "b/x-y/", 1, "1001", "URL"}, {"", "/", "a/", 3, "0", ""}, {"", "-", "", 5, "99999999999999999999", ""},
		{"a", "", "a.b", 1, "1e3", ""}, {"", "/", "a/b", 10, " 5", ""}, {"", "/", "a/b/c", 10, "", ""},
		{"", "x-", "", 4, "", ""}, {"", "b/", "", 7, "", ""}, {"d/", "/", "d/e", 2, "", ""}, {"é", "/", "", 1, "", ""},
		{"", "/", "b/x-", 1000, "", ""}, {"", "/", "dir/", 1000, "", ""}, {"dir", "/", "", 1, "", ""},
		{"", "-", "x-1/", 1000, "", ""}, {"", "-", "x-1/a", 1000, "", ""}, {"a", "", "", 1001, "", ""},
	} {
		f.Add(s.prefix, s.delim, s.after, s.max, s.maxKeys, s.enc)
	}
	ts := biSetup(f)
	size := map[string]int64{biKeep: int64(len(biKeepData))}
	for _, k := range biListKeys {
		if k == biKeep {
			continue
		}
		data := ""
		if !strings.HasSuffix(k, "/") {
			data = "data of " + k
		}
		if r := biDo(f, ts.biSigned(f, "PUT", "/"+biBucket+"/"+biEscape(k), []byte(data))); r.Status != 200 {
			f.Fatalf("put %s: %s", k, r)
		}
		size[k] = int64(len(data))
	}
	keys := append([]string(nil), biListKeys...)
	sort.Strings(keys)
	f.Fuzz(func(t *testing.T, prefix, delim, after string, max uint16, maxKeys, enc string) {
		q := url.Values{"prefix": {prefix}, "delimiter": {delim}, "max-keys": {maxKeys}, "encoding-type": {enc}}
		p, d, m, e, err := listParams(q)
		if err != nil {
			if se, ok := err.(*Error); !ok || se.Code != "InvalidArgument" {
				t.Fatalf("listParams(%v): %v", q, err)
			}
		} else if p != prefix || d != delim || m < 0 || m > 1000 || e != (enc == "url") {
			t.Fatalf("listParams(%v) = %q %q %d %v", q, p, d, m, e)
		} else if n, err := strconv.Atoi(maxKeys); maxKeys != "" && (err != nil || m != min(n, 1000)) {
			t.Fatalf("listParams(%v): max-keys %d", q, m)
		}

		mx := int(max % 1002)
		l, err := ts.st.list(context.Background(), biBucket, prefix, delim, after, mx)
		if err != nil {
			t.Fatalf("list(%q, %q, %q, %d): %v", prefix, delim, after, mx, err)
		}
		var objs []string
		for _, o := range l.Objects {
			objs = append(objs, o.Key)
			if o.Size != size[o.Key] {
				t.Fatalf("list: %s has size %d, want %d", o.Key, o.Size, size[o.Key])
			}
		}
		wo, wp, wt, wn := biRefList(keys, prefix, delim, after, mx)
		if fmt.Sprint(objs) != fmt.Sprint(wo) || fmt.Sprint(l.Prefixes) != fmt.Sprint(wp) || l.Truncated != wt || l.Next != wn {
			t.Fatalf("list(prefix %q, delimiter %q, after %q, max %d) = keys %q, prefixes %q, truncated %v, next %q;\nwant keys %q, prefixes %q, truncated %v, next %q",
				prefix, delim, after, mx, objs, l.Prefixes, l.Truncated, l.Next, wo, wp, wt, wn)
		}
	})
}
