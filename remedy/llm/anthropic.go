package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"
)

// DefaultAnthropicBaseURL is Anthropic's API.
const DefaultAnthropicBaseURL = "https://api.anthropic.com/"

// toolName is the one tool Anthropic models are made to call.
const toolName = "submit_patch"

// AnthropicConfig configures Anthropic's messages API.
type AnthropicConfig struct {
	BaseURL    string // default DefaultAnthropicBaseURL
	APIKey     string
	Model      string
	MaxTokens  int64 // default 8192
	HTTPClient *http.Client
}

// Anthropic talks to the messages API with the official anthropic-sdk-go.
// The structured answer is a forced call of the submit_patch tool, whose
// input schema is the answer's.
type Anthropic struct {
	cfg AnthropicConfig
	svc anthropic.MessageService
}

var _ Provider = (*Anthropic)(nil)

// NewAnthropic returns a provider for cfg. The SDK gets every setting
// explicitly, never reads the environment, and does not retry on its own.
func NewAnthropic(cfg AnthropicConfig) (*Anthropic, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultAnthropicBaseURL
	}
	if cfg.Model == "" {
		return nil, fmt.Errorf("anthropic provider: a model is required")
	}
	if cfg.APIKey == "" {
		return nil, fmt.Errorf("anthropic provider: an API key is required")
	}
	if cfg.MaxTokens <= 0 {
		cfg.MaxTokens = 8192
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	svc := anthropic.NewMessageService(
		option.WithoutEnvironmentDefaults(),
		option.WithBaseURL(cfg.BaseURL),
		option.WithAPIKey(cfg.APIKey),
		option.WithHTTPClient(hc),
		option.WithMaxRetries(0),
	)
	return &Anthropic{cfg: cfg, svc: svc}, nil
}

// Name is the provider recorded in patches.
func (a *Anthropic) Name() string { return ProviderAnthropic }

// Model is the model asked.
func (a *Anthropic) Model() string { return a.cfg.Model }

// Complete asks for one structured answer as a tool call.
func (a *Anthropic) Complete(ctx context.Context, p Prompt) (Answer, error) {
	schema := answerSchema()
	params := anthropic.MessageNewParams{
		Model:     a.cfg.Model,
		MaxTokens: a.cfg.MaxTokens,
		System:    []anthropic.TextBlockParam{{Text: p.System}},
		Tools: []anthropic.ToolUnionParam{{OfTool: &anthropic.ToolParam{
			Name:        toolName,
			Description: anthropic.String("Submit the VulnZero patch: three complete POSIX sh scripts and a rationale."),
			InputSchema: anthropic.ToolInputSchemaParam{
				Properties: schema["properties"],
				Required:   schema["required"].([]string),
			},
		}}},
		ToolChoice: anthropic.ToolChoiceParamOfTool(toolName),
	}
	for _, m := range p.Messages {
		block := anthropic.NewTextBlock(m.Content)
		if m.Role == RoleAssistant {
			params.Messages = append(params.Messages, anthropic.NewAssistantMessage(block))
		} else {
			params.Messages = append(params.Messages, anthropic.NewUserMessage(block))
		}
	}
	msg, err := a.svc.New(ctx, params)
	if err != nil {
		return Answer{}, a.apiError(err)
	}
	for _, b := range msg.Content {
		if b.Type == "tool_use" && b.Name == toolName {
			return parseAnswer(ProviderAnthropic, b.Input)
		}
	}
	if msg.StopReason == "max_tokens" {
		return Answer{}, &MalformedError{Provider: ProviderAnthropic, Reason: "the answer was cut off at the token limit; keep the scripts shorter"}
	}
	var text string
	for _, b := range msg.Content {
		if b.Type == "text" {
			text += b.Text
		}
	}
	return Answer{}, &MalformedError{Provider: ProviderAnthropic, Reason: "the answer did not call the " + toolName + " tool", Raw: cut(text)}
}

func (a *Anthropic) apiError(err error) error {
	var apiErr *anthropic.Error
	if errors.As(err, &apiErr) {
		e := &APIError{Provider: ProviderAnthropic, Status: apiErr.StatusCode, Message: http.StatusText(apiErr.StatusCode)}
		if m := anthropicMessage(apiErr.RawJSON()); m != "" {
			e.Message = m
		}
		e.Message = redact(e.Message, a.cfg.APIKey)
		if apiErr.Response != nil {
			e.RetryAfter = retryAfter(apiErr.Response.Header, time.Now())
		}
		return e
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", ProviderAnthropic, err)
	}
	return &APIError{Provider: ProviderAnthropic, Message: redact(err.Error(), a.cfg.APIKey)}
}

// anthropicMessage reads the message of Anthropic's error body,
// {"type":"error","error":{"type":"…","message":"…"}}.
func anthropicMessage(raw string) string {
	var body struct {
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal([]byte(raw), &body) != nil || body.Error.Message == "" {
		return ""
	}
	return body.Error.Type + ": " + body.Error.Message
}
