package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"engine/coordinator"
	"engine/sortjob"
)

// Client talks to a node's API.
type Client struct {
	// Addr is the node's API address, HOST:PORT.
	Addr string
	// Token is the cluster's client token, sent as a bearer token.
	Token string
	HTTP  *http.Client
}

// NewClient returns a client for the node at addr (HOST:PORT or a URL).
func NewClient(addr string) *Client {
	return &Client{Addr: addr, HTTP: &http.Client{Timeout: 30 * time.Second}}
}

func (c *Client) url(path string) string {
	if strings.HasPrefix(c.Addr, "http://") || strings.HasPrefix(c.Addr, "https://") {
		return strings.TrimSuffix(c.Addr, "/") + path
	}
	return "http://" + c.Addr + path
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	err := c.roundTrip(ctx, method, path, body, out)
	var te *transportError
	if errors.As(err, &te) {
		return fmt.Errorf("cannot reach the engine node at %s (%v); is engined running there? (set --addr or ENGINE_ADDR)", c.Addr, unwrapURL(te.err))
	}
	return err
}

// transportError is a request that got no answer.
type transportError struct{ err error }

func (e *transportError) Error() string { return e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

// roundTrip sends one request and decodes the answer into out: a
// *remoteError for an error answer, a *transportError for none.
func (c *Client) roundTrip(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url(path), rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return &transportError{err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("node %s: reading the answer to %s %s: %w", c.Addr, method, path, err)
	}
	if resp.StatusCode >= 300 {
		var e apiError
		msg := fmt.Sprintf("node %s: %s %s: %s", c.Addr, method, path, resp.Status)
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return &remoteError{status: resp.StatusCode, msg: msg}
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("node %s: bad answer to %s %s: %w", c.Addr, method, path, err)
		}
	}
	return nil
}

func unwrapURL(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		inner := u.Unwrap()
		if inner == nil {
			return err
		}
		err = inner
	}
}

// remoteError is an error answer from a node.
type remoteError struct {
	status int
	msg    string
}

func (e *remoteError) Error() string { return e.msg }

// Is lets callers test a forwarded answer against the coordinator's errors.
func (e *remoteError) Is(target error) bool {
	switch target {
	case coordinator.ErrRejected:
		return e.status == http.StatusConflict
	case coordinator.ErrNotLeader:
		return e.status == http.StatusMisdirectedRequest
	case coordinator.ErrNoQuorum:
		return e.status == http.StatusServiceUnavailable
	case ErrNameInUse:
		return e.status == http.StatusConflict && strings.Contains(e.msg, ErrNameInUse.Error())
	}
	return false
}

// Join (peer API) asks the node to add a member (forwarded to the leader).
func (c *Client) Join(ctx context.Context, req JoinRequest) (JoinResponse, error) {
	var resp JoinResponse
	err := c.do(ctx, "POST", "/v1/internal/join", req, &resp)
	return resp, err
}

// Propose (peer API) asks the leader to replicate a command.
func (c *Client) Propose(ctx context.Context, cmd coordinator.Command) error {
	return c.do(ctx, "POST", "/v1/internal/propose", cmd, nil)
}

// SubmitSort submits a sort job.
func (c *Client) SubmitSort(ctx context.Context, spec sortjob.Spec) (JobStatus, error) {
	var st JobStatus
	err := c.do(ctx, "POST", "/v1/jobs", SubmitRequest{Kind: "sort", Spec: spec}, &st)
	return st, err
}

// Job returns one job.
func (c *Client) Job(ctx context.Context, id string) (JobStatus, error) {
	var st JobStatus
	err := c.do(ctx, "GET", "/v1/jobs/"+url.PathEscape(id), nil, &st)
	return st, err
}

// WaitJob returns a job's status as soon as it ends, or after wait.
func (c *Client) WaitJob(ctx context.Context, id string, wait time.Duration) (JobStatus, error) {
	var st JobStatus
	err := c.do(ctx, "GET", "/v1/jobs/"+url.PathEscape(id)+"?wait="+wait.String(), nil, &st)
	return st, err
}

// Jobs returns every job the node knows.
func (c *Client) Jobs(ctx context.Context) ([]JobStatus, error) {
	var sts []JobStatus
	err := c.do(ctx, "GET", "/v1/jobs", nil, &sts)
	return sts, err
}

// Cancel cancels a job.
func (c *Client) Cancel(ctx context.Context, id string) (JobStatus, error) {
	var st JobStatus
	err := c.do(ctx, "POST", "/v1/jobs/"+url.PathEscape(id)+"/cancel", nil, &st)
	return st, err
}

// Plan asks the node for a plan.
func (c *Client) Plan(ctx context.Context, spec sortjob.Spec, cluster sortjob.Cluster) (PlanResponse, error) {
	var resp PlanResponse
	err := c.do(ctx, "POST", "/v1/plan", PlanRequest{Spec: spec, Cluster: cluster}, &resp)
	return resp, err
}

// Status returns the node's status.
func (c *Client) Status(ctx context.Context) (NodeStatus, error) {
	var st NodeStatus
	err := c.do(ctx, "GET", "/v1/status", nil, &st)
	return st, err
}

// peerStatus (peer API) returns another node's status.
func (c *Client) peerStatus(ctx context.Context) (NodeStatus, error) {
	var st NodeStatus
	err := c.do(ctx, "GET", "/v1/internal/status", nil, &st)
	return st, err
}

func pidSelf() int { return os.Getpid() }
