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
// resolved once, when it is created (ResolveStagesIn), and saved with it:
// all-at-once (one stage), canary (cumulative stages, 1 → 10% → 25% → 100%
// by default, the canary tolerating no failure), rolling (batches of N or
// N%) and blue-green (the idle inventory group, a traffic switch by the
// policy's hook, a soak while the old group is the rollback target, then
// the old group). Inside a stage at most MaxParallel SSH sessions run, as a
// sliding window. A stage passes when every host passed apply → reboot
// (when the patch asks) → verify → health checks within the stage's failure
// budget, and then its stage-level check (a command on a designated host,
// or an HTTP probe); checks are retried up to a consecutive error limit.
// Every host step is written before it runs (step started, ledger applying)
// and after (step succeeded/failed, ledger applied/failed); rollout-level
// steps (stage checks "stage:N", switches "switch:<group>") are steps too.
// A reconciler killed at any point resumes from those records: a host the
// ledger marks applied for the revision is never applied again, a step
// recorded as succeeded is not run again, and a step recorded as started
// without a result is run again — apply.sh is idempotent by contract (the
// twin proves it before merge), so running it twice is safe where skipping
// it is not. A reboot records the boot id it saw first, so a resumed reboot
// waits for a new one instead of rebooting twice. A command that outlives
// its timeout counts as a failed host: a hung host never stalls a stage.
//
// What main says now governs a rollout already going: maintenance windows
// (cron + duration + time zone, allow and deny, per inventory group; deny
// wins) are checked before each host starts. A host outside its window is
// deferred and the rollout waits (state waiting, WaitUntil the next
// opening); the emergency lane lifts allow windows for patches fixing a
// KEV-listed CVE when the policy allows it. Operators pause, resume and
// abort a rollout through requests the store keeps as an append-only log
// (RequestOp); the reconciler reads them before each host it dispatches,
// at every resume, and during soaks. Abort rolls back the touched hosts
// without a revert. Rollbacks ignore windows: they restore what the window
// protected.
//
// When a stage fails (over budget, a failed stage check or switch),
// dispatch halts (hosts in flight finish), the rollout is recorded failed,
// every host it touched is rolled back with the rollback.sh recorded in the
// ledger (a blue-green rollout first switches traffic back to the old
// group), the revert is written — pushed to main, or as a revert pull
// request when the policy says so — the revision is quarantined, and the
// Notifier is told once per rollout and event (the store records what was
// sent). A person removing a patch from main (git revert) makes the next
// reconcile roll it back on every host where the ledger says it is applied.
//
// One rollout per patch runs at a time, and actions run one after another:
// two patches' scripts on one host at once would fight over the package
// manager's lock. Two blue-green rollouts over the same groups never run at
// once either: they would switch traffic under each other.
package reconciler
