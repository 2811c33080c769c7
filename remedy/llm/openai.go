package llm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
)

// Provider names recorded in patch.yaml.
const (
	ProviderOpenAI           = "openai"
	ProviderOpenAICompatible = "openai-compatible"
	ProviderAnthropic        = "anthropic"
)

// DefaultOpenAIBaseURL is OpenAI's API.
const DefaultOpenAIBaseURL = "https://api.openai.com/v1/"

// OpenAIConfig configures the chat completions API of OpenAI or of any
// OpenAI-compatible server (Ollama, vLLM, LiteLLM, …) named by BaseURL.
type OpenAIConfig struct {
	// Name is recorded as the patch's provider: ProviderOpenAI (the
	// default) or ProviderOpenAICompatible.
	Name    string
	BaseURL string // default DefaultOpenAIBaseURL
	APIKey  string // may be empty for a local server
	Model   string
	// JSONObject asks for response_format json_object, with the schema in
	// the prompt, for servers that do not support json_schema.
	JSONObject bool
	MaxTokens  int64 // 0 leaves it to the server
	HTTPClient *http.Client
}

// OpenAI talks to a chat completions API with the official openai-go SDK.
type OpenAI struct {
	cfg OpenAIConfig
	svc openai.ChatCompletionService
}

var _ Provider = (*OpenAI)(nil)

// NewOpenAI returns a provider for cfg. The SDK is given every setting
// explicitly and never reads the environment (config is parsed in main),
// and its own retries are off: Generator retries, honoring Retry-After.
func NewOpenAI(cfg OpenAIConfig) (*OpenAI, error) {
	if cfg.Name == "" {
		cfg.Name = ProviderOpenAI
	}
	if cfg.BaseURL == "" {
		if cfg.Name == ProviderOpenAICompatible {
			return nil, fmt.Errorf("openai-compatible provider: a base URL is required")
		}
		cfg.BaseURL = DefaultOpenAIBaseURL
	}
	if cfg.Model == "" {
		return nil, fmt.Errorf("%s provider: a model is required", cfg.Name)
	}
	if cfg.Name == ProviderOpenAI && cfg.APIKey == "" {
		return nil, fmt.Errorf("openai provider: an API key is required")
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	opts := []option.RequestOption{
		option.WithBaseURL(cfg.BaseURL),
		option.WithHTTPClient(hc),
		option.WithMaxRetries(0),
	}
	if cfg.APIKey != "" {
		opts = append(opts, option.WithAPIKey(cfg.APIKey))
	}
	return &OpenAI{cfg: cfg, svc: openai.NewChatCompletionService(opts...)}, nil
}

// Name is the provider recorded in patches.
func (o *OpenAI) Name() string { return o.cfg.Name }

// Model is the model asked.
func (o *OpenAI) Model() string { return o.cfg.Model }

// Complete asks for one structured answer.
func (o *OpenAI) Complete(ctx context.Context, p Prompt) (Answer, error) {
	system := p.System
	params := openai.ChatCompletionNewParams{Model: o.cfg.Model}
	if o.cfg.JSONObject {
		system += "\n\nReply with one JSON object with exactly the string fields apply, verify, rollback and rationale."
		params.ResponseFormat = openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONObject: &shared.ResponseFormatJSONObjectParam{}}
	} else {
		params.ResponseFormat = openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{
			JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{
				Name:        "vulnzero_patch",
				Description: openai.String("A VulnZero patch: three scripts and a rationale"),
				Strict:      openai.Bool(true),
				Schema:      answerSchema(),
			},
		}}
	}
	params.Messages = append(params.Messages, openai.SystemMessage(system))
	for _, m := range p.Messages {
		if m.Role == RoleAssistant {
			params.Messages = append(params.Messages, openai.AssistantMessage(m.Content))
		} else {
			params.Messages = append(params.Messages, openai.UserMessage(m.Content))
		}
	}
	if o.cfg.MaxTokens > 0 {
		params.MaxCompletionTokens = openai.Int(o.cfg.MaxTokens)
	}

	resp, err := o.svc.New(ctx, params)
	if err != nil {
		return Answer{}, o.apiError(err)
	}
	if len(resp.Choices) == 0 {
		return Answer{}, &MalformedError{Provider: o.cfg.Name, Reason: "the response has no choices"}
	}
	c := resp.Choices[0]
	if c.Message.Refusal != "" {
		return Answer{}, &MalformedError{Provider: o.cfg.Name, Reason: "the model refused: " + oneLine(c.Message.Refusal)}
	}
	if c.FinishReason == "length" {
		return Answer{}, &MalformedError{Provider: o.cfg.Name, Reason: "the answer was cut off at the token limit; keep the scripts shorter", Raw: cut(c.Message.Content)}
	}
	return parseAnswer(o.cfg.Name, []byte(c.Message.Content))
}

func (o *OpenAI) apiError(err error) error {
	var apiErr *openai.Error
	if errors.As(err, &apiErr) {
		msg := apiErr.Message
		if msg == "" {
			msg = http.StatusText(apiErr.StatusCode)
		}
		e := &APIError{Provider: o.cfg.Name, Status: apiErr.StatusCode, Message: redact(msg, o.cfg.APIKey)}
		if apiErr.Response != nil {
			e.RetryAfter = retryAfter(apiErr.Response.Header, time.Now())
		}
		return e
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", o.cfg.Name, err)
	}
	// Transport errors (connection refused, reset): temporary.
	return &APIError{Provider: o.cfg.Name, Message: redact(err.Error(), o.cfg.APIKey)}
}

func cut(s string) string {
	if len(s) > maxRaw {
		return s[:maxRaw] + "…"
	}
	return strings.Clone(s)
}
