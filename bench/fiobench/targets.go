package fiobench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// setup makes target name ready. A target it returns with Skipped set
// is not measured; an error ends the run.
func (b *bench) setup(ctx context.Context, name string) (*target, error) {
	dir := filepath.Join(b.work, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("fiobench: %w", err)
	}
	t := &target{name: name, info: TargetInfo{Name: name}}
	switch name {
	case Direct:
		t.path = dir
	case Loopback:
		backing, mnt := filepath.Join(dir, "backing"), filepath.Join(dir, "mnt")
		unmount, err := mountLoopback(backing, mnt, b.cfg.Passthrough)
		if err != nil {
			return nil, err
		}
		t.path, t.info.Backing, t.unmount = mnt, backing, unmount
	case Ours:
		return b.setupOurs(ctx, t, dir)
	}
	t.info.Path = t.path
	return t, nil
}

// teardown unmounts t; ours (already drained by finishDrain) is stopped.
func (b *bench) teardown(t *target) error {
	if t.ours != nil {
		return t.ours.stop()
	}
	if t.unmount != nil {
		return t.unmount()
	}
	return nil
}

// mountLoopback mounts go-fuse's loopback file system of backing at mnt,
// served by this process, and returns how to unmount it.
func mountLoopback(backing, mnt string, passthrough bool) (func() error, error) {
	for _, d := range []string{backing, mnt} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, fmt.Errorf("fiobench: loopback: %w", err)
		}
	}
	root, err := fs.NewLoopbackRoot(backing)
	if err != nil {
		return nil, fmt.Errorf("fiobench: loopback of %s: %w", backing, err)
	}
	mo := fuse.MountOptions{
		DirectMount: true,
		MaxWrite:    1 << 20,
		AllowOther:  os.Geteuid() == 0, // others need user_allow_other
		FsName:      backing,
		Name:        "fiobench-loopback",
	}
	if !passthrough {
		// A daemon that sees the data, as ours does.
		mo.DisabledCapabilities = fuse.CAP_PASSTHROUGH
	}
	srv, err := fs.Mount(mnt, root, &fs.Options{MountOptions: mo})
	if err != nil {
		return nil, fmt.Errorf("fiobench: mount the go-fuse loopback of %s at %s (needs root or fusermount3 from the Debian package fuse3): %w", backing, mnt, err)
	}
	return func() error {
		var err error
		// fio and the create loop have closed everything; the kernel
		// may still be releasing the last handles.
		for range 50 {
			if err = srv.Unmount(); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			unix.Unmount(mnt, unix.MNT_DETACH)
			return fmt.Errorf("fiobench: unmount loopback %s: %w (detached it)", mnt, err)
		}
		srv.Wait()
		return nil
	}, nil
}

// goFuseVersion is the go-fuse module this binary was built with.
func goFuseVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, d := range bi.Deps {
		if d.Path == "github.com/hanwen/go-fuse/v2" {
			return d.Version
		}
	}
	return ""
}

// setupOurs mounts ours with enginectl. A binary that is missing or
// lacks the mount command skips ours; a mount that fails is an error
// of the run but skips ours too, so the other targets still run.
func (b *bench) setupOurs(ctx context.Context, t *target, dir string) (*target, error) {
	bin := b.cfg.Enginectl
	if bin == "" {
		p, err := exec.LookPath("enginectl")
		if err != nil {
			t.info.Skipped = "no enginectl in PATH: build it (go build ./cmd/enginectl) and set Config.Enginectl"
			b.note("ours skipped: %s", t.info.Skipped)
			return t, nil
		}
		bin = p
	}
	if abs, err := filepath.Abs(bin); err == nil {
		bin = abs
	}
	b.rep.Host.Enginectl = bin
	if why := probeMount(ctx, bin); why != "" {
		t.info.Skipped = why
		b.note("ours skipped: %s", why)
		return t, nil
	}
	o := &oursMount{
		bin:     bin,
		mnt:     filepath.Join(dir, "mnt"),
		backing: filepath.Join(dir, "backing"),
		flash:   b.cfg.Flash,
		data:    filepath.Join(dir, "data"),
		logPath: filepath.Join(b.work, "ours.log"),
		log:     b.log,
	}
	if o.flash == "" {
		o.flash = filepath.Join(dir, "flash")
	}
	for _, d := range []string{o.mnt, o.backing, o.flash, o.data} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("fiobench: ours: %w", err)
		}
	}
	t.info.Backing = o.backing
	t.info.Command = strings.Join(o.mountArgs(b.cfg.MountArgs), " ")
	if why := probeBB(ctx, bin); why != "" {
		b.note("ours' drain is not measured: %s", why)
	} else {
		o.bb = true
		b.rep.Drain = &DrainReport{SameDevice: sameDevice(o.flash, o.backing)}
	}
	if err := o.start(ctx, b.cfg.MountArgs); err != nil {
		t.info.Skipped = "mount failed: " + err.Error()
		b.rep.Drain = nil
		b.fail(err)
		return t, nil
	}
	if b.rep.Drain != nil {
		b.rep.Drain.Node = o.api
	}
	t.path, t.ours = o.mnt, o
	t.info.Path = t.path
	return t, nil
}

// sameDevice says whether a and b are on one device.
func sameDevice(a, b string) bool {
	var sa, sb unix.Stat_t
	if unix.Stat(a, &sa) != nil || unix.Stat(b, &sb) != nil {
		return false
	}
	return sa.Dev == sb.Dev
}

// probeMount says why bin cannot mount ours, or "" when it can: its
// "mount -h" must list the flags the benchmark passes.
func probeMount(ctx context.Context, bin string) string {
	out, err := probe(ctx, bin, "mount", "-h")
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.EACCES) {
		return fmt.Sprintf("%s: %v", bin, err)
	}
	if strings.Contains(out, "unknown command") {
		return fmt.Sprintf("%s has no mount command yet (mount -h: %s)", bin, firstLine(out))
	}
	var missing []string
	for _, f := range []string{"-backing", "-flash", "-data", "-api"} {
		if !strings.Contains(out, f) {
			missing = append(missing, "-"+f)
		}
	}
	if len(missing) > 0 {
		return fmt.Sprintf("%s mount lacks %s (mount -h: %s)", bin, strings.Join(missing, ", "), firstLine(out))
	}
	return ""
}

// probeBB says why bin cannot sync and report the burst buffer, or "".
func probeBB(ctx context.Context, bin string) string {
	out, _ := probe(ctx, bin, "bb", "-h")
	for _, w := range []string{"sync", "status"} {
		if !strings.Contains(out, w) {
			return fmt.Sprintf("%s bb has no %q command (bb -h: %s)", bin, w, firstLine(out))
		}
	}
	return ""
}

// probe runs bin with args for at most 15 s and returns its output.
// Help exits 2 in enginectl, so the exit code says nothing.
func probe(ctx context.Context, bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = childEnv()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if s == "" {
		return "no output"
	}
	return s
}

// childEnv is this process' environment without ENGINE_ADDR: a mount
// given one would join that cluster instead of running its own.
func childEnv() []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "ENGINE_ADDR=") {
			env = append(env, e)
		}
	}
	return env
}
