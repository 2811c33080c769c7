package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vulnzero.dev/vulnzero/remedy/guardrails"
)

func TestLLMConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "vulnzero.yaml")
	if err := os.WriteFile(path, []byte("dataDir: "+dir+"\nllm:\n  provider: anthropic\n  model: claude-test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }

	_, err := loadConfig(path, getenv)
	if err == nil || !strings.Contains(err.Error(), "llm.apiKeyEnv: the API key is not set: export ANTHROPIC_API_KEY") {
		t.Fatalf("missing key: %v", err)
	}

	env["ANTHROPIC_API_KEY"] = "sk-ant-secret-value"
	c, err := loadConfig(path, getenv)
	if err != nil {
		t.Fatal(err)
	}
	if c.LLM.APIKey != "sk-ant-secret-value" || c.LLM.Model != "claude-test" {
		t.Errorf("llm = %+v", c.LLM)
	}
	gen, err := newLLMGenerator(c.LLM, guardrails.Defaults(), nil)
	if err != nil || gen == nil || gen.Provider.Name() != "anthropic" || gen.Provider.Model() != "claude-test" {
		t.Fatalf("generator %+v, %v", gen, err)
	}

	// Overrides from the environment; an OpenAI-compatible server needs no
	// key but a base URL, and a key never comes from the file.
	env = map[string]string{"VZ_LLM_PROVIDER": "openai-compatible", "VZ_LLM_MODEL": "qwen2.5-coder:7b"}
	if _, err := loadConfig(path, getenv); err == nil || !strings.Contains(err.Error(), "llm.baseURL: required") {
		t.Errorf("compatible without base URL: %v", err)
	}
	env["VZ_LLM_BASE_URL"] = "http://user:pw@127.0.0.1:11434/v1/"
	if _, err := loadConfig(path, getenv); err == nil || !strings.Contains(err.Error(), "must not hold credentials") || strings.Contains(err.Error(), "pw@") {
		t.Errorf("credentials in the base URL: %v", err)
	}
	env["VZ_LLM_BASE_URL"] = "http://127.0.0.1:11434/v1/"
	c, err = loadConfig(path, getenv)
	if err != nil {
		t.Fatal(err)
	}
	if gen, err := newLLMGenerator(c.LLM, guardrails.Defaults(), nil); err != nil || gen.Provider.Name() != "openai-compatible" {
		t.Errorf("compatible generator: %v", err)
	}
	if err := os.WriteFile(path, []byte("dataDir: "+dir+"\nllm:\n  provider: openai\n  model: m\n  apiKey: sk-in-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadConfig(path, func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "apiKey") {
		t.Errorf("a key in the file was accepted: %v", err)
	}

	// No provider: no generator, nothing asked.
	if gen, err := newLLMGenerator(LLMConfig{}, guardrails.Defaults(), nil); gen != nil || err != nil {
		t.Errorf("no provider: %v, %v", gen, err)
	}
	if err := (LLMConfig{Provider: "gemini", Model: "x"}).Validate(); err == nil || !strings.Contains(err.Error(), `"gemini" is not openai, anthropic or openai-compatible`) {
		t.Errorf("unknown provider: %v", err)
	}
}
