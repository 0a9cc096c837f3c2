package s3

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestLoadCredentials checks the credentials file format and its errors,
// which name the file and line.
func TestLoadCredentials(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       Credentials
		err        string
	}{
		{"pairs", "AK1 secret1\nAK2\t \tsecret/2+x=\n", Credentials{"AK1": "secret1", "AK2": "secret/2+x="}, ""},
		{"comments and blank lines", "# the keys\n\n   \n  # indented comment\nAK1 s1\r\n\tAK2   s2   \n# end", Credentials{"AK1": "s1", "AK2": "s2"}, ""},
		{"no final newline", "AK1 s1", Credentials{"AK1": "s1"}, ""},
		{"empty file", "", nil, "no credentials in FILE"},
		{"only comments", "# nothing\n\n", nil, "no credentials in FILE"},
		{"missing secret", "AK1 s1\nAK2\n", nil, `FILE:2: access key "AK2" has no secret key`},
		{"extra field", "\nAK1 s1 s2\n", nil, "FILE:2: 3 fields where 2 are expected"},
		{"trailing comment", "AK1 s1 # comment\n", nil, "FILE:1: 4 fields"},
		{"duplicate key", "AK1 s1\n# x\nAK1 s2\n", nil, `FILE:3: access key "AK1" is already given on line 1`},
		{"slash in key", "AK/1 s1\n", nil, `FILE:1: access key "AK/1" holds '/'`},
		{"comma in key", "AK,1 s1\n", nil, "FILE:1"},
		{"line too long", "AK1 " + strings.Repeat("s", 70<<10) + "\n", nil, "FILE:1: line longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "creds")
			if err := os.WriteFile(path, []byte(tc.text), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := LoadCredentials(path)
			if tc.err != "" {
				if want := strings.ReplaceAll(tc.err, "FILE", path); err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("error %v, want %q", err, want)
				}
				if got != nil {
					t.Errorf("credentials %v with the error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%v, want %v", got, tc.want)
			}
		})
	}
	_, err := LoadCredentials(filepath.Join(t.TempDir(), "absent"))
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "absent") {
		t.Errorf("absent file: %v", err)
	}
}

// TestLoadCredentialsVerifies checks that keys loaded from a file verify
// AWS's example.
func TestLoadCredentialsVerifies(t *testing.T) {
	path := filepath.Join(t.TempDir(), "creds")
	os.WriteFile(path, []byte("# AWS's example key\n"+sigv4TestAccessKey+" "+sigv4TestSecret+"\n"), 0o600)
	creds, err := LoadCredentials(path)
	if err != nil {
		t.Fatal(err)
	}
	v := &Verifier{Creds: creds, Now: sigv4TestVerifier(sigv4TestTime).Now}
	if _, err := v.Verify(sigv4AWSExamples()[0].request()); err != nil {
		t.Fatal(err)
	}
}
