package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/sys/unix"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/scan"
)

func TestProgressLine(t *testing.T) {
	r := &reportFile{name: "/data/scans/cluster.json", size: 200e6}
	r.read.Store(100e6)
	r.findings.Store(412345)
	line := r.progressLine(2*time.Second, 100)
	for _, want := range []string{"cluster.json [", "=>", " 50% 100.0/200.0 MB 412,345 findings 50 MB/s"} {
		if !strings.Contains(line, want) {
			t.Errorf("line %q lacks %q", line, want)
		}
	}
	if n := len([]rune(r.progressLine(time.Second, 60))); n > 60 {
		t.Errorf("line of %d columns in 60", n)
	}
	r.read.Store(200e6)
	if line := r.progressLine(time.Second, 100); !strings.Contains(line, "100% 412,345 findings read, storing…") || !strings.Contains(line, "[========================================]") {
		t.Errorf("finished line %q", line)
	}
	if got := count(1234567); got != "1,234,567" {
		t.Errorf("count = %q", got)
	}
}

// The line is redrawn every progressEvery while the import runs, and
// cleared when it ends, so the summary prints on a clean line.
func TestDrawProgress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &reportFile{name: "r.json", size: 10e6}
		var out bytes.Buffer
		stop := r.drawProgress(&out, time.Now)
		r.read.Store(5e6)
		time.Sleep(progressEvery)
		synctest.Wait()
		if s := out.String(); !strings.HasPrefix(s, "\r\x1b[Kr.json [") || !strings.Contains(s, " 50% ") {
			t.Errorf("after one tick: %q", s)
		}
		r.read.Store(10e6)
		time.Sleep(3 * progressEvery)
		synctest.Wait()
		if n := strings.Count(out.String(), "\r\x1b[K"); n != 4 {
			t.Errorf("%d redraws after four ticks", n)
		}
		stop()
		stop() // idempotent
		if s := out.String(); !strings.HasSuffix(s, "storing…\r\x1b[K") {
			t.Errorf("not cleared at the end: %q", s[max(0, len(s)-60):])
		}
	})
}

// openPTY opens a pseudo-terminal and returns its terminal side (what a
// shell's stderr is) and the side that reads what is drawn on it.
func openPTY(t *testing.T) (tty, master *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	tty, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("open pty: %v", err)
	}
	t.Cleanup(func() { tty.Close() })
	return tty, master
}

// On a terminal a large report shows progress; a pipe, a file or a small
// report shows nothing.
func TestShowProgressOnlyOnTerminals(t *testing.T) {
	tty, master := openPTY(t)
	if !isTerminal(tty) {
		t.Fatal("a pty is not taken for a terminal")
	}
	big := &reportFile{name: "big.json", size: progressMinSize}
	stop := big.showProgress(tty)
	time.Sleep(3 * progressEvery)
	stop()
	master.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	n, err := master.Read(buf)
	if err != nil || !strings.Contains(string(buf[:n]), "big.json [") {
		t.Errorf("terminal shows %q, %v", buf[:n], err)
	}

	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	file, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	for name, w := range map[string]*os.File{"pipe": pw, "file": file} {
		if isTerminal(w) {
			t.Errorf("%s taken for a terminal", name)
		}
		big.showProgress(w)() // a no-op: nothing to stop
	}
	if fi, _ := file.Stat(); fi.Size() != 0 {
		t.Errorf("progress written to a file: %d bytes", fi.Size())
	}
	small := &reportFile{name: "small.json", size: progressMinSize - 1}
	small.showProgress(tty)()
	if isTerminal(&bytes.Buffer{}) {
		t.Error("a buffer taken for a terminal")
	}
}

// openReport opens what scan.Open opens, with the same errors, and counts
// the bytes read and the findings yielded.
func TestOpenReport(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := write("r.csv", "host,os,package,installed,fixed,cve,severity,cvss\nweb-1,debian 12,openssl,3.0.1,3.0.2,CVE-1,high,7.5\nweb-2,debian 12,openssl,3.0.1,3.0.2,CVE-1,high,7.5\n")
	f, seq, r, err := openReport(p, "", scan.Options{})
	if err != nil || f != scan.FormatCSV {
		t.Fatalf("openReport: %q, %v", f, err)
	}
	var fs []vulnzero.Finding
	for fd, err := range seq {
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, fd)
	}
	r.Close()
	if len(fs) != 2 || r.findings.Load() != 2 || r.read.Load() != r.size || r.size == 0 {
		t.Errorf("%d findings; counted %d findings, %d of %d bytes", len(fs), r.findings.Load(), r.read.Load(), r.size)
	}

	empty := write("empty.json", " \n")
	if f, seq, r, err := openReport(empty, "", scan.Options{}); err != nil || f != "" || seq == nil {
		t.Errorf("empty report: %q, %v", f, err)
	} else {
		r.Close()
	}
	unknown := write("u.json", `{"foo": 1}`)
	if _, _, _, err := openReport(unknown, "", scan.Options{}); !errors.Is(err, vulnzero.ErrInvalid) || !strings.Contains(err.Error(), unknown) {
		t.Errorf("unknown content: %v", err)
	}
	if _, _, _, err := openReport(p, "nope", scan.Options{}); !errors.Is(err, vulnzero.ErrInvalid) || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("unknown format: %v", err)
	}
	if _, _, _, err := openReport(filepath.Join(dir, "missing"), "", scan.Options{}); err == nil {
		t.Error("missing file: no error")
	}
}

// `vulnzero ingest` imports the Grype, OSV-Scanner and OpenVAS samples into
// the SQLite store, detected by content or named with --format (the
// Grype report with a NUL in a version among them; the GVM report names
// one vulnerability on several ports, one finding each).
func TestIngestGrypeOSVOpenVAS(t *testing.T) {
	t.Setenv("VZ_DATA_DIR", t.TempDir())
	samples := filepath.Join("..", "..", "fixtures", "scans")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{filepath.Join(samples, "grype", "keycloak-test.json")}, "(grype): 6 findings read, 6 new, 0 updated, 0 fixed, 1 hosts"},
		{[]string{filepath.Join(samples, "grype", "dd_ubuntu2004_fix_available.json")}, "(grype): 1 findings read, 1 new"},
		{[]string{"--format", "osv-scanner", filepath.Join(samples, "osv-scanner", "go_cargo_groups.json")}, "(osv-scanner): 2 findings read, 2 new, 0 updated, 0 fixed, 2 hosts"},
		{[]string{filepath.Join(samples, "openvas", "many_vuln.csv")}, "(openvas): 5 findings read, 5 new, 0 updated, 0 fixed, 1 hosts"},
		{[]string{filepath.Join(samples, "openvas", "many_vuln.xml")}, "(openvas): 76 findings read, 65 new, 0 updated, 0 fixed, 2 hosts"},
	} {
		out, errOut, err := run(t, append([]string{"ingest"}, c.args...)...)
		if err != nil || !strings.Contains(out, c.want) {
			t.Errorf("ingest %v: %v\n%s%s", c.args, err, out, errOut)
		}
		if strings.Contains(errOut, "\r") {
			t.Errorf("ingest %v drew progress on a buffer: %q", c.args, errOut)
		}
	}
}
