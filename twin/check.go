package twin

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"vulnzero.dev/vulnzero"
)

// ContextPrefix starts every twin status context; the phase follows.
const ContextPrefix = "vulnzero/twin/"

// StatusPoster posts commit statuses; forge.Forge satisfies it.
type StatusPoster interface {
	SetStatus(ctx context.Context, st vulnzero.CommitStatus) error
}

// TranscriptStore keeps transcripts; store.Store satisfies it.
type TranscriptStore interface {
	AddTranscript(ctx context.Context, t vulnzero.Transcript) (vulnzero.Transcript, error)
}

// Checker rehearses a PR's patch in a twin and posts one status per phase on
// the PR head, each linking to the stored transcript.
type Checker struct {
	Provisioner Provisioner
	Statuses    StatusPoster
	Transcripts TranscriptStore
	// BaseURL prefixes transcript links (e.g. "http://127.0.0.1:8080").
	BaseURL string
	// Timeout bounds one whole rehearsal, provisioning included.
	Timeout time.Duration
	// HealthChecks run in every twin after the patch's own
	// (TwinPolicy.healthChecks).
	HealthChecks []vulnzero.HealthCheck
	Logger       *slog.Logger
}

// describer is a replica that can say what it is and how faithfully it
// copies its target; the text heads the transcript.
type describer interface {
	Describe() string
}

// Check rehearses p on a replica of target and posts the results on sha.
// Every phase is first posted pending, so a reviewer sees the twin is at work.
// The replica is always closed. The error is for infrastructure trouble
// (provisioning, posting); a failing patch is a Report that did not pass.
func (c *Checker) Check(ctx context.Context, sha string, p vulnzero.Patch, target vulnzero.Host) (Report, error) {
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("patch", p.ID, "sha", sha, "target", target.Name)
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 15 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	for _, ph := range Phases {
		if err := c.post(ctx, sha, ph, vulnzero.StatusPending, "rehearsing on a replica of "+target.Name, ""); err != nil {
			return Report{}, err
		}
	}
	rep, err := c.Provisioner.Provision(ctx, target)
	if err != nil {
		err = fmt.Errorf("twin of %s for %s: %w", target.Name, p.ID, err)
		for _, ph := range Phases {
			_ = c.post(ctx, sha, ph, vulnzero.StatusError, "twin could not be provisioned", "")
		}
		return Report{}, err
	}
	defer func() {
		if cerr := rep.Close(); cerr != nil {
			log.Warn("twin: close replica", "err", cerr)
		}
	}()

	p.HealthChecks = append(slices.Clone(p.HealthChecks), c.HealthChecks...)
	report := Rehearse(ctx, rep, p, target.Name)
	if d, ok := rep.(describer); ok {
		report.Provisioning = d.Describe()
	}
	t, err := c.Transcripts.AddTranscript(ctx, vulnzero.Transcript{
		Kind: "twin", Ref: p.ID + "@" + sha, Body: report.Transcript(), CreatedAt: time.Now().UTC(),
	})
	if err != nil {
		return report, fmt.Errorf("store twin transcript for %s: %w", p.ID, err)
	}
	url := ""
	if c.BaseURL != "" {
		url = c.BaseURL + "/transcripts/" + strconv.FormatInt(t.ID, 10)
	}
	for _, ph := range report.Phases {
		state := vulnzero.StatusSuccess
		if !ph.Passed {
			state = vulnzero.StatusFailure
		}
		if err := c.post(ctx, sha, ph.Phase, state, ph.Detail, url); err != nil {
			return report, err
		}
	}
	log.Info("twin rehearsal done", "passed", report.Passed(), "failed_phase", report.Failed, "duration", report.Duration)
	return report, nil
}

func (c *Checker) post(ctx context.Context, sha, phase string, state vulnzero.StatusState, desc, url string) error {
	if len(desc) > 140 { // GitHub truncates descriptions; keep them readable
		desc = desc[:137] + "..."
	}
	err := c.Statuses.SetStatus(ctx, vulnzero.CommitStatus{
		SHA: sha, Context: ContextPrefix + phase, State: state, Description: desc, TargetURL: url, UpdatedAt: time.Now().UTC(),
	})
	if err != nil {
		return fmt.Errorf("post twin status %s on %s: %w", phase, sha, err)
	}
	return nil
}
