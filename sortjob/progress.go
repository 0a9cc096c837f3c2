package sortjob

import (
	"sync"
	"sync/atomic"
	"time"
)

// Phases of a run, in order.
var Phases = []string{"sample", "map", "reduce", "validate", "commit"}

// Progress is a snapshot of a running job.
type Progress struct {
	Phase        string        `json:"phase"`
	Step         int           `json:"step"`  // 1-based index in Phases
	Steps        int           `json:"steps"` // len(Phases)
	Done         int64         `json:"done"`  // bytes done in this phase
	Total        int64         `json:"total"` // bytes this phase will do
	TasksDone    int           `json:"tasks_done"`
	Tasks        int           `json:"tasks"`
	PhaseElapsed time.Duration `json:"phase_elapsed"`
	Elapsed      time.Duration `json:"elapsed"`
}

// Tracker records a run's progress; it is safe for concurrent use. Its zero
// value is ready.
type Tracker struct {
	done  atomic.Int64
	tasks atomic.Int64
	mu    struct {
		sync.Mutex
		phase      string
		step       int
		total      int64
		ntasks     int
		start      time.Time
		phaseStart time.Time
	}
}

func (t *Tracker) begin(phase string, total int64, tasks int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	if t.mu.start.IsZero() {
		t.mu.start = now
	}
	t.mu.phase, t.mu.total, t.mu.ntasks, t.mu.phaseStart = phase, total, tasks, now
	for i, p := range Phases {
		if p == phase {
			t.mu.step = i + 1
		}
	}
	t.done.Store(0)
	t.tasks.Store(0)
}

func (t *Tracker) add(n int64) { t.done.Add(n) }
func (t *Tracker) taskDone()   { t.tasks.Add(1) }

// Snapshot returns the current progress.
func (t *Tracker) Snapshot() Progress {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := Progress{
		Phase: t.mu.phase, Step: t.mu.step, Steps: len(Phases),
		Done: t.done.Load(), Total: t.mu.total,
		TasksDone: int(t.tasks.Load()), Tasks: t.mu.ntasks,
	}
	if !t.mu.start.IsZero() {
		p.Elapsed = time.Since(t.mu.start)
		p.PhaseElapsed = time.Since(t.mu.phaseStart)
	}
	return p
}
