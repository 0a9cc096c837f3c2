package node

import (
	"errors"
	"flag"
	"fmt"
	"net"

	"engine/s3"
)

// S3 configures the node's S3 endpoint, which serves the burst buffer's
// namespace: a bucket is a top-level directory of it, an object a file.
type S3 struct {
	Addr   string         // --s3 HOST:PORT
	Creds  s3.Credentials // --credentials FILE
	Domain string         // --s3-domain: BUCKET.DOMAIN names a bucket (virtual-host style)
}

// S3Flags adds the S3 endpoint's flags to fs; the returned function builds
// the configuration once fs is parsed (nil when --s3 is not given).
func S3Flags(fs *flag.FlagSet) func() (*S3, error) {
	addr := fs.String("s3", "", "serve S3 on `HOST:PORT` (needs --flash, --backing and --credentials)")
	creds := fs.String("credentials", "", "S3 access keys: `FILE` of ACCESS_KEY SECRET_KEY lines")
	domain := fs.String("s3-domain", "", "`DOMAIN` for virtual-host-style S3 requests (BUCKET.DOMAIN)")
	return func() (*S3, error) {
		if *addr == "" {
			if *creds != "" || *domain != "" {
				return nil, errors.New("--credentials and --s3-domain need --s3 HOST:PORT")
			}
			return nil, nil
		}
		if *creds == "" {
			return nil, errors.New("--s3 needs --credentials FILE (one ACCESS_KEY SECRET_KEY pair a line)")
		}
		c, err := s3.LoadCredentials(*creds)
		if err != nil {
			return nil, fmt.Errorf("--credentials: %w", err)
		}
		return &S3{Addr: *addr, Creds: c, Domain: *domain}, nil
	}
}

// startS3 starts the S3 endpoint over the burst buffer.
func (n *Node) startS3() error {
	c := n.cfg.S3
	if c == nil {
		return nil
	}
	if n.bb == nil {
		return errors.New("node: the S3 endpoint needs the burst buffer: give --flash DIR and --backing DIR")
	}
	srv, err := s3.New(s3.Config{Root: n.cfg.BurstBuffer.BackingDir, Data: n.bb, Creds: c.Creds, Domain: c.Domain, Log: n.log,
		Ready: n.bb.Synced, NodeID: n.id})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return fmt.Errorf("node: S3 listen on %s: %w", c.Addr, err)
	}
	n.s3srv, n.s3ln = srv, ln
	n.goFunc(func() {
		if err := srv.Serve(ln); err != nil {
			n.log.Error("S3 server", "err", err)
		}
	})
	return nil
}

// S3Addr is the S3 endpoint's address, "" without one.
func (n *Node) S3Addr() string {
	if n.s3ln == nil {
		return ""
	}
	return n.s3ln.Addr().String()
}
