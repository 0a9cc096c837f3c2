package s3

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
)

// Credentials are the access keys the server accepts: access key → secret
// key.
type Credentials map[string]string

// credMaxLine bounds a line of a credentials file.
const credMaxLine = 64 << 10

// LoadCredentials reads a credentials file: one "ACCESS_KEY SECRET_KEY"
// pair a line, separated by any whitespace. Blank lines and lines whose
// first non-blank character is '#' are ignored. A file without a pair is
// an error, and so is a line with a missing secret, extra fields, or an
// access key already given; errors name the file and line.
func LoadCredentials(path string) (Credentials, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	defer f.Close()
	return parseCredentials(f, path)
}

// parseCredentials parses the credentials read from r; name is the file's
// name for errors.
func parseCredentials(r io.Reader, name string) (Credentials, error) {
	creds := Credentials{}
	lineOf := map[string]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), credMaxLine)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		switch {
		case len(fields) == 1:
			return nil, fmt.Errorf("%s:%d: access key %q has no secret key: write \"ACCESS_KEY SECRET_KEY\" on one line", name, n, fields[0])
		case len(fields) > 2:
			return nil, fmt.Errorf("%s:%d: %d fields where 2 are expected: write \"ACCESS_KEY SECRET_KEY\" on one line (keys cannot hold whitespace)", name, n, len(fields))
		}
		ak, secret := fields[0], fields[1]
		if i := strings.IndexAny(ak, "/,="); i >= 0 {
			return nil, fmt.Errorf("%s:%d: access key %q holds %q: an access key cannot hold '/', ',' or '=', which the Authorization header uses as separators", name, n, ak, ak[i])
		}
		if prev, ok := lineOf[ak]; ok {
			return nil, fmt.Errorf("%s:%d: access key %q is already given on line %d: give each access key once", name, n, ak, prev)
		}
		lineOf[ak] = n
		creds[ak] = secret
	}
	if err := sc.Err(); err != nil {
		if err == bufio.ErrTooLong {
			return nil, fmt.Errorf("%s:%d: line longer than %d bytes", name, n+1, credMaxLine)
		}
		return nil, fmt.Errorf("credentials: reading %s: %w", name, err)
	}
	if len(creds) == 0 {
		return nil, fmt.Errorf("no credentials in %s: write one \"ACCESS_KEY SECRET_KEY\" pair a line", name)
	}
	return creds, nil
}
