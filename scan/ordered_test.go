package scan

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
)

// parseEvents parses b with procs CPUs and batches of batch entries and
// records, in order, every covered host and every finding, then the error.
func parseEvents(b []byte, format Format, procs, batch int, oneByte bool) string {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
	defer func(n int) { batchSize = n }(batchSize)
	batchSize = batch
	var out strings.Builder
	opts := Options{Now: now, Source: "s", OnHost: func(h string) { fmt.Fprintf(&out, "cover %s\n", h) }}
	var in io.Reader = bytes.NewReader(b)
	if oneByte {
		in = iotest.OneByteReader(in)
	}
	for f, err := range Parse("report", in, format, opts) {
		if err != nil {
			fmt.Fprintf(&out, "error %v\n", err)
			break
		}
		fmt.Fprintf(&out, "%+v\n", f)
	}
	return out.String()
}

// comparePar checks that parsing b on several cores, in batches of any
// size, gives exactly what a parse on one core gives: the same findings
// and hosts in the same order, and the same error at the same place.
func comparePar(t *testing.T, b []byte, format Format) {
	t.Helper()
	for _, oneByte := range []bool{false, true} {
		if oneByte && len(b) > 64<<10 {
			continue
		}
		want := parseEvents(b, format, 1, 64, oneByte)
		for _, batch := range []int{1, 2, 64} {
			if got := parseEvents(b, format, 2, batch, oneByte); got != want {
				t.Fatalf("%d bytes (one byte %v), batches of %d: %s\ninput %q", len(b), oneByte, batch, firstDiff(got, want), truncate(string(b), 2000))
			}
		}
	}
}

// Every real .nessus sample, whole and cut anywhere, parses the same on
// many cores as on one.
func TestNessusParallelMatchesSequential(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(realdata, "tenable", "*.nessus"))
	if len(files) == 0 {
		t.Fatal("no .nessus samples under " + realdata)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		comparePar(t, b, FormatNessus)
		// The Policy is most of each file; cut where the hosts are.
		from := bytes.Index(b, []byte("<ReportHost"))
		for cut := max(from, 0); cut < len(b); cut += 1 + (len(b)-from)/60 {
			comparePar(t, b[:cut], FormatNessus)
		}
	}
	for _, s := range parallelNessusSeeds {
		comparePar(t, []byte(s), FormatNessus)
	}
}

// Bodies the raw reader must leave to the tokenizer, and items that fail.
var parallelNessusSeeds = []string{
	nessusDoc(`<ReportItem pluginID="1" severity="3"><cve>CVE-1</cve><!-- </ReportItem> --><risk_factor>High</risk_factor></ReportItem>` +
		`<ReportItem pluginID="2" severity="3"><cve>CVE-2</cve><risk_factor>High</risk_factor></ReportItem>`),
	nessusDoc(`<ReportItem pluginID="1" severity="3"><plugin_output><![CDATA[</ReportItem>]]></plugin_output><risk_factor>High</risk_factor></ReportItem>`),
	nessusDoc(`<ReportItem pluginID="1" severity="3"><ReportItem pluginID="9"></ReportItem><risk_factor>High</risk_factor></ReportItem>`),
	nessusDoc(`<ReportItem pluginID="1" severity="3"><risk_factor>High</risk_factor></ReportItem >` +
		`<ReportItem pluginID="2" severity="3"/><ReportItem pluginID="3" severity="3"><risk_factor>High</risk_factor><cve>CVE-3</cve></ReportItem>`),
	nessusDoc(`<ReportItem pluginID="1" severity="3"><risk_factor>High</risk_factor><cve>CVE-1</cve></ReportItem>` +
		"\n<ReportItem pluginID=\"2\" severity=\"3\">\n<cve>CVE-2</cvx></ReportItem>"),
	nessusDoc(`<ReportItem pluginID="1" severity="3"><risk_factor>High</risk_factor><cve>CVE-1</cve></ReportItem>` +
		"\n<ReportItem severity=\"3\">\n<risk_factor>High</risk_factor></ReportItem>"),
	nessusDoc(`<ReportItem pluginID="1" severity="3"><risk_factor>High</risk_factor><cve>CVE-1</cve></ReportItem>` +
		"\n<ReportItem pluginID=\"2\" severity=\"3\">\n<cvss3_base_score>eleven</cvss3_base_score><risk_factor>High</risk_factor></ReportItem>"),
	nessusDoc(`<ReportItem pluginID="1" severity="3"><risk_factor>High</risk_factor><cve>CVE-1</cve></ReportItem>` +
		"<ReportItem pluginID=\"2\" severity=\"3\"><risk_factor>High</risk_factor><cve>CVE-2&bogus;</cve></ReportItem>"),
	nessusDoc(`<n:ReportItem pluginID="1" severity="3"><risk_factor>High</risk_factor><cve>CVE-1</cve></n:ReportItem>`),
	// "</ReportItem" inside a quoted value: only in a malformed report (a
	// raw '<' in a value), which must fail as it fails on one core.
	nessusDoc(`<ReportItem pluginID="1" severity="3"><risk_factor a="x </ReportItem> y">High</risk_factor></ReportItem>`),
	nessusDoc(`<ReportItem pluginID="1" severity="3"><risk_factor a="x <b> </ReportItem> y">High</risk_factor></ReportItem>`),
	nessusDoc(`<ReportItem pluginID="1" severity="3"><risk_factor a='>' b="</ReportItem>">High</risk_factor></ReportItem>`),
	"<NessusClientData_v2><Report><ReportHost name=\"a\"><ReportItem pluginID=\"1\" severity=\"3\"><risk_factor>High</risk_factor><cve>CVE-1</cve></ReportItem></ReportHost>" +
		"<ReportHost name=\"b\"></ReportHost><ReportHost name=\"c\"><ReportItem pluginID=\"2\" severity=\"3\"><risk_factor>High</risk_factor><cve>CVE-2</cve></ReportItem></ReportHost><ReportHost></ReportHost></Report></NessusClientData_v2>",
}

