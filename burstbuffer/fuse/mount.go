package fuse

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	gofuse "github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"engine/namespace"
)

// Options configures a mount. The zero value is the default.
type Options struct {
	// Debug logs every FUSE request and reply to Logger (to the standard
	// logger if Logger is nil).
	Debug bool
	// OwnerOnly restricts the mount to the user that mounted it. By
	// default a mount made by root is open to every user (allow_other);
	// the kernel checks mode bits either way (default_permissions). A
	// mount made by another user is always owner-only.
	OwnerOnly bool
	// MaxWrite is the largest read or write request, in bytes; 0 means
	// 1 MiB (the kernel's maximum).
	MaxWrite int
	// EntryTimeout is how long the kernel caches the names of
	// directories, symlinks and special files; 0 means 1 s, negative
	// means not at all. Names of regular files are never cached, so a
	// file replaced by a rename on another node is seen at the next open.
	EntryTimeout time.Duration
	// AttrTimeout is how long the kernel caches the attributes of
	// directories, symlinks and special files; 0 means 1 s, negative
	// means not at all. Attributes of regular files are never cached:
	// their size changes through Data and through other nodes.
	AttrTimeout time.Duration
	// Logger receives errors from Data and the backing directory; nil
	// discards them.
	Logger *slog.Logger
}

func (o *Options) ensureDefaults() {
	if o.MaxWrite <= 0 {
		o.MaxWrite = 1 << 20
	}
	o.EntryTimeout = timeoutDefault(o.EntryTimeout)
	o.AttrTimeout = timeoutDefault(o.AttrTimeout)
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

func timeoutDefault(d time.Duration) time.Duration {
	switch {
	case d == 0:
		return time.Second
	case d < 0:
		return 0
	}
	return d
}

// Server serves one mount of the burst buffer. Unmount ends it; Wait
// returns once it has ended.
type Server struct {
	dir     string // mount point
	backing string // backing directory, absolute and free of symlinks
	data    Data
	opts    Options
	log     *slog.Logger
	ns      *namespace.Root // the backing directory: every file-system operation goes through it
	rootDev uint64          // device of the backing directory, as stableAttr uses it
	server  *gofuse.Server
	closeNS sync.Once
	// dirSync fsyncs a backing directory; nil: namespace.Dir.Sync. A
	// test seam.
	dirSync func(d *namespace.Dir) error
}

// syncDir fsyncs the backing directory d (its names).
func (s *Server) syncDir(d *namespace.Dir) error {
	if s.dirSync != nil {
		return s.dirSync(d)
	}
	return d.Sync()
}

// Mount mounts backingDir at mountpoint, with file data going through
// data. ctx bounds the mount itself; the mount lives until Unmount.
// Mounting needs root (or fusermount3 for other users, who cannot create
// files owned by others).
func Mount(ctx context.Context, mountpoint, backingDir string, data Data, opts Options) (*Server, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if data == nil {
		return nil, fmt.Errorf("fuse: mount %s: no Data", mountpoint)
	}
	var debugLog *log.Logger // nil: go-fuse logs to the standard logger
	if opts.Debug && opts.Logger != nil {
		debugLog = slog.NewLogLogger(opts.Logger.Handler(), slog.LevelDebug)
	}
	opts.ensureDefaults()
	ns, err := namespace.OpenRoot(backingDir)
	if err != nil {
		return nil, fmt.Errorf("fuse: backing directory: %w", err)
	}
	backing := ns.Path()
	x, err := ns.Stat("")
	if err == nil && x.Mode&unix.S_IFMT != unix.S_IFDIR {
		err = fmt.Errorf("fuse: backing directory %s is not a directory", backing)
	}
	if err != nil {
		ns.Close()
		return nil, err
	}
	mnt, err := filepath.Abs(mountpoint)
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("fuse: mount point %s: %w", mountpoint, err)
	}

	s := &Server{
		dir:     mnt,
		backing: backing,
		data:    data,
		opts:    opts,
		log:     opts.Logger.With("mount", mnt),
		ns:      ns,
		rootDev: unix.Mkdev(x.Dev_major, x.Dev_minor),
	}
	rootNode := s.newNode()

	root := os.Geteuid() == 0
	mo := gofuse.MountOptions{
		AllowOther: root && !opts.OwnerOnly,
		Options:    []string{"default_permissions"},
		MaxWrite:   opts.MaxWrite,
		FsName:     backing,
		Name:       "burstbuffer",
		Debug:      opts.Debug,
		// The kernel sends O_TRUNC with OPEN and CREATE instead of a
		// separate SETATTR, so truncation goes through Data at open.
		ExtraCapabilities: gofuse.CAP_ATOMIC_O_TRUNC,
		// Passthrough would send reads and writes to the backing file
		// past the buffer; handles never offer a passthrough fd, this
		// keeps it so.
		DisabledCapabilities: gofuse.CAP_PASSTHROUGH,
		DirectMount:          root,
		Logger:               debugLog,
	}
	fo := &fs.Options{
		MountOptions: mo,
		// Timeouts are set per node (see node.setTimeouts); nil here
		// keeps go-fuse from overriding a deliberate 0.
		EntryTimeout:    nil,
		AttrTimeout:     nil,
		NegativeTimeout: nil,
		// Report modes as they are: a 0000 file must stay 0000 for
		// default_permissions to refuse it.
		NullPermissions: true,
		Logger:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	srv, err := fs.Mount(mnt, rootNode, fo)
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("fuse: mount %s on %s: %w", backing, mnt, err)
	}
	s.server = srv
	return s, nil
}

// Dir returns the mount point.
func (s *Server) Dir() string { return s.dir }

// Unmount unmounts the file system. It fails (EBUSY) while files on it are
// open or a process has its working directory in it.
func (s *Server) Unmount() error {
	if err := s.server.Unmount(); err != nil {
		return fmt.Errorf("fuse: unmount %s: %w", s.dir, err)
	}
	return nil
}

// Wait returns once the file system is unmounted and the server stopped.
func (s *Server) Wait() {
	s.server.Wait()
	s.closeNS.Do(func() { s.ns.Close() })
}
