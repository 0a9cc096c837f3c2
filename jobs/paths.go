package jobs

import (
	"fmt"
	"path/filepath"

	"engine/coordinator"
	"engine/shuffle"
	"engine/sortjob"
)

// checkSpec checks a submitted job's paths.
func (n *Manager) checkSpec(spec sortjob.Spec) error {
	if err := n.checkPath("--input", spec.Input); err != nil {
		return err
	}
	return n.checkPath("--output", spec.Output)
}

// checkTaskPaths checks, before this node runs a task of a replicated
// job, the paths that task uses: the job's input and output, and a map's
// own input split. The replicated state is validated for shape, but only
// this node knows its roots. (One task's paths, not every map's: a job
// has up to millions of them.)
func (n *Manager) checkTaskPaths(j *coordinator.Job, kind coordinator.Kind, index int) error {
	if err := n.checkSpec(j.Spec); err != nil {
		return err
	}
	if kind == coordinator.KindMap && index >= 0 && index < len(j.Plan.Maps) {
		return n.checkPath(fmt.Sprintf("map %d's input", index), j.Plan.Maps[index].Path)
	}
	return nil
}

// checkPath checks a path a job names with the node's rules (Config.CheckPath).
func (n *Manager) checkPath(what, p string) error {
	if n.cfg.CheckPath == nil {
		return nil
	}
	return n.cfg.CheckPath(what, p)
}

// jobDir is job's scratch directory on this node, mapDir where its map and
// merge outputs are.
func (n *Manager) jobDir(job string) string { return filepath.Join(n.cfg.DataDir, "jobs", job) }
func (n *Manager) mapDir(job string) string { return MapDir(n.cfg.DataDir, job) }

// MapDir is where a node with data directory dataDir keeps job's map and
// merge outputs, which its shuffle service serves.
func MapDir(dataDir, job string) string { return filepath.Join(dataDir, "jobs", job, "map") }

// outputDir is where reduces of job j write before the commit: a temporary
// directory inside the shared output, or this node's scratch.
func (n *Manager) outputDir(j *coordinator.Job) string {
	if j.Spec.Output != "" {
		return sortjob.TempDir(j.Spec.Output, j.ID)
	}
	return filepath.Join(n.jobDir(j.ID), "output")
}

// Locator is the shuffle service's view of the map and merge outputs of a
// node with data directory dataDir.
func Locator(dataDir string) shuffle.Locator {
	return func(job string, id shuffle.OutputID) (string, string, error) {
		dir := MapDir(dataDir, job)
		return filepath.Join(dir, shuffle.OutputDataName(id)), filepath.Join(dir, shuffle.OutputIndexName(id)), nil
	}
}