func nessusDoc(items string) string {
	return "<NessusClientData_v2>\n<Report name=\"r\">\n<ReportHost name=\"h\"><HostProperties><tag name=\"operating-system\">CentOS 7</tag></HostProperties>\n" +
		items + "\n</ReportHost>\n</Report>\n</NessusClientData_v2>\n"
}

func FuzzNessusParallel(f *testing.F) {
	for _, s := range parallelNessusSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		comparePar(t, b, FormatNessus)
	})
}

// The .nessus walker reads the same findings, and fails at the same line,
// on fastXML (with its raw and leaf shortcuts) as on encoding/xml.
func TestNessusFastXMLMatchesEncodingXML(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(realdata, "tenable", "*.nessus"))
	inputs := [][]byte{}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, b)
		from := bytes.Index(b, []byte("<ReportHost"))
		for cut := max(from, 0); cut < len(b); cut += 1 + (len(b)-from)/40 {
			inputs = append(inputs, b[:cut])
		}
	}
	for _, s := range parallelNessusSeeds {
		inputs = append(inputs, []byte(s))
	}
	// Where in a line each stops reading differs (encoding/xml reads on
	// into a token before it fails), and at the end of input so may the
	// line and the reason (an entity cut short): the place is compared up
	// to the line, and for a truncated input only the path.
	column := regexp.MustCompile(`(error report:\d+):\d+`)
	place := regexp.MustCompile(`error report:\d+:\d+ (\([^)]*\)): .*`)
	for i, b := range inputs {
		got := parseEvents(b, FormatNessus, 1, 64, false)
		stdXMLOnly = true
		want := parseEvents(b, FormatNessus, 1, 64, false)
		stdXMLOnly = false
		if strings.Contains(want, "unexpected end of input") {
			got, want = place.ReplaceAllString(got, "error $1"), place.ReplaceAllString(want, "error $1")
		}
		got, want = column.ReplaceAllString(got, "$1"), column.ReplaceAllString(want, "$1")
		if got != want {
			t.Errorf("input %d (%d bytes): %s", i, len(b), firstDiff(got, want))
		}
	}
}

// A batch that panics fails the parse in order, with what came before it
// emitted, instead of crashing the process from a worker goroutine.
func TestOrderedWorkerPanic(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	o := newOrdered()
	var got []int
	emitBatch := func(n int, fail bool) func() func() error {
		return func() func() error {
			if fail {
				panic("boom")
			}
			return func() error {
				got = append(got, n)
				return nil
			}
		}
	}
	var err error
	for i := range 20 {
		if err = o.submit(emitBatch(i, i == 7)); err != nil {
			break
		}
	}
	err = o.finish(err)
	if err == nil || !strings.Contains(err.Error(), "internal error parsing a batch: boom") {
		t.Fatalf("finish = %v, want the panic as an error", err)
	}
	if fmt.Sprint(got) != "[0 1 2 3 4 5 6]" {
		t.Errorf("consumed %v, want the batches before the one that panicked", got)
	}
}
