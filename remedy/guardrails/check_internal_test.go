package guardrails

import (
	"os"
	"strings"
	"testing"
)

// bash -n is a second opinion after the Go parser; check it on its own.
func TestBashSyntax(t *testing.T) {
	const bash = "/bin/bash"
	if _, err := os.Stat(bash); err != nil {
		t.Skip("bash is not installed: the bash -n check is skipped on such hosts too")
	}
	if v, ok := bashSyntax(bash, "apply.sh", []byte("echo ok\nif true; then echo x; fi\n")); !ok {
		t.Errorf("valid script rejected: %v", v)
	}
	v, ok := bashSyntax(bash, "apply.sh", []byte("echo ok\necho one\nif true; then\n  echo x\ndone\n"))
	if ok {
		t.Fatal("broken script accepted")
	}
	if v.Rule != RuleBashSyntax || v.Line != 5 || !strings.Contains(v.Message, "syntax error") {
		t.Errorf("got %v", v)
	}
	if _, ok := bashSyntax("/nonexistent/bash", "apply.sh", []byte("if")); !ok {
		t.Error("a missing bash must skip the check")
	}
	if _, ok := bashSyntax("", "apply.sh", []byte("if")); !ok {
		t.Error("an empty BashPath must skip the check")
	}
}

func TestSystemPath(t *testing.T) {
	for p, want := range map[string]bool{
		"/": true, "//": true, "/.": true, "/etc/": true, "/etc/..": true, "/usr/*": true, "/e*": true,
		"/var/lib/dpkg": true, "/etc/nginx": false, "/var/lib/vulnzero/x": false, "/var/lib/apt/lists/*": false,
		"relative": false, "/" + unknown: false, "/etc/" + unknown: false, "": false,
	} {
		if _, got := systemPath(p); got != want {
			t.Errorf("systemPath(%q) = %v, want %v", p, got, want)
		}
	}
}
