package scan

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Hand decoders for the values a parser decodes once per finding. Each
// behaves as json.Unmarshal into the same type: exact member names first,
// then case-insensitive ones; null leaves a field alone; a value of the
// wrong JSON type is the first *json.UnmarshalTypeError (with encoding/
// json's Offset, Struct and Field) and decoding goes on to check the rest
// of the value's syntax, which wins over a type error as it does in
// encoding/json (that scans the value whole before decoding it).

// jsonKind names a value by its first byte, as UnmarshalTypeError.Value.
func jsonKind(c byte) string {
	switch c {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "bool"
	}
	return "number"
}

// typeError holds the first type error of a value and the offset its
// Offsets count from (just after the separator before the value).
type typeError struct {
	base  int64
	first error
}

// record keeps the first type error; field is the member's path, built
// only for an error (prefix "CVSS." and name "V3Score").
func (te *typeError) record(value string, typ reflect.Type, offset int64, structName string, field fieldPath) {
	if te.first == nil {
		te.first = &json.UnmarshalTypeError{Value: value, Type: typ, Offset: offset - te.base, Struct: structName, Field: field.prefix + field.name}
	}
}

// fieldPath is UnmarshalTypeError.Field in two parts, so the hot path does
// not concatenate it for every member.
type fieldPath struct{ prefix, name string }

// mismatch consumes the value at scanp, which is not of type typ, and
// records the type error encoding/json reports for it. null is no
// mismatch: it leaves the destination alone.
func (d *fastDecoder) mismatch(te *typeError, typ reflect.Type, structName string, field fieldPath) error {
	c := d.buf[d.scanp]
	if c == '{' || c == '[' {
		// encoding/json points just past the opening bracket.
		off := d.InputOffset() + 1
		if err := d.skipValue(); err != nil {
			return err
		}
		te.record(jsonKind(c), typ, off, structName, field)
		return nil
	}
	lit, err := d.scalarBytes()
	if err != nil || lit == nil {
		return err
	}
	te.record(jsonKind(c), typ, d.InputOffset(), structName, field)
	return nil
}

// scalarBytes consumes a string or literal at scanp and returns its raw
// bytes; nil for null.
func (d *fastDecoder) scalarBytes() ([]byte, error) {
	if d.buf[d.scanp] == '"' {
		from, to, _, err := d.scanString()
		if err != nil {
			return nil, err
		}
		return d.bytesAt(from-1, to+1), nil
	}
	lit, err := d.readLiteral()
	if err != nil || lit[0] == 'n' {
		return nil, err
	}
	return lit, nil
}

// stringField decodes the value at scanp into *dst.
func (d *fastDecoder) stringField(dst *string, te *typeError, structName string, field fieldPath) error {
	if d.buf[d.scanp] == '"' {
		s, err := d.readString()
		if err != nil {
			return err
		}
		*dst = s
		return nil
	}
	return d.mismatch(te, reflect.TypeFor[string](), structName, field)
}

