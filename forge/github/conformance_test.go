package github_test

import (
	"testing"

	"vulnzero.dev/vulnzero/forge"
	"vulnzero.dev/vulnzero/forge/forgetest"
)

// TestConformanceToken runs the forge conformance suite with a personal
// access token and commit statuses; every push goes over git smart HTTP.
func TestConformanceToken(t *testing.T) {
	forgetest.Run(t, func(t *testing.T) (forge.Forge, forgetest.PushBranch) {
		e := newEnv(t, envOpts{})
		return e.client, e.push
	})
}

// TestConformanceAppCheckRuns runs it as a GitHub App (JWT → installation
// token, also for git) writing check runs.
func TestConformanceAppCheckRuns(t *testing.T) {
	forgetest.Run(t, func(t *testing.T) (forge.Forge, forgetest.PushBranch) {
		e := newEnv(t, envOpts{app: true, checkRuns: true})
		return e.client, e.push
	})
}
