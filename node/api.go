package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"time"

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

// NodeStatus is the answer to GET /v1/status.
type NodeStatus struct {
	DataDir string   `json:"data_dir"`
	API     string   `json:"api"`
	Workers int      `json:"workers"`
	Memory  int64    `json:"memory"`
	Cores   int      `json:"cores"`
	PID     int      `json:"pid"`
	Running []string `json:"running"`
}

type apiError struct {
	Error string `json:"error"`
}

// handler serves the API:
//
//	GET  /v1/status            node status
//	POST /v1/jobs              submit a job (SubmitRequest) → JobStatus
//	GET  /v1/jobs              all jobs → []JobStatus
//	GET  /v1/jobs/{id}         one job with live progress → JobStatus;
//	                           ?wait=DURATION answers as soon as the job ends,
//	                           or after DURATION (up to 1m)
//	POST /v1/jobs/{id}/cancel  cancel → JobStatus
//	POST /v1/plan              plan without running (PlanRequest) → PlanResponse
func (n *Node) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		st := NodeStatus{DataDir: n.cfg.DataDir, API: n.Addr(), Workers: n.cfg.Workers, Memory: n.cfg.Memory, Cores: runtime.NumCPU(), PID: pidSelf()}
		for _, j := range n.Jobs() {
			if j.State == StateRunning {
				st.Running = append(st.Running, j.ID)
			}
		}
		writeJSON(w, http.StatusOK, st)
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
		st, err := n.Submit(req.Spec)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, apiError{err.Error()})
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
			writeJSON(w, http.StatusNotFound, apiError{fmt.Sprintf("no job %q on this node", r.PathValue("id"))})
			return
		}
		writeJSON(w, http.StatusOK, st)
	})
	mux.HandleFunc("POST /v1/jobs/{id}/cancel", func(w http.ResponseWriter, r *http.Request) {
		st, err := n.Cancel(r.PathValue("id"))
		switch {
		case errors.Is(err, ErrNoJob):
			writeJSON(w, http.StatusNotFound, apiError{fmt.Sprintf("no job %q on this node", r.PathValue("id"))})
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
		plan, err := n.Plan(req.Spec, req.Cluster)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, apiError{err.Error()})
			return
		}
		resp := PlanResponse{Plan: plan}
		resp.Rate, _ = n.Rate()
		var sb strings.Builder
		plan.WriteText(&sb, resp.Rate)
		resp.Text = sb.String()
		writeJSON(w, http.StatusOK, resp)
	})
	return mux
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
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
