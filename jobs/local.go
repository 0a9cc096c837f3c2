package jobs

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"

	"engine/coordinator"
	"engine/shuffle"
	"engine/sortjob"
)

// LocalConfig is a one-node run's settings.
type LocalConfig struct {
	// DataDir holds the job's scratch and the measured rate (rate.json).
	DataDir string
	// Workers is the tasks run at once (default GOMAXPROCS).
	Workers int
	// Memory is the default budget when the spec has none.
	Memory int64
}

// RunLocal runs one sort job to its end on this process alone, through the
// same lifecycle a cluster runs (Manager: submit, executor, scheduler,
// commit), over a state applied in process instead of replicated by Raft.
// The dry run's calibration sort uses it. It returns the job's report, or
// the job's error.
func RunLocal(ctx context.Context, cfg LocalConfig, spec sortjob.Spec) (*sortjob.Report, error) {
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.Memory <= 0 {
		cfg.Memory = sortjob.DefaultMemory()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fsm := coordinator.NewFSM()
	var mu sync.Mutex
	changed := make(chan struct{})
	var m *Manager
	fsm.OnApply = func() {
		mu.Lock()
		close(changed)
		changed = make(chan struct{})
		mu.Unlock()
		if m != nil {
			m.Kick()
		}
	}
	const self = "local"
	if err := fsm.ApplyLocal(coordinator.Command{Type: coordinator.CmdMemberUpsert, Time: time.Now(), Member: &coordinator.Member{ID: self, Cores: cfg.Workers}}); err != nil {
		return nil, fmt.Errorf("jobs: local run: %w", err)
	}
	m = New(ctx, Config{Node: self, DataDir: cfg.DataDir, Workers: cfg.Workers, Memory: cfg.Memory, State: fsm,
		Propose: ProposerFunc(func(_ context.Context, c coordinator.Command) error { return fsm.ApplyLocal(c) }),
		Fetcher: shuffle.DefaultFetcher, Segments: shuffle.NewServer(Locator(cfg.DataDir), nil),
		Changes: func() <-chan struct{} {
			mu.Lock()
			defer mu.Unlock()
			return changed
		}})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		m.Run()
	}()
	defer func() {
		cancel()
		wg.Wait()
		m.Close()
	}()
	st, err := m.Submit(ctx, spec)
	if err != nil {
		return nil, err
	}
	// The leader's part, on every change (and a tick for the speculation
	// clock), until the job ends.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		ch := m.changes()
		m.Lead(ctx)
		if cur, ok := m.Job(st.ID); ok && cur.Done() {
			if cur.State != StateSucceeded {
				return cur.Report, fmt.Errorf("%s", cur.Error)
			}
			return cur.Report, nil
		}
		select {
		case <-ch:
		case <-tick.C:
		case <-ctx.Done():
			m.Cancel(context.Background(), st.ID)
			m.Lead(context.Background())
			return nil, ctx.Err()
		}
	}
}
