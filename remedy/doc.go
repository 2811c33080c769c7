// Package remedy turns open findings into patch proposals: it groups them by
// remediation key, scores each group, and (in Proposer) filters by policy,
// generates the patch, checks it against the guardrails and opens the PR.
//
// A remediation key is (package, fixed version, OS family): every host that
// needs the same upgrade of the same package through the same package
// manager shares one patch, whatever CVEs brought it there. PatchID derives
// the patch id from the key, so the id, the branch and the PR survive
// re-runs and crashes.
//
// The score is 0–100 and explainable: each part says how many points it
// gave and why, and the PR shows the table. See Score.
package remedy
