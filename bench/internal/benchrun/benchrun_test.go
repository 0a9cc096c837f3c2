package benchrun

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "made")
	r, err := Start("mybench", dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(r.Work) != dir || !strings.HasPrefix(filepath.Base(r.Work), "mybench-") {
		t.Fatalf("work directory %s", r.Work)
	}
	r.Note("a %d", 1)
	r.Fail(fmt.Errorf("mybench: wrapped: %w", context.Canceled))
	r.Fail(errors.New("mybench: one"))
	ctx, cancel := context.WithCancel(context.Background())
	r.Ended(ctx, nil)
	r.Ended(ctx, errors.New("mybench: two"))
	cancel()
	r.Ended(ctx, context.Canceled)
	r.Finish(true, "logs")
	if _, err := os.Stat(r.Work); err != nil {
		t.Errorf("kept: %v", err)
	}
	r.Finish(false, "")
	if _, err := os.Stat(r.Work); !os.IsNotExist(err) {
		t.Errorf("removed: %v", err)
	}
	want := []string{"a 1", "kept the work directory " + r.Work + " (logs)"}
	if strings.Join(r.Notes, "|") != strings.Join(want, "|") {
		t.Errorf("notes %q, want %q", r.Notes, want)
	}
	got := strings.Join(r.Errors(), "|")
	if got != "mybench: one|mybench: two|mybench: interrupted" {
		t.Errorf("errors %q", got)
	}
	json := filepath.Join(dir, "rep.json")
	r.WriteJSON(json, map[string]int{"a": 1})
	r.WriteJSON(filepath.Join(dir, "no", "rep.json"), 1)
	r.WriteJSON("", 1)
	if err := r.Err(); err == nil || !strings.Contains(err.Error(), "mybench: write the JSON report: open ") {
		t.Errorf("Err() = %v", err)
	}
	if data, err := os.ReadFile(json); err != nil || string(data) != "{\n  \"a\": 1\n}\n" {
		t.Errorf("the JSON file: %q, %v", data, err)
	}
}

func TestStartFails(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o644)
	if _, err := Start("mybench", f, slog.New(slog.DiscardHandler)); err == nil || !strings.HasPrefix(err.Error(), "mybench: work directory: ") {
		t.Errorf("Start in a file: %v", err)
	}
}

func TestSleep(t *testing.T) {
	if !Sleep(context.Background(), time.Millisecond) {
		t.Error("Sleep did not sleep")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Sleep(ctx, time.Hour) {
		t.Error("Sleep outlived its context")
	}
}

func TestMedian(t *testing.T) {
	v := []float64{3, 1, 2, 4}
	for _, tc := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{5}, 5}, {[]float64{3, 1, 2}, 2}, {v, 2.5}} {
		if got := Median(tc.in); got != tc.want {
			t.Errorf("Median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
	if v[0] != 3 {
		t.Error("Median sorted its argument")
	}
}

func TestReportEnd(t *testing.T) {
	goals := []Goal{{"a", "x", "y", Pass}, {"b", "x", "y", Fail}, {"c", "x", "y", NA}}
	if s := Summary(goals); s != "1 of 2 met (1 not measured)" {
		t.Errorf("Summary = %q", s)
	}
	if Verdict(true) != Pass || Verdict(false) != Fail {
		t.Error("Verdict")
	}
	var b bytes.Buffer
	WriteGoals(&b, goals[:1])
	WriteEnd(&b, []string{"n"}, nil, 2.4)
	want := "  PASS  a: want x\n        got y\n\nnotes:\n  n\n\n(2s in all)\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	if data, _ := json.Marshal(goals[0]); string(data) != `{"name":"a","want":"x","got":"y","verdict":"PASS"}` {
		t.Errorf("a Goal in JSON: %s", data)
	}
}
