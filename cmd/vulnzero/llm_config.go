package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/remedy"
	"vulnzero.dev/vulnzero/remedy/guardrails"
	"vulnzero.dev/vulnzero/remedy/llm"
	"vulnzero.dev/vulnzero/store"
)

// LLMConfig is the LLM generator, asked for patches rules cannot write: an
// alternative to a quarantined revision, with the failure transcript. With
// no provider, quarantined groups are skipped.
//
//	llm:
//	  provider: openai | anthropic | openai-compatible
//	  model: gpt-4.1
//	  baseURL: http://127.0.0.1:11434/v1/   # openai-compatible (Ollama, vLLM); optional otherwise
//	  apiKeyEnv: OPENAI_API_KEY              # the variable holding the key; the key is never in the file
//	  timeout: 2m
//	  maxAttempts: 3
//
// Environment: VZ_LLM_PROVIDER, VZ_LLM_MODEL, VZ_LLM_BASE_URL override the
// file; the key is read from apiKeyEnv (OPENAI_API_KEY or ANTHROPIC_API_KEY
// by default, VZ_LLM_API_KEY for openai-compatible).
type LLMConfig struct {
	Provider  string `yaml:"provider"`
	Model     string `yaml:"model"`
	BaseURL   string `yaml:"baseURL"`
	APIKeyEnv string `yaml:"apiKeyEnv"`
	// APIKey is read from the environment only. Secret: never logged.
	APIKey      string        `yaml:"-"`
	Timeout     time.Duration `yaml:"timeout"`
	MaxAttempts int           `yaml:"maxAttempts"`
	// JSONObject asks an OpenAI-compatible server for a JSON object
	// instead of a JSON schema response format.
	JSONObject bool  `yaml:"jsonObject"`
	MaxTokens  int64 `yaml:"maxTokens"`
}

// keyEnv is the environment variable the key is read from.
func (c LLMConfig) keyEnv() string {
	if c.APIKeyEnv != "" {
		return c.APIKeyEnv
	}
	switch c.Provider {
	case llm.ProviderOpenAI:
		return "OPENAI_API_KEY"
	case llm.ProviderAnthropic:
		return "ANTHROPIC_API_KEY"
	}
	return "VZ_LLM_API_KEY"
}

// fromEnv applies the VZ_LLM_* overrides and reads the key.
func (c LLMConfig) fromEnv(getenv func(string) string) LLMConfig {
	for name, field := range map[string]*string{"VZ_LLM_PROVIDER": &c.Provider, "VZ_LLM_MODEL": &c.Model, "VZ_LLM_BASE_URL": &c.BaseURL} {
		if v := getenv(name); v != "" {
			*field = v
		}
	}
	if c.Provider != "" {
		c.APIKey = getenv(c.keyEnv())
	}
	return c
}

// Validate reports what is wrong with the LLM settings; a missing key names
// the variable it should be in, never a value.
func (c LLMConfig) Validate() error {
	if c.Provider == "" {
		return nil
	}
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("config: llm.%s: %s", field, fmt.Sprintf(format, args...)))
	}
	switch c.Provider {
	case llm.ProviderOpenAI, llm.ProviderAnthropic:
		if c.APIKey == "" {
			bad("apiKeyEnv", "the API key is not set: export %s", c.keyEnv())
		}
	case llm.ProviderOpenAICompatible:
		if c.BaseURL == "" {
			bad("baseURL", "required for openai-compatible (e.g. http://127.0.0.1:11434/v1/ for Ollama)")
		}
	default:
		bad("provider", "%q is not openai, anthropic or openai-compatible", c.Provider)
	}
	if c.Model == "" {
		bad("model", "required")
	}
	if c.BaseURL != "" {
		if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("baseURL", "%q is not an http(s) URL", c.BaseURL)
		} else if u.User != nil {
			bad("baseURL", "must not hold credentials; put the key in %s", c.keyEnv())
		}
	}
	if c.Timeout < 0 || c.MaxAttempts < 0 || c.MaxTokens < 0 {
		bad("timeout/maxAttempts/maxTokens", "must not be negative")
	}
	return errors.Join(errs...)
}

// newLLMGenerator builds the generator, or nil when no provider is set.
func newLLMGenerator(c LLMConfig, rules guardrails.Rules, log *slog.Logger) (*llm.Generator, error) {
	var p llm.Provider
	var err error
	switch c.Provider {
	case "":
		return nil, nil
	case llm.ProviderAnthropic:
		p, err = llm.NewAnthropic(llm.AnthropicConfig{BaseURL: c.BaseURL, APIKey: c.APIKey, Model: c.Model, MaxTokens: c.MaxTokens})
	default:
		p, err = llm.NewOpenAI(llm.OpenAIConfig{Name: c.Provider, BaseURL: c.BaseURL, APIKey: c.APIKey, Model: c.Model,
			JSONObject: c.JSONObject, MaxTokens: c.MaxTokens})
	}
	if err != nil {
		return nil, fmt.Errorf("llm: %w", err)
	}
	return &llm.Generator{Provider: p, Guardrails: rules, MaxAttempts: c.MaxAttempts, Timeout: c.Timeout, Logger: log}, nil
}

// alternatives is what the proposer asks for an alternative to a
// quarantined revision: the configured LLM with the failed rollout's
// transcript from the store, or nil (skip) without an LLM.
func (a *app) alternatives(rules guardrails.Rules) remedy.Alternatives {
	gen, err := newLLMGenerator(a.cfg.LLM, rules, a.log)
	if err != nil {
		a.log.Warn("llm generator unavailable: quarantined patches get no alternative", "err", err)
		return nil
	}
	if gen == nil {
		return nil
	}
	st := a.store
	return &llm.Alternator{Generator: gen, Transcript: func(ctx context.Context, q vulnzero.Quarantine) (string, error) {
		return quarantineTranscript(ctx, st, q)
	}}
}

// quarantineTranscript renders the failed steps of the rollouts of a
// quarantined revision: the output the LLM needs to avoid the same failure.
func quarantineTranscript(ctx context.Context, st store.Store, q vulnzero.Quarantine) (string, error) {
	ros, err := st.ListRollouts(ctx, store.RolloutFilter{PatchID: q.PatchID})
	if err != nil {
		return "", fmt.Errorf("transcript of %s@%s: %w", q.PatchID, q.Revision.Short(), err)
	}
	var b strings.Builder
	for _, ro := range ros {
		if ro.Revision != q.Revision {
			continue
		}
		fmt.Fprintf(&b, "rollout %d (%s): %s\n", ro.ID, ro.State, ro.Reason)
		steps, err := st.ListHostSteps(ctx, ro.ID)
		if err != nil {
			return "", fmt.Errorf("transcript of %s@%s: rollout %d: %w", q.PatchID, q.Revision.Short(), ro.ID, err)
		}
		for _, s := range steps {
			if s.State != vulnzero.StepFailed && s.Phase != vulnzero.PhaseRollback {
				continue
			}
			fmt.Fprintf(&b, "--- %s %s: %s (exit %d) %s\n", s.Host, s.Phase, s.State, s.ExitCode, s.Error)
			if s.Stdout != "" {
				fmt.Fprintf(&b, "stdout:\n%s\n", strings.TrimRight(s.Stdout, "\n"))
			}
			if s.Stderr != "" {
				fmt.Fprintf(&b, "stderr:\n%s\n", strings.TrimRight(s.Stderr, "\n"))
			}
		}
	}
	return b.String(), nil
}
