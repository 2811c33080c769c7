// Package llm generates patches with a large language model, for findings
// that no package-manager template fixes and for alternatives to a patch
// revision that failed in production and was quarantined.
//
// A Generator sends one prompt — the findings, the hosts' OS and package
// state, the patch contract and, for an alternative, the failure transcript
// — to a Provider and asks for a structured answer: apply, verify and
// rollback scripts plus a rationale, as a JSON schema response format
// (OpenAI and OpenAI-compatible endpoints such as Ollama and vLLM) or a
// forced tool call (Anthropic). An answer that does not parse, lacks a
// script or breaks a guardrail is sent back with what was wrong and asked
// again, a bounded number of times; then the generator gives up and
// reports every violation. Rate limits are waited out as the provider's
// Retry-After says, a bounded number of times.
//
// The patch records the provider, the model and the SHA-256 of the prompt
// that produced the accepted answer (patch.yaml generator.promptSHA256), so
// a reviewer can tell what asked for these scripts. Logs carry the patch,
// provider, model, attempt and that hash, never the prompt text or a key.
package llm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/remedy/guardrails"
)

// Answer is the structured answer every provider is asked for.
type Answer struct {
	Apply     string `json:"apply"`
	Verify    string `json:"verify"`
	Rollback  string `json:"rollback"`
	Rationale string `json:"rationale"`
}

// Role of a conversation turn.
const (
	RoleUser      = "user"
	RoleAssistant = "assistant"
)

// Message is one turn of a conversation.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Prompt is what a provider is sent: the system prompt and the turns so far.
type Prompt struct {
	System   string    `json:"system"`
	Messages []Message `json:"messages"`
}

// SHA256 is the hex SHA-256 of the prompt's canonical JSON, recorded in
// patch.yaml.
func (p Prompt) SHA256() string {
	b, _ := json.Marshal(p) // strings and slices only: cannot fail
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Provider is one LLM API asked for a structured Answer.
type Provider interface {
	// Name is recorded as the patch's generator provider.
	Name() string
	Model() string
	// Complete returns the model's answer. Errors are *APIError for HTTP
	// failures and *MalformedError for an answer that is not the schema.
	Complete(ctx context.Context, p Prompt) (Answer, error)
}

// APIError is a failed call to a provider's API.
type APIError struct {
	Provider   string
	Status     int           // HTTP status; 0 when the request did not get one
	RetryAfter time.Duration // what the provider asked to wait (429, 503); 0 when it did not say
	Message    string        // the provider's error message, with credentials removed
}

func (e *APIError) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("%s: %s", e.Provider, e.Message)
	}
	return fmt.Sprintf("%s: HTTP %d: %s", e.Provider, e.Status, e.Message)
}

// Temporary reports whether the same request may succeed later: rate limits,
// overload and server errors. 4xx errors such as 401 are not.
func (e *APIError) Temporary() bool {
	return e.Status == 0 || e.Status == 408 || e.Status == 409 || e.Status == 429 || e.Status >= 500
}

// MalformedError is an answer that is not the requested structure.
type MalformedError struct {
	Provider string
	Reason   string
	Raw      string // what the model said, cut to a few KiB, fed back on retry
}

func (e *MalformedError) Error() string {
	return fmt.Sprintf("%s: malformed answer: %s", e.Provider, e.Reason)
}

// ErrRejected is wrapped by the error Generate returns when every attempt
// produced an invalid or unsafe answer.
var ErrRejected = errors.New("llm answers rejected")

// RejectedError lists what was wrong with the last answer after the last
// attempt. It wraps ErrRejected and vulnzero.ErrInvalid.
type RejectedError struct {
	PatchID    string
	Attempts   int
	Problems   []string // the last answer's problems: "apply.sh:3:1: rule: message", …
	PromptHash string   // of the last prompt sent
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("generate %s with an llm: %d answer(s) rejected; the last one:\n%s",
		e.PatchID, e.Attempts, strings.Join(e.Problems, "\n"))
}

func (e *RejectedError) Unwrap() []error { return []error{ErrRejected, vulnzero.ErrInvalid} }

