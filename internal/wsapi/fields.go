package wsapi

import (
	"context"
	"sync"
	"time"
)

// FieldSource lists the fields a filter may name for an entity: the columns of
// its table, without the secret ones (filtering on a secret would leak it).
type FieldSource func(ctx context.Context, entity string) ([]string, error)

// fieldCache remembers each entity's fields for a minute, so that a subscribe
// costs no query while tables may still gain columns.
type fieldCache struct {
	src FieldSource
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]cachedFields
}

type cachedFields struct {
	fields map[string]bool
	at     time.Time
}

func newFieldCache(src FieldSource) *fieldCache {
	return &fieldCache{src: src, ttl: time.Minute, m: map[string]cachedFields{}}
}

func (c *fieldCache) get(ctx context.Context, entity string) (map[string]bool, error) {
	c.mu.Lock()
	cf, ok := c.m[entity]
	c.mu.Unlock()
	if ok && time.Since(cf.at) < c.ttl {
		return cf.fields, nil
	}
	list, err := c.src(ctx, entity)
	if err != nil {
		return nil, err
	}
	cf = cachedFields{fields: toSet(list), at: time.Now()}
	c.mu.Lock()
	c.m[entity] = cf
	c.mu.Unlock()
	return cf.fields, nil
}
