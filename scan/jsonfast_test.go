package scan

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"vulnzero.dev/vulnzero"
)

// fastDecoder must be indistinguishable from *json.Decoder for what the
// walkers do with it; these tests run both on the same input and compare
// every token, value, error message and offset. Each runs the fast decoder
// twice: on a normal reader and on one that returns a byte at a time, so
// every value is split across buffer refills.

func TestSyntaxErrorMessages(t *testing.T) {
	contexts := []string{
		"looking for beginning of value", "looking for beginning of object key string", "after object key",
		"after object key:value pair", "after array element", "in string literal", "in string escape code",
		"in \\u hexadecimal character escape", "in numeric literal", "after decimal point in numeric literal",
		"in exponent of numeric literal", "in literal true (expecting 'r')", "in literal true (expecting 'u')",
		"in literal true (expecting 'e')", "in literal false (expecting 'a')", "in literal false (expecting 's')",
		"in literal null (expecting 'u')", "in literal null (expecting 'l')",
	}
	for _, ctx := range contexts {
		for _, c := range []byte{'x', '\'', 0x01, 0xff, '.'} {
			if ctx == "in string literal" && c >= 0x20 {
				continue
			}
			err := syntaxError(c, ctx, 42)
			var se *json.SyntaxError
			if !errors.As(err, &se) || se.Offset != 42 {
				t.Fatalf("%q %q: %v", c, ctx, err)
			}
			want := "invalid character " + quoteCharJSON(c) + " " + ctx
			if se.Error() != want {
				t.Errorf("got %q, want %q", se.Error(), want)
			}
		}
	}
	for _, msg := range []string{"expected comma after array element", "expected colon after object key", "not at beginning of value"} {
		if err := decoderError(msg, 7); err.Error() != msg {
			t.Errorf("decoderError(%q) = %q", msg, err)
		}
	}
	if err := syntaxError('[', "exceeded max depth", 1); err.Error() != "invalid character '[' exceeded max depth" {
		t.Errorf("max depth: %v", err)
	}
}

// quoteCharJSON is encoding/json's quoteChar.
func quoteCharJSON(c byte) string {
	if c == '\'' {
		return `'\''`
	}
	if c == '"' {
		return `'"'`
	}
	s := strconv.Quote(string(c))
	return "'" + s[1:len(s)-1] + "'"
}

// step is what one call returned, printed for comparison.
func step(v any, err error, off int64) string {
	return fmt.Sprintf("%T %#v | %v | %d", v, v, errString(err), off)
}

func errString(err error) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case err == nil:
		return "<nil>"
	case errors.As(err, &te):
		return fmt.Sprintf("type %s %s off=%d struct=%s field=%s", te.Value, te.Type, te.Offset, te.Struct, te.Field)
	case errors.As(err, &se):
		return "syntax " + se.Error()
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "EOF" // the walkers treat both alike
	}
	return err.Error()
}

// tokenTrace walks input with Token until an error, decoding each
// top-level value and each array element with Decode when decodeArrays is
// set, and records every step.
func tokenTrace(dec jsonDecoder, decodeArrays bool, into func() any) []string {
	var out []string
	for i := 0; i < 10000; i++ {
		if decodeArrays && i > 0 && dec.More() {
			v := into()
			err := dec.Decode(v)
			var te *json.UnmarshalTypeError
			if err != nil && !errors.As(err, &te) {
				// A value that failed to scan is not used: encoding/json
				// leaves it untouched, the fast decoder half filled.
				return append(out, "decode "+step(nil, err, dec.InputOffset()))
			}
			out = append(out, "decode "+step(reflect.ValueOf(v).Elem().Interface(), err, dec.InputOffset()))
			continue
		}
		tok, err := dec.Token()
		out = append(out, "token "+step(tok, err, dec.InputOffset()))
		if err != nil {
			return out
		}
	}
	return out
}

func compareTraces(t *testing.T, b []byte, decodeArrays bool, into func() any) {
	t.Helper()
	want := tokenTrace(json.NewDecoder(bytes.NewReader(b)), decodeArrays, into)
	for _, r := range []io.Reader{bytes.NewReader(b), iotest.OneByteReader(bytes.NewReader(b))} {
		got := tokenTrace(newFastDecoder(r), decodeArrays, into)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("input %q\nfast decoder:\n%s\nencoding/json:\n%s", b, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
}

var jsonSeeds = []string{
	`{"a": [1, 2.5, -3e10, true, false, null, "x\"y\\u00e9\ud83d\ude00"], "b": {}}`,
	`[{"VulnerabilityID": "CVE-1", "PkgName": "a", "CVSS": {"nvd": {"V3Score": 9.8, "V3Vector": "v"}, "x": null}}, {"pkgname": 7}, null, 3]`,
	`[{"PkgName": {"a": 1}}, {"CVSS": [1]}, {"CVSS": {"nvd": "s"}}, {"CVSS": {"nvd": {"V2Score": 1e400}}}]`,
	`[{"Title": "\ud800", "Severity": "\xff\xfe", "Status": "a\tb"}]`,
	`{"a" 1}`, `[1 2]`, `{"a":1,}`, `[1,]`, `{"a":tru}`, `[-]`, `[0.]`, `[1e+]`, `["\x"]`, `["\u12g4"]`,
	`[01]`, `[1.5e3x]`, `{"a":nul}`, `{"a":"b"`, `[`, `{`, `"abc`, `123`, ` `, ``, `}`, `]`, `,`, `:`,
	`{"k":1}{"k":2}`, `[1][2]`, `[{"CVSS":{"a":{"V3Score":"x"}}}]`, `[{"VulnerabilityID":"\u0041\u00"}]`,
}

// Deep nesting and values longer than a buffer are too slow to fuzz from.
func TestFastDecoderLargeInput(t *testing.T) {
	for _, s := range []string{
		"[" + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + "]",
		"[" + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + "]",
		`[` + strings.Repeat(`{"VulnerabilityID":"CVE-2024-0001","Description":"`+strings.Repeat("long text ", 8000)+`"},`, 20) + `null]`,
		`[` + strings.Repeat(`{"Title":"\u00e9\n`+strings.Repeat("é", 30000)+`", "CVSS": {"nvd": {"V3Score": 1.25e1}}},`, 5) + `{}]`,
	} {
		compareTraces(t, []byte(s), true, func() any { return new(any) })
		compareTraces(t, []byte(s), true, func() any { return new(trivyVuln) })
	}
}

func FuzzFastDecoderTokens(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		compareTraces(t, b, false, nil)
		compareTraces(t, b, true, func() any { return new(any) })
	})
}

