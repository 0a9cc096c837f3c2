package node

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"engine/internal/units"
	"engine/sortjob"
)

// IsTerminal reports whether fd is a terminal.
func IsTerminal(fd uintptr) bool {
	_, err := unix.IoctlGetTermios(int(fd), unix.TCGETS)
	return err == nil
}

// FollowOptions says how to show progress.
type FollowOptions struct {
	// Terminal draws a progress bar redrawn in place; otherwise a plain
	// line is printed every Interval and at each phase change.
	Terminal bool
	Interval time.Duration // plain-line period; default 5s
	Poll     time.Duration // default 200ms
}

// Follow polls a job until it ends, showing its progress on w, and returns
// its final status. If ctx ends first, Follow returns ctx's error.
func Follow(ctx context.Context, c *Client, id string, w io.Writer, opt FollowOptions) (JobStatus, error) {
	if opt.Interval <= 0 {
		opt.Interval = 5 * time.Second
	}
	if opt.Poll <= 0 {
		opt.Poll = 200 * time.Millisecond
	}
	var lastPhase string
	var lastLine time.Time
	drawn := false
	for {
		// A long poll: the answer comes as soon as the job ends.
		st, err := c.WaitJob(ctx, id, opt.Poll)
		if err != nil {
			if drawn {
				fmt.Fprintln(w)
			}
			if ctx.Err() != nil {
				return st, ctx.Err()
			}
			return st, err
		}
		if st.Done() {
			if drawn {
				fmt.Fprint(w, "\r\033[K")
			}
			return st, nil
		}
		if p := st.Progress; p != nil && p.Phase != "" {
			if opt.Terminal {
				fmt.Fprintf(w, "\r\033[K%s", progressBar(*p, 30))
				drawn = true
			} else if p.Phase != lastPhase || time.Since(lastLine) >= opt.Interval {
				fmt.Fprintln(w, progressLine(*p))
				lastPhase, lastLine = p.Phase, time.Now()
			}
		}
		if ctx.Err() != nil {
			if drawn {
				fmt.Fprintln(w)
			}
			return st, ctx.Err()
		}
	}
}

func rateETA(p sortjob.Progress) (rate float64, eta string) {
	if s := p.PhaseElapsed.Seconds(); s > 0 {
		rate = float64(p.Done) / s
	}
	eta = "--"
	if rate > 0 && p.Total > 0 {
		eta = time.Duration(float64(p.Total-p.Done) / rate * float64(time.Second)).Round(time.Second).String()
	}
	return rate, eta
}

// progressBar renders one line: phase, bar, bytes, rate, ETA.
func progressBar(p sortjob.Progress, width int) string {
	frac := 0.0
	if p.Total > 0 {
		frac = min(1, float64(p.Done)/float64(p.Total))
	}
	fill := int(frac * float64(width))
	bar := strings.Repeat("=", fill) + strings.Repeat(" ", width-fill)
	if fill < width && fill > 0 {
		bar = strings.Repeat("=", fill-1) + ">" + strings.Repeat(" ", width-fill)
	}
	rate, eta := rateETA(p)
	return fmt.Sprintf("[%d/%d] %-8s [%s] %3.0f%% %s / %s  %s/s  ETA %s  tasks %d/%d",
		p.Step, p.Steps, p.Phase, bar, 100*frac, units.Format(p.Done), units.Format(p.Total),
		units.Format(int64(rate)), eta, p.TasksDone, p.Tasks)
}

// progressLine renders a plain log line.
func progressLine(p sortjob.Progress) string {
	rate, eta := rateETA(p)
	pct := 0.0
	if p.Total > 0 {
		pct = 100 * float64(p.Done) / float64(p.Total)
	}
	return fmt.Sprintf("[%7.1fs] %s (%d/%d): %.0f%%, %s of %s, %s/s, ETA %s, tasks %d/%d",
		p.Elapsed.Seconds(), p.Phase, p.Step, p.Steps, pct, units.Format(p.Done), units.Format(p.Total),
		units.Format(int64(rate)), eta, p.TasksDone, p.Tasks)
}
