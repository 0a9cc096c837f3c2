package jepsen

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// opClient does one operation through a node: S3 or its mount.
type opClient interface {
	do(ctx context.Context, in Input) (Output, error)
}

// errNotSent wraps an error that shows the operation never touched its
// key: it is left out of the history.
type errNotSent struct{ err error }

func (e errNotSent) Error() string { return e.err.Error() }
func (e errNotSent) Unwrap() error { return e.err }

// fuseTmp is the directory (a top-level directory of the namespace, beside
// the bucket) where puts through a mount write their file before renaming
// it over the key.
const fuseTmp = "jepsen-tmp"

// fsClient does operations through a node's FUSE mount:
//
//	put:    create fuseTmp/VALUE, write, fsync, close, rename over the key
//	get:    read the key's file (ENOENT: absent)
//	delete: unlink it (ENOENT: it was absent, so done)
//
// A put that fails before its rename never touched the key (errNotSent); a
// failed rename or unlink is unknown.
//
// The calls run in a helper process (this test binary, JEPSEN_FS_HELPER=1),
// never in the test process: every close of a FUSE file sends FLUSH and
// waits for the server, and a process that forks (to run ip, tc or
// engined) closes its close-on-exec files in the child before exec while
// the parent waits — with a file open on a mount whose server is
// partitioned, starting any command took up to minutes. A call that
// outlives ctx is answered as a timeout (unknown for a put or delete) and
// its helper is killed; anything the call did is in the window an unknown
// outcome allows.
type fsClient struct {
	nd     *enode
	helper *fsHelper
}

type fsRequest struct {
	In   Input  `json:"in"`
	Root string `json:"root"`
}

type fsResponse struct {
	Out     Output `json:"out"`
	Err     string `json:"err,omitempty"`
	NotSent bool   `json:"not_sent,omitempty"`
}

type fsHelper struct {
	cmd  *exec.Cmd
	enc  *json.Encoder
	dec  *json.Decoder
	done chan struct{}
}

func startFSHelper() (*fsHelper, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "JEPSEN_FS_HELPER=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("jepsen: start the file system helper: %w", err)
	}
	h := &fsHelper{cmd: cmd, enc: json.NewEncoder(in), dec: json.NewDecoder(bufio.NewReader(out)), done: make(chan struct{})}
	go func() { cmd.Wait(); close(h.done) }()
	return h, nil
}

func (h *fsHelper) kill() {
	h.cmd.Process.Kill()
}

// fsHelperMain serves fsRequests on stdin until it closes.
func fsHelperMain() {
	dec := json.NewDecoder(bufio.NewReader(os.Stdin))
	enc := json.NewEncoder(os.Stdout)
	for {
		var req fsRequest
		if err := dec.Decode(&req); err != nil {
			return
		}
		out, err := fsOp(req.Root, req.In)
		resp := fsResponse{Out: out}
		if err != nil {
			resp.Err = err.Error()
			var ns errNotSent
			resp.NotSent = errors.As(err, &ns)
		}
		if err := enc.Encode(resp); err != nil {
			return
		}
	}
}

// close stops the client's helper.
func (f *fsClient) close() {
	if f.helper != nil {
		f.helper.kill()
		f.helper = nil
	}
}

func (f *fsClient) do(ctx context.Context, in Input) (Output, error) {
	if f.helper == nil {
		h, err := startFSHelper()
		if err != nil {
			return Output{}, errNotSent{err}
		}
		f.helper = h
	}
	h := f.helper
	ch := make(chan fsResponse, 1)
	go func() {
		var resp fsResponse
		if err := h.enc.Encode(fsRequest{In: in, Root: f.nd.mountPath()}); err != nil {
			resp.Err = "jepsen: file system helper: " + err.Error()
		} else if err := h.dec.Decode(&resp); err != nil {
			resp.Err = "jepsen: file system helper: " + err.Error()
		}
		ch <- resp
	}()
	select {
	case resp := <-ch:
		if resp.Err == "" {
			return resp.Out, nil
		}
		if resp.NotSent {
			return Output{}, errNotSent{errors.New(resp.Err)}
		}
		return Output{}, errors.New(resp.Err)
	case <-ctx.Done():
		h.kill()
		f.helper = nil
		return Output{}, fmt.Errorf("jepsen: %s of %s through the mount of node-%d did not return in time: %w", in.Kind, in.Key, in.Node, ctx.Err())
	}
}

func fsOp(root string, in Input) (Output, error) {
	path := filepath.Join(root, bucket, in.Key)
	// alive tells a real ENOENT from one of a mount that is gone (its
	// process died, so /proc/PID/root no longer leads to it, or the dead
	// mount was detached and the empty directory beneath answers).
	alive := func() bool {
		_, err := os.Stat(filepath.Join(root, bucket))
		return err == nil
	}
	switch in.Kind {
	case Put:
		tmp := filepath.Join(root, fuseTmp, in.Value)
		fh, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return Output{}, errNotSent{err}
		}
		_, err = fh.WriteString(in.Value)
		if err == nil {
			err = fh.Sync()
		}
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(tmp)
			return Output{}, errNotSent{err}
		}
		if err := os.Rename(tmp, path); err != nil {
			os.Remove(tmp)
			return Output{}, err
		}
		return Output{}, nil
	case Delete:
		err := os.Remove(path)
		if errors.Is(err, fs.ErrNotExist) && alive() {
			return Output{}, nil
		}
		return Output{}, err
	default:
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			if alive() {
				return Output{}, nil
			}
			return Output{}, fmt.Errorf("jepsen: the mount of node-%d is gone: %w", in.Node, err)
		}
		if err != nil {
			return Output{}, err
		}
		return Output{Present: true, Value: string(b)}, nil
	}
}
