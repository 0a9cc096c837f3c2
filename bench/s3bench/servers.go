package s3bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"golang.org/x/sys/unix"

	"engine/bench/internal/proc"
)

// target is a running server and the client that loads it.
type target struct {
	name   string
	info   TargetInfo
	addr   string // HOST:PORT of its S3 endpoint
	api    string // ours: the node's API, HOST:PORT
	token  string // ours: the API's client token
	proc   *proc.Server
	client *minio.Client
	tr     *http.Transport
}

func (t *target) pid() int { return t.proc.Pid() }

func (t *target) alive() bool { return t.proc == nil || !t.proc.Exited() }

// setup starts target name and makes its bucket. A target returned with
// Skipped set is not measured; with an error it failed to start.
func (b *bench) setup(ctx context.Context, name string) (*target, error) {
	dir := filepath.Join(b.Work, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("s3bench: %w", err)
	}
	t := &target{name: name, info: TargetInfo{Name: name, LogFile: filepath.Join(b.Work, name+".log")}}
	var err error
	switch name {
	case Ours:
		err = b.startOurs(ctx, t, dir)
	case Versitygw:
		err = b.startVersitygw(ctx, t, dir)
	}
	if err != nil || t.info.Skipped != "" {
		t.proc.Stop()
		if err != nil {
			t.info.Skipped = "failed to start: " + err.Error()
		}
		return t, err
	}
	t.client, t.tr, err = newClient(t.addr, idleConns(b.cfg.Concurrency))
	if err == nil {
		err = waitReady(ctx, t, 2*time.Minute)
	}
	if err == nil {
		err = t.client.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: region})
	}
	if err != nil {
		t.proc.Stop()
		if ctx.Err() != nil {
			return t, ctx.Err()
		}
		err = fmt.Errorf("s3bench: %s at %s: %w; its log: %s", name, t.info.Endpoint, err, t.proc.LogTail())
		t.info.Skipped = "failed to start: " + err.Error()
		return t, err
	}
	return t, nil
}

// stopAll stops every running server.
func (b *bench) stopAll() {
	for _, t := range slices.Backward(b.targets) {
		if t.tr != nil {
			t.tr.CloseIdleConnections()
		}
		if err := t.proc.Stop(); err != nil {
			b.Fail(fmt.Errorf("s3bench: stop %s: %w", t.name, err))
		}
	}
}

// startOurs starts engined with the burst buffer and the S3 endpoint.
func (b *bench) startOurs(ctx context.Context, t *target, dir string) error {
	bin, err := proc.FindEngined(b.cfg.Engined)
	if err != nil {
		return fmt.Errorf("s3bench: %w", err)
	}
	t.info.Binary = bin
	t.info.Version = proc.BinaryVersion(bin)
	data, flash, backing := filepath.Join(dir, "data"), filepath.Join(dir, "flash"), filepath.Join(dir, "backing")
	for _, d := range []string{data, flash, backing} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("s3bench: %w", err)
		}
	}
	if err := checkXattr(backing); err != nil {
		return err
	}
	creds := filepath.Join(b.Work, "credentials")
	if err := os.WriteFile(creds, []byte("# s3bench\n"+accessKey+" "+secretKey+"\n"), 0o600); err != nil {
		return fmt.Errorf("s3bench: %w", err)
	}
	// Port 0: engined prints the address it got ("S3 endpoint http://…",
	// before the ENGINE_ADDR line); a port picked here could be taken by
	// another process before engined binds it.
	args := append([]string{bin, "--data", data, "--api", "127.0.0.1:0", "--flash", flash, "--backing", backing,
		"--s3", "127.0.0.1:0", "--credentials", creds}, b.cfg.EnginedArgs...)
	t.info.Data = backing
	t.info.Command = strings.Join(args, " ")
	t.info.Durability = "a PUT returns once its bytes are durable in the burst buffer (erasure coded 4+2, the stores fdatasynced), " +
		"its metadata xattr and file fsynced and it is renamed into place with its directory fsynced (s3/store.go, upload.commit)"
	ready := make(chan string, 1)
	s3addr := make(chan string, 1)
	watch := func(line string) {
		if _, a, ok := strings.Cut(line, "S3 endpoint http://"); ok {
			select {
			case s3addr <- strings.TrimSpace(a):
			default:
			}
		}
		if _, api, ok := strings.Cut(line, "ENGINE_ADDR="); ok {
			select {
			case ready <- strings.TrimRight(api, ") \t"):
			default:
			}
		}
	}
	b.log.Info("starting ours", "command", t.info.Command)
	if t.proc, err = proc.Start(args, childEnv(nil), t.info.LogFile, watch); err != nil {
		return fmt.Errorf("s3bench: %w", err)
	}
	timer := time.NewTimer(2 * time.Minute)
	defer timer.Stop()
	select {
	case t.api = <-ready:
		select {
		case addr := <-s3addr:
			t.addr, t.info.Endpoint = addr, "http://"+addr
		default:
			return fmt.Errorf("s3bench: engined printed no \"S3 endpoint\" line before it was ready: %s", t.proc.LogTail())
		}
		tok, err := os.ReadFile(filepath.Join(data, "token"))
		if err != nil {
			return fmt.Errorf("s3bench: the node's client token: %w", err)
		}
		t.token = strings.TrimSpace(string(tok))
		b.log.Info("ours ready", "s3", t.addr, "api", t.api)
		return nil
	case <-t.proc.Done():
		return fmt.Errorf("s3bench: engined exited before it was ready: %v: %s", t.proc.Err(), t.proc.LogTail())
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return fmt.Errorf("s3bench: engined printed no ENGINE_ADDR line in 2 minutes: %s", t.proc.LogTail())
	}
}