// floatField decodes the value at scanp into *dst.
func (d *fastDecoder) floatField(dst *float64, te *typeError, structName string, field fieldPath) error {
	c := d.buf[d.scanp]
	if c != '-' && (c < '0' || c > '9') {
		return d.mismatch(te, reflect.TypeFor[float64](), structName, field)
	}
	lit, err := d.readLiteral()
	if err != nil {
		return err
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil {
		te.record("number "+string(lit), reflect.TypeFor[float64](), d.InputOffset(), structName, field)
		return nil
	}
	*dst = f
	return nil
}

// structField decodes the object at scanp member by member; a value that
// is not an object (or null) is a type error for typ.
func (d *fastDecoder) structField(te *typeError, typ reflect.Type, structName string, field fieldPath, member func(key []byte) error) error {
	if d.buf[d.scanp] != '{' {
		return d.mismatch(te, typ, structName, field)
	}
	return d.object(func() error { return member(d.key) })
}

// fieldName maps a member name to one of names: the exact name, else the
// first that matches case-insensitively, else "".
func fieldName(key []byte, names []string) string {
	for _, n := range names {
		if len(key) == len(n) && string(key) == n {
			return n
		}
	}
	ascii := true
	for _, c := range key {
		if c >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	for _, n := range names {
		// Folding keeps an ASCII key's length; only a non-ASCII one
		// (the Kelvin sign, the long s) can match a name of another.
		if (!ascii || len(key) == len(n)) && strings.EqualFold(string(key), n) {
			return n
		}
	}
	return ""
}

var (
	trivyVulnFields = []string{"VulnerabilityID", "PkgName", "InstalledVersion", "FixedVersion", "Status",
		"Title", "Severity", "SeveritySource", "CVSS"}
	trivyCVSSFields = []string{"V2Vector", "V3Vector", "V40Vector", "V2Score", "V3Score", "V40Score"}
)

// decodeFast decodes one Trivy vulnerability entry: the hot path of a
// Trivy import.
func (v *trivyVuln) decodeFast(d *fastDecoder, base int64) error {
	te := &typeError{base: base}
	if _, err := d.next(); err != nil {
		return err
	}
	err := d.structField(te, reflect.TypeFor[trivyVuln](), "", fieldPath{}, func(key []byte) error {
		var dst *string
		intern := false // a field of few values, kept once
		f := fieldName(key, trivyVulnFields)
		switch f {
		case "VulnerabilityID":
			dst = &v.VulnerabilityID
		case "PkgName":
			dst = &v.PkgName
		case "InstalledVersion":
			dst = &v.InstalledVersion
		case "FixedVersion":
			dst = &v.FixedVersion
		case "Status":
			dst, intern = &v.Status, true
		case "Title":
			dst = &v.Title
		case "Severity":
			dst, intern = &v.Severity, true
		case "SeveritySource":
			dst, intern = &v.SeveritySource, true
		case "CVSS":
			return v.decodeCVSS(d, te)
		default:
			return d.skipValue()
		}
		if intern && d.buf[d.scanp] == '"' {
			b, err := d.readStringBytes()
			*dst = d.internBytes(b)
			return err
		}
		return d.stringField(dst, te, "trivyVuln", fieldPath{name: f})
	})
	if err != nil {
		return err
	}
	return te.first
}

// decodeCVSS decodes the CVSS member: a map from source to scores. The map
// is the decoder's, cleared for each entry: the walker reads it before it
// decodes the next one, and a map per finding was a tenth of the parse.
func (v *trivyVuln) decodeCVSS(d *fastDecoder, te *typeError) error {
	if d.buf[d.scanp] != '{' {
		return d.mismatch(te, reflect.TypeFor[map[string]trivyCVSS](), "trivyVuln", fieldPath{name: "CVSS"})
	}
	if d.cvss == nil {
		d.cvss = map[string]trivyCVSS{}
	}
	clear(d.cvss)
	v.CVSS = d.cvss
	return d.object(func() error {
		src := d.internBytes(d.key)
		var c trivyCVSS
		err := d.structField(te, reflect.TypeFor[trivyCVSS](), "trivyVuln", fieldPath{name: "CVSS"}, func(key []byte) error {
			f := fieldPath{prefix: "CVSS.", name: fieldName(key, trivyCVSSFields)}
			var vec *string
			switch f.name {
			case "V2Vector":
				vec = &c.V2Vector
			case "V3Vector":
				vec = &c.V3Vector
			case "V40Vector":
				vec = &c.V40Vector
			case "V2Score":
				return d.floatField(&c.V2Score, te, "trivyCVSS", f)
			case "V3Score":
				return d.floatField(&c.V3Score, te, "trivyCVSS", f)
			case "V40Score":
				return d.floatField(&c.V40Score, te, "trivyCVSS", f)
			default:
				return d.skipValue()
			}
			// A report repeats a few dozen vectors a million times.
			if d.buf[d.scanp] == '"' {
				b, err := d.readStringBytes()
				*vec = d.internBytes(b)
				return err
			}
			return d.stringField(vec, te, "trivyCVSS", f)
		})
		v.CVSS[src] = c
		return err
	})
}

// internBytes returns b as a string, the same string for the same bytes
// while the table has room: sources, severities and statuses repeat in
// every entry.
func (d *fastDecoder) internBytes(b []byte) string {
	if s, ok := d.interned[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(d.interned) < 1024 {
		if d.interned == nil {
			d.interned = map[string]string{}
		}
		d.interned[s] = s
	}
	return s
}
