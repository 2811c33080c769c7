package remedy

import (
	"context"
	"fmt"
	"log/slog"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/remedy/guardrails"
)

// Alternatives writes a different patch for a group whose generated patch
// has a quarantined revision: the same scripts are never proposed again, so
// something else must be. llm.Alternator asks an LLM, giving it the failure
// transcript.
type Alternatives interface {
	Alternative(ctx context.Context, g Group, quarantined vulnzero.Patch, q vulnzero.Quarantine) (vulnzero.Patch, error)
}

// alternative asks p.Alternatives for a patch to propose instead of the
// quarantined one and holds it to the same bar: the same patch id (so the
// branch and PR stay), the guardrails, and a revision that is not
// quarantined itself. It returns nil and why when there is none.
func (p *Proposer) alternative(ctx context.Context, g Group, rejected vulnzero.Patch, q vulnzero.Quarantine, log *slog.Logger) (*vulnzero.Patch, string) {
	if p.Alternatives == nil {
		return nil, ""
	}
	alt, err := p.Alternatives.Alternative(ctx, g, rejected, q)
	if err != nil {
		log.Warn("no alternative to a quarantined revision", "patch", rejected.ID, "revision", q.Revision.Short(), "err", err)
		return nil, "; no alternative: " + err.Error()
	}
	if alt.ID != rejected.ID {
		return nil, fmt.Sprintf("; the alternative has patch id %q, not %q", alt.ID, rejected.ID)
	}
	if vs := guardrails.Check(p.Guardrails, scriptMap(alt.Scripts)); len(vs) > 0 {
		return nil, "; the alternative breaks the guardrails: " + vs[0].String()
	}
	if p.Revision != nil {
		rev, err := p.Revision(alt)
		if err != nil {
			return nil, fmt.Sprintf("; the alternative's revision: %v", err)
		}
		if aq, ok := p.quarantined(alt.ID, rev); ok {
			return nil, fmt.Sprintf("; the alternative, revision %s, is quarantined too: %s", rev.Short(), aq.Reason)
		}
	}
	log.Info("proposing an alternative to a quarantined revision", "patch", alt.ID, "quarantined", q.Revision.Short(),
		"generator", alt.Generator.Kind, "provider", alt.Generator.Provider, "model", alt.Generator.Model)
	return &alt, ""
}
