package sortjob

import "time"

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
