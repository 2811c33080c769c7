package scan

import "encoding/json"

// Page describes one page of a paged API response once it has been read,
// so that a puller can ask for the next one. Parse reports it through
// Options.OnPage; which fields are set depends on the API.
//
// A puller that imports a source page by page must feed all pages of one
// pull into one import (one sequence): a complete import closes findings
// of the hosts it covers that it did not report, and a single page covers a
// host only partly.
type Page struct {
	// Total is how many documents the query matches across all pages
	// (Wazuh indexer hits.total.value, Wazuh API total_affected_items); -1
	// when the response does not say.
	Total int64
	// TotalRelation is the indexer's hits.total.relation: "eq", or "gte"
	// when Total is only a lower bound (track_total_hits was limited).
	TotalRelation string
	// Count is how many documents this page held (hits, affected items,
	// hosts), including those that produced no finding.
	Count int
	// SearchAfter is the sort array of the last hit, verbatim, to send as
	// search_after for the next indexer page; nil when the search was not
	// sorted (then page with from/size or a scroll instead).
	SearchAfter json.RawMessage
	// ScrollID and PITID continue an indexer scroll or point-in-time search.
	ScrollID string
	PITID    string
	// Next is the URL Qualys gives in a truncation warning (WARNING/CODE
	// 1980 with URL, id_min=…): the next page of a host list. Empty on the
	// last page.
	Next string
}
