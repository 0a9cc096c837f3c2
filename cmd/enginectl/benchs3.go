package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"engine/bench/s3bench"
)

// benchS3 runs "enginectl bench s3": our S3 endpoint against versitygw.
func benchS3(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench s3", flag.ContinueOnError)
	fs.SetOutput(stderr)
	build := s3bench.Flags(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), s3bench.Usage)
		fs.PrintDefaults()
	}
	if err := parseBench(fs, args); err != nil {
		var ue usageError
		if errors.Is(err, flag.ErrHelp) || errors.As(err, &ue) {
			return err
		}
		return usageError{"bench s3: " + err.Error()} // a bad flag or value: exit 2
	}
	cfg, err := build()
	if err != nil {
		return usageError{"bench s3: " + err.Error()}
	}
	cfg.Out, cfg.Log = stdout, slogger(stderr)
	interrupted := "both servers were stopped and the work directory removed"
	if cfg.Keep {
		interrupted = "both servers were stopped; the work directory was kept (--keep)"
	}
	return runBench("bench s3", interrupted, stderr, func(ctx context.Context) error {
		_, err := s3bench.Run(ctx, cfg)
		return err
	})
}
