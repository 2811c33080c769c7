// Package reconciler makes a fleet follow the main branch of the
// remediation repository.
//
// A reconcile is observe → desire → diff → execute → record. The store is
// observed (the per-host ledger, rollouts, quarantined revisions), the
// Source reads main (patches with their revisions, inventory, policies), and
// Plan — a pure function, no I/O — compares the two and returns Actions: start
// a rollout of a revision, resume an active rollout, roll back a revision
// that left main, or skip with a reason. The executor then runs each action
// in order.
//
// A rollout is a state machine persisted in the store. Its stages are
// resolved once, when it is created (ResolveStages: canary 1 → 10% → 25% →
// 100% by default, cumulative, hosts sorted), and saved with it. Every host
// step is written before it runs (step started, ledger applying) and after
// (step succeeded/failed, ledger applied/failed). A reconciler killed at any
// point resumes from those records: a host the ledger marks applied for the
// revision is never applied again, a step recorded as succeeded is not run
// again, and a step recorded as started without a result is run again —
// apply.sh is idempotent by contract (the twin proves it before merge), so
// running it twice is safe where skipping it is not.
//
// When a stage has more failed hosts than its budget, dispatch halts (hosts
// in flight finish), the rollout is recorded failed, every host it touched
// is rolled back with the rollback.sh recorded in the ledger, the Reverter
// writes the revision out of main, the revision is quarantined, the Notifier
// is told, and the rollout ends rolled_back with the revert's SHA. A person
// removing a patch from main (git revert) makes the next reconcile roll it
// back on every host where the ledger says it is applied.
//
// One rollout per patch runs at a time, and actions run one after another:
// two patches' scripts on one host at once would fight over the package
// manager's lock.
package reconciler
