// Package benchrun is what the benchmarks' Run functions share around
// their measurements: the work directory, the notes and errors gathered
// as the run goes, the goals and verdicts, and the end of the report.
//
//	r, err := benchrun.Start("mybench", cfg.Dir, cfg.Log) // makes DIR/mybench-*
//	if err != nil {
//		return nil, err
//	}
//	err = measure(ctx, r.Work) // calling r.Note and r.Fail as it goes
//	r.Ended(ctx, err)
//	r.Finish(cfg.Keep, "logs")  // removes the work directory, or notes it is kept
//	rep.Notes, rep.Errors = r.Notes, r.Errors()
//	rep.print(cfg.Out)          // ending with WriteGoals and WriteEnd
//	r.WriteJSON(cfg.JSON, rep)
//	return rep, r.Err()
package benchrun

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"
)

// Run is one benchmark run's work directory, notes and errors. It is not
// safe for concurrent use.
type Run struct {
	name string // the benchmark's package: the prefix of its errors
	log  *slog.Logger
	// Work is the work directory, made by Start.
	Work string
	// Notes are what the report says besides the figures, in order.
	Notes []string
	errs  []error
}

// Start makes the work directory, a new NAME-* in dir (made too if need
// be). name is the benchmark's package, the prefix of the errors Run
// makes; log receives the notes and errors as they come.
func Start(name, dir string, log *slog.Logger) (*Run, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("%s: work directory: %w", name, err)
	}
	work, err := os.MkdirTemp(dir, name+"-")
	if err != nil {
		return nil, fmt.Errorf("%s: work directory: %w", name, err)
	}
	return &Run{name: name, log: log, Work: work}, nil
}

// Note logs a note and keeps it for the report.
func (r *Run) Note(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	r.log.Info(s)
	r.Notes = append(r.Notes, s)
}

// Fail logs an error and keeps it for the report, except
// context.Canceled: Ended says "interrupted" once instead.
func (r *Run) Fail(err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	r.log.Error(err.Error())
	r.errs = append(r.errs, err)
}

// Ended records how the measurements ended: "NAME: interrupted" if ctx
// is done, else err if there is one.
func (r *Run) Ended(ctx context.Context, err error) {
	switch {
	case ctx.Err() != nil:
		r.Fail(errors.New(r.name + ": interrupted"))
	case err != nil:
		r.Fail(err)
	}
}

// Finish removes the work directory, unless keep: then it notes that it
// kept it, and what it holds if holds is set.
func (r *Run) Finish(keep bool, holds string) {
	if keep {
		if holds != "" {
			holds = " (" + holds + ")"
		}
		r.Note("kept the work directory %s%s", r.Work, holds)
		return
	}
	if err := os.RemoveAll(r.Work); err != nil {
		r.Fail(fmt.Errorf("%s: remove %s: %w", r.name, r.Work, err))
	}
}

// Errors are the errors so far, as the report gives them.
func (r *Run) Errors() []string {
	var s []string
	for _, e := range r.errs {
		s = append(s, e.Error())
	}
	return s
}

// WriteJSON writes the report rep to the file path as indented JSON,
// unless path is empty. Failing is an error of the run's, after the
// report: it is returned by Err, not logged.
func (r *Run) WriteJSON(path string, rep any) {
	if path == "" {
		return
	}
	data, err := json.MarshalIndent(rep, "", "  ")
	if err == nil {
		err = os.WriteFile(path, append(data, '\n'), 0o644)
	}
	if err != nil {
		r.errs = append(r.errs, fmt.Errorf("%s: write the JSON report: %w", r.name, err))
	}
}

// Err is every error of the run, joined; nil if there was none.
func (r *Run) Err() error { return errors.Join(r.errs...) }

// Sleep waits d, or until ctx is done; it says whether d passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
