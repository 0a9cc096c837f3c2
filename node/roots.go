package node

import (
	"fmt"
	"path/filepath"
	"strings"

	"engine/coordinator"
	"engine/sortjob"
)

// checkPath refuses a job path that is not absolute and clean, or (with
// --io-root) lies outside the configured roots. what names the path for
// the error ("--output", "map 3's input").
func (n *Node) checkPath(what, p string) error {
	if p == "" {
		return nil
	}
	if !filepath.IsAbs(p) || filepath.Clean(p) != p || strings.ContainsRune(p, 0) {
		return fmt.Errorf("node: %s %q: give an absolute path without \"..\", \".\" or doubled slashes", what, p)
	}
	if len(n.cfg.IORoots) == 0 {
		return nil
	}
	// Symbolic links in the path count: the path must be under a root
	// once they are followed, as far as it exists.
	real := p
	if r, err := evalExisting(p); err == nil {
		real = r
	}
	for _, root := range n.cfg.IORoots {
		rr := root
		if r, err := filepath.EvalSymlinks(root); err == nil {
			rr = r
		}
		if within(rr, real) {
			return nil
		}
	}
	return fmt.Errorf("node: %s %q is outside the directories this node lets jobs use (--io-root %s)", what, p, strings.Join(n.cfg.IORoots, ", "))
}

// within reports whether p is root or beneath it.
func within(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// evalExisting resolves the symbolic links of the longest existing prefix
// of p and appends the rest.
func evalExisting(p string) (string, error) {
	rest := ""
	for cur := p; ; {
		if r, err := filepath.EvalSymlinks(cur); err == nil {
			return filepath.Join(r, rest), nil
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return p, nil
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}

// checkSpec checks a submitted job's paths.
func (n *Node) checkSpec(spec sortjob.Spec) error {
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
func (n *Node) checkTaskPaths(j *coordinator.Job, kind coordinator.Kind, index int) error {
	if err := n.checkSpec(j.Spec); err != nil {
		return err
	}
	if kind == coordinator.KindMap && index >= 0 && index < len(j.Plan.Maps) {
		return n.checkPath(fmt.Sprintf("map %d's input", index), j.Plan.Maps[index].Path)
	}
	return nil
}
