// Package coordinator is the cluster's replicated state machine and its
// scheduler.
//
// State holds the members, jobs, tasks, attempts, assignments and map output
// locations. Apply(state, command) is the only way it changes: a pure,
// deterministic function with no I/O, so it is tested without Raft, and
// every node that applies the same log holds the same state. Apply first
// validates the command on its own (Command.Validate: ids in the shuffle id
// charset, bounded counts, a consistent plan within the limits of a job) and
// checks it against the state before changing anything, so a rejected
// command changes nothing and no command panics. Reconcile(state)
// is the scheduler as a pure function too: from the desired state (jobs and
// their tasks) and the live members it returns the commands that move the
// cluster toward it — assign pending tasks to free slots, re-run tasks whose
// node died and map outputs lost with it, fail a job whose task ran out of
// attempts.
//
// Raft (hashicorp/raft, with a bbolt log and stable store and file
// snapshots) only orders the commands: see Raft and FSM. The leader runs
// Reconcile and proposes what it returns; every node reads the state to find
// the tasks assigned to it.
package coordinator
