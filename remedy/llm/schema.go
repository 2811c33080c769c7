package llm

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// answerSchema is the JSON schema of Answer, used as the OpenAI response
// format (strict) and as the input schema of Anthropic's tool.
func answerSchema() map[string]any {
	str := func(desc string) map[string]any { return map[string]any{"type": "string", "description": desc} }
	return map[string]any{
		"type": "object",
		"properties": map[string]any{
			"apply":     str("apply.sh: the complete POSIX sh script that makes the change, idempotent"),
			"verify":    str("verify.sh: the complete POSIX sh script; exit 0 iff the host is remediated"),
			"rollback":  str("rollback.sh: the complete POSIX sh script that restores the state before apply"),
			"rationale": str("why these scripts fix the findings and what rollback restores"),
		},
		"required":             []string{"apply", "verify", "rollback", "rationale"},
		"additionalProperties": false,
	}
}

// maxRaw bounds the malformed answer fed back to the model.
const maxRaw = 4 << 10

// parseAnswer decodes a structured answer strictly: unknown fields and
// trailing data are errors, like anything the schema does not allow.
func parseAnswer(provider string, raw []byte) (Answer, error) {
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	var a Answer
	bad := func(why string) error {
		r := string(raw)
		if len(r) > maxRaw {
			r = r[:maxRaw] + "…"
		}
		return &MalformedError{Provider: provider, Reason: why, Raw: r}
	}
	if err := dec.Decode(&a); err != nil {
		return Answer{}, bad(fmt.Sprintf("not the JSON object of the schema: %v", err))
	}
	if dec.More() {
		return Answer{}, bad("more than one JSON value")
	}
	var missing []string
	for name, v := range map[string]string{"apply": a.Apply, "verify": a.Verify, "rollback": a.Rollback} {
		if strings.TrimSpace(v) == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		sortStrings(missing)
		return Answer{}, bad("empty or missing: " + strings.Join(missing, ", "))
	}
	return a, nil
}

// retryAfter reads how long a provider asks to wait: retry-after-ms
// (OpenAI), then Retry-After in seconds or as an HTTP date.
func retryAfter(h http.Header, now time.Time) time.Duration {
	if h == nil {
		return 0
	}
	if ms, err := strconv.ParseFloat(h.Get("Retry-After-Ms"), 64); err == nil && ms > 0 {
		return time.Duration(ms * float64(time.Millisecond))
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil && s > 0 {
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

var keyLikeRE = regexp.MustCompile(`\b(sk|sk-ant|sk-proj)-[A-Za-z0-9_*.\-]{4,}`)

// redact removes the API key, and anything shaped like one, from a
// provider's message before it reaches an error, a log or a PR.
func redact(msg, key string) string {
	if key != "" {
		msg = strings.ReplaceAll(msg, key, "[redacted]")
	}
	return keyLikeRE.ReplaceAllString(msg, "[redacted]")
}