// Request is what the generator writes a patch for.
type Request struct {
	PatchID string
	Title   string // optional; derived when empty
	// Package, Manager and FixedVersion describe the package the findings
	// are about; FixedVersion may be empty (no fixed package exists, which is
	// why an LLM is asked).
	Package      string
	Manager      vulnzero.PackageManager
	FixedVersion string
	OS           string // "debian 12", "rhel 9.4", …
	Findings     []vulnzero.Finding
	Hosts        []string
	// PackageState is what the hosts report about the package (dpkg-query
	// or rpm -q output, the candidate versions), as text.
	PackageState string
	// Failure, when set, asks for an alternative to a quarantined revision.
	Failure *Failure
}

// Failure is a patch revision that failed and was rolled back.
type Failure struct {
	Revision   vulnzero.Revision
	Reason     string
	Scripts    vulnzero.Scripts
	Transcript string // output of the failed run (apply, verify, health, rollback)
}

// Result is a generated patch and how it came about.
type Result struct {
	Patch     vulnzero.Patch
	Rationale string
	Attempts  int
}

// Defaults for Generator's zero fields.
const (
	DefaultMaxAttempts    = 3
	DefaultMaxRateRetries = 3
	DefaultTimeout        = 2 * time.Minute
	// MaxRetryAfter is the longest Retry-After waited out; a provider asking
	// for longer fails the call with its APIError.
	MaxRetryAfter = 2 * time.Minute
)

// Generator asks a Provider for patches and checks every answer.
type Generator struct {
	Provider   Provider
	Guardrails guardrails.Rules
	// MaxAttempts bounds the answers asked for; each invalid or unsafe one is
	// sent back with its problems. Zero means DefaultMaxAttempts.
	MaxAttempts int
	// MaxRateRetries bounds the retries of one call that hit a rate limit or
	// a temporary server error. Zero means DefaultMaxRateRetries.
	MaxRateRetries int
	// Timeout bounds each call to the provider. Zero means DefaultTimeout.
	Timeout time.Duration
	// Sleep waits d or until ctx ends; nil waits on a timer. Tests inject it.
	Sleep  func(ctx context.Context, d time.Duration) error
	Logger *slog.Logger
}

// Generate asks for a patch for req, retrying invalid answers with their
// problems. The error is a *RejectedError when every answer was rejected, an
// *APIError when the provider failed for good, or the context's error.
func (g *Generator) Generate(ctx context.Context, req Request) (Result, error) {
	if g.Provider == nil {
		return Result{}, fmt.Errorf("generate %s with an llm: no provider configured: %w", req.PatchID, vulnzero.ErrInvalid)
	}
	if req.PatchID == "" || len(req.Hosts) == 0 {
		return Result{}, fmt.Errorf("generate with an llm: patch id and at least one host are required: %w", vulnzero.ErrInvalid)
	}
	log := g.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("patch", req.PatchID, "provider", g.Provider.Name(), "model", g.Provider.Model())
	attempts := g.MaxAttempts
	if attempts <= 0 {
		attempts = DefaultMaxAttempts
	}

	prompt := BuildPrompt(req)
	var problems []string
	for attempt := 1; attempt <= attempts; attempt++ {
		hash := prompt.SHA256()
		log.Info("asking the llm for a patch", "attempt", attempt, "prompt_sha256", hash)
		ans, err := g.call(ctx, prompt, log)
		var reply string
		var malformed *MalformedError
		switch {
		case errors.As(err, &malformed):
			problems = []string{"answer: " + malformed.Reason}
			reply = malformed.Raw
		case err != nil:
			return Result{}, fmt.Errorf("generate %s with an llm: %w", req.PatchID, err)
		default:
			problems = g.check(ans)
			if len(problems) == 0 {
				log.Info("llm patch accepted", "attempt", attempt, "prompt_sha256", hash)
				return Result{Patch: g.patch(req, ans, hash), Rationale: ans.Rationale, Attempts: attempt}, nil
			}
			b, _ := json.Marshal(ans)
			reply = string(b)
		}
		log.Warn("llm answer rejected", "attempt", attempt, "problems", len(problems), "prompt_sha256", hash)
		if attempt == attempts {
			return Result{}, &RejectedError{PatchID: req.PatchID, Attempts: attempt, Problems: problems, PromptHash: hash}
		}
		prompt.Messages = append(prompt.Messages,
			Message{Role: RoleAssistant, Content: reply},
			Message{Role: RoleUser, Content: feedback(problems)})
	}
	panic("unreachable")
}

