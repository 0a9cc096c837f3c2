package main

import (
	"fmt"
	"os"
	"runtime/pprof"
)

var stopProfile = func() {}

func startProfile(path string) {
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "enginectl: ENGINE_CPUPROFILE:", err)
		return
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, "enginectl: ENGINE_CPUPROFILE:", err)
		f.Close()
		return
	}
	stopProfile = func() { pprof.StopCPUProfile(); f.Close() }
}
