package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"sort"
	"strings"
	"time"

	"engine/coordinator"
	"engine/internal/pki"
	"engine/sortjob"
)

// SubmitRequest is the body of POST /v1/jobs.
type SubmitRequest struct {
	Kind string       `json:"kind"` // "sort"
	Spec sortjob.Spec `json:"spec"`
}

// PlanRequest is the body of POST /v1/plan.
type PlanRequest struct {
	Spec    sortjob.Spec    `json:"spec"`
	Cluster sortjob.Cluster `json:"cluster"`
}

// PlanResponse is the answer to POST /v1/plan.
type PlanResponse struct {
	Plan *sortjob.Plan `json:"plan"`
	Rate sortjob.Rate  `json:"rate"` // zero when the node has not measured one
	Text string        `json:"text"`
}

// MemberStatus is one member as GET /v1/status shows it.
type MemberStatus struct {
	coordinator.Member
	Leader bool   `json:"leader"`
	Role   string `json:"role"` // leader, voter, non-voter, or removed from Raft
}

// NodeStatus is the answer to GET /v1/status.
type NodeStatus struct {
	ID        string         `json:"id"`
	DataDir   string         `json:"data_dir"`
	API       string         `json:"api"`
	Workers   int            `json:"workers"`
	Memory    int64          `json:"memory"`
	Cores     int            `json:"cores"`
	PID       int            `json:"pid"`
	Leader    string         `json:"leader"`
	RaftState string         `json:"raft_state"`
	Term      string         `json:"term"`
	Applied   uint64         `json:"applied_index"`
	Members   []MemberStatus `json:"members"`
	Ready     bool           `json:"ready"`
	// The replicated state's newest snapshot on this node (bytes and the
	// log index it covers), and the last one this process took (how long
	// encoding it took).
	SnapshotBytes int64         `json:"snapshot_bytes,omitempty"`
	SnapshotIndex uint64        `json:"snapshot_index,omitempty"`
	SnapshotTook  time.Duration `json:"snapshot_took,omitempty"`
}

type apiError struct {
	Error string `json:"error"`
}

