package main

import (
	"flag"
	"fmt"
	"io"
)

type benchOptions struct{}

func benchFlags(o *benchOptions, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("bench sort", flag.ContinueOnError)
	fs.SetOutput(out)
	return fs
}

func benchSort(args []string, stdout, stderr io.Writer) error {
	return fmt.Errorf("bench sort: not yet built")
}