func FuzzFastDecoderTrivyVuln(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		compareTraces(t, b, true, func() any { return new(trivyVuln) })
	})
}

// The hand decoder knows trivyVuln's fields: a field added to the struct
// must be added to decodeFast too.
func TestTrivyVulnFastFields(t *testing.T) {
	for _, c := range []struct {
		typ   reflect.Type
		names []string
	}{{reflect.TypeFor[trivyVuln](), trivyVulnFields}, {reflect.TypeFor[trivyCVSS](), trivyCVSSFields}} {
		var fields []string
		for i := 0; i < c.typ.NumField(); i++ {
			fields = append(fields, c.typ.Field(i).Name)
		}
		if strings.Join(fields, ",") != strings.Join(c.names, ",") {
			t.Errorf("%s has fields %v; decodeFast knows %v", c.typ, fields, c.names)
		}
	}
}

// parseTrivyWith runs the Trivy walker on dec.
func parseTrivyWith(b []byte, fast, oneByte bool) ([]vulnzero.Finding, error) {
	var r io.Reader = bytes.NewReader(b)
	if oneByte {
		r = iotest.OneByteReader(r)
	}
	br := bufio.NewReaderSize(r, 64<<10)
	var skipped int64
	if p, _ := br.Peek(3); bytes.Equal(p, []byte("\xEF\xBB\xBF")) {
		br.Discard(3)
		skipped = 3
	}
	lt := newLineTracker(br, skipped)
	var dec jsonDecoder = json.NewDecoder(lt)
	if fast {
		dec = newFastDecoder(lt)
	}
	var fs []vulnzero.Finding
	in := newInput("fuzz", FormatTrivy, Options{Now: now})
	w := newTrivyWalker(in, dec, lt, func(f vulnzero.Finding) error { fs = append(fs, f); return nil })
	return fs, w.parse()
}

func compareTrivy(t *testing.T, b []byte) {
	t.Helper()
	// Both read the same way: where a syntax error in a decoded value is
	// reported depends on how far the reader has read ahead (the walker
	// rescans the bytes it holds), for either decoder.
	//
	// The fast decoder decodes vulnerabilities in batches on other
	// goroutines; batch sizes of 1 and 2 cross batch boundaries everywhere.
	defer func(n int) { batchSize = n }(batchSize)
	for _, oneByte := range []bool{false, true} {
		want, wantErr := parseTrivyWith(b, false, oneByte)
		for _, batchSize = range []int{1, 2, 64} {
			got, err := parseTrivyWith(b, true, oneByte)
			if fmt.Sprint(err) != fmt.Sprint(wantErr) {
				t.Fatalf("input %q (one byte %v, batches of %d):\nfast error  %v\njson error  %v", b, oneByte, batchSize, err, wantErr)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("input %q (one byte %v, batches of %d): findings differ:\nfast %+v\njson %+v", b, oneByte, batchSize, got, want)
			}
		}
	}
}

// The Trivy parser gives the same findings and the same errors on either
// decoder, for every real sample and for fuzzed input.
func FuzzTrivyFastDecoder(f *testing.F) {
	for _, dir := range []string{filepath.Join(realdata, "trivy"), filepath.Join(fixtures, "trivy")} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
		for _, p := range files {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
		}
	}
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte("{\"SchemaVersion\": 2,\n\"ArtifactName\": \"h\",\n\"Results\": [{\"Target\": \"h (debian 12)\", \"Class\": \"os-pkgs\", \"Type\": \"debian\",\n\"Vulnerabilities\": [\n{\"VulnerabilityID\": \"CVE-1\", \"PkgName\": \"a\"},\n{\"VulnerabilityID\": \"CVE-2\" \"PkgName\": \"b\"}]}]}"))
	f.Add([]byte("{\"ArtifactName\": \"h\", \"Results\": [{\"Target\": \"t\", \"Class\": \"lang-pkgs\", \"Type\": \"npm\", \"Vulnerabilities\": [\n  {\"VulnerabilityID\": \"CVE-1\", \"PkgName\": 7}]}]}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		compareTrivy(t, b)
	})
}

// Truncating a real report anywhere gives the same error either way.
func TestTrivyFastDecoderTruncated(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(fixtures, "trivy", "dd_jar_cvssv4.json"))
	if err != nil {
		t.Fatal(err)
	}
	for cut := 0; cut < len(b); cut += 1 + cut/40 {
		compareTrivy(t, b[:cut])
	}
}