// call makes one provider call with its own timeout, waiting out rate
// limits and temporary errors a bounded number of times.
func (g *Generator) call(ctx context.Context, p Prompt, log *slog.Logger) (Answer, error) {
	retries := g.MaxRateRetries
	if retries <= 0 {
		retries = DefaultMaxRateRetries
	}
	timeout := g.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	sleep := g.Sleep
	if sleep == nil {
		sleep = sleepCtx
	}
	for try := 0; ; try++ {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		ans, err := g.Provider.Complete(cctx, p)
		cancel()
		var apiErr *APIError
		if err == nil || !errors.As(err, &apiErr) || !apiErr.Temporary() || try >= retries || ctx.Err() != nil {
			return ans, err
		}
		wait := apiErr.RetryAfter
		if wait <= 0 {
			wait = time.Second << try // 1s, 2s, 4s, …
		}
		if wait > MaxRetryAfter {
			return ans, err
		}
		log.Warn("llm provider asks to retry", "status", apiErr.Status, "wait", wait, "retry", try+1)
		if err := sleep(ctx, wait); err != nil {
			return Answer{}, err
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// check returns the problems of an answer: missing parts and guardrail
// violations (which include parse errors, bash -n and shellcheck).
func (g *Generator) check(a Answer) []string {
	var out []string
	if strings.TrimSpace(a.Rationale) == "" {
		out = append(out, "rationale: empty; say why these scripts fix the findings")
	}
	for _, v := range guardrails.Check(g.Guardrails, map[string][]byte{
		vulnzero.ApplyFile: []byte(a.Apply), vulnzero.VerifyFile: []byte(a.Verify), vulnzero.RollbackFile: []byte(a.Rollback),
	}) {
		out = append(out, v.String())
	}
	return out
}

func feedback(problems []string) string {
	return "Your answer was rejected, so nothing was proposed. Problems:\n" + strings.Join(problems, "\n") +
		"\n\nAnswer again with the complete corrected scripts, in the same structured format, following the patch contract."
}

func (g *Generator) patch(req Request, a Answer, hash string) vulnzero.Patch {
	title := req.Title
	if title == "" {
		switch {
		case req.Package != "" && req.FixedVersion != "":
			title = fmt.Sprintf("Fix %s (%s %s)", strings.Join(cves(req.Findings), ", "), req.Package, req.FixedVersion)
		case req.Package != "":
			title = fmt.Sprintf("Mitigate %s in %s", strings.Join(cves(req.Findings), ", "), req.Package)
		default:
			title = "Mitigate " + strings.Join(cves(req.Findings), ", ")
		}
	}
	return vulnzero.Patch{
		APIVersion: vulnzero.APIVersion,
		Kind:       vulnzero.KindPatch,
		ID:         req.PatchID,
		Title:      title,
		CVEs:       cves(req.Findings),
		Package:    vulnzero.PackageRef{Name: req.Package, Manager: req.Manager, FixedVersion: req.FixedVersion},
		Targets:    vulnzero.Targets{Hosts: append([]string(nil), req.Hosts...)},
		Generator: vulnzero.Generator{Kind: "llm", Provider: g.Provider.Name(), Model: g.Provider.Model(),
			PromptSHA256: hash},
		Reboot: vulnzero.RebootIfRequired,
		Scripts: vulnzero.Scripts{Apply: []byte(ensureNewline(a.Apply)), Verify: []byte(ensureNewline(a.Verify)),
			Rollback: []byte(ensureNewline(a.Rollback))},
	}
}

func ensureNewline(s string) string {
	if strings.HasSuffix(s, "\n") {
		return s
	}
	return s + "\n"
}

// cves returns the findings' CVEs, sorted and unique.
func cves(fs []vulnzero.Finding) []string {
	seen := map[string]bool{}
	var out []string
	for _, f := range fs {
		if f.CVE != "" && !seen[f.CVE] {
			seen[f.CVE] = true
			out = append(out, f.CVE)
		}
	}
	sortStrings(out)
	return out
}
