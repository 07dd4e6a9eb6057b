package events

import "log/slog"

// Builder turns positioned changes into the records every instance sends:
// changed_fields computed, hidden columns dropped, updates of ignored columns
// alone dropped. What it drops keeps its position unused (a skipped id), so
// positions never depend on an instance's configuration.
type Builder struct {
	Columns map[string]Columns // per entity
	Limits  Limits
	Log     *slog.Logger
}

// Build returns the records of changes, in order.
func (b Builder) Build(changes []Change) []Record {
	recs := make([]Record, 0, len(changes))
	for _, c := range changes {
		if c.Refused != nil {
			// Not from its entity's table: a table renamed away, or a row forged.
			b.log().Warn("refusing a change", "change_id", c.ID, "position", c.Position, "entity", c.Entity, "err", c.Refused)
			continue
		}
		rec, ok, err := BuildWithin(c, b.Columns[c.Entity], b.Limits)
		if err != nil {
			// A row that cannot be read would wedge the log forever; report and skip it.
			b.log().Error("skipping unreadable change", "change_id", c.ID, "position", c.Position, "entity", c.Entity, "err", err)
			continue
		}
		if ok {
			recs = append(recs, rec)
		}
	}
	return recs
}

func (b Builder) log() *slog.Logger {
	if b.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return b.Log
}
