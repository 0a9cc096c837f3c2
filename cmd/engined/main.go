// Command engined runs one engine node as a daemon: it keeps its state in a
// data directory, runs the jobs that enginectl submits, and serves the HTTP
// API on --api.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	bbfuse "engine/burstbuffer/fuse"
	"engine/internal/units"
	"engine/node"
)

const usage = `Usage: engined [flags]

Runs one engine node: its HTTP API on --api, its state and job scratch space
under --data. Submit work with enginectl --addr HOST:PORT (or ENGINE_ADDR).
SIGINT or SIGTERM stops it. Jobs are not cancelled: their state is in the
Raft log, and the tasks this node was running are re-run elsewhere, or here
after a restart.

A config file (--config FILE) holds the same settings as the flags, one
"name = value" per line (# starts a comment); flags on the command line win.
Example:
  data = /var/lib/engine
  api = 10.0.0.5:7070
  memory = 8GB

Flags:
`

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("engined", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "", "data `DIR` (required)")
	api := fs.String("api", "127.0.0.1:7070", "HTTP API listen address `HOST:PORT`")
	workers := fs.Int("workers", 0, "concurrent tasks (default: GOMAXPROCS)")
	memory := fs.String("memory", "", "default per-job memory budget, e.g. 4GB (default: a quarter of RAM, at most 4GiB)")
	config := fs.String("config", "", "read settings from `FILE` (name = value lines)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	name := fs.String("name", "", "node name, its id in the cluster (default: saved in the data directory, else random)")
	join := fs.String("join", "", "join the cluster through the API address `HOST:PORT` of any member (default: bootstrap a new cluster if this data directory has none)")
	token := fs.String("token", "", "with --join: `FILE` holding the cluster's join token (its first node's DATA/join-token); needed only until this node has its certificate")
	clientToken := fs.String("client-token", "", "when this node makes a new cluster: take the client API's token from `FILE` (default: $ENGINE_TOKEN if set, else a new random one; kept in DATA/token)")
	var apiNames, ioRoots stringList
	fs.Var(&ioRoots, "io-root", "confine the paths sort jobs read and write (--input, --output) to `DIR` (repeat for several; default: any absolute path)")
	fs.Var(&apiNames, "api-name", "a host `NAME` clients may call the API by, besides its address, IP addresses, localhost and the machine's host name (repeat for several)")
	bind := fs.String("bind", "", "this node's API address `HOST:PORT` (same as --api); Raft, gossip and the internal port use the next three ports")
	raftAddr := fs.String("raft", "", "Raft address (default: API port + 1)")
	gossip := fs.String("gossip", "", "gossip (memberlist) address (default: API port + 2)")
	internal := fs.String("internal", "", "internal address for node-to-node traffic: the shuffle service (default: API port + 3)")
	voters := fs.Int("voters", 3, "Raft voters in the cluster (3 or 5; odd numbers tolerate the most failures); later nodes join as non-voters")
	readyTimeout := fs.Duration("ready-timeout", 30*time.Second, "give up starting if the node is not a cluster member within this time")
	bbConfig := node.BBFlags(fs)
	s3Config := node.S3Flags(fs)
	edgeConfig := node.EdgeFlags(fs)
	mountDir := fs.String("mount", "", "mount the namespace (POSIX, through FUSE) at `DIR` on this node; needs --flash and --backing")
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "engined: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if *config != "" {
		if err := applyConfig(fs, *config); err != nil {
			fmt.Fprintln(stderr, "engined:", err)
			return 2
		}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "engined: --log-level %q: use debug, info, warn or error\n", *logLevel)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if *bind != "" {
		*api = *bind
	}
	cfg := node.Config{DataDir: *data, API: *api, Workers: *workers, Logger: log, Name: *name, Join: *join,
		RaftAddr: *raftAddr, GossipAddr: *gossip, ShuffleAddr: *internal, MaxVoters: *voters, APINames: apiNames, IORoots: ioRoots, JoinTimeout: *readyTimeout}
	if *token != "" {
		b, err := os.ReadFile(*token)
		if err != nil {
			fmt.Fprintln(stderr, "engined: --token:", err)
			return 2
		}
		cfg.JoinToken = strings.TrimSpace(string(b))
	}
	if *clientToken != "" {
		b, err := os.ReadFile(*clientToken)
		if err != nil {
			fmt.Fprintln(stderr, "engined: --client-token:", err)
			return 2
		}
		cfg.ClientToken = strings.TrimSpace(string(b))
	} else if t := strings.TrimSpace(os.Getenv("ENGINE_TOKEN")); t != "" && *join == "" {
		cfg.ClientToken = t
	}
	if *memory != "" {
		m, err := units.ParseBytes(*memory)
		if err != nil {
			fmt.Fprintln(stderr, "engined: --memory:", err)
			return 2
		}
		cfg.Memory = m
	}
	if cfg.DataDir == "" {
		fmt.Fprintln(stderr, "engined: no data directory: give --data DIR (or data = DIR in --config)")
		return 2
	}
	bb, err := bbConfig("", "")
	if err != nil {
		fmt.Fprintln(stderr, "engined:", err)
		return 2
	}
	if *mountDir != "" && bb == nil {
		fmt.Fprintln(stderr, "engined: --mount needs the burst buffer: give --flash DIR and --backing DIR")
		return 2
	}
	cfg.BurstBuffer = bb
	if cfg.S3, err = s3Config(); err != nil {
		fmt.Fprintln(stderr, "engined:", err)
		return 2
	}
	if cfg.Edge, err = edgeConfig(); err != nil {
		fmt.Fprintln(stderr, "engined:", err)
		return 2
	}
	if cfg.S3 != nil && bb == nil {
		fmt.Fprintln(stderr, "engined: --s3 serves the burst buffer's namespace: give --flash DIR and --backing DIR too")
		return 2
	}
	n, err := node.Open(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "engined:", err)
		if cfg.Join != "" && cfg.JoinToken != "" && !errors.Is(err, node.ErrNameInUse) {
			fmt.Fprintf(stderr, "engined: could not join the cluster through %s: check --join (the API address HOST:PORT of a running member) and --token\n", cfg.Join)
		}
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// ENGINE_CPUPROFILE=FILE writes a CPU profile of the daemon until it
	// stops (SIGTERM); %p in FILE becomes the process id, so that the nodes
	// of one `cluster up` write a profile each.
	if path := os.Getenv("ENGINE_CPUPROFILE"); path != "" {
		path = strings.ReplaceAll(path, "%p", strconv.Itoa(os.Getpid()))
		if f, err := os.Create(path); err != nil {
			fmt.Fprintln(stderr, "engined: ENGINE_CPUPROFILE:", err)
		} else if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "engined: ENGINE_CPUPROFILE:", err)
			f.Close()
		} else {
			defer f.Close()
			defer pprof.StopCPUProfile()
		}
	}
	rctx, cancel := context.WithTimeout(ctx, *readyTimeout)
	err = n.WaitReady(rctx)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			fmt.Fprintf(stderr, "engined: %v\n", err)
			if cfg.Join != "" && !errors.Is(err, node.ErrNameInUse) {
				fmt.Fprintf(stderr, "engined: could not join the cluster through %s within %s: check --join (the API address HOST:PORT of a running member) and --token\n", cfg.Join, *readyTimeout)
			}
		}
		n.Close()
		return 1
	}
	if *mountDir != "" {
		if _, err := n.Mount(ctx, *mountDir, bbfuse.Options{}); err != nil {
			fmt.Fprintln(stderr, "engined: mount:", err)
			n.Close()
			return 1
		}
		fmt.Fprintf(stderr, "engined: namespace mounted at %s\n", *mountDir)
	}
	if a := n.S3Addr(); a != "" {
		fmt.Fprintf(stderr, "engined: S3 endpoint http://%s\n", a)
	}
	if u := n.EdgeURL(); u != "" {
		fmt.Fprintf(stderr, "engined: edge endpoint %s\n", u)
	}
	fmt.Fprintf(stderr, "engined: node %s serving on %s (ENGINE_ADDR=%s)\n", n.ID(), n.Addr(), n.Addr())
	<-ctx.Done()
	log.Info("stopping")
	if err := n.Close(); err != nil {
		log.Error("stop", "err", err)
		return 1
	}
	return 0
}

// applyConfig sets every flag named in the file that was not given on the
// command line.
func applyConfig(fs *flag.FlagSet, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if i := strings.Index(text, "#"); i >= 0 {
			text = strings.TrimSpace(text[:i])
		}
		if text == "" {
			continue
		}
		name, value, ok := strings.Cut(text, "=")
		name, value = strings.TrimSpace(name), strings.Trim(strings.TrimSpace(value), `"`)
		if !ok || name == "" {
			return fmt.Errorf("config %s:%d: want name = value, got %q", path, line, text)
		}
		if name == "config" || fs.Lookup(name) == nil {
			return fmt.Errorf("config %s:%d: unknown setting %q (settings are the flag names: see engined --help)", path, line, name)
		}
		if set[name] {
			continue
		}
		if err := fs.Set(name, value); err != nil {
			return fmt.Errorf("config %s:%d: %s: %w", path, line, name, err)
		}
	}
	return sc.Err()
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }
