package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"engine/burstbuffer"
	bbfuse "engine/burstbuffer/fuse"
	"engine/internal/units"
	"engine/node"
)

const mountUsage = `Usage: enginectl mount MOUNTPOINT [flags]

Mounts the namespace at MOUNTPOINT (FUSE; as root with a direct mount,
otherwise through fusermount3) and serves it until SIGINT or SIGTERM, which
unmount it cleanly. File data goes through the erasure-coded burst buffer
and drains to the backing directory in whole aligned stripes; names, modes,
owners and links are the backing directory's.

Without --join (or --addr/ENGINE_ADDR) it runs an embedded one-node cluster
with its data under --data; with --join it starts a node that joins that
cluster and mounts there (bb commands to a one-node mount need its client
token, in DATA/token, unless --token or ENGINE_TOKEN gave it one); a node
new to the cluster also needs
--join-token FILE (the cluster's join token, its first node's
DATA/join-token). "mounted MOUNTPOINT" is printed once it serves.

Flags:
`

func mountFlags(out io.Writer) (*flag.FlagSet, *mountOptions) {
	o := &mountOptions{}
	fs := flag.NewFlagSet("enginectl mount", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.data, "data", filepath.Join(defaultDataDir(), "mount"), "the mounting node's data `DIR` (its flash and backing directories default to DIR/flash and DIR/backing)")
	fs.StringVar(&o.api, "api", "127.0.0.1:0", "the mounting node's API address `HOST:PORT` (0: any free port)")
	fs.StringVar(&o.join, "join", "", "join the cluster through the API address `HOST:PORT` of a member, instead of running a one-node cluster")
	fs.StringVar(&o.joinToken, "join-token", "", "with --join: `FILE` holding the cluster's join token (its first node's DATA/join-token)")
	fs.StringVar(&o.name, "name", "", "node name (default: saved in the data directory, else random)")
	fs.BoolVar(&o.debug, "debug", false, "log every FUSE request")
	o.bb = node.BBFlags(fs)
	fs.Usage = func() {
		fmt.Fprint(out, mountUsage)
		fs.PrintDefaults()
	}
	return fs, o
}

type mountOptions struct {
	data, api, join, name string
	joinToken             string
	debug                 bool
	bb                    func(string, string) (*node.BurstBuffer, error)
}

func mount(args []string, addr string, stdout, stderr io.Writer) error {
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			fs, _ := mountFlags(stdout)
			fs.Usage()
			return nil
		}
	}
	// The mount point may come before the flags.
	var mnt string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		mnt, args = args[0], args[1:]
	}
	fs, o := mountFlags(stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if mnt == "" && fs.NArg() == 1 {
		mnt = fs.Arg(0)
	} else if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("mount takes one mount point (got %q too)", fs.Args())}
	}
	if mnt == "" {
		return usageError{"mount needs a mount point: enginectl mount /mnt/engine"}
	}
	if o.join == "" {
		o.join = addr
	}
	bb, err := o.bb(filepath.Join(o.data, "flash"), filepath.Join(o.data, "backing"))
	if err != nil {
		return usageError{err.Error()}
	}
	if fi, err := os.Stat(mnt); err != nil || !fi.IsDir() {
		return fmt.Errorf("mount point %s: not a directory (create it first)", mnt)
	}
	jt := ""
	if o.joinToken != "" {
		b, err := os.ReadFile(o.joinToken)
		if err != nil {
			return fmt.Errorf("--join-token: %w", err)
		}
		jt = strings.TrimSpace(string(b))
	}
	log := slogger(stderr)
	// A mount that makes its own one-node cluster takes the client token
	// enginectl would send (--token, ENGINE_TOKEN), if one is given.
	ct := ""
	if o.join == "" && (tokenFile != "" || os.Getenv("ENGINE_TOKEN") != "") {
		if ct, err = clientToken(); err != nil {
			return err
		}
	}
	n, err := node.Open(node.Config{DataDir: o.data, API: o.api, Join: o.join, JoinToken: jt, ClientToken: ct, Name: o.name,
		RaftTimeout: 200 * time.Millisecond, BurstBuffer: bb, Logger: log})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	err = n.WaitReady(rctx)
	cancel()
	if err != nil {
		n.Close()
		return err
	}
	if _, err := n.Mount(ctx, mnt, bbfuse.Options{Debug: o.debug}); err != nil {
		n.Close()
		return fmt.Errorf("mount %s: %w", mnt, err)
	}
	fmt.Fprintf(stdout, "mounted %s (api %s, node %s)\n", mnt, n.Addr(), n.ID())
	<-ctx.Done()
	fmt.Fprintf(stderr, "enginectl: unmounting %s\n", mnt)
	return n.Close()
}

const bbUsage = `Usage: enginectl [--addr HOST:PORT] bb COMMAND [PATH]

Staging commands of the burst buffer (like IME's):
  bb status [--json]   every node's flash fill, drain backlog, drain rate,
                       the sizes of the writes sent to the backing file
                       system, health, and how many node losses the
                       buffered data tolerates now (with a warning when
                       there are too few nodes for the erasure code)
  bb sync PATH         drain PATH (a file or a directory tree) now and wait
  bb purge PATH        drain PATH, then drop its buffered copies from flash
  bb prestage PATH     pull PATH from the backing file system into flash
PATH is a path of the namespace as seen from the mount's root ("/" is
everything, "/dir/file" one file), or a path inside the backing directory.
The node is --addr or ENGINE_ADDR.
`

func bbCommand(args []string, addr string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, bbUsage)
		if len(args) == 0 {
			return usageError{"bb needs a command: status, sync, purge or prestage"}
		}
		return nil
	}
	if err := needAddr(addr, "bb"); err != nil {
		return err
	}
	c, err := newClient(addr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	op, rest := args[0], args[1:]
	switch op {
	case "status":
		asJSON := false
		for _, a := range rest {
			switch a {
			case "--json", "-json":
				asJSON = true
			default:
				return usageError{fmt.Sprintf("bb status: unknown argument %q", a)}
			}
		}
		st, err := c.BBStatus(ctx)
		if err != nil {
			return err
		}
		if asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(st)
		}
		printBBStatus(stdout, st)
		return nil
	case "sync", "purge", "prestage":
		if len(rest) != 1 {
			return usageError{fmt.Sprintf("bb %s takes one PATH (\"/\" for everything)", op)}
		}
		path := rest[0]
		if path == "/" {
			path = "."
		}
		resp, err := c.BB(ctx, op, path)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "bb %s %s: done in %.2fs", op, rest[0], resp.Seconds)
		if resp.Bytes > 0 {
			fmt.Fprintf(stdout, " (%d bytes)", resp.Bytes)
		}
		fmt.Fprintln(stdout)
		return nil
	}
	return usageError{fmt.Sprintf("bb: unknown command %q: use status, sync, purge or prestage", op)}
}

func printBBStatus(w io.Writer, st node.BBStatusResponse) {
	for _, s := range st.Nodes {
		fmt.Fprintf(w, "node %s  code %s  live nodes %d  health: %s\n", s.Node, s.Code, s.LiveNodes, s.Health)
		fmt.Fprintf(w, "  flash %s of %s (%.0f%%)  buffered %s in %d dirty files  stripes %d\n",
			human(s.FlashUsed), human(s.FlashLimit), 100*float64(s.FlashUsed)/float64(max(1, s.FlashLimit)), human(s.Buffered), s.DirtyFiles, s.Stripes)
		fmt.Fprintf(w, "  accepted %s in %d stripes  drained %s  backing writes %s at %s/s (chunk %s)\n",
			human(s.Written), s.StripesWritten, human(s.Drained), human(s.BackingWritten), human(int64(s.DrainRate)), human(int64(s.DrainChunk)))
		if len(s.WriteSizes) > 0 {
			keys := make([]string, 0, len(s.WriteSizes))
			for k := range s.WriteSizes {
				keys = append(keys, k)
			}
			sort.Slice(keys, func(i, j int) bool { return bucketBytes(keys[i]) < bucketBytes(keys[j]) })
			fmt.Fprintf(w, "  backing writes: %d whole aligned chunks, %d file tails, %d other, %d of 4 KiB or less; sizes:", s.FullWrites, s.TailWrites, s.OtherWrites, s.SmallWrites)
			for _, k := range keys {
				fmt.Fprintf(w, " %s:%d", k, s.WriteSizes[k])
			}
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "  degraded reads %d  shards repaired %d  writes throttled %d\n", s.DegradedReads, s.Repaired, s.Throttled)
		fmt.Fprintf(w, "  %s\n", toleranceLine(s))
		if s.Warning != "" {
			fmt.Fprintf(w, "  WARNING: %s\n", s.Warning)
		}
		if s.BackingFull != "" {
			fmt.Fprintf(w, "  BACKING FULL: %s\n", s.BackingFull)
		}
	}
	for _, e := range st.Errors {
		fmt.Fprintf(w, "unreachable: %s\n", e)
	}
}

// toleranceLine says how many node losses a node's buffered data
// tolerates now, and how many stripes tolerate how many.
func toleranceLine(s burstbuffer.Status) string {
	var b strings.Builder
	switch t := s.NodeLossesTolerated; {
	case t < 0:
		b.WriteString("node losses tolerated: none, some stripes are unreadable now")
	default:
		fmt.Fprintf(&b, "node losses tolerated: %d", t)
	}
	if len(s.ToleranceStripes) > 0 {
		keys := make([]int, 0, len(s.ToleranceStripes))
		for k := range s.ToleranceStripes {
			keys = append(keys, k)
		}
		sort.Ints(keys)
		b.WriteString("  (stripes:")
		for _, k := range keys {
			if k < 0 {
				fmt.Fprintf(&b, " %d unreadable", s.ToleranceStripes[k])
			} else {
				fmt.Fprintf(&b, " %d tolerate %d", s.ToleranceStripes[k], k)
			}
		}
		b.WriteString(")")
	} else {
		b.WriteString("  (nothing buffered: what new stripes get)")
	}
	if s.UnavailableStripes > 0 || s.LostStripes > 0 {
		fmt.Fprintf(&b, "  unavailable %d  lost %d", s.UnavailableStripes, s.LostStripes)
	}
	return b.String()
}

// bucketBytes is the size a write-size label ("≤4KiB", ">32MiB") names.
func bucketBytes(label string) int64 {
	n, _ := units.ParseBytes(strings.TrimLeft(label, "≤>"))
	if strings.HasPrefix(label, ">") {
		n++
	}
	return n
}

func slogger(w io.Writer) *slog.Logger {
	level := slog.LevelInfo
	if v := os.Getenv("ENGINE_LOG_LEVEL"); v != "" {
		level.UnmarshalText([]byte(v))
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
