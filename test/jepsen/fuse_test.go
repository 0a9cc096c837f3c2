package jepsen

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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
// failed rename or unlink is unknown. File system calls cannot be
// cancelled: one that outlives ctx is left running and answered as a
// timeout (unknown for a put or delete), and anything it does later is in
// the window an unknown outcome allows.
type fsClient struct {
	nd *enode
}

func (f *fsClient) do(ctx context.Context, in Input) (Output, error) {
	type res struct {
		out Output
		err error
	}
	ch := make(chan res, 1)
	go func() {
		out, err := f.op(in)
		ch <- res{out, err}
	}()
	select {
	case r := <-ch:
		return r.out, r.err
	case <-ctx.Done():
		return Output{}, fmt.Errorf("jepsen: %s of %s through the mount of node-%d did not return in time: %w", in.Kind, in.Key, in.Node, ctx.Err())
	}
}

func (f *fsClient) op(in Input) (Output, error) {
	root := f.nd.mountPath()
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
