package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"engine/node"
	"engine/s3"
)

const clusterUsage = `Usage:
  enginectl cluster up --nodes N [--dir DIR]
  enginectl cluster down [--dir DIR]

"up" starts N engined processes on 127.0.0.1: node i in DIR/node-i (its data,
flash, engined.log and engined.pid); node-0 bootstraps the cluster, the others
join it. Every node runs the burst buffer over the shared DIR/backing and
serves S3 on its own port, with the keys in DIR/credentials (made the first
time), and runs an edge cache on another port in front of the cluster's S3
endpoints (the edges form one ring; admin token in DIR/edge-token). It
waits until every node is a live member under one leader, then prints each
node's addresses, the ENGINE_ADDR=... line and the S3 keys. Run again on the same DIR after "down", it
restarts the same nodes on the same ports with their data (job history,
Raft state) intact.

"down" stops them (SIGTERM, then SIGKILL after 10s) and keeps their data.

DIR defaults to $ENGINE_DATA/cluster, else ~/.engine/cluster. engined is
looked up next to enginectl, then in PATH.

Flags:
`

var clusterWorkers int

func clusterFlags(out io.Writer) (*flag.FlagSet, *int, *string) {
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	fs.SetOutput(out)
	nodes := fs.Int("nodes", 3, "number of nodes (up)")
	fs.IntVar(&clusterWorkers, "workers", 0, "concurrent tasks per node (up; default: this machine's cores divided among the nodes, at least 1, since they share it)")
	dir := fs.String("dir", filepath.Join(defaultDataDir(), "cluster"), "cluster directory")
	fs.Usage = func() {
		fmt.Fprint(out, clusterUsage)
		fs.PrintDefaults()
	}
	return fs, nodes, dir
}

func cluster(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "up" && args[0] != "down") {
		return usageError{"cluster takes up or down: enginectl cluster up --nodes 3"}
	}
	fs, nodes, dir := clusterFlags(stderr)
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	if args[0] == "down" {
		c, err := node.LoadLocal(abs)
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("cluster: no cluster in %s (nothing to stop)", abs)
		}
		if err != nil {
			return err
		}
		c.Stop(10 * time.Second)
		fmt.Fprintf(stdout, "stopped %d nodes in %s (data kept; \"enginectl cluster up --dir %s\" restarts them)\n", len(c.Nodes), abs, abs)
		return nil
	}
	engined, err := findEngined()
	if err != nil {
		return err
	}
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == "nodes" })
	n := *nodes
	if !set {
		n = 0 // restart whatever DIR holds, or the default size
		if _, err := node.LoadLocal(abs); err != nil {
			n = *nodes
		}
	}
	workers := clusterWorkers
	if workers <= 0 {
		size := n
		if size == 0 {
			if old, err := node.LoadLocal(abs); err == nil {
				size = len(old.Nodes)
			}
		}
		workers = max(1, runtime.NumCPU()/max(size, 1))
	}
	tok := ""
	if tokenFile != "" || os.Getenv("ENGINE_TOKEN") != "" {
		if tok, err = clientToken(); err != nil {
			return err
		}
	}
	c, err := node.StartLocal(context.Background(), node.LocalConfig{Nodes: n, Dir: abs, Engined: engined,
		Args: []string{"--workers", strconv.Itoa(workers)}, Namespace: true, ClientToken: tok})
	if err != nil {
		return err
	}
	for i, nd := range c.Nodes {
		fmt.Fprintf(stdout, "%s  api %s  s3 http://%s  edge http://%s  raft %s  gossip %s  internal %s  pid %d  %s\n", nd.Name, nd.API, nd.S3, nd.Edge, nd.Raft, nd.Gossip, nd.Internal, nd.PID, c.NodeDir(i))
	}
	fmt.Fprintf(stdout, "ENGINE_ADDR=%s\n", c.Nodes[0].API)
	fmt.Fprintf(stdout, "client token: %s (enginectl --token %s, or ENGINE_TOKEN=$(cat %s))\n", c.TokenFile(), c.TokenFile(), c.TokenFile())
	fmt.Fprintf(stdout, "cluster CA: %s; join token for more nodes: %s (engined --join %s --token %s)\n", c.CAFile(), c.JoinTokenFile(), c.Nodes[0].API, c.JoinTokenFile())
	if ak, sk, err := firstKey(c.CredentialsFile()); err == nil {
		fmt.Fprintf(stdout, "S3: any node's endpoint above, bucket = a top-level directory of %s\n", c.Backing())
		fmt.Fprintf(stdout, "AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s AWS_DEFAULT_REGION=us-east-1 (keys in %s)\n", ak, sk, c.CredentialsFile())
		fmt.Fprintf(stdout, "edge: any node's edge above serves public-read buckets' objects (admin token in %s)\n", c.EdgeTokenFile())
	}
	return nil
}

// firstKey returns the first key pair of an S3 credentials file.
func firstKey(path string) (ak, sk string, err error) {
	creds, err := s3.LoadCredentials(path)
	if err != nil {
		return "", "", err
	}
	for k, v := range creds {
		if ak == "" || k < ak {
			ak, sk = k, v
		}
	}
	return ak, sk, nil
}

// findEngined returns the engined binary: beside this executable, else in
// PATH.
func findEngined() (string, error) {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "engined")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	if p, err := exec.LookPath("engined"); err == nil {
		return p, nil
	}
	return "", errors.New("cluster: engined not found beside enginectl or in PATH; build both: go build -o bin/ ./cmd/enginectl ./cmd/engined")
}
