package source

import (
	"fmt"
	"os"

	"vulnzero.dev/vulnzero/scan"
)

// qualysKnowledgeBase loads the spooled KnowledgeBase answers and returns
// the parse option that joins detections with them.
func qualysKnowledgeBase(paths []string) (func(*scan.Options), error) {
	kb := scan.NewQualysKB()
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		_, err = kb.Load(p, f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("load: %w", err)
		}
	}
	return func(o *scan.Options) { o.QualysKB = kb }, nil
}
