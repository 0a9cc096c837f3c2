package edgebench

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"engine/bench/internal/benchfmt"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestScript checks the generated wrk scripts against golden files
// (go test -update rewrites them); the smoke test runs them in wrk.
func TestScript(t *testing.T) {
	paths := []string{"/o/1KiB/0000", "/o/1KiB/0001", "/o/1KiB/0002"}
	etags := []string{`"aa"`, `"bb"`, `"c\"c"`}
	for _, s := range Scenarios([]int64{64 << 10, 1 << 10}) {
		for _, checked := range []bool{false, true} {
			name := s.Name
			if checked {
				name += "-checked"
			}
			t.Run(name, func(t *testing.T) {
				got := Script(s, paths, etags, checked)
				golden := filepath.Join("testdata", name+".lua")
				if *update {
					if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (go test -update writes it)", err)
				}
				if got != string(want) {
					t.Errorf("the script for %s differs from %s (go test -update rewrites it):\n%s", name, golden, got)
				}
				for _, p := range paths {
					if !strings.Contains(got, `"`+p+`"`) {
						t.Errorf("no path %s in the script", p)
					}
				}
				hasINM := strings.Contains(got, `"\"c\\\"c\""`)
				if s.Kind == Revalidate != hasINM {
					t.Errorf("%s: the ETags are in the script: %v", name, hasINM)
				}
				if want := "local expect_status = " + map[string]string{Hit: "200", Revalidate: "304"}[s.Kind]; !strings.Contains(got, want) {
					t.Errorf("no %q in the script", want)
				}
				// Only the checked script makes wrk hand every response
				// to Lua.
				if has := strings.Contains(got, "function response(status, headers, body)"); has != checked {
					t.Errorf("%s: a response() in the script: %v", name, has)
				}
				if !strings.Contains(got, "summary.requests, summary.bytes") {
					t.Errorf("%s: done() does not print wrk's requests and bytes", name)
				}
			})
		}
	}
}

func TestScenarios(t *testing.T) {
	var names []string
	for _, s := range Scenarios([]int64{64 << 10, 1 << 10, 1000}) {
		names = append(names, s.Name+"/"+benchfmt.SizeLabel(s.Size))
	}
	if got, want := strings.Join(names, " "), "hit-64KiB/64KiB hit-1KiB/1KiB hit-1000B/1000B revalidate-304/1000B"; got != want {
		t.Errorf("scenarios %s, want %s", got, want)
	}
}

func TestLuaString(t *testing.T) {
	for in, want := range map[string]string{
		"/o/1KiB/0001": `"/o/1KiB/0001"`,
		`"etag"`:       `"\"etag\""`,
		`a\b`:          `"a\\b"`,
		"x\ny\x7fé":    `"x\010y\127\195\169"`,
	} {
		if got := luaString(in); got != want {
			t.Errorf("luaString(%q) = %s, want %s", in, got, want)
		}
	}
}
