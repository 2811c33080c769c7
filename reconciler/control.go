package reconciler

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"vulnzero.dev/vulnzero"
)

// Operator requests: pause, resume and abort a rollout.
//
// They are not written into the rollout itself: the reconciler saves its
// rollout from memory after every stage, and would overwrite a request
// written in between. Each request is appended instead, as a transcript of
// kind "rollout-op" with the rollout's ID as ref, and the reconciler folds
// them in order (Control) before it dispatches each host, at the start of
// every resume, and while a soak runs. The log is also the audit trail: who
// asked what, when.

// Op is an operator request.
type Op string

const (
	// OpPause: dispatch no new host; hosts in flight finish; the rollout
	// waits in state paused. A change of main still wins: a paused rollout
	// whose revision leaves main is rolled back like any other.
	OpPause Op = "pause"
	// OpResume: go on from where the rollout paused.
	OpResume Op = "resume"
	// OpAbort: stop, and roll back every host the rollout touched. No revert
	// is written and the revision is not quarantined (nothing failed); main
	// still holds the revision, which is not tried again until it changes.
	OpAbort Op = "abort"
)

// opKind is the transcript kind of operator requests.
const opKind = "rollout-op"

// reasonAborted starts the Reason of an aborted rollout.
const reasonAborted = "aborted by operator"

// OpStore is what operator requests need of the store; store.Store
// satisfies it.
type OpStore interface {
	GetRollout(ctx context.Context, id int64) (vulnzero.Rollout, error)
	AddTranscript(ctx context.Context, t vulnzero.Transcript) (vulnzero.Transcript, error)
	ListTranscripts(ctx context.Context, kind, ref string) ([]vulnzero.Transcript, error)
}

// Control is what operators asked of a rollout, folded from its requests.
type Control struct {
	Paused  bool
	Aborted bool // sticky: a resume does not undo an abort
	// By and At name the request that set the current state.
	By string
	At time.Time
}

func (c Control) describe() string {
	s := ""
	if c.By != "" {
		s += " " + c.By
	}
	if !c.At.IsZero() {
		s += " at " + c.At.UTC().Format(time.RFC3339)
	}
	return s
}

// RequestOp records an operator's request for rollout id; the reconciler
// honours it before its next host step. by names the operator (it is
// shown, never trusted). Only apply rollouts that are still going can be
// paused, resumed or aborted; anything else is ErrConflict.
func RequestOp(ctx context.Context, st OpStore, id int64, op Op, by string, now time.Time) error {
	switch op {
	case OpPause, OpResume, OpAbort:
	default:
		return fmt.Errorf("rollout %d: operation %q is not pause, resume or abort: %w", id, op, vulnzero.ErrInvalid)
	}
	ro, err := st.GetRollout(ctx, id)
	if err != nil {
		return fmt.Errorf("%s rollout %d: %w", op, id, err)
	}
	switch {
	case ro.Kind != vulnzero.RolloutApply:
		return fmt.Errorf("%s rollout %d: it rolls a removed patch back, which is not paused or aborted: %w", op, id, vulnzero.ErrConflict)
	case ro.State.Terminal():
		return fmt.Errorf("%s rollout %d: it already ended %s: %w", op, id, ro.State, vulnzero.ErrConflict)
	case ro.State == vulnzero.RolloutFailed:
		return fmt.Errorf("%s rollout %d: it failed and is rolling back: %w", op, id, vulnzero.ErrConflict)
	}
	c, err := ReadControl(ctx, st, id)
	if err != nil {
		return err
	}
	if c.Aborted {
		return fmt.Errorf("%s rollout %d: it was already aborted%s: %w", op, id, c.describe(), vulnzero.ErrConflict)
	}
	body := string(op)
	if by = strings.TrimSpace(strings.ReplaceAll(by, "\n", " ")); by != "" {
		body += "\n" + by
	}
	if _, err := st.AddTranscript(ctx, vulnzero.Transcript{Kind: opKind, Ref: strconv.FormatInt(id, 10), Body: body, CreatedAt: now}); err != nil {
		return fmt.Errorf("%s rollout %d: record request: %w", op, id, err)
	}
	return nil
}

// ReadControl folds a rollout's operator requests, oldest first.
func ReadControl(ctx context.Context, st interface {
	ListTranscripts(ctx context.Context, kind, ref string) ([]vulnzero.Transcript, error)
}, id int64) (Control, error) {
	ts, err := st.ListTranscripts(ctx, opKind, strconv.FormatInt(id, 10))
	if err != nil {
		return Control{}, fmt.Errorf("read operator requests of rollout %d: %w", id, err)
	}
	var c Control
	for _, t := range ts {
		op, by, _ := strings.Cut(t.Body, "\n")
		switch Op(op) {
		case OpPause:
			if !c.Aborted {
				c.Paused, c.By, c.At = true, by, t.CreatedAt
			}
		case OpResume:
			if !c.Aborted {
				c.Paused, c.By, c.At = false, by, t.CreatedAt
			}
		case OpAbort:
			if !c.Aborted {
				c.Aborted, c.Paused, c.By, c.At = true, false, by, t.CreatedAt
			}
		}
	}
	return c, nil
}

func (r *Reconciler) control(ctx context.Context, id int64) (Control, error) {
	return ReadControl(ctx, r.cfg.Store, id)
}

// watchControl cancels a soak when an operator pauses or aborts the
// rollout: it reads the requests every ControlPoll until stop is called.
func (r *Reconciler) watchControl(ctx context.Context, id int64, cancel context.CancelFunc) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(r.cfg.ControlPoll)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			c, err := r.control(ctx, id)
			if err != nil {
				r.log.Warn("read operator requests", "rollout", id, "err", err)
				continue
			}
			if c.Paused || c.Aborted {
				cancel()
				return
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}
