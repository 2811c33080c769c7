// Package source pulls scanner findings from configured sources — the
// Wazuh manager API and indexer, Qualys VMDR, Tenable VM, or a directory
// files are dropped into — on a cron schedule, and imports them into the
// store as complete scans. It also loads the EPSS and CISA KEV feeds that
// enrich scoring.
//
// # Sources
//
// A Config (parsed from the `sources:` list of the configuration file) names
// a source, its type, URL, credentials (Secrets: by environment variable or
// file, resolved at each run and never logged) and schedule. New builds a
// Source; Source.Run pulls it once.
//
// An API pull downloads every page first, each to a spool file in a
// temporary directory, with paging done the API's way:
//
//	wazuh-api      POST /security/user/authenticate (basic) → JWT;
//	               GET /agents (offset/limit); GET /vulnerability/{agent}
//	               per agent (offset/limit). An expired token is renewed once.
//	wazuh-indexer  POST /{index}/_search sorted on (agent.id, agent.name,
//	               package.name, package.version, vulnerability.id), paged
//	               with search_after. A timed-out or partly failed search is
//	               an error, not a short page. With managerURL, the manager
//	               API's agent list (as for wazuh-api) covers every scanned
//	               agent, so one whose findings are all fixed (and so gone
//	               from the index) has them closed.
//	qualys         POST /api/2.0/fo/asset/host/vm/detection/, following
//	               RESPONSE/WARNING/URL (truncation) while the server gives
//	               one — only to the configured host; then
//	               POST /api/2.0/fo/knowledge_base/vuln/ for the QIDs seen,
//	               in batches, so detections get their CVEs, title and CVSS.
//	tenable        POST /vulns/export → poll /vulns/export/{uuid}/status →
//	               GET /vulns/export/{uuid}/chunks/{n} for each chunk as it
//	               becomes available. A failed or cancelled chunk fails the
//	               pull.
//
// Only when the whole pull is on disk are the pages parsed (scan.Parse,
// one page after another) and imported as one transaction, so a failure
// half way stores nothing and no database transaction waits on the network.
// The pages are parsed with the scan formats "wazuh", "qualys" and
// "tenable" (or "nessus"); a build without the format fails the run before
// calling the API, naming it.
//
// Every call has its own timeout (body included). Timeouts, network errors
// and 5xx answers are retried with exponential backoff and jitter; 429
// waits for Retry-After, and Qualys' 409 and X-RateLimit-Remaining: 0 wait
// for X-RateLimit-ToWait-Sec — a bounded number of times, and never longer
// than MaxWait at once. URLs lose their credentials (RedactURL) before they
// reach an error, a log or the run history.
//
// # Complete scans
//
// A pull is a complete scan of the hosts it covers (unless the source is
// Partial): the store marks fixed the findings of those hosts, from this
// source, that the pull no longer reports. Coverage comes from the parsers
// (scan.Options.OnHost, turned into store.CoverageMarker findings by
// ParseCovered) and, for Wazuh agents, from the agent list: an agent whose
// vulnerability list is empty is covered, so its old findings close.
//
// # File drops
//
// A file source imports every file that appears in its directory (format
// detected by content unless configured), oldest first, each as its own
// complete import, once the file has not changed for Settle. An imported
// file moves to done/. A file that fails to import stays where it is with
// NAME.error beside it (the time and the error, with file and position),
// is not tried again until it changes, and does not stop the other files:
// nothing is lost.
//
// # Schedule
//
// Scheduler runs sources on their cron schedules (robfig/cron, UTC unless
// CRON_TZ= is given) with a random delay up to Jitter, never two runs of
// one source at once — a firing while the previous run is still going is
// recorded as skipped — and records every run in the store's run history
// (store.ScanRun): running when it starts, then succeeded, failed or
// skipped with the counts and the error.
//
// # Feeds
//
// LoadFeeds reads FIRST's EPSS CSV (plain or gzipped) and CISA's KEV JSON
// from a path or URL into the maps remedy.ScoreInput takes.
package source
