package scan

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

// xmlTokens renders a token stream for comparison: elements with their
// attributes, text with adjacent pieces joined and line ends normalized
// (encoding/xml turns \r\n into \n), comments and directives left out.
func xmlTokens(next func() (xml.Token, error)) (string, error) {
	var b strings.Builder
	var text []byte
	flush := func() {
		if len(text) > 0 {
			t := strings.ReplaceAll(strings.ReplaceAll(string(text), "\r\n", "\n"), "\r", "\n")
			fmt.Fprintf(&b, "text %q\n", t)
			text = text[:0]
		}
	}
	for {
		t, err := next()
		if errors.Is(err, io.EOF) {
			flush()
			return b.String(), nil
		}
		if err != nil {
			return b.String(), err
		}
		switch t := t.(type) {
		case xml.CharData:
			text = append(text, t...)
			continue
		case xml.StartElement:
			flush()
			fmt.Fprintf(&b, "start %s:%s", t.Name.Space, t.Name.Local)
			for _, a := range t.Attr {
				v := strings.ReplaceAll(strings.ReplaceAll(strings.ReplaceAll(a.Value, "\r\n", "\n"), "\r", "\n"), "\t", " ")
				fmt.Fprintf(&b, " %s:%s=%q", a.Name.Space, a.Name.Local, strings.ReplaceAll(v, "\n", " "))
			}
			b.WriteByte('\n')
		case xml.EndElement:
			flush()
			fmt.Fprintf(&b, "end %s:%s\n", t.Name.Space, t.Name.Local)
		case xml.ProcInst:
			flush()
			fmt.Fprintf(&b, "pi %s\n", t.Target)
		}
	}
}

// referenceTokens reads with encoding/xml as the walkers configure it, but
// without namespace translation (fastXML keeps prefixes), checking the
// nesting itself.
func referenceTokens(b []byte) (string, error) {
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	d.Entity = xml.HTMLEntity
	d.CharsetReader = charsetReader
	var stack []xml.Name
	return xmlTokens(func() (xml.Token, error) {
		t, err := d.RawToken()
		if err != nil {
			if errors.Is(err, io.EOF) && len(stack) > 0 {
				return nil, errors.New("unexpected EOF")
			}
			return nil, err
		}
		switch tt := t.(type) {
		case xml.StartElement:
			stack = append(stack, tt.Name)
			return xml.CopyToken(t), nil
		case xml.EndElement:
			if len(stack) == 0 || stack[len(stack)-1] != tt.Name {
				return nil, errors.New("mismatched end element")
			}
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) == 0 && len(bytes.TrimSpace(tt)) > 0 {
				return nil, errors.New("text outside the root")
			}
		}
		return xml.CopyToken(t), nil
	})
}

func fastTokens(b []byte, r io.Reader) (string, error) {
	d := newFastXML(r)
	return xmlTokens(func() (xml.Token, error) {
		t, err := d.Token()
		if cd, ok := t.(xml.CharData); ok && err == nil {
			if len(d.stack) == 0 && len(bytes.TrimSpace(cd)) > 0 {
				return nil, errors.New("text outside the root")
			}
		}
		return t, err
	})
}

// Whatever encoding/xml reads, fastXML reads the same way, whatever the
// sizes of the reads beneath it.
func TestFastXMLMatchesEncodingXML(t *testing.T) {
	var inputs [][]byte
	for _, dir := range []string{"qualys", "tenable", "openvas"} {
		files, _ := filepath.Glob(filepath.Join(realdata, dir, "*"))
		for _, p := range files {
			if b, err := os.ReadFile(p); err == nil && bytes.HasPrefix(bytes.TrimSpace(trimBOM(b)), []byte("<")) {
				inputs = append(inputs, b)
			}
		}
	}
	inputs = append(inputs,
		[]byte(`<?xml version="1.0"?><!DOCTYPE r [<!ELEMENT r ANY>]><r a="1 &amp; 2" b='&lt;&#65;&#x42;'>x&nbsp;y<![CDATA[<raw> & ]]>z<e/><n:q xmlns:n="u" n:a="v"/></r><!-- after -->`),
		[]byte("<r>\r\nline\r\n<x  y = \"1\"\n z='2' /></r>"),
	)
	for i, b := range inputs {
		want, werr := referenceTokens(b)
		if werr != nil {
			t.Fatalf("input %d: encoding/xml: %v", i, werr)
		}
		readers := []io.Reader{bytes.NewReader(b), iotest.HalfReader(bytes.NewReader(b))}
		if len(b) < 64<<10 {
			readers = append(readers, iotest.OneByteReader(bytes.NewReader(b)))
		}
		for _, r := range readers {
			got, err := fastTokens(b, r)
			if err != nil || got != want {
				t.Fatalf("input %d (%T): fastXML gave %v; %s", i, r, err, firstDiff(got, want))
			}
		}
	}
}

func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(al) && i < len(bl); i++ {
		if al[i] != bl[i] {
			return fmt.Sprintf("line %d: got %s, want %s", i+1, al[i], bl[i])
		}
	}
	return fmt.Sprintf("lengths %d and %d", len(al), len(bl))
}

func TestFastXMLErrors(t *testing.T) {
	tests := []struct {
		in   string
		line int
		msg  string
	}{
		{"<a>\n<b></a>", 2, "element <b> closed by </a>"},
		{"<a>\n\n<b>", 3, "unexpected EOF"},
		{"<a x=1></a>", 1, "unquoted value"},
		{"<a>&bogus;</a>", 1, "invalid character entity &bogus;"},
		{"<a>\x01</a>", 1, "illegal character code U+0001"},
		{"<a>\xff</a>", 1, "invalid UTF-8"},
		{"<a b=\"<\"/>", 1, "unescaped <"},
		{"</a>", 1, "unexpected end element"},
		{"<a><!-- never closed", 1, "unexpected EOF"},
		{"<1a/>", 1, "invalid element name"},
	}
	for _, tt := range tests {
		_, err := fastTokens([]byte(tt.in), strings.NewReader(tt.in))
		var se *xml.SyntaxError
		if !errors.As(err, &se) || se.Line != tt.line || !strings.Contains(se.Msg, tt.msg) {
			t.Errorf("%q: %v; want line %d %q", tt.in, err, tt.line, tt.msg)
		}
	}
}

// Anything encoding/xml accepts, fastXML tokenizes the same; and fastXML
// never panics. (fastXML may reject a few things encoding/xml accepts, such
// as a bare '&' it reads as an entity, but not the other way round.)
func FuzzFastXML(f *testing.F) {
	for _, dir := range []string{"qualys", "tenable"} {
		files, _ := filepath.Glob(filepath.Join(realdata, dir, "*"))
		for _, p := range files {
			if b, err := os.ReadFile(p); err == nil && bytes.HasPrefix(bytes.TrimSpace(b), []byte("<")) {
				f.Add(cutSeed(b))
			}
		}
	}
	f.Add([]byte(`<r a="1 &amp; 2"><![CDATA[x]]><e/>&#65;</r>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := fastTokens(b, iotest.HalfReader(bytes.NewReader(b)))
		want, werr := referenceTokens(b)
		if werr != nil {
			return
		}
		if err != nil || got != want {
			t.Fatalf("encoding/xml reads %q, fastXML gave %v\n%s", b, err, firstDiff(got, want))
		}
	})
}
