package source

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"

	"vulnzero.dev/vulnzero/scan"
)

// tenable pulls a Tenable VM vulnerability export: request the export, poll
// its status, and download each chunk as it becomes available. Each chunk
// is a JSON array of findings.
type tenable struct {
	src *Source
	c   *client
}

// tenableStatus is the export status answer.
type tenableStatus struct {
	Status          string `json:"status"`
	ChunksAvailable []int  `json:"chunks_available"`
	ChunksFailed    []int  `json:"chunks_failed"`
	ChunksCancelled []int  `json:"chunks_cancelled"`
	TotalChunks     int    `json:"total_chunks"`
}

// tenableFormats are the scan formats that may read an export chunk, most
// specific first.
var tenableFormats = []scan.Format{"tenable", "nessus"}

func (t *tenable) formats() []scan.Format {
	f, err := pickFormat(tenableFormats...)
	if err != nil {
		return tenableFormats[:1] // reported as missing by runPull
	}
	return []scan.Format{f}
}

func (t *tenable) pull(ctx context.Context, dir string) (pulled, error) {
	format, err := pickFormat(tenableFormats...)
	if err != nil {
		return pulled{}, err
	}
	access, err := t.src.cfg.AccessKey.Resolve(t.src.deps.Getenv)
	if err != nil {
		return pulled{}, fmt.Errorf("accessKey: %w", err)
	}
	secret, err := t.src.cfg.SecretKey.Resolve(t.src.deps.Getenv)
	if err != nil {
		return pulled{}, fmt.Errorf("secretKey: %w", err)
	}
	header := http.Header{
		"X-ApiKeys":    {"accessKey=" + access + ";secretKey=" + secret},
		"Accept":       {"application/json"},
		"Content-Type": {"application/json"},
	}

	// Request the export.
	body, err := json.Marshal(map[string]any{
		"num_assets": t.src.cfg.PageSize,
		"filters":    map[string]any{"state": t.src.cfg.States},
	})
	if err != nil {
		return pulled{}, err
	}
	u, err := joinURL(t.src.cfg.URL, "/vulns/export", nil)
	if err != nil {
		return pulled{}, err
	}
	var started struct {
		ExportUUID string `json:"export_uuid"`
	}
	if err := t.getJSON(ctx, request{method: http.MethodPost, url: u, header: header, body: body}, &started); err != nil {
		return pulled{}, fmt.Errorf("request export: %w", err)
	}
	if started.ExportUUID == "" {
		return pulled{}, fmt.Errorf("request export: answer has no export_uuid")
	}
	id := started.ExportUUID
	statusURL, err := joinURL(t.src.cfg.URL, "/vulns/export/"+id+"/status", nil)
	if err != nil {
		return pulled{}, err
	}

	// Poll, downloading chunks as they appear, until the export finishes.
	p := pulled{scanner: format}
	done := map[int]bool{}
	for range maxPages {
		var st tenableStatus
		if err := t.getJSON(ctx, request{method: http.MethodGet, url: statusURL, header: header}, &st); err != nil {
			return pulled{}, fmt.Errorf("export %s status: %w", id, err)
		}
		switch st.Status {
		case "CANCELLED", "ERROR":
			return pulled{}, fmt.Errorf("export %s ended %s", id, st.Status)
		}
		if len(st.ChunksFailed) > 0 || len(st.ChunksCancelled) > 0 {
			// A missing chunk makes the pull partial, and a partial pull
			// must not close findings.
			return pulled{}, fmt.Errorf("export %s: chunks failed %v, cancelled %v", id, st.ChunksFailed, st.ChunksCancelled)
		}
		chunks := slices.Clone(st.ChunksAvailable)
		slices.Sort(chunks)
		for _, n := range chunks {
			if done[n] {
				continue
			}
			cu, err := joinURL(t.src.cfg.URL, "/vulns/export/"+id+"/chunks/"+strconv.Itoa(n), nil)
			if err != nil {
				return pulled{}, err
			}
			path := spoolPath(dir, "tenable-chunk", n)
			if _, err := t.c.spool(ctx, request{method: http.MethodGet, url: cu, header: header}, path); err != nil {
				return pulled{}, fmt.Errorf("export %s chunk %d: %w", id, n, err)
			}
			if err := checkJSONArray(path); err != nil {
				return pulled{}, fmt.Errorf("export %s chunk %d: %w", id, n, err)
			}
			done[n] = true
			p.docs = append(p.docs, doc{
				name:   fmt.Sprintf("%s: GET /vulns/export/%s/chunks/%d", t.src.cfg.Name, id, n),
				path:   path,
				format: format,
			})
		}
		if st.Status == "FINISHED" {
			if st.TotalChunks > 0 && len(done) < st.TotalChunks {
				return pulled{}, fmt.Errorf("export %s finished with %d of %d chunks available", id, len(done), st.TotalChunks)
			}
			return p, nil
		}
		if err := t.src.deps.Sleep(ctx, t.src.cfg.PollInterval); err != nil {
			return pulled{}, fmt.Errorf("export %s: %w", id, err)
		}
	}
	return pulled{}, fmt.Errorf("export %s: not finished after %d polls", id, maxPages)
}

// getJSON makes a call whose answer is a small JSON object.
func (t *tenable) getJSON(ctx context.Context, req request, v any) error {
	return t.c.do(ctx, req, func(resp *http.Response) error {
		b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		if err != nil {
			return retryableError{err}
		}
		if err := json.Unmarshal(b, v); err != nil {
			return fmt.Errorf("answer is not the JSON expected: %w", err)
		}
		return nil
	})
}

// checkJSONArray checks that a chunk starts as a JSON array, the shape the
// export API documents, before the parser reads it in full.
func checkJSONArray(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tok, err := json.NewDecoder(f).Token()
	if err != nil {
		return fmt.Errorf("chunk is not JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return fmt.Errorf("chunk is not a JSON array (starts with %v)", tok)
	}
	return nil
}
