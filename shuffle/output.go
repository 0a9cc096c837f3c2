package shuffle

import (
	"fmt"
	"strconv"
)

// OutputKind says which task wrote a shuffle output.
type OutputKind uint8

// Output kinds. The zero kind is not one: an OutputID with it is invalid.
const (
	// KindMap is a map task's output: one split, sorted and partitioned.
	KindMap OutputKind = 1
	// KindMerge is a per-node merge of map outputs (MergeOutputs): every
	// partition's segments of its inputs merged into one segment.
	KindMerge OutputKind = 2
)

func (k OutputKind) String() string {
	switch k {
	case KindMap:
		return "map"
	case KindMerge:
		return "merge"
	}
	return "kind" + strconv.Itoa(int(k))
}

// Bounds of an OutputID's fields.
const (
	// MaxOutputIndex is the largest task index an output may have.
	MaxOutputIndex = 1<<31 - 1
	// MaxAttempt is the largest attempt number; attempts count from 1.
	MaxAttempt = 1<<16 - 1
)

// OutputID names one shuffle output of a job: the kind of task that wrote
// it, the task's index in its stage, and the attempt of that task. Two
// attempts of one task (a re-run, or a speculative twin on another node)
// write outputs with different names, so neither can overwrite the other.
type OutputID struct {
	Kind    OutputKind
	Index   int // task index, 0..MaxOutputIndex
	Attempt int // 1..MaxAttempt
}

// MapOutputID returns the id of attempt of map task index.
func MapOutputID(index, attempt int) OutputID {
	return OutputID{Kind: KindMap, Index: index, Attempt: attempt}
}

// MergeOutputID returns the id of attempt of merge task index.
func MergeOutputID(index, attempt int) OutputID {
	return OutputID{Kind: KindMerge, Index: index, Attempt: attempt}
}

// String gives "map 12 attempt 3".
func (id OutputID) String() string {
	return fmt.Sprintf("%v %d attempt %d", id.Kind, id.Index, id.Attempt)
}

// Validate checks the id's kind, index and attempt.
func (id OutputID) Validate() error {
	if msg := id.check(); msg != "" {
		return fmt.Errorf("shuffle: output %s: %s", id, msg)
	}
	return nil
}

// check returns what is wrong with id, or "".
func (id OutputID) check() string {
	switch {
	case id.Kind != KindMap && id.Kind != KindMerge:
		return fmt.Sprintf("unknown output kind %d: want %d (map) or %d (merge)", id.Kind, KindMap, KindMerge)
	case id.Index < 0 || id.Index > MaxOutputIndex:
		return fmt.Sprintf("index %d out of range 0..%d", id.Index, MaxOutputIndex)
	case id.Attempt < 1 || id.Attempt > MaxAttempt:
		return fmt.Sprintf("attempt %d out of range 1..%d", id.Attempt, MaxAttempt)
	}
	return ""
}

// baseName is the output's file name without its extension:
// "map-00012.a3". The id must be valid.
func (id OutputID) baseName() string {
	return fmt.Sprintf("%v-%05d.a%d", id.Kind, id.Index, id.Attempt)
}

// OutputDataName and OutputIndexName are the file names of an output's data
// and index files: "map-00012.a3.data" and "map-00012.a3.index",
// "merge-00004.a1.data" and "merge-00004.a1.index". The id must be valid
// (Validate), or the names mean nothing.
func OutputDataName(id OutputID) string  { return id.baseName() + ".data" }
func OutputIndexName(id OutputID) string { return id.baseName() + ".index" }
