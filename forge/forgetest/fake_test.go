package forgetest

import (
	"testing"

	"vulnzero.dev/vulnzero/forge"
)

func TestFake(t *testing.T) {
	Run(t, func(t *testing.T) (forge.Forge, PushBranch) {
		f := NewFake()
		return f, f.PushBranch
	})
}