// startVersitygw finds (or builds) versitygw and starts its posix
// backend over a directory of the work directory.
func (b *bench) startVersitygw(ctx context.Context, t *target, dir string) error {
	bin, why, err := b.findVersitygw(ctx)
	if err != nil {
		return err
	}
	if bin == "" {
		t.info.Skipped = why
		b.Note("versitygw skipped: %s", why)
		return nil
	}
	t.info.Binary = bin
	t.info.Version = proc.BinaryVersion(bin)
	if v := t.info.Version; !strings.Contains(v, VersitygwVersion) {
		b.Note("versitygw %s is %s, not %s, the version this benchmark was written against", bin, v, VersitygwVersion)
	}
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return fmt.Errorf("s3bench: %w", err)
	}
	if err := checkXattr(root); err != nil {
		return err
	}
	addr, err := proc.FreeAddr()
	if err != nil {
		return fmt.Errorf("s3bench: %w", err)
	}
	env := []string{"ROOT_ACCESS_KEY_ID=" + accessKey, "ROOT_SECRET_ACCESS_KEY=" + secretKey}
	args := []string{bin, "--port", addr, "--keep-alive"}
	if help, _ := proc.Probe(ctx, bin, "--help"); strings.Contains(help, "--quiet") {
		args = append(args, "-q")
	}
	args = append(args, "posix", root)
	t.addr, t.info.Endpoint, t.info.Data = addr, "http://"+addr, root
	t.info.Command = strings.Join(append(slices.Clone(env), args...), " ")
	t.info.Durability = versitygwDurability(ctx, t.info.Version)
	b.log.Info("starting versitygw", "command", t.info.Command)
	if t.proc, err = proc.Start(args, childEnv(env), t.info.LogFile, nil); err != nil {
		return fmt.Errorf("s3bench: %w", err)
	}
	return nil
}

// findVersitygw returns the peer's binary: Config.Versitygw, else
// versitygw in PATH, else in the cache directory, else one built there.
// With NoBuild and none found it returns "" and why.
func (b *bench) findVersitygw(ctx context.Context) (bin, why string, err error) {
	if p := b.cfg.Versitygw; p != "" {
		if !proc.IsExecutable(p) {
			return "", "", fmt.Errorf("s3bench: versitygw %s: not an executable file", p)
		}
		p, err = filepath.Abs(p)
		return p, "", err
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		p, err = filepath.Abs(p)
		return p, "", err
	}
	cache := CacheBin(b.cfg.CacheDir)
	if cache == "" {
		return "", "no versitygw in PATH and no cache directory (neither $XDG_CACHE_HOME nor $HOME is set)", nil
	}
	p := filepath.Join(cache, "versitygw")
	if proc.IsExecutable(p) {
		return p, "", nil
	}
	if b.cfg.NoBuild {
		return "", fmt.Sprintf("no versitygw in PATH or %s (not built: building takes minutes; "+
			"GOBIN=%s go install %s@%s)", cache, cache, VersitygwPackage, VersitygwVersion), nil
	}
	if err := b.buildVersitygw(ctx, cache); err != nil {
		return "", "", err
	}
	return p, "", nil
}

// CacheBin is the directory a built versitygw is kept in: dir/bin, or
// with dir empty the user's cache directory's engine-bench/bin ("" if
// there is none).
func CacheBin(dir string) string {
	if dir == "" {
		c, err := os.UserCacheDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(c, "engine-bench")
	}
	return filepath.Join(dir, "bin")
}

// buildVersitygw builds versitygw into dir with go install.
func (b *bench) buildVersitygw(ctx context.Context, dir string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("s3bench: no versitygw in PATH or %s, and no go command to build it: install Go, or build it elsewhere and give --versitygw PATH", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("s3bench: versitygw cache: %w", err)
	}
	pkg := VersitygwPackage + "@" + VersitygwVersion
	b.Note("no versitygw in PATH or %s: building it: GOBIN=%s go install %s (a few minutes the first time)", dir, dir, pkg)
	logPath := filepath.Join(b.Work, "versitygw-build.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("s3bench: %w", err)
	}
	defer logf.Close()
	start := time.Now()
	cmd := exec.CommandContext(ctx, goBin, "install", pkg)
	cmd.Dir = dir // outside any module: go install pkg@version ignores it anyway
	cmd.Env = append(childEnv([]string{"GOBIN=" + dir, "GOFLAGS="}), "GO111MODULE=on")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		data, _ := os.ReadFile(logPath)
		return fmt.Errorf("s3bench: GOBIN=%s go install %s: %v: %s", dir, pkg, err, proc.Tail(string(data), 10))
	}
	b.log.Info("built versitygw", "dir", dir, "seconds", time.Since(start).Round(time.Second).Seconds())
	return nil
}

