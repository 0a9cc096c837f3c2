package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"engine/internal/units"
	"engine/sortjob"
)

const statusUsage = `Usage: enginectl [--addr HOST:PORT] status

Shows the node (data directory, workers, memory budget), Raft (this node's
role, term, applied index, the leader), the members (alive, voter or not,
addresses) and the jobs with their state, progress and result. Needs a
running engined (--addr or ENGINE_ADDR).
`

const cancelUsage = `Usage: enginectl [--addr HOST:PORT] cancel JOB_ID

Cancels a running job. Its tasks stop on every node, its temporary files
are removed and it leaves no output behind. A job that is already
committing its validated output can no longer be cancelled.
`

func orNone(s string) string {
	if s == "" {
		return "(none: no quorum?)"
	}
	return s
}

func needAddr(addr, cmd string) error {
	if addr == "" {
		return usageError{cmd + " needs a running node: give --addr HOST:PORT or set ENGINE_ADDR (start one with: engined --data DIR)"}
	}
	return nil
}

func status(args []string, addr string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, statusUsage) }
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := needAddr(addr, "status"); err != nil {
		return err
	}
	c, err := newClient(addr)
	if err != nil {
		return err
	}
	ctx := context.Background()
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	jobs, err := c.Jobs(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Node %s at %s (pid %d): data %s, %d workers on %d cores, memory budget %s\n",
		st.ID, st.API, st.PID, st.DataDir, st.Workers, st.Cores, units.Format(st.Memory))
	fmt.Fprintf(stdout, "Raft: this node is %s, term %s, applied index %d; leader %s\n", st.RaftState, st.Term, st.Applied, orNone(st.Leader))
	switch {
	case st.SnapshotBytes > 0 && st.SnapshotTook > 0:
		fmt.Fprintf(stdout, "State snapshot: %s at index %d (the last one this process took was encoded in %s)\n\n", units.Format(st.SnapshotBytes), st.SnapshotIndex, st.SnapshotTook.Round(time.Microsecond))
	case st.SnapshotBytes > 0:
		fmt.Fprintf(stdout, "State snapshot: %s at index %d\n\n", units.Format(st.SnapshotBytes), st.SnapshotIndex)
	default:
		fmt.Fprintf(stdout, "State snapshot: none yet (Raft takes one after 2048 entries)\n\n")
	}
	mw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(mw, "MEMBER\tALIVE\tROLE\tAPI\tRAFT\tINTERNAL\tCORES")
	for _, m := range st.Members {
		fmt.Fprintf(mw, "%s\t%v\t%s\t%s\t%s\t%s\t%d\n", m.ID, m.Alive, m.Role, m.APIAddr, m.RaftAddr, m.ShuffleAddr, m.Cores)
	}
	mw.Flush()
	fmt.Fprintln(stdout)
	if len(jobs) == 0 {
		fmt.Fprintln(stdout, "No jobs.")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tSTATE\tSUBMITTED\tSIZE\tPROGRESS / RESULT")
	for _, j := range jobs {
		size := "-"
		if j.Spec.Records > 0 {
			size = units.Format(j.Spec.Records * sortjob.RecordSize)
		} else if j.Spec.Input != "" {
			size = j.Spec.Input
		}
		detail := j.Error
		switch {
		case j.Progress != nil:
			p := j.Progress
			pct := 0.0
			if p.Total > 0 {
				pct = 100 * float64(p.Done) / float64(p.Total)
			}
			detail = fmt.Sprintf("%s (%d/%d) %.0f%%, tasks %d/%d, %d re-runs", p.Phase, p.Step, p.Steps, pct, p.TasksDone, p.Tasks, j.Retries)
		case j.Report != nil:
			r := j.Report
			detail = fmt.Sprintf("%.1fs, %.1f MB/s, check passed=%v", r.Total.Seconds(), r.MBps, r.Check.Passed)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", j.ID, j.State, j.Submitted.Local().Format(time.DateTime), size, detail)
	}
	return tw.Flush()
}

func cancel(args []string, addr string, stdout, stderr io.Writer) error {
	if len(args) != 1 {
		return usageError{"cancel takes one job ID (see enginectl status)"}
	}
	if err := needAddr(addr, "cancel"); err != nil {
		return err
	}
	c, err := newClient(addr)
	if err != nil {
		return err
	}
	st, err := c.Cancel(context.Background(), args[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "job %s: %s\n", st.ID, st.State)
	return nil
}
