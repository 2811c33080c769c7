package storetest

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/store"
)

// testScanRuns checks the run history of scan sources: a run is created
// running, replaced when it finishes, listed newest first per source, and
// replacing a run that does not exist is ErrNotFound.
func testScanRuns(t *testing.T, s store.Store) {
	if runs, err := s.ListScanRuns(ctx(t), store.ScanRunFilter{}); err != nil || len(runs) != 0 {
		t.Fatalf("ListScanRuns on an empty store = %+v, %v", runs, err)
	}
	started := store.ScanRun{Source: "wazuh-prod", Trigger: "schedule", State: store.ScanRunning, StartedAt: at(0)}
	r1, err := s.RecordScanRun(ctx(t), started)
	if err != nil {
		t.Fatal(err)
	}
	if r1.ID <= 0 {
		t.Fatalf("RecordScanRun assigned ID %d, want > 0", r1.ID)
	}
	checkTime(t, "StartedAt", r1.StartedAt, at(0))
	if !r1.FinishedAt.IsZero() {
		t.Errorf("FinishedAt = %v, want zero while running", r1.FinishedAt)
	}

	done := r1
	done.State, done.FinishedAt = store.ScanSucceeded, at(1)
	done.Imports, done.Read, done.New, done.Updated, done.Fixed, done.Hosts = 1, 120, 100, 20, 3, 7
	done.SetUnmatched([]string{"ip-10-0-0-9", "scanner-only.example"})
	if done, err = s.RecordScanRun(ctx(t), done); err != nil {
		t.Fatal(err)
	}
	skipped, err := s.RecordScanRun(ctx(t), store.ScanRun{Source: "wazuh-prod", Trigger: "schedule", State: store.ScanSkipped,
		StartedAt: at(2), FinishedAt: at(2), Error: "skipped: previous run still going"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.RecordScanRun(ctx(t), store.ScanRun{Source: "tenable", Trigger: "manual", State: store.ScanFailed,
		StartedAt: at(3), FinishedAt: at(4), Error: "pull tenable: GET https://cloud.tenable.com/vulns/export: 503"})
	if err != nil {
		t.Fatal(err)
	}
	if skipped.ID <= done.ID || other.ID <= skipped.ID {
		t.Errorf("IDs %d, %d, %d are not increasing", done.ID, skipped.ID, other.ID)
	}

	all, err := s.ListScanRuns(ctx(t), store.ScanRunFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if got := scanRunIDs(all); !reflect.DeepEqual(got, []int64{other.ID, skipped.ID, done.ID}) {
		t.Errorf("ListScanRuns IDs = %v, want newest first", got)
	}
	want := done
	want.StartedAt, want.FinishedAt = stored(at(0)), stored(at(1))
	if !reflect.DeepEqual(all[2], want) {
		t.Errorf("finished run reads back as\n %+v\nwant %+v", all[2], want)
	}
	for _, r := range all {
		if r.StartedAt.Location() != time.UTC {
			t.Errorf("run %d StartedAt in %v, want UTC", r.ID, r.StartedAt.Location())
		}
	}

	wazuh, err := s.ListScanRuns(ctx(t), store.ScanRunFilter{Source: "wazuh-prod", Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(wazuh) != 1 || wazuh[0].ID != skipped.ID || wazuh[0].State != store.ScanSkipped || wazuh[0].Error == "" {
		t.Errorf("last wazuh-prod run = %+v, want the skipped run %d with its reason", wazuh, skipped.ID)
	}
	if none, err := s.ListScanRuns(ctx(t), store.ScanRunFilter{Source: "qualys"}); err != nil || len(none) != 0 {
		t.Errorf("runs of a source that never ran = %+v, %v", none, err)
	}

	missing := done
	missing.ID = other.ID + 100
	if _, err := s.RecordScanRun(ctx(t), missing); !errors.Is(err, vulnzero.ErrNotFound) {
		t.Errorf("RecordScanRun of a missing ID: %v, want ErrNotFound", err)
	}
}

func scanRunIDs(rs []store.ScanRun) []int64 {
	var ids []int64
	for _, r := range rs {
		ids = append(ids, r.ID)
	}
	return ids
}