// syncCall matches the ways Go code makes data durable.
var syncCall = regexp.MustCompile(`\.Sync\(\)|\b[Ff]sync\b|\bFsync\(|\bFdatasync\(|\bO_SYNC\b|\bO_DSYNC\b|\bSyncFileRange\(|\bSyncfs\(`)

// versitygwDurability says when versitygw's posix backend makes a PUT
// durable, from its source in the Go module cache when it is there.
func versitygwDurability(ctx context.Context, version string) string {
	ver := VersitygwVersion
	if f := strings.Fields(version); len(f) >= 2 && strings.HasPrefix(f[1], "v") {
		ver = strings.TrimSuffix(f[1], ",")
	}
	what := "a PUT is written to an O_TMPFILE in the bucket's temporary directory (fallocate'd), linked into place with linkat " +
		"and closed; nothing is fsynced, so the bytes reach the disk when the kernel writes the page cache back"
	if ver != VersitygwVersion {
		what = "(unreviewed version)"
	}
	dir, err := moduleSource(ctx, VersitygwModule, ver)
	if err != nil {
		return fmt.Sprintf("%s (per the %s source; not re-checked here: %v)", what, VersitygwVersion, err)
	}
	calls, files := scanSync(filepath.Join(dir, "backend", "posix"))
	if files == 0 {
		return fmt.Sprintf("%s (per the %s source; %s/backend/posix has no Go files)", what, VersitygwVersion, dir)
	}
	if len(calls) == 0 {
		return fmt.Sprintf("%s: its posix backend (%d Go files in %s/backend/posix) has no fsync, fdatasync, Sync(), sync_file_range or O_SYNC/O_DSYNC at all",
			what, files, dir)
	}
	return fmt.Sprintf("its posix backend (%s/backend/posix) syncs at: %s", dir, strings.Join(calls, "; "))
}

// moduleSource is the directory of module@version in the module cache.
func moduleSource(ctx context.Context, module, version string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", errors.New("no go command")
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, goBin, "env", "GOMODCACHE").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMODCACHE: %w", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), module+"@"+version)
	if _, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("%s@%s is not in the module cache", module, version)
	}
	return dir, nil
}

// scanSync lists the lines of dir's Go files (tests excepted) that sync.
func scanSync(dir string) (calls []string, files int) {
	names, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	for _, n := range names {
		if strings.HasSuffix(n, "_test.go") {
			continue
		}
		data, err := os.ReadFile(n)
		if err != nil {
			continue
		}
		files++
		for i, line := range strings.Split(string(data), "\n") {
			code := line
			if j := strings.Index(code, "//"); j >= 0 {
				code = code[:j]
			}
			if syncCall.MatchString(code) {
				calls = append(calls, fmt.Sprintf("%s:%d: %s", filepath.Base(n), i+1, strings.TrimSpace(line)))
			}
		}
	}
	return calls, files
}

// checkXattr fails unless dir's file system takes user xattrs, which
// both servers keep object metadata in.
func checkXattr(dir string) error {
	p := filepath.Join(dir, ".s3bench-xattr")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		return fmt.Errorf("s3bench: %w", err)
	}
	defer os.Remove(p)
	if err := unix.Setxattr(p, "user.s3bench", []byte("1"), 0); err != nil {
		return fmt.Errorf("s3bench: %s does not take user xattrs (%v): both servers keep object metadata in them; give a directory on ext4 or xfs", dir, err)
	}
	return nil
}

// waitReady waits until t answers a signed ListBuckets.
func waitReady(ctx context.Context, t *target, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := t.client.ListBuckets(cctx)
		cancel()
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case t.proc.Exited():
			return fmt.Errorf("exited: %v", t.proc.Err())
		case time.Now().After(deadline):
			return fmt.Errorf("not answering S3 requests after %v: %w", limit, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// childEnv is this process' environment without ENGINE_ADDR and the
// peer's configuration variables, plus extra.
func childEnv(extra []string) []string {
	var env []string
	for _, e := range os.Environ() {
		k, _, _ := strings.Cut(e, "=")
		if k == "ENGINE_ADDR" || strings.HasPrefix(k, "VGW_") || strings.HasPrefix(k, "ROOT_ACCESS_KEY") ||
			strings.HasPrefix(k, "ROOT_SECRET") || slices.ContainsFunc(extra, func(x string) bool { return strings.HasPrefix(x, k+"=") }) {
			continue
		}
		env = append(env, e)
	}
	return append(env, extra...)
}
