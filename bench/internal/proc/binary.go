package proc

import (
	"context"
	"debug/buildinfo"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// FindEngined finds our server: bin if given, else "engined" beside the
// running executable, else in PATH. It returns an absolute path.
func FindEngined(bin string) (string, error) {
	if bin != "" {
		if !IsExecutable(bin) {
			return "", fmt.Errorf("engined %s: not an executable file", bin)
		}
		return filepath.Abs(bin)
	}
	var beside string
	if self, err := os.Executable(); err == nil {
		beside = filepath.Join(filepath.Dir(self), "engined")
		if IsExecutable(beside) {
			return beside, nil
		}
	}
	if p, err := exec.LookPath("engined"); err == nil {
		return filepath.Abs(p)
	}
	return "", fmt.Errorf("engined is neither beside this executable (%s) nor in PATH: build both: go build -o DIR/ ./cmd/enginectl ./cmd/engined", beside)
}

// IsExecutable says whether p is a regular file someone may execute.
func IsExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// BinaryVersion is a Go binary's main module and version, from its build
// information ("engine (devel) (0123456789ab), go1.26.0"), or "" if it
// has none.
func BinaryVersion(bin string) string {
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		return ""
	}
	v := bi.Main.Path
	if bi.Main.Version != "" {
		v += " " + bi.Main.Version
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " (" + s.Value[:12] + ")"
		}
	}
	return strings.TrimSpace(v + ", " + bi.GoVersion)
}

// Probe runs bin with args for at most 15 s and returns its output,
// stdout and stderr together.
func Probe(ctx context.Context, bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	return string(out), err
}

// FreeAddr picks a free port on 127.0.0.1: HOST:PORT. Another process
// may take it before the server binds it; a server that can print the
// port it got from port 0 is better started that way.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("no free port on 127.0.0.1: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}
