// Package proc runs the servers a benchmark measures, finds their
// binaries and measures their CPU time.
//
// A Server is a process in its own process group whose output goes to a
// log file, and to a function that sees it line by line (to catch the
// line that says where it listens):
//
//	s, err := proc.Start([]string{bin, "--api", "127.0.0.1:0"}, os.Environ(), logPath, watch)
//	...
//	case <-s.Done():
//		return fmt.Errorf("mybench: %s exited: %v: %s", bin, s.Err(), s.LogTail())
//	...
//	if err := s.Stop(); err != nil { // SIGTERM, SIGKILL after StopLimit
//		return fmt.Errorf("mybench: stop %s: %w", bin, err)
//	}
//
// FindEngined, IsExecutable, BinaryVersion, Probe and FreeAddr find and
// describe the binaries and give them a port. CPU, TreeCPU and SelfCPU
// say how much CPU time a process, a process and all it forked, and this
// process have used, for a figure such as CPU per request:
//
//	c0, err := proc.TreeCPU(s.Pid()) // varnishd's manager and its cache child
//	runLoad()
//	c1, err := proc.TreeCPU(s.Pid())
//	perReq := (c1 - c0) / time.Duration(requests)
//
// Errors do not name a package: the benchmark that calls wraps them
// with its own name ("edgebench: start …").
package proc
