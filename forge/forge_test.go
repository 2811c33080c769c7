package forge

import (
	"errors"
	"strings"
	"testing"

	"vulnzero.dev/vulnzero"
)

func TestBranchAndPatchID(t *testing.T) {
	if b := Branch("apt-libfoo-1.0.1"); b != "vulnzero/apt-libfoo-1.0.1" {
		t.Errorf("Branch = %s", b)
	}
	if id, ok := PatchID("vulnzero/apt-libfoo-1.0.1"); !ok || id != "apt-libfoo-1.0.1" {
		t.Errorf("PatchID = %s, %v", id, ok)
	}
	for _, b := range []string{"main", "vulnzero/", "feature/vulnzero/x"} {
		if id, ok := PatchID(b); ok {
			t.Errorf("PatchID(%q) = %q, want none", b, id)
		}
	}
}

func TestNewPRValidate(t *testing.T) {
	pr := NewPR{Branch: Branch("p"), Title: "t"}
	if err := pr.Validate(); err != nil || pr.PatchID != "p" {
		t.Errorf("Validate = %v, PatchID %q", err, pr.PatchID)
	}
	pr = NewPR{Branch: "topic"}
	err := pr.Validate()
	if !errors.Is(err, vulnzero.ErrInvalid) || !strings.Contains(err.Error(), "title required") || !strings.Contains(err.Error(), "patch id required") {
		t.Errorf("Validate = %v", err)
	}
}

func TestValidateStatus(t *testing.T) {
	sha := strings.Repeat("a1", 20)
	ok := vulnzero.CommitStatus{SHA: sha, Context: "vulnzero/twin", State: vulnzero.StatusPending}
	if err := ValidateStatus(ok); err != nil {
		t.Errorf("valid status: %v", err)
	}
	ok.SHA = strings.Repeat("b", 64) // sha256 repositories
	if err := ValidateStatus(ok); err != nil {
		t.Errorf("sha256 status: %v", err)
	}
	for name, st := range map[string]vulnzero.CommitStatus{
		"upper-case sha": {SHA: strings.ToUpper(sha), Context: "c", State: vulnzero.StatusSuccess},
		"short sha":      {SHA: "abc123", Context: "c", State: vulnzero.StatusSuccess},
		"long context":   {SHA: sha, Context: strings.Repeat("x", MaxContextLen+1), State: vulnzero.StatusSuccess},
		"no state":       {SHA: sha, Context: "c"},
	} {
		if err := ValidateStatus(st); !errors.Is(err, vulnzero.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}
