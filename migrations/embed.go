// Package migrations holds the versioned SQL of shopstream's own schema, applied in
// order by `shopstream migrate` (jackc/tern), and the optional demo shop schema.
package migrations

import "embed"

// FS holds the numbered migrations (NNN_name.sql) at its root and the demo
// schema under demo/.
//
//go:embed *.sql demo/*.sql
var FS embed.FS
