package policies

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"vulnzero.dev/vulnzero"
)

// decodeStrict decodes one YAML document into v, refusing unknown fields, and
// returns the document's root node so validation can point at lines. Errors
// are *vulnzero.PositionError naming file and line.
func decodeStrict(file string, data []byte, v any) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, yamlError(file, err)
	}
	if len(doc.Content) == 0 {
		return nil, &vulnzero.PositionError{File: file, Line: 1, Err: errors.New("empty document")}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		return nil, yamlError(file, err)
	}
	return doc.Content[0], nil
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlError turns yaml.v3's "line N: msg" errors into PositionErrors. A
// TypeError may hold several; the first one sets the position and all are kept
// in the message.
func yamlError(file string, err error) error {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	line := 0
	for i, m := range msgs {
		if sm := yamlLine.FindStringSubmatch(m); sm != nil {
			n, _ := strconv.Atoi(sm[1])
			if line == 0 {
				line = n
			}
			if i > 0 {
				msgs[i] = "line " + sm[1] + ": " + sm[2]
			} else {
				msgs[i] = sm[2]
			}
		}
	}
	return &vulnzero.PositionError{File: file, Line: line, Err: errors.New(strings.Join(msgs, "; "))}
}

// lineOf returns the line of the value at a dotted path of mapping keys
// and sequence indexes ("package.name", "spec.windows.1.schedule"), or of
// the deepest element found, so a validation error can point at the closest
// line that exists.
func lineOf(root *yaml.Node, path string) int {
	n := root
	line := root.Line
	for _, key := range strings.Split(path, ".") {
		if n != nil && n.Kind == yaml.SequenceNode {
			i, err := strconv.Atoi(key)
			if err != nil || i < 0 || i >= len(n.Content) {
				break
			}
			n = n.Content[i]
			line = n.Line
			continue
		}
		if n == nil || n.Kind != yaml.MappingNode {
			break
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				line = n.Content[i].Line
				next = n.Content[i+1]
				break
			}
		}
		if next == nil {
			break
		}
		n = next
		line = n.Line
	}
	return line
}

// fieldErr is a validation error at the line of path.
func fieldErr(file string, root *yaml.Node, path, format string, args ...any) error {
	return &vulnzero.PositionError{File: file, Line: lineOf(root, path), Err: fmt.Errorf(path+": "+format, args...)}
}
