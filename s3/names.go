package s3

import (
	"net"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// checkBucketName applies S3's rules for bucket names (general purpose
// buckets): 3–63 characters of lowercase letters, digits, '.' and '-',
// beginning and ending with a letter or digit, no "..", not an IP
// address, none of the reserved prefixes and suffixes.
func checkBucketName(name string) error {
	bad := func(why string) error {
		return errorf("InvalidBucketName", "bucket name %q: %s", name, why)
	}
	if len(name) < 3 || len(name) > 63 {
		return bad("must be 3 to 63 characters long")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return bad("may hold only lowercase letters, digits, '.' and '-'")
		}
	}
	if !alnum(name[0]) || !alnum(name[len(name)-1]) {
		return bad("must begin and end with a letter or digit")
	}
	if strings.Contains(name, "..") {
		return bad("must not contain two adjacent periods")
	}
	if net.ParseIP(name) != nil || ipLike(name) {
		return bad("must not be formatted as an IP address")
	}
	for _, p := range []string{"xn--", "sthree-", "amzn-s3-demo-"} {
		if strings.HasPrefix(name, p) {
			return bad("must not begin with " + p)
		}
	}
	for _, s := range []string{"-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"} {
		if strings.HasSuffix(name, s) {
			return bad("must not end with " + s)
		}
	}
	return nil
}

// ipLike reports whether name is four dot-separated groups of digits
// (as 192.168.5.4, but also 999.1.1.1), which S3 refuses.
func ipLike(name string) bool {
	parts := strings.Split(name, ".")
	if len(parts) != 4 {
		return false
	}
	for _, p := range parts {
		if p == "" || strings.Trim(p, "0123456789") != "" {
			return false
		}
	}
	return true
}

func alnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// maxKeyBytes is S3's limit on key length.
const maxKeyBytes = 1024

// maxSegmentBytes is the file system's limit on a name: the part of a key
// between slashes.
const maxSegmentBytes = 255

// keyPath checks key and returns its path under the bucket directory. A
// key is a path of the namespace, so it is refused if it is not valid
// UTF-8, holds a NUL, has an empty, "." or ".." part (other than a final
// slash, which names a directory object), or a part over 255 bytes. No key
// accepted here can name a path outside its bucket.
func keyPath(key string) (string, error) {
	bad := func(why string) error {
		return errorf("InvalidArgument", "object key %q: %s", truncateKey(key), why)
	}
	if key == "" {
		return "", bad("must not be empty")
	}
	if len(key) > maxKeyBytes {
		return "", errorf("KeyTooLongError", "object key is %d bytes; the limit is %d", len(key), maxKeyBytes)
	}
	if !utf8.ValidString(key) {
		return "", bad("is not valid UTF-8")
	}
	if strings.IndexByte(key, 0) >= 0 {
		return "", bad("holds a NUL byte")
	}
	body := strings.TrimSuffix(key, "/")
	if body == "" {
		return "", bad("must not be only a slash")
	}
	for _, seg := range strings.Split(body, "/") {
		switch {
		case seg == "":
			return "", bad("has an empty part (a leading slash or two slashes in a row): the namespace is a file system, whose paths have none")
		case seg == "." || seg == "..":
			return "", bad("has a '.' or '..' part: the namespace is a file system, where those name other directories")
		case len(seg) > maxSegmentBytes:
			return "", bad("has a part over 255 bytes between slashes: the file system's limit on a name")
		}
	}
	return filepath.FromSlash(body), nil
}

func truncateKey(k string) string {
	if len(k) > 64 {
		return k[:64] + "…"
	}
	return k
}