// handler serves the API:
//
//	GET  /v1/status              this node, the leader, Raft, the members
//	POST /v1/jobs                submit a job (SubmitRequest) → JobStatus
//	GET  /v1/jobs                all jobs → []JobStatus
//	GET  /v1/jobs/{id}           one job with progress → JobStatus;
//	                             ?wait=DURATION answers as soon as the job
//	                             ends, or after DURATION (up to 1m)
//	POST /v1/jobs/{id}/cancel    cancel → JobStatus
//	POST /v1/plan                plan without running (PlanRequest) → PlanResponse
//	POST /v1/cluster/certificate a new node's certificate (CertRequest, with
//	                             the join token; over TLS only)
//	/v1/bb/…                     burst buffer staging (bbHandlers)
//
// Any node answers; writes are forwarded to the leader. Every route but the
// certificate wants the client token (authorize).
func (n *Node) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, n.Status())
	})
	mux.HandleFunc("POST /v1/jobs", func(w http.ResponseWriter, r *http.Request) {
		var req SubmitRequest
		if !readJSON(w, r, &req) {
			return
		}
		if req.Kind != "sort" {
			writeJSON(w, http.StatusBadRequest, apiError{fmt.Sprintf("unknown job kind %q: the node runs \"sort\" jobs", req.Kind)})
			return
		}
		st, err := n.Submit(r.Context(), req.Spec)
		if err != nil {
			code := http.StatusBadRequest
			if errors.Is(err, coordinator.ErrNoQuorum) || errors.Is(err, coordinator.ErrNotLeader) {
				code = http.StatusServiceUnavailable
			}
			writeJSON(w, code, apiError{err.Error()})
			return
		}
		writeJSON(w, http.StatusAccepted, st)
	})
	mux.HandleFunc("GET /v1/jobs", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, n.Jobs())
	})
	mux.HandleFunc("GET /v1/jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
		var wait time.Duration
		if v := r.URL.Query().Get("wait"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 || d > time.Minute {
				writeJSON(w, http.StatusBadRequest, apiError{fmt.Sprintf("wait=%q: give a duration up to 1m, such as 500ms", v)})
				return
			}
			wait = d
		}
		st, ok := n.WaitJob(r.Context(), r.PathValue("id"), wait)
		if !ok {
			writeJSON(w, http.StatusNotFound, apiError{fmt.Sprintf("no job %q in the cluster", r.PathValue("id"))})
			return
		}
		writeJSON(w, http.StatusOK, st)
	})
	mux.HandleFunc("POST /v1/jobs/{id}/cancel", func(w http.ResponseWriter, r *http.Request) {
		st, err := n.Cancel(r.Context(), r.PathValue("id"))
		switch {
		case errors.Is(err, ErrNoJob):
			writeJSON(w, http.StatusNotFound, apiError{err.Error()})
		case err != nil:
			writeJSON(w, http.StatusConflict, apiError{err.Error()})
		default:
			writeJSON(w, http.StatusOK, st)
		}
	})
	mux.HandleFunc("POST /v1/plan", func(w http.ResponseWriter, r *http.Request) {
		var req PlanRequest
		if !readJSON(w, r, &req) {
			return
		}
		if req.Spec.Memory == 0 {
			req.Spec.Memory = n.cfg.Memory
		}
		if req.Cluster.CoresPerNode <= 0 {
			req.Cluster.CoresPerNode = n.cfg.Workers
		}
		if req.Cluster.Nodes <= 0 {
			req.Cluster.Nodes = len(n.Status().Members)
		}
		plan, err := sortjob.MakePlan(req.Spec, req.Cluster)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, apiError{err.Error()})
			return
		}
		resp := PlanResponse{Plan: plan}
		resp.Rate, _ = sortjob.LoadRate(n.cfg.DataDir)
		var sb strings.Builder
		plan.WriteText(&sb, resp.Rate)
		WriteSchedule(&sb, plan)
		resp.Text = sb.String()
		writeJSON(w, http.StatusOK, resp)
	})
	n.bbHandlers(mux)
	return mux
}

// peerHandler serves the peer API, on the internal port behind mutual TLS:
//
//	POST /v1/internal/join       a node joins as the node its certificate names (JoinRequest) → JoinResponse
//	POST /v1/internal/propose    replicate a coordinator.Command (leader only)
//	GET  /v1/internal/status     this node's NodeStatus
//	GET  /v1/internal/bb-status  this node's burst buffer status
//	/v1/internal/bb/…            the burst buffer's node-to-node calls
func (n *Node) peerHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/internal/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, n.Status())
	})
	mux.HandleFunc("POST /v1/internal/join", func(w http.ResponseWriter, r *http.Request) {
		var req JoinRequest
		if !readJSON(w, r, &req) {
			return
		}
		// A node joins as itself: the name in its certificate.
		if peer := pki.PeerName(r.TLS); peer == "" || peer != req.Member.ID {
			writeJSON(w, http.StatusForbidden, apiError{fmt.Sprintf("node %q may not join as %q: a node joins under the name its certificate was issued for", peer, req.Member.ID)})
			return
		}
		resp, err := n.handleJoin(r.Context(), req)
		if errors.Is(err, ErrNameInUse) {
			writeJSON(w, http.StatusConflict, apiError{err.Error()})
			return
		}
		if err != nil {
			writeJSON(w, http.StatusServiceUnavailable, apiError{err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, resp)
	})
	mux.HandleFunc("POST /v1/internal/propose", func(w http.ResponseWriter, r *http.Request) {
		var c coordinator.Command
		if !readJSON(w, r, &c) {
			return
		}
		if err := c.Validate(); err != nil {
			writeJSON(w, http.StatusBadRequest, apiError{err.Error()})
			return
		}
		if err := mayPropose(pki.PeerName(r.TLS), &c); err != nil {
			writeJSON(w, http.StatusForbidden, apiError{err.Error()})
			return
		}
		if !n.raft.IsLeader() {
			// 421 Misdirected Request: the caller retries with the leader.
			writeJSON(w, http.StatusMisdirectedRequest, apiError{fmt.Sprintf("node %s is not the leader", n.id)})
			return
		}
		err := n.raft.Propose(r.Context(), c)
		switch {
		case errors.Is(err, coordinator.ErrRejected):
			writeJSON(w, http.StatusConflict, apiError{err.Error()})
		case err != nil:
			writeJSON(w, http.StatusServiceUnavailable, apiError{err.Error()})
		default:
			writeJSON(w, http.StatusOK, struct{}{})
		}
	})
	n.bbPeerHandlers(mux)
	return mux
}

// mayPropose says whether node peer may have the leader replicate c: the
// commands nodes forward (a job submitted or cancelled through their
// API, their own tasks' results, their own membership). Everything else
// the leader proposes itself.
func mayPropose(peer string, c *coordinator.Command) error {
	switch c.Type {
	case coordinator.CmdJobSubmit, coordinator.CmdJobCancel:
		return nil
	case coordinator.CmdTaskDone, coordinator.CmdTaskFailed:
		if c.GiveUp {
			return fmt.Errorf("node %q may not give up a merge: only the leader does", peer)
		}
		if c.Node == peer {
			return nil
		}
		return fmt.Errorf("node %q may not report the results of node %q's tasks", peer, c.Node)
	case coordinator.CmdBatch:
		// A node's batch: the results of its own tasks only.
		for i := range c.Batch {
			e := &c.Batch[i]
			if e.Type != coordinator.CmdTaskDone && e.Type != coordinator.CmdTaskFailed {
				return fmt.Errorf("node %q may not propose %s (command %d of its batch): only the leader does", peer, e.Type, i)
			}
			if err := mayPropose(peer, e); err != nil {
				return fmt.Errorf("command %d of its batch: %w", i, err)
			}
		}
		return nil
	case coordinator.CmdMemberUpsert:
		if c.Member != nil && c.Member.ID == peer {
			return nil
		}
		return fmt.Errorf("node %q may only change its own membership", peer)
	}
	return fmt.Errorf("node %q may not propose %s: only the leader does", peer, c.Type)
}

// Status returns this node's view of the cluster.
func (n *Node) Status() NodeStatus {
	stats := n.raft.Stats()
	leader, _ := n.raft.Leader() // a Raft id
	st := NodeStatus{ID: n.id, DataDir: n.cfg.DataDir, API: n.Addr(), Workers: n.cfg.Workers, Memory: n.cfg.Memory,
		Cores: runtime.NumCPU(), PID: pidSelf(), RaftState: stats["state"], Term: stats["term"]}
	if si, ok := n.raft.LatestSnapshot(); ok {
		st.SnapshotBytes, st.SnapshotIndex = si.Bytes, si.Index
	}
	st.SnapshotTook = n.fsm.LastSnapshot().Took
	st.Ready = n.caughtUp()
	// Roles come from the Raft configuration as it is now (the state
	// records them as they were at join).
	role := map[string]string{}
	if servers, err := n.raft.Servers(); err == nil {
		for _, sv := range servers {
			role[sv.ID] = "non-voter"
			if sv.Voter {
				role[sv.ID] = "voter"
			}
		}
	}
	n.fsm.Read(func(s *coordinator.State) {
		st.Applied = s.Index
		for _, id := range s.MemberIDs() {
			m := s.Members[id]
			ms := MemberStatus{Member: *m, Leader: m.RaftID == leader, Role: role[m.RaftID]}
			ms.Voter = ms.Role == "voter"
			if ms.Role == "" {
				ms.Role = "removed from Raft"
			}
			if ms.Leader {
				ms.Role = "leader"
				st.Leader = m.ID
			}
			st.Members = append(st.Members, ms)
		}
	})
	return st
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{fmt.Sprintf("bad request body: %v", err)})
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
